//! Entry points for the fuzz targets in `fuzz/` (issue 18), and nothing else.
//!
//! The parsers of what nodes print are private to the modules that call nodes (they sit
//! behind an SSH session); each function here feeds one of them arbitrary text without a
//! session, so the fuzzer can reach it. Public parsers (`AppConfig::parse`,
//! `Cluster::parse`, `Manifest::parse`, `NodeState::parse`, `probe::parse`,
//! `sync::remote::parse`, `env_file`) are called by the targets directly. Not part of
//! skiff's API: hidden from the docs, and only the fuzz targets use it.

use crate::deploy::{backup, history, remote};
use crate::operate::logs;

/// Exists for the `node_output` fuzz target: the deploy steps' output as `node.sh` prints
/// it (`phase` lines, `---NAME` sections, the `HELD` owner line), read by every parser of
/// `deploy::remote` that `begin`, `nodelock`, `prepare`, `peek`, `inspect` and `files` use.
pub fn deploy_output(out: &str) {
    let _ = remote::phases(out);
    let _ = remote::holder(out);
    let parts = remote::sections(out);
    let pool = parts.get("pool").map(String::as_str);
    let _ = remote::pool_slots(pool, "py");
    let _ = remote::pool_slots(pool, "rb");
    let _ = remote::begun("fuzz", out);
    let _ = remote::node_view("fuzz", out);
    let _ = remote::release_of(&parts);
    let _ = remote::files_of(out);
    if let Ok((parts, state)) = remote::state_of("fuzz", out) {
        let _ = remote::peeked(&parts, state);
    }
}

/// Exists for the `node_output` fuzz target: the lines `skiff logs` reads from a node
/// (`tz`, `access`, `error`, `journal` and `deploy` lines), one parser over all of them.
pub fn log_lines(text: &str) {
    let mut parser = logs::Parser::new("fuzz", "app");
    for line in text.lines() {
        let _ = parser.parse(line);
    }
}

/// Exists for the `node_output` fuzz target: a node's deploy log (`skiff history`).
pub fn history_log(text: &str) {
    let _ = history::entries(text);
}

/// Exists for the `node_output` fuzz target: `skiff-node backup list`'s answer.
pub fn backup_listing(text: &str) {
    let _ = backup::parse_listing(text);
}

/// Exists for the `node_output` fuzz target: `ssh-keygen -l -F` output (the node's
/// pinned host keys).
pub fn keygen_list(text: &str) {
    let _ = crate::transport::ssh::parse_keygen_list(text);
}
