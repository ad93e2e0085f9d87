//! `skiff versions`: the kept versions as the app's first node knows them.

use super::*;

/// One row of `skiff versions`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// N.
    pub number: u32,
    /// Deploy time.
    pub time: String,
    /// Tree size in bytes.
    pub size: u64,
    /// Digest of the tree.
    pub digest: String,
    /// Serving HOST.
    pub current: bool,
    /// Serving `prev.HOST`.
    pub prev: bool,
    /// Daemon slot running it (Python/Ruby), if any.
    pub slot: Option<String>,
}

/// The result of `skiff versions HOST`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionsReport {
    /// App name.
    pub app: String,
    /// The main host.
    pub host: String,
    /// Node the list was read from.
    pub node: String,
    /// Current version.
    pub current: Option<u32>,
    /// Previous version.
    pub prev: Option<u32>,
    /// Kept versions, oldest first.
    pub versions: Vec<VersionRow>,
}

/// `versions HOST`: the kept versions as the app's first node knows them (no lock).
pub async fn versions(state: &StateFile, host: &str) -> Result<VersionsReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let node = nodes[0].clone();
    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    let st = remote::peek(&session).await;
    let _ = session.close().await;
    let st = st?;
    let a = st.apps.get(&app).ok_or_else(|| Error::Failed {
        message: format!("app `{app}` is not on node `{node}`"),
        hint: Some("the cluster state is out of date; deploy again with `skiff update`".into()),
    })?;
    Ok(VersionsReport {
        app: app.clone(),
        host: host.to_string(),
        node,
        current: a.current,
        prev: a.prev,
        versions: a
            .releases
            .iter()
            .map(|r| VersionRow {
                number: r.number,
                time: r.time.clone(),
                size: r.size,
                digest: r.digest.clone(),
                current: a.current == Some(r.number),
                prev: a.prev == Some(r.number),
                slot: st.slot_of(&app, r.number).map(str::to_string),
            })
            .collect(),
    })
}
