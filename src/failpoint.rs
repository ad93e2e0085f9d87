//! Named points in skiff's runs where a test can make skiff die, fail or be interrupted
//! exactly there, so that crash recovery is checked at every step of a deploy rather than
//! at moments picked by a timer. Compiled into debug builds only (what `cargo test`
//! runs); a release build has none and ignores the variable.
//!
//! `SKIFF_FAILPOINT=SPEC[,SPEC...]`, a SPEC being `POINT[@NODE][#K][=ACTION]`: the point's
//! name (`update:locked`, `sync:round`, ...: grep `failpoint::hit`), only on that node,
//! only at its K-th hit (default the first), and what happens: `kill` (default: SIGKILL,
//! as a laptop that dies; nothing of skiff's own clean-up runs), `error` (the step fails
//! with an error naming the point) or `interrupt` (SIGINT, as Ctrl-C).

use crate::error::Result;

/// Passes the point `name` (on `node`, when the point is per node): does what
/// `SKIFF_FAILPOINT` asks there, if anything.
#[cfg(debug_assertions)]
pub fn hit(name: &str, node: Option<&str>) -> Result<()> {
    use std::sync::Mutex;
    static HITS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    let Ok(specs) = std::env::var("SKIFF_FAILPOINT") else {
        return Ok(());
    };
    let key = match node {
        Some(n) => format!("{name}@{n}"),
        None => name.to_string(),
    };
    let count = {
        let mut hits = HITS.lock().unwrap_or_else(|e| e.into_inner());
        match hits.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                hits.push((key.clone(), 1));
                1
            }
        }
    };
    for spec in specs.split(',').map(str::trim) {
        let Some(action) = matches(spec, name, node, count) else {
            continue;
        };
        eprintln!("skiff: failpoint {key} (hit {count}): {action}");
        match action {
            "error" => {
                return Err(crate::Error::failed(format!(
                    "failpoint {key} was set to fail"
                )));
            }
            "interrupt" => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
            }
            _ => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                std::process::abort();
            }
        }
    }
    Ok(())
}

/// Release builds: no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str, _node: Option<&str>) -> Result<()> {
    Ok(())
}

/// The action of `spec` when it names this point, node and hit count.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn matches<'a>(spec: &'a str, name: &str, node: Option<&str>, count: u32) -> Option<&'a str> {
    let (target, action) = spec.split_once('=').unwrap_or((spec, "kill"));
    let (target, nth) = match target.split_once('#') {
        Some((t, k)) => (t, k.parse().ok()?),
        None => (target, 1),
    };
    let (point, on) = match target.split_once('@') {
        Some((p, n)) => (p, Some(n)),
        None => (target, None),
    };
    let node_ok = on.is_none_or(|want| node == Some(want));
    (point == name && node_ok && nth == count).then_some(action)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn specs_pick_point_node_and_hit() {
        assert_eq!(
            matches("update:locked", "update:locked", None, 1),
            Some("kill")
        );
        assert_eq!(matches("update:locked", "update:locked", None, 2), None);
        assert_eq!(
            matches("sync:round#2=error", "sync:round", Some("a"), 2),
            Some("error")
        );
        assert_eq!(
            matches("update:switch@b=error", "update:switch", Some("a"), 1),
            None
        );
        assert_eq!(
            matches("update:switch@b=error", "update:switch", Some("b"), 1),
            Some("error")
        );
        assert_eq!(matches("update:switched", "update:locked", None, 1), None);
        assert_eq!(matches("x#notanumber", "x", None, 1), None);
    }
}
