//! The node's own truth: `/var/lib/skiff/state.toml`.
//!
//! Which apps a node serves, their kept releases, which is current and prev, and which
//! daemon slot of the node's pool runs which release. `update`, `rollback` and
//! `activate` read it under the app's deploy lock, decide the next state here (pure
//! logic, unit-tested), and write it back with the switch. The laptop's cluster.toml is
//! a cache of this; the node wins when they disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::app_config::Runtime;
use crate::error::{Error, Result};

/// Where the node keeps this file.
pub const PATH: &str = "/var/lib/skiff/state.toml";

/// Schema version written by this skiff.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole node state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Schema version.
    #[serde(default = "schema_default")]
    pub schema: u32,
    /// Apps by name.
    #[serde(default)]
    pub apps: BTreeMap<String, NodeApp>,
    /// Occupied daemon slots of the node's pool: slot name -> what runs there.
    #[serde(default)]
    pub slots: BTreeMap<String, SlotUse>,
    /// When each slot was last freed (Unix seconds): a slot freed a moment ago may still
    /// be respawning its processes, so the longest-free slot is used first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub freed_at: BTreeMap<String, u64>,
}

fn schema_default() -> u32 {
    SCHEMA_VERSION
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState {
            schema: SCHEMA_VERSION,
            apps: BTreeMap::new(),
            slots: BTreeMap::new(),
            freed_at: BTreeMap::new(),
        }
    }
}

/// One app on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeApp {
    /// How it runs (decides the backend kind).
    pub runtime: Runtime,
    /// Host names; the first is the main one (`N.HOST`, `prev.HOST`).
    pub hostnames: Vec<String>,
    /// Release HOST serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    /// Release `prev.HOST` serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u32>,
    /// Kept releases, oldest first.
    #[serde(default)]
    pub releases: Vec<Release>,
    /// System packages installed for this app (`[packages] apt`), every deploy's; never
    /// removed by skiff, recorded so an operator can tell which app wanted what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// One kept release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// N.
    pub number: u32,
    /// RFC 3339 time of the deploy.
    pub time: String,
    /// Digest of the release's manifest.
    pub digest: String,
    /// Bytes of the tree.
    #[serde(default)]
    pub size: u64,
    /// Python venv key (requirements hash), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
    /// The health check the release passed when it was deployed (`[health]`): `activate`
    /// and `rollback` check it the same way when they load it into a slot again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ReleaseHealth>,
}

/// A release's `[health]`, as deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseHealth {
    /// Path requested on `N.HOST`.
    pub path: String,
    /// Seconds allowed.
    pub timeout: f64,
}

/// What a daemon slot runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotUse {
    /// App name.
    pub app: String,
    /// Release number.
    pub release: u32,
}

/// The two kinds of daemon slot in a node's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A mod_wsgi daemon group `pyNN`.
    Python,
    /// A Passenger app root `rbNN`.
    Ruby,
}

impl SlotKind {
    /// The kind of slot a runtime needs, if any (PHP and static apps need none).
    pub fn of(runtime: Runtime) -> Option<SlotKind> {
        match runtime {
            Runtime::Python => Some(SlotKind::Python),
            Runtime::Ruby => Some(SlotKind::Ruby),
            Runtime::Php | Runtime::Static => None,
        }
    }

    /// The slot names' prefix: `py`, `rb`.
    pub fn prefix(self) -> &'static str {
        match self {
            SlotKind::Python => "py",
            SlotKind::Ruby => "rb",
        }
    }

    /// The name node.sh and skiff-node use: `python`, `ruby`.
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::Python => "python",
            SlotKind::Ruby => "ruby",
        }
    }

    /// How people call it: `Python`, `Ruby`.
    pub fn label(self) -> &'static str {
        match self {
            SlotKind::Python => "Python",
            SlotKind::Ruby => "Ruby",
        }
    }
}

impl NodeState {
    /// Parses the node's state.toml; `node` is named in errors.
    pub fn parse(node: &str, text: &str) -> Result<NodeState> {
        if text.trim().is_empty() {
            return Ok(NodeState::default());
        }
        let state: NodeState = toml::from_str(text).map_err(|e| Error::Failed {
            message: format!("node `{node}` has an unreadable {PATH}: {}", e.message()),
            hint: Some(format!(
                "inspect it on the node; re-running `skiff setup-node {node}` does not touch it"
            )),
        })?;
        if state.schema > SCHEMA_VERSION {
            return Err(Error::Failed {
                message: format!(
                    "node `{node}` has a state schema {} newer than this skiff ({SCHEMA_VERSION})",
                    state.schema
                ),
                hint: Some("upgrade skiff on this machine".into()),
            });
        }
        Ok(state)
    }

    /// The TOML text written back to the node.
    pub fn render(&self) -> String {
        let body = toml::to_string_pretty(self).expect("node state always serializes");
        format!("# skiff node state: written by `skiff update`; do not edit by hand\n{body}")
    }

    /// The slot that runs `app`'s release `release`, if any.
    pub fn slot_of(&self, app: &str, release: u32) -> Option<&str> {
        self.slots
            .iter()
            .find(|(_, u)| u.app == app && u.release == release)
            .map(|(s, _)| s.as_str())
    }

    /// Chooses the slot to load `app`'s release `release` into, from `pool` (every slot of
    /// the right kind that setup-node declared). Preference: the slot already running
    /// it; a slot of this app holding neither current nor prev; a free slot; the slot
    /// holding prev (prev then stops running, and `prev.HOST` says so). Never the slot
    /// holding current: that one is serving.
    pub fn choose_slot(&self, app: &str, release: u32, pool: &[String]) -> Result<String> {
        if let Some(s) = self.slot_of(app, release) {
            return Ok(s.to_string());
        }
        let current = self.apps.get(app).and_then(|a| a.current);
        let prev = self.apps.get(app).and_then(|a| a.prev);
        let mine_spare = pool.iter().find(|s| {
            self.slots.get(*s).is_some_and(|u| {
                u.app == app && Some(u.release) != current && Some(u.release) != prev
            })
        });
        if let Some(s) = mine_spare {
            return Ok(s.clone());
        }
        if let Some(s) = pool
            .iter()
            .filter(|s| !self.slots.contains_key(*s))
            .min_by_key(|s| self.freed_at.get(*s).copied().unwrap_or(0))
        {
            return Ok(s.clone());
        }
        if let Some(p) = prev
            && let Some(s) = self.slot_of(app, p)
            && pool.iter().any(|x| x == s)
        {
            return Ok(s.to_string());
        }
        Err(Error::Failed {
            message: format!(
                "no free daemon slot for `{app}`: all {} slots of this kind are busy ({})",
                pool.len(),
                self.slots
                    .iter()
                    .filter(|(s, _)| pool.contains(s))
                    .map(|(s, u)| format!("{s}: {} {}", u.app, u.release))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some(
                "a deploy gives an app slots of its own by itself up to 99 slots: free slots with `skiff destroy-app HOST`"
                    .into(),
            ),
        })
    }

    /// The state after switching `app` to release `n`: current = N, prev = the old
    /// current, spare slots freed, releases beyond `keep` pruned. Returns it with the
    /// freed slots and the pruned releases.
    pub fn after_switch(
        &self,
        app: &str,
        n: u32,
        keep: usize,
    ) -> (NodeState, Vec<String>, Vec<u32>) {
        let prev = self.apps.get(app).and_then(|a| {
            if a.current != Some(n) {
                a.current
            } else {
                a.prev
            }
        });
        self.after_switch_to(app, n, prev, keep, None)
    }

    /// [`NodeState::after_switch`] for one node of several: `prev` is the one every node
    /// gets (see `deploy::agreed_prev`), and a release outside `shared` (the versions
    /// every node keeps) is pruned first, so that the nodes keep the same versions again
    /// after a dead run left one on some of them only.
    pub fn after_switch_to(
        &self,
        app: &str,
        n: u32,
        prev: Option<u32>,
        keep: usize,
        shared: Option<&std::collections::BTreeSet<u32>>,
    ) -> (NodeState, Vec<String>, Vec<u32>) {
        let mut st = self.clone();
        if let Some(entry) = st.apps.get_mut(app) {
            entry.current = Some(n);
            entry.prev = prev.filter(|p| *p != n);
        }
        let freed = st.free_spare_slots(app);
        let mut prune = Vec::new();
        if let (Some(shared), Some(a)) = (shared, st.apps.get(app)) {
            prune = a
                .releases
                .iter()
                .map(|r| r.number)
                .filter(|r| !shared.contains(r) && Some(*r) != a.current && Some(*r) != a.prev)
                .filter(|r| st.slot_of(app, *r).is_none())
                .collect();
        }
        if let Some(entry) = st.apps.get_mut(app) {
            entry.releases.retain(|r| !prune.contains(&r.number));
        }
        let more = st.prune_candidates(app, keep);
        if let Some(entry) = st.apps.get_mut(app) {
            entry.releases.retain(|r| !more.contains(&r.number));
        }
        prune.extend(more);
        (st, freed, prune)
    }

    /// After a switch: frees every slot of `app` that holds neither current nor prev,
    /// returning the freed slot names (their processes can be told to go idle).
    pub fn free_spare_slots(&mut self, app: &str) -> Vec<String> {
        let (current, prev) = match self.apps.get(app) {
            Some(a) => (a.current, a.prev),
            None => (None, None),
        };
        let spare: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, u)| u.app == app && Some(u.release) != current && Some(u.release) != prev)
            .map(|(s, _)| s.clone())
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for s in &spare {
            self.slots.remove(s);
            self.freed_at.insert(s.clone(), now);
        }
        spare
    }

    /// The next release number for `app`: one more than any kept or recorded one.
    pub fn next_number(&self, app: &str) -> u32 {
        self.apps
            .get(app)
            .map(|a| {
                a.releases
                    .iter()
                    .map(|r| r.number)
                    .chain(a.current)
                    .chain(a.prev)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
            + 1
    }

    /// Release numbers found on disk for `app` (`found`, as `begin` lists them) that the
    /// state does not name: what an interrupted deploy, or a kill between switch and
    /// finish, left behind. The next run removes them (it holds the app's lock).
    pub fn leftovers(&self, app: &str, found: &[u32]) -> Vec<u32> {
        let kept: Vec<u32> = self
            .apps
            .get(app)
            .map(|a| a.releases.iter().map(|r| r.number).collect())
            .unwrap_or_default();
        let mut out: Vec<u32> = found
            .iter()
            .copied()
            .filter(|n| !kept.contains(n))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Slots whose `slot.json` (`files`: slot -> the release folder it names, as the node
    /// lists them under the node lock) is not what the state says the slot runs: an
    /// interrupted trial loaded them, or a kill between switch and finish left a freed
    /// slot running. Each is reset before anything is loaded: `SLOT` (idle it) when the
    /// state gives it nothing, `SLOT:APP:N` (load that release again) when it does.
    pub fn stale_slots(&self, files: &BTreeMap<String, String>) -> Vec<String> {
        files
            .iter()
            .filter_map(|(slot, release)| match self.slots.get(slot) {
                Some(u) if *release == crate::deploy::contract::release_dir(&u.app, u.release) => {
                    None
                }
                Some(u) => Some(format!("{slot}:{}:{}", u.app, u.release)),
                None => Some(slot.clone()),
            })
            .collect()
    }

    /// Releases to delete so that at most `keep` remain (never current, prev, or
    /// anything running in a slot), oldest first.
    pub fn prune_candidates(&self, app: &str, keep: usize) -> Vec<u32> {
        let Some(a) = self.apps.get(app) else {
            return Vec::new();
        };
        let protected =
            |n: u32| Some(n) == a.current || Some(n) == a.prev || self.slot_of(app, n).is_some();
        let mut numbers: Vec<u32> = a.releases.iter().map(|r| r.number).collect();
        numbers.sort_unstable();
        let excess = numbers.len().saturating_sub(keep);
        numbers
            .into_iter()
            .filter(|n| !protected(*n))
            .take(excess)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<String> {
        vec!["py01".into(), "py02".into(), "py03".into()]
    }

    fn app(current: Option<u32>, prev: Option<u32>, releases: &[u32]) -> NodeApp {
        NodeApp {
            runtime: Runtime::Python,
            hostnames: vec!["a.test".into()],
            current,
            prev,
            releases: releases
                .iter()
                .map(|n| Release {
                    number: *n,
                    time: String::new(),
                    digest: String::new(),
                    size: 0,
                    venv: None,
                    health: None,
                })
                .collect(),
            packages: Vec::new(),
        }
    }

    #[test]
    fn slot_choice_never_takes_current() {
        let mut s = NodeState::default();
        s.apps.insert("a".into(), app(Some(2), Some(1), &[1, 2]));
        s.slots.insert(
            "py01".into(),
            SlotUse {
                app: "a".into(),
                release: 2,
            },
        );
        s.slots.insert(
            "py02".into(),
            SlotUse {
                app: "a".into(),
                release: 1,
            },
        );
        s.slots.insert(
            "py03".into(),
            SlotUse {
                app: "b".into(),
                release: 7,
            },
        );
        // no free slot: prev's slot is reused, never current's or another app's
        assert_eq!(s.choose_slot("a", 3, &pool()).unwrap(), "py02");
        s.slots.remove("py03");
        assert_eq!(s.choose_slot("a", 3, &pool()).unwrap(), "py03");
        // among free slots, the one freed longest ago (never = 0) comes first
        s.slots.remove("py02");
        s.freed_at.insert("py02".into(), 5);
        s.freed_at.insert("py03".into(), 9);
        assert_eq!(s.choose_slot("a", 3, &pool()).unwrap(), "py02");
        // already running: same slot
        assert_eq!(s.choose_slot("a", 2, &pool()).unwrap(), "py01");
    }

    #[test]
    fn full_pool_is_an_error_naming_users() {
        let mut s = NodeState::default();
        s.apps.insert("a".into(), app(None, None, &[]));
        for (i, slot) in pool().iter().enumerate() {
            s.slots.insert(
                slot.clone(),
                SlotUse {
                    app: format!("x{i}"),
                    release: 1,
                },
            );
        }
        let err = s.choose_slot("a", 1, &pool()).unwrap_err().to_string();
        assert!(err.contains("x0 1"), "{err}");
    }

    #[test]
    fn spare_slots_are_freed_and_prune_protects_live() {
        let mut s = NodeState::default();
        s.apps
            .insert("a".into(), app(Some(5), Some(4), &[1, 2, 3, 4, 5]));
        s.slots.insert(
            "py01".into(),
            SlotUse {
                app: "a".into(),
                release: 5,
            },
        );
        s.slots.insert(
            "py02".into(),
            SlotUse {
                app: "a".into(),
                release: 4,
            },
        );
        s.slots.insert(
            "py03".into(),
            SlotUse {
                app: "a".into(),
                release: 3,
            },
        );
        assert_eq!(s.free_spare_slots("a"), vec!["py03".to_string()]);
        assert_eq!(s.prune_candidates("a", 2), vec![1, 2, 3]);
        assert_eq!(s.prune_candidates("a", 4), vec![1]);
        assert_eq!(s.next_number("a"), 6);
        assert_eq!(s.next_number("new"), 1);
    }

    #[test]
    fn leftovers_and_stale_slots_are_what_the_state_does_not_name() {
        let mut s = NodeState::default();
        s.apps.insert("a".into(), app(Some(5), Some(4), &[3, 4, 5]));
        s.slots.insert(
            "py01".into(),
            SlotUse {
                app: "a".into(),
                release: 5,
            },
        );
        assert_eq!(s.leftovers("a", &[3, 4, 5, 6, 7, 6]), vec![6, 7]);
        assert_eq!(s.leftovers("new", &[1]), vec![1]);
        let mut files = BTreeMap::new();
        files.insert(
            "py01".to_string(),
            "/srv/skiff/apps/a/releases/5".to_string(),
        );
        assert!(s.stale_slots(&files).is_empty());
        // a dead trial loaded 6 into py02; a dead switch left py01 on 4
        files.insert(
            "py02".to_string(),
            "/srv/skiff/apps/a/releases/6".to_string(),
        );
        assert_eq!(s.stale_slots(&files), vec!["py02".to_string()]);
        files.insert(
            "py01".to_string(),
            "/srv/skiff/apps/a/releases/4".to_string(),
        );
        assert_eq!(
            s.stale_slots(&files),
            vec!["py01:a:5".to_string(), "py02".to_string()]
        );
    }

    #[test]
    fn after_switch_makes_n_current_and_the_old_current_prev() {
        let mut s = NodeState::default();
        s.apps.insert("a".into(), app(Some(2), Some(1), &[1, 2, 3]));
        for (slot, release) in [("py01", 1), ("py02", 2), ("py03", 3)] {
            s.slots.insert(
                slot.into(),
                SlotUse {
                    app: "a".into(),
                    release,
                },
            );
        }
        let (next, freed, prune) = s.after_switch("a", 3, 2);
        let a = &next.apps["a"];
        assert_eq!((a.current, a.prev), (Some(3), Some(2)));
        assert_eq!(freed, vec!["py01".to_string()]);
        assert_eq!(prune, vec![1]);
        assert_eq!(
            a.releases.iter().map(|r| r.number).collect::<Vec<_>>(),
            [2, 3]
        );
        // the state it came from is untouched
        assert_eq!(s.apps["a"].current, Some(2));
    }

    /// A node a dead run switched to 11 (prev 10) while another stayed on 10 and never
    /// kept 11: the next switch to 12 gives both prev 10 and drops 11 here.
    #[test]
    fn after_switch_to_takes_the_agreed_prev_and_drops_versions_other_nodes_lack() {
        let mut s = NodeState::default();
        s.apps
            .insert("a".into(), app(Some(11), Some(10), &[6, 8, 10, 11, 12]));
        for (slot, release) in [("py01", 10), ("py02", 11), ("py03", 12)] {
            s.slots.insert(
                slot.into(),
                SlotUse {
                    app: "a".into(),
                    release,
                },
            );
        }
        let shared = [6, 8, 10, 12].into_iter().collect();
        let (next, freed, prune) = s.after_switch_to("a", 12, Some(10), 5, Some(&shared));
        let a = &next.apps["a"];
        assert_eq!((a.current, a.prev), (Some(12), Some(10)));
        assert_eq!(freed, vec!["py02".to_string()]);
        assert_eq!(prune, vec![11]);
        assert_eq!(
            a.releases.iter().map(|r| r.number).collect::<Vec<_>>(),
            [6, 8, 10, 12]
        );
    }

    #[test]
    fn render_parses_back() {
        let mut s = NodeState::default();
        s.apps.insert("a".into(), app(Some(1), None, &[1]));
        s.slots.insert(
            "py01".into(),
            SlotUse {
                app: "a".into(),
                release: 1,
            },
        );
        assert_eq!(NodeState::parse("n", &s.render()).unwrap(), s);
        assert_eq!(NodeState::parse("n", "").unwrap(), NodeState::default());
    }
}
