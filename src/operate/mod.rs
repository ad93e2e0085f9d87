//! Operating a deployed app: `run` a command in a release, open a `shell` there, read
//! its `logs`. Nothing here changes a release; every command finds the app's nodes in
//! cluster.toml and its truth (current version, kept releases) on the node.

mod exec;
pub(crate) mod logs;

pub use exec::{Place, run, shell};
pub use logs::{LogKind, LogLine, LogsRequest, logs};

use crate::cluster::StateFile;
use crate::deploy::app_for_host;
use crate::error::{Error, Result};
use crate::transport::Session;

/// The app at `host` and the node to use (`node`, or the app's first), connected.
async fn app_node(
    state: &StateFile,
    host: &str,
    node: Option<&str>,
) -> Result<(String, String, Session)> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let node = match node {
        Some(n) if nodes.iter().any(|m| m == n) => n.to_string(),
        Some(n) => {
            return Err(Error::usage(
                format!("`{host}` is not deployed to node `{n}`"),
                format!("its nodes: {}", nodes.join(", ")),
            ));
        }
        None => nodes[0].clone(),
    };
    let session = Session::for_node(&node, cluster.node(&node)?, state).await?;
    Ok((app, node, session))
}
