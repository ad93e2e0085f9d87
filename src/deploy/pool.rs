//! Each Python or Ruby app has slots of its own: a slot's processes run as the user of the
//! app that owns it (`names::app_user`), so one app cannot read another's environment,
//! secrets or data. When a deploy (or an activate that loads a release) finds none of
//! the app's slots free, it gives the app [`OWNED`] slots under the node lock, through
//! `skiff-node slots-own` (one Apache graceful reload): free slots no app on the node
//! owns first (setup-node's pool, a destroyed app's), new ones after.
//!
//! A graceful reload restarts every mod_wsgi daemon and Passenger app on the node: measured
//! on a test node (docs/node-layout.md), each one stalls every app for ~0.4-1 s and fails
//! about 2 in-flight requests per Python app at 100 requests/s. So an app gets its slots
//! once, on its first deploy to a node, enough for every later deploy: the current
//! version, the previous one (`prev.HOST`), and the next one loading beside them.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::node_state::{NodeState, SlotKind};
use crate::provision::MAX_SLOTS;
use crate::transport::ssh::Session;

use super::{Event, EventFn, remote};

/// Slots an app owns of its kind: current, prev and the next release (an idle Python
/// slot costs ~9 MB PSS).
pub const OWNED: usize = 3;

/// The slots (of one kind, `prefix` `py` or `rb`) to give `app`, which owns `owned` of
/// them and has none free: up to [`OWNED`] in all (at least one), free slots that no app
/// of `st` owns first (lowest number first), then new numbers after the pool's highest.
/// Empty when the pool is at [`MAX_SLOTS`] and nothing is free.
pub fn slots_to_own(
    st: &NodeState,
    app: &str,
    prefix: &str,
    pool: &[String],
    users: &BTreeMap<String, String>,
) -> Vec<String> {
    let mine = crate::names::app_user(app);
    let owned = pool.iter().filter(|s| users.get(*s) == Some(&mine)).count();
    let want = OWNED.saturating_sub(owned).max(1);
    let owners: BTreeSet<String> = st.apps.keys().map(|a| crate::names::app_user(a)).collect();
    let mut picked: Vec<String> = pool
        .iter()
        .filter(|s| !st.slots.contains_key(*s))
        .filter(|s| {
            users
                .get(*s)
                .is_none_or(|u| u != &mine && !owners.contains(u))
        })
        .take(want)
        .cloned()
        .collect();
    let top = pool
        .iter()
        .filter_map(|s| s.strip_prefix(prefix)?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    let mut next = top + 1;
    while picked.len() < want && next <= MAX_SLOTS {
        picked.push(format!("{prefix}{next:02}"));
        next += 1;
    }
    picked
}

/// The note a deploy shows when it gave the app slots.
pub fn owned_note(kind: SlotKind, app: &str, slots: &[String]) -> String {
    format!(
        "`{app}` now has {} slot(s) of its own ({}, one Apache graceful reload)",
        kind.label(),
        slots.join(", ")
    )
}

/// [`NodeState::choose_slot`] among `app`'s own slots of `kind`, giving it slots (see
/// [`slots_to_own`]) when none is free. Needs the node lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn choose_or_grow(
    session: &Session,
    node: &str,
    st: &NodeState,
    app: &str,
    n: u32,
    kind: SlotKind,
    pool: &[String],
    users: &BTreeMap<String, String>,
    owner: &str,
    events: &EventFn,
) -> Result<String> {
    let user = crate::names::app_user(app);
    let mut mine: Vec<String> = pool
        .iter()
        .filter(|s| users.get(*s) == Some(&user))
        .cloned()
        .collect();
    let full = match st.choose_slot(app, n, &mine) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let given = slots_to_own(st, app, kind.prefix(), pool, users);
    if given.is_empty() {
        return Err(match full {
            Error::Failed { message, .. } => Error::Failed {
                message,
                hint: Some(format!(
                    "this node has {MAX_SLOTS} slots of this kind, each owned by an app: \
                     free some with `skiff destroy-app HOST`"
                )),
            },
            e => e,
        });
    }
    remote::own(session, app, owner, kind, &given).await?;
    events(Event::Note {
        node: node.to_string(),
        message: owned_note(kind, app, &given),
    });
    mine.extend(given);
    mine.sort();
    mine.dedup();
    st.choose_slot(app, n, &mine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_state::SlotUse;

    fn slots(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_app_gets_free_unowned_slots_first_then_new_ones() {
        let mut st = NodeState::default();
        for app in ["blog", "shop"] {
            let entry = crate::node_state::NodeApp {
                runtime: crate::app_config::Runtime::Python,
                hostnames: vec![format!("{app}.test")],
                current: None,
                prev: None,
                releases: Vec::new(),
                packages: Vec::new(),
            };
            st.apps.insert(app.into(), entry);
        }
        st.slots.insert(
            "py01".into(),
            SlotUse {
                app: "blog".into(),
                release: 1,
            },
        );
        let pool = slots(&["py01", "py02", "py03", "py04"]);
        let users: BTreeMap<String, String> = [
            ("py01", "www-data"),
            ("py02", "app-blog"),
            ("py03", "app-gone"),
            ("py04", "www-data"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        // shop owns nothing: py01 is busy, py02 is blog's; py03 (an app no longer here)
        // and py04 are free; one more is new
        assert_eq!(
            slots_to_own(&st, "shop", "py", &pool, &users),
            slots(&["py03", "py04", "py05"])
        );
        // blog owns py02 already: two more
        assert_eq!(
            slots_to_own(&st, "blog", "py", &pool, &users),
            slots(&["py03", "py04"])
        );
        let full: Vec<String> = (1..=MAX_SLOTS).map(|i| format!("py{i:02}")).collect();
        let all_blog: BTreeMap<String, String> = full
            .iter()
            .map(|s| (s.clone(), "app-blog".to_string()))
            .collect();
        assert!(slots_to_own(&st, "shop", "py", &full, &all_blog).is_empty());
        assert_eq!(
            owned_note(SlotKind::Python, "shop", &slots(&["py03", "py05"])),
            "`shop` now has Python slot(s) of its own (py03, py05, one Apache graceful reload)"
        );
    }
}
