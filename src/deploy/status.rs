//! `skiff status [HOST]`: for each app (or one) and each of its nodes, what serves (current
//! and prev), whether HOST answers its health check there, its slots, its current workers,
//! the disk its releases use, and any drift between cluster.toml and the node's own state
//! (a node changed by another laptop or by hand), each with a one-line fix. No lock.

use serde::Serialize;

use super::remote;
use crate::cluster::{AppState, StateFile};
use crate::error::Result;
use crate::transport::ssh::Session;

/// One node of one app.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Node name.
    pub node: String,
    /// The version HOST serves there.
    pub current: Option<u32>,
    /// The version `prev.HOST` serves there.
    pub prev: Option<u32>,
    /// HTTP status of HOST's health check there (`000`: no answer; empty: not checked).
    pub http: String,
    /// Whether that is 2xx or 3xx and every current worker runs.
    pub healthy: bool,
    /// Slots running the app's releases.
    pub slots: Vec<String>,
    /// The current version's workers: `NAME@I state`.
    pub workers: Vec<String>,
    /// KiB the app's releases, venvs and bundles take (hard links counted once).
    pub disk_kib: u64,
    /// What differs from cluster.toml.
    pub drift: Vec<String>,
    /// The command that makes them agree, when something drifted.
    pub fix: Option<String>,
    /// Why the node could not be read, if it could not.
    pub error: Option<String>,
    /// The certificate the node serves for the app (HTTPS), if any.
    pub certificate: Option<CertView>,
}

/// An app's certificate on one node, for `status` and `update`.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    /// `acme` (renewed on the node) or `custom` (`skiff tls add`).
    pub source: String,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// Whole days until then (negative: expired).
    pub days_left: i64,
    /// False when the last order, renewal or installation failed, it expired, or an ACME
    /// one is past its renewal time (certbot renews 30 days ahead).
    pub ok: bool,
    /// What the node recorded last (`failed TIME why`, or what was installed).
    pub last: String,
}

impl CertView {
    /// The view of a node's certificate record, as of now.
    pub fn of(c: &super::tls::CertStatus) -> CertView {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let days_left = c.days_left(now);
        let expires = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.not_after),
        )
        .to_string();
        if c.not_after == 0 {
            // no certificate yet: a first order that failed
            return CertView {
                source: c.source.clone(),
                expires: "never (no certificate yet)".into(),
                days_left: 0,
                ok: false,
                last: c.last.clone(),
            };
        }
        let overdue = c.source == "acme" && days_left < 20;
        CertView {
            source: c.source.clone(),
            expires,
            days_left,
            ok: c.ok && days_left >= 0 && !overdue,
            last: c.last.clone(),
        }
    }

    /// One line for people: source, expiry, and what went wrong if something did.
    pub fn line(&self) -> String {
        let mut s = if self.expires.starts_with("never") {
            "no certificate yet (HTTP only)".to_string()
        } else {
            format!(
                "certificate ({}) expires {} (in {} days)",
                self.source, self.expires, self.days_left
            )
        };
        if !self.ok {
            if self.last.starts_with("failed") {
                s.push_str(&format!("; LAST ATTEMPT {}", self.last));
            } else if self.days_left < 0 {
                s.push_str("; EXPIRED");
            } else {
                s.push_str("; RENEWAL OVERDUE (see /var/log/letsencrypt/letsencrypt.log on the node; `skiff tls renew HOST`)");
            }
        }
        s
    }
}

/// One app.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Main host.
    pub host: String,
    /// App name.
    pub app: String,
    /// What cluster.toml says is current.
    pub current: Option<u32>,
    /// Per node.
    pub nodes: Vec<NodeStatus>,
}

impl NodeStatus {
    /// A node of which nothing is known yet.
    fn blank(node: &str) -> NodeStatus {
        NodeStatus {
            node: node.to_string(),
            current: None,
            prev: None,
            http: String::new(),
            healthy: false,
            slots: Vec::new(),
            workers: Vec::new(),
            disk_kib: 0,
            drift: Vec::new(),
            fix: None,
            error: None,
            certificate: None,
        }
    }
}

impl NodeStatus {
    /// Whether the app's certificate here (if it has one) is fine.
    pub fn cert_ok(&self) -> bool {
        self.certificate.as_ref().is_none_or(|c| c.ok)
    }
}

impl AppStatus {
    /// Whether every node is healthy and agrees with cluster.toml.
    pub fn ok(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.healthy && n.drift.is_empty() && n.error.is_none() && n.cert_ok())
    }
}

/// The status of every app in cluster.toml, or of HOST's.
pub async fn status(state: &StateFile, host: Option<&str>) -> Result<Vec<AppStatus>> {
    let cluster = state.load()?;
    let hosts: Vec<String> = match host {
        Some(h) => {
            super::app_for_host(&cluster, h)?;
            vec![h.to_string()]
        }
        None => cluster.apps.keys().cloned().collect(),
    };
    let mut out = Vec::new();
    for host in hosts {
        let recorded = &cluster.apps[&host];
        let mut nodes = Vec::new();
        for node in &recorded.nodes {
            let status = match cluster.node(node) {
                Ok(n) => match Session::for_node(node, n, state).await {
                    Ok(session) => {
                        let s = node_status(&session, &host, recorded).await;
                        let _ = session.close().await;
                        s
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            nodes.push(status.unwrap_or_else(|e| NodeStatus {
                error: Some(e.to_string().lines().next().unwrap_or_default().to_string()),
                ..NodeStatus::blank(node)
            }));
        }
        out.push(AppStatus {
            app: recorded.name.clone(),
            current: recorded.current,
            host,
            nodes,
        });
    }
    Ok(out)
}

async fn node_status(session: &Session, host: &str, recorded: &AppState) -> Result<NodeStatus> {
    let app = &recorded.name;
    let peeked = remote::peek(session, Some(app)).await?;
    let st = &peeked.state;
    let node = session.node().to_string();
    let Some(a) = st.apps.get(app) else {
        return Ok(NodeStatus {
            disk_kib: peeked.disk_kib,
            drift: vec!["the app is not on this node".into()],
            fix: Some(format!(
                "deploy it there again: `skiff update DIR --node {node}`, or remove the app with `skiff destroy-app {host}`"
            )),
            ..NodeStatus::blank(&node)
        });
    };
    let health_path = a
        .current
        .and_then(|c| a.releases.iter().find(|r| r.number == c))
        .and_then(|r| r.health.as_ref())
        .map_or("/".to_string(), |h| h.path.clone());
    let http = if a.current.is_some() {
        remote::probe(session, host, &health_path).await?
    } else {
        String::new()
    };
    let workers: Vec<String> = peeked
        .units
        .iter()
        .filter(|(n, u)| Some(*n) == a.current && u.ends_with(".service"))
        .map(|(n, unit)| {
            let name = unit
                .trim_start_matches(&format!("skiff_{app}_{n}_"))
                .trim_end_matches(".service");
            let state = peeked
                .unit_state
                .get(unit)
                .and_then(|p| p.get("ActiveState"))
                .map_or("unknown", String::as_str);
            format!("{name} {state}")
        })
        .collect();
    let workers_ok = workers.iter().all(|w| w.ends_with(" active"));
    let mut drift = Vec::new();
    if a.current != recorded.current {
        drift.push(format!(
            "cluster.toml says version {} is current, the node serves {}",
            show(recorded.current),
            show(a.current)
        ));
    }
    if a.prev != recorded.prev {
        drift.push(format!(
            "cluster.toml says prev is {}, the node's prev is {}",
            show(recorded.prev),
            show(a.prev)
        ));
    }
    let theirs: Vec<u32> = a.releases.iter().map(|r| r.number).collect();
    let ours: Vec<u32> = recorded.versions.iter().map(|v| v.number).collect();
    if theirs != ours {
        drift.push(format!(
            "cluster.toml keeps versions {ours:?}, the node {theirs:?}"
        ));
    }
    let fix = (!drift.is_empty()).then(|| match a.current {
        Some(n) => format!(
            "`skiff activate {host} {n}` makes every node and cluster.toml agree on the version this node serves (or activate the one you want)"
        ),
        None => format!("deploy again: `skiff update DIR --node {node}`"),
    });
    Ok(NodeStatus {
        node,
        current: a.current,
        prev: a.prev,
        healthy: (http.starts_with('2') || http.starts_with('3')) && workers_ok,
        http,
        slots: st
            .slots
            .iter()
            .filter(|(_, u)| &u.app == app)
            .map(|(s, _)| s.clone())
            .collect(),
        workers,
        disk_kib: peeked.disk_kib,
        drift,
        fix,
        error: None,
        certificate: super::tls::info(session)
            .await?
            .iter()
            .find(|c| &c.app == app)
            .map(CertView::of),
    })
}

fn show(v: Option<u32>) -> String {
    v.map_or("none".into(), |n| n.to_string())
}
