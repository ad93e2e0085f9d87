//! `skiff destroy-app`: an app gone from every node and from cluster.toml.

use super::*;

/// The result of `destroy-app` (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct DestroyReport {
    /// App name.
    pub app: String,
    /// The main host.
    pub host: String,
    /// Nodes it was removed from.
    pub nodes: Vec<String>,
    /// Daemon slots it held, now free.
    pub freed: Vec<String>,
}

/// `destroy-app HOST`: removes the app from every node (routes first, so no host of it
/// answers any more; then its slots, releases, venvs, env snapshots and node-side env
/// file) and from cluster.toml. Under both locks, like a deploy.
pub async fn destroy_app(state: &StateFile, host: &str, events: EventFn) -> Result<DestroyReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let owner = owner_line(&app);
    let (targets, views) = lock_everything(state, &cluster, &nodes, &app, &owner, &events).await?;
    let mut freed_all = Vec::new();
    for (t, view) in targets.iter().zip(views) {
        let mut st = view.state;
        st.apps.remove(&app);
        let freed: Vec<String> = st
            .slots
            .iter()
            .filter(|(_, u)| u.app == app)
            .map(|(s, _)| s.clone())
            .collect();
        for s in &freed {
            st.slots.remove(s);
        }
        let routes = routing::render_map(&st);
        let done = match remote::switch(&t.session, &app, &owner, &st, &routes).await {
            Ok(_) => match super::tls::remove(&t.session, &app).await {
                Ok(()) => remote::destroy(&t.session, &app, &owner, &freed).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            return Err(release_all(targets, &app, &owner, e).await);
        }
        for s in freed {
            if !freed_all.contains(&s) {
                freed_all.push(s);
            }
        }
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    state.update(&mut waiting_note(&events), |cluster| {
        cluster.apps.remove(host);
        Ok(())
    })?;
    Ok(DestroyReport {
        app,
        host: host.to_string(),
        nodes,
        freed: freed_all,
    })
}
