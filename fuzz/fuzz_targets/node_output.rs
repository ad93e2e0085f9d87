//! Every parser of what a node (or a tool run about one) prints. The first byte picks the
//! parser, the rest is its input:
//!
//! - 0: the deploy steps' output (`deploy::remote`: phases, sections, `begin`, the node
//!   lock's view, `peek`, `inspect`, `files`);
//! - 1: the log lines `skiff logs` reads (`tz`, `access`, `error`, `journal`, `deploy`);
//! - 2: the node's deploy log (`skiff history`);
//! - 3: the setup-node probe (`provision::probe::parse`);
//! - 4: the sync frames (`sync::remote::parse`, bytes as they come);
//! - 5: the apply script's markers (`provision::scripts::parse_report`);
//! - 6: /etc/os-release (`providers::OsRelease::parse`);
//! - 7: `skiff-node backup list`;
//! - 8: `ssh-keygen -l -F` output;
//! - 9: `vagrant ssh-config` output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 10 == 4 {
        let _ = skiff::sync::remote::parse(rest);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 10 {
        0 => fuzzing::deploy_output(text),
        1 => fuzzing::log_lines(text),
        2 => fuzzing::history_log(text),
        3 => {
            let _ = skiff::provision::probe::parse("fuzz", text);
        }
        5 => {
            let _ = skiff::provision::scripts::parse_report(text);
        }
        6 => {
            let _ = skiff::providers::OsRelease::parse(text);
        }
        7 => fuzzing::backup_listing(text),
        8 => fuzzing::keygen_list(text),
        _ => {
            let _ = skiff::providers::vagrant::parse_ssh_config(text);
        }
    }
});
