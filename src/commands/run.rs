//! `skiff run` and `skiff shell`: skiff's exit code is the remote command's.

use crate::cluster::StateFile;
use crate::error::Result;
use crate::{operate, printer, transport};

/// `run HOST [--node N] [--version V] -- CMD...`.
pub fn run(
    state: &StateFile,
    host: &str,
    node: Option<&str>,
    version: Option<u32>,
    command: &[String],
) -> Result<()> {
    let status = transport::block_on(operate::run(state, host, node, version, command))??;
    exit_with(status)
}

/// `shell HOST [--node N]`.
pub fn shell(state: &StateFile, host: &str, node: Option<&str>) -> Result<()> {
    let status = transport::block_on(operate::shell(state, host, node))??;
    exit_with(status)
}

/// Ends skiff with the remote command's exit code (a signal's end: 1, as the table of
/// exit codes has no other).
fn exit_with(status: Option<i32>) -> Result<()> {
    match status {
        Some(0) => Ok(()),
        code => {
            let _ = printer::finish_stdout();
            std::process::exit(code.unwrap_or(1))
        }
    }
}
