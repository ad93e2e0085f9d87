//! `skiff rollback` and `activate`: another kept version current on every node, all
//! or nothing.

use super::*;

/// `rollback` / `activate`: makes another kept version current on every node of `host`,
/// all or nothing. A version still in a warm slot is a map flip; one that is not running
/// is loaded into an idle slot, warmed and checked first with the health check it was
/// deployed with. Only when every node is ready are they switched; a node refusing its
/// switch puts the ones already switched back, and every node undoes what this run did.
pub async fn activate(
    state: &StateFile,
    host: &str,
    choice: Choice,
    events: EventFn,
) -> Result<SwitchReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    // one token for the run (the loaders answer with it; every node's abort finds the
    // slots this run loaded by it)
    let token = new_token(0);
    let run = match choice {
        Choice::Prev => history::Run::start("rollback", &owner),
        Choice::Version(n) => history::Run::start("activate", &owner).version(Some(n)),
    };
    // every node must go to the same version, and get the same prev after it
    let shared = kept_everywhere(views.iter().map(|v| &v.state), &app);
    let field = |f: fn(&crate::node_state::NodeApp) -> Option<u32>| -> Vec<Option<u32>> {
        views
            .iter()
            .map(|v| v.state.apps.get(&app).and_then(f))
            .collect()
    };
    let (olds, prevs) = (field(|a| a.current), field(|a| a.prev));
    let target = match choice {
        Choice::Version(v) => Some(v),
        Choice::Prev if prevs.windows(2).all(|w| w[0] == w[1]) => prevs.first().copied().flatten(),
        Choice::Prev => {
            let each: Vec<String> = targets
                .iter()
                .zip(&prevs)
                .map(|(t, p)| {
                    format!(
                        "{} has {}",
                        t.name,
                        p.map_or("none".into(), |v| v.to_string())
                    )
                })
                .collect();
            let e = Error::Failed {
                message: format!(
                    "the nodes of `{host}` disagree on its previous version ({}), so a rollback would leave them serving different versions",
                    each.join(", ")
                ),
                hint: Some(format!(
                    "activate the version you want on every node: `skiff activate {host} N` (see `skiff versions {host}`)"
                )),
            };
            return Err(abort_all(targets, &app, &owner, None, &token, &run, e).await);
        }
    };
    let recorded = cluster.apps.get(host).and_then(|a| a.current);
    let agreed = target.and_then(|n| agreed_prev(&olds, &shared, recorded, n));
    let mut ready = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        match ready_to_activate(t, view, &app, host, choice, agreed, &owner, &token, &events).await
        {
            Ok(r) => ready.push(r),
            Err(e) => return Err(abort_all(targets, &app, &owner, None, &token, &run, e).await),
        }
    }
    for (i, (t, r)) in targets.iter().zip(&ready).enumerate() {
        step(&events, &t.name, "switch");
        let switched = match crate::failpoint::hit("activate:switch", Some(&t.name)) {
            Ok(()) => remote::switch(&t.session, &app, &owner, &r.state, &r.routes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = switched {
            for (done, d) in targets[..i].iter().zip(&ready) {
                let old = routing::render_map(&d.before);
                let _ = remote::switch(&done.session, &app, &owner, &d.before, &old).await;
            }
            return Err(abort_all(targets, &app, &owner, None, &token, &run, e).await);
        }
    }
    let mut finals = Vec::new();
    for (t, r) in targets.iter().zip(ready) {
        step(&events, &t.name, "finish");
        if let Err(e) =
            remote::finish(&t.session, &app, &owner, &r.freed, &[], &run.line(Ok(()))).await
        {
            events(Event::Note {
                node: t.name.clone(),
                message: format!("the switch is done, but tidying up failed: {e}"),
            });
        }
        finals.push((t.name.clone(), r.state));
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
    Ok(SwitchReport {
        app,
        host: host.to_string(),
        current,
        prev,
        removed: Vec::new(),
        nodes,
    })
}

/// A node ready to switch to another kept version: the states before and after, the new
/// routing table, and the slots the switch frees.
pub(super) struct ReadyToActivate {
    before: NodeState,
    state: NodeState,
    routes: String,
    freed: Vec<String>,
}

/// Under both locks: decides the version to activate on one node, loads and checks it
/// when no slot runs it (a dead run's slots reset first); changes no route.
#[allow(clippy::too_many_arguments)]
pub(super) async fn ready_to_activate(
    t: &Target,
    view: NodeView,
    app: &str,
    host: &str,
    choice: Choice,
    agreed_prev: Option<u32>,
    owner: &str,
    token: &str,
    events: &EventFn,
) -> Result<ReadyToActivate> {
    let mut st = view.state.clone();
    let node_app = st.apps.get(app).cloned().ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{}`", t.name),
        hint: Some("deploy it there with `skiff update DIR --node NODE`".into()),
    })?;
    let target = match choice {
        Choice::Prev => node_app.prev.ok_or_else(|| Error::Failed {
            message: format!(
                "`{host}` has no previous version on node `{}` to roll back to",
                t.name
            ),
            hint: Some("rollback needs two deploys; see `skiff versions HOST`".into()),
        })?,
        Choice::Version(v) => v,
    };
    let Some(release) = node_app.releases.iter().find(|r| r.number == target) else {
        return Err(Error::Usage {
            message: format!(
                "version {target} of `{host}` is not kept on node `{}`",
                t.name
            ),
            hint: Some(format!(
                "kept versions: {}",
                node_app
                    .releases
                    .iter()
                    .map(|r| r.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    };
    let reset = st.stale_slots(&view.slot_files);
    let mut slot = None;
    if node_app.current != Some(target)
        && let Some((k, pool)) = pool_for(&t.begun, node_app.runtime)
        && st.slot_of(app, target).is_none()
    {
        let s = pool::choose_or_grow(
            &t.session,
            &t.name,
            &st,
            app,
            target,
            k,
            pool,
            &t.begun.slot_users,
            owner,
            events,
        )
        .await?;
        st.slots.insert(
            s.clone(),
            SlotUse {
                app: app.to_string(),
                release: target,
            },
        );
        slot = Some((s, k));
    }
    if slot.is_some() || !reset.is_empty() {
        // not running: load it into an idle slot and check it before the flip
        if let Some((s, _)) = &slot {
            events(Event::Note {
                node: t.name.clone(),
                message: format!("version {target} is not running; loading it into slot {s}"),
            });
        }
        let backend = routing::backend(&st, app, &st.apps[app], target);
        let main = routing::main_host(&node_app.hostnames).unwrap_or(host);
        let vhost = format!("{target}.{main}");
        let (health, timeout) = release
            .health
            .as_ref()
            .map(|h| (h.path.clone(), h.timeout))
            .unwrap_or_else(|| ("/".to_string(), 30.0));
        let trial = remote::Trial {
            app,
            owner,
            n: target,
            slot: slot.as_ref().map(|(s, k)| (s.as_str(), *k)),
            want: SLOT_PROCESSES,
            backend: &backend,
            vhost: &vhost,
            health: &health,
            timeout,
            token,
            reset: &reset,
        };
        step(events, &t.name, "check");
        if let Err(h) = remote::trial(&t.session, &trial).await? {
            return Err(Error::Remote {
                node: t.name.clone(),
                command: format!("health check of version {target}"),
                status: None,
                output: format!("HTTP {} from http://{vhost}{health}\n{}", h.status, h.body),
                hint: Some("the live version is unchanged".into()),
            });
        }
    }
    let before = view.state;
    let a = st.apps.get_mut(app).expect("checked above");
    if a.current != Some(target) {
        a.current = Some(target);
        a.prev = agreed_prev;
    }
    let freed = st.free_spare_slots(app);
    let routes = routing::render_map(&st);
    Ok(ReadyToActivate {
        before,
        state: st,
        routes,
        freed,
    })
}
