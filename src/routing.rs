//! The routing table: which backend answers each public host name.
//!
//! NGINX looks the request's host up in `/etc/nginx/skiff-routes.map` (`HOST BACKEND;`
//! lines). A backend name is `N.APP.KIND.skiff`: NGINX reads the release `N` and app
//! `APP` out of it to serve `static/` straight from that release, and hands everything
//! else to Apache with it as the Host, where `KIND` picks the vhost: a daemon slot
//! (`py01`, `rb02`), `php` (a `VirtualDocumentRoot` per release), `static` (NGINX
//! only) or `idle` (a kept Python/Ruby release that no slot runs: a clear page).
//!
//! The table is rendered whole from the node state, so it can never drift from it.

use std::collections::BTreeMap;

use crate::app_config::Runtime;
use crate::error::{Error, Result};
use crate::node_state::{NodeApp, NodeState};

/// The backend host for `app`'s release `release`.
pub fn backend(state: &NodeState, app_name: &str, app: &NodeApp, release: u32) -> String {
    let kind = match app.runtime {
        Runtime::Static => "static".to_string(),
        Runtime::Php => "php".to_string(),
        Runtime::Python | Runtime::Ruby => state
            .slot_of(app_name, release)
            .map(str::to_string)
            .unwrap_or_else(|| "idle".to_string()),
    };
    format!("{release}.{app_name}.{kind}.skiff")
}

/// The main host of an app: the first host name that is not a wildcard (version hosts
/// `N.HOST` and `prev.HOST` hang off it).
pub fn main_host(hostnames: &[String]) -> Option<&str> {
    hostnames
        .iter()
        .map(String::as_str)
        .find(|h| !h.starts_with("*."))
}

/// Every `(host, backend)` pair of the node, sorted by host.
pub fn routes(state: &NodeState) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, app) in &state.apps {
        // A first deploy on trial has releases but no current yet: only `N.HOST`.
        if let Some(current) = app.current {
            for host in &app.hostnames {
                out.insert(host.clone(), backend(state, name, app, current));
            }
        }
        let Some(main) = main_host(&app.hostnames) else {
            continue;
        };
        if let Some(prev) = app.prev {
            out.insert(format!("prev.{main}"), backend(state, name, app, prev));
        }
        for release in &app.releases {
            out.insert(
                format!("{}.{main}", release.number),
                backend(state, name, app, release.number),
            );
        }
    }
    out
}

/// The text of skiff-routes.map for `state`.
pub fn render_map(state: &NodeState) -> String {
    let mut text = String::from(
        "# skiff's routing table: `HOST BACKEND;` lines, rewritten by `skiff update` (never by hand).\n",
    );
    for (host, backend) in routes(state) {
        text.push_str(&format!("{host} {backend};\n"));
    }
    text
}

/// Refuses host names that another app on the node already serves (NGINX would reject
/// the duplicate map key, and the other app would lose its traffic).
pub fn check_hosts_free(state: &NodeState, app: &str, hostnames: &[String]) -> Result<()> {
    let ours = main_host(hostnames);
    for (other, other_app) in &state.apps {
        if other == app {
            continue;
        }
        let theirs = main_host(&other_app.hostnames);
        for host in hostnames {
            // `prev.MAIN` and `N.MAIN` of the other app are its version hosts
            if let Some(m) = theirs
                && is_version_host(host, m)
            {
                return Err(Error::Failed {
                    message: format!(
                        "host `{host}` is a version host of app `{other}` (`prev.{m}`, `N.{m}`) on this node"
                    ),
                    hint: Some(format!(
                        "pick a host name that is not `prev.{m}` or a number before `.{m}`"
                    )),
                });
            }
        }
        if let Some(m) = ours
            && let Some(h) = other_app.hostnames.iter().find(|h| is_version_host(h, m))
        {
            return Err(Error::Failed {
                message: format!(
                    "app `{other}` on this node serves `{h}`, which would be a version host of this app (`prev.{m}`, `N.{m}`)"
                ),
                hint: Some(format!(
                    "pick another main host for this app, or remove `{h}` from `{other}`"
                )),
            });
        }
        for host in hostnames {
            if other_app.hostnames.contains(host) {
                return Err(Error::Failed {
                    message: format!(
                        "host `{host}` is already served by app `{other}` on this node"
                    ),
                    hint: Some(format!(
                        "remove `{host}` from one of the two apps' hostnames, or pass another `--host`"
                    )),
                });
            }
        }
    }
    Ok(())
}

/// Whether `host` is `prev.MAIN` or `N.MAIN` (N a number): a version host of `main`.
fn is_version_host(host: &str, main: &str) -> bool {
    host.strip_suffix(main)
        .and_then(|p| p.strip_suffix('.'))
        .is_some_and(|label| {
            label == "prev" || (!label.is_empty() && label.chars().all(|c| c.is_ascii_digit()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_state::{Release, SlotUse};

    fn release(n: u32) -> Release {
        Release {
            number: n,
            time: String::new(),
            digest: String::new(),
            size: 0,
            venv: None,
            health: None,
        }
    }

    #[test]
    fn map_has_hosts_prev_and_versions() {
        let mut s = NodeState::default();
        s.apps.insert(
            "blog".into(),
            NodeApp {
                runtime: Runtime::Python,
                hostnames: vec!["blog.test".into(), "www.blog.test".into()],
                current: Some(3),
                prev: Some(2),
                releases: vec![release(1), release(2), release(3)],
                packages: Vec::new(),
            },
        );
        s.slots.insert(
            "py01".into(),
            SlotUse {
                app: "blog".into(),
                release: 3,
            },
        );
        s.slots.insert(
            "py02".into(),
            SlotUse {
                app: "blog".into(),
                release: 2,
            },
        );
        s.apps.insert(
            "site".into(),
            NodeApp {
                runtime: Runtime::Static,
                hostnames: vec!["site.test".into()],
                current: Some(1),
                prev: None,
                releases: vec![release(1)],
                packages: Vec::new(),
            },
        );
        let map = render_map(&s);
        for line in [
            "blog.test 3.blog.py01.skiff;",
            "www.blog.test 3.blog.py01.skiff;",
            "prev.blog.test 2.blog.py02.skiff;",
            "1.blog.test 1.blog.idle.skiff;",
            "2.blog.test 2.blog.py02.skiff;",
            "3.blog.test 3.blog.py01.skiff;",
            "site.test 1.site.static.skiff;",
            "1.site.test 1.site.static.skiff;",
        ] {
            assert!(map.lines().any(|l| l == line), "missing {line} in\n{map}");
        }
        assert!(!map.contains("prev.site.test"));
        assert!(check_hosts_free(&s, "other", &["site.test".into()]).is_err());
        assert!(check_hosts_free(&s, "site", &["site.test".into()]).is_ok());
        // another app's version hosts, either way round
        for taken in ["prev.site.test", "1.site.test", "42.site.test"] {
            assert!(
                check_hosts_free(&s, "other", &[taken.into()]).is_err(),
                "{taken}"
            );
        }
        assert!(check_hosts_free(&s, "other", &["x1.site.test".into()]).is_ok());
        assert!(check_hosts_free(&s, "other", &["test".into()]).is_ok());
        s.apps.get_mut("site").unwrap().hostnames = vec!["prev.new.test".into()];
        assert!(check_hosts_free(&s, "new", &["new.test".into()]).is_err());
    }
}
