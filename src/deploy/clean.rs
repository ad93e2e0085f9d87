//! `skiff clean`: drop old releases (never current, prev or one in a slot) and every
//! release folder no state names.

use super::*;

/// `clean HOST --keep N`: removes the oldest releases beyond `keep` on every node (never
/// current, prev or one running in a slot), and every release folder no state names.
pub async fn clean(
    state: &StateFile,
    host: &str,
    keep: u32,
    events: EventFn,
) -> Result<SwitchReport> {
    if keep == 0 {
        return Err(Error::usage(
            "`--keep 0` would remove the live version",
            "keep at least 1 (current and prev are always kept)",
        ));
    }
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    let run = history::Run::start("clean", &owner);
    let mut finals = Vec::new();
    let mut removed = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        let mut st = view.state;
        let mut prune = st.prune_candidates(&app, keep as usize);
        if let Some(a) = st.apps.get_mut(&app) {
            a.releases.retain(|r| !prune.contains(&r.number));
        }
        let leftovers = st.leftovers(&app, &t.begun.found);
        let routes = routing::render_map(&st);
        let switched = match remote::switch(&t.session, &app, &owner, &st, &routes).await {
            Ok(_) => {
                let mut drop = prune.clone();
                drop.extend(leftovers.iter().copied());
                remote::finish(&t.session, &app, &owner, &[], &drop, &run.line(Ok(()))).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = switched {
            return Err(release_all(targets, &app, &owner, e).await);
        }
        prune.extend(leftovers);
        for p in prune {
            if !removed.contains(&p) {
                removed.push(p);
            }
        }
        finals.push((t.name.clone(), st));
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    record(state, &app, host, &finals, None, &events)?;
    let (current, prev) = finals
        .first()
        .and_then(|(_, st)| st.apps.get(&app))
        .map(|a| (a.current, a.prev))
        .unwrap_or((None, None));
    removed.sort_unstable();
    Ok(SwitchReport {
        app,
        host: host.to_string(),
        current,
        prev,
        removed,
        nodes,
    })
}
