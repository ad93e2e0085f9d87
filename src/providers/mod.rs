//! How nodes come to exist and go away: `create-node` and `destroy-node`.
//!
//! A provider makes (or finds) a machine reachable over SSH: [`local`] starts a
//! throwaway node in a network namespace, [`vagrant`] brings up the VM of
//! vagrant/Vagrantfile, and `ssh` is a server the user already has. Whatever the
//! provider, creating a node then goes the same way: connect, pin the host key in
//! skiff's known_hosts, read /etc/os-release, record the node in cluster.toml. A node
//! that fails any step is torn down again (local, vagrant) so nothing is left half-made.

pub mod local;
pub mod vagrant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cluster::{Node, Provider, StateFile};
use crate::error::{Error, Result};
use crate::names;
use crate::transport::{Session, Target, ssh};

/// Operating systems skiff provisions: `(os-release ID, VERSION_ID)`.
pub const SUPPORTED_OS: &[(&str, &str)] = &[
    ("debian", "12"),
    ("debian", "13"),
    ("ubuntu", "22.04"),
    ("ubuntu", "24.04"),
];

/// What `create-node` was asked to do (the flags, already parsed).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The node's name in cluster.toml.
    pub name: String,
    /// How the node comes to exist.
    pub provider: Provider,
    /// Address (ssh provider).
    pub host: Option<String>,
    /// Login user (ssh provider; else from `~/.ssh/config`, else the local user name).
    pub user: Option<String>,
    /// SSH port (ssh provider; else from `~/.ssh/config`, else 22).
    pub port: Option<u16>,
    /// Private key that overrides ssh config and agent.
    pub identity: Option<PathBuf>,
    /// Accept an unsupported operating system.
    pub force: bool,
    /// Re-pin the host key of an existing node instead of adding one.
    pub repin: bool,
    /// The Debian suite a local node runs (`bookworm`, `trixie`; local provider only;
    /// default: `SKIFF_LOCAL_SUITE`, else bookworm).
    pub suite: Option<&'static str>,
}

/// What `create-node` did, for the verb to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The node's name.
    pub name: String,
    /// The node as recorded.
    pub node: Node,
    /// The host key it was pinned with before a `--repin`, if it changed.
    pub previous_host_key: Option<String>,
}

/// The operating system of a node, from /etc/os-release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`.
    pub version_id: String,
    /// `PRETTY_NAME`, for messages.
    pub pretty: String,
}

impl OsRelease {
    /// Parses the `KEY=value` lines of /etc/os-release (values may be quoted).
    pub fn parse(text: &str) -> OsRelease {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().trim_matches('"').trim_matches('\'');
                map.insert(k.trim().to_string(), v.to_string());
            }
        }
        let get = |k: &str| map.get(k).cloned().unwrap_or_default();
        OsRelease {
            id: get("ID").to_ascii_lowercase(),
            version_id: get("VERSION_ID"),
            pretty: map
                .get("PRETTY_NAME")
                .cloned()
                .unwrap_or_else(|| format!("{} {}", get("ID"), get("VERSION_ID"))),
        }
    }

    /// Short form kept in cluster.toml: `debian 12`, `ubuntu 24.04`.
    pub fn short(&self) -> String {
        format!("{} {}", self.id, self.version_id)
    }

    /// Whether skiff provisions this system.
    pub fn supported(&self) -> bool {
        SUPPORTED_OS
            .iter()
            .any(|(id, v)| *id == self.id && *v == self.version_id)
    }
}

/// A status callback: `(verb, message)`, rendered by the verb's printer.
pub type Status<'a> = &'a mut (dyn FnMut(&str, String) + Send);

/// Makes a node known: creates it (local, vagrant) or finds it (ssh), pins its host
/// key, checks its OS and records it in cluster.toml.
pub async fn create(req: &CreateRequest, state: &StateFile, status: Status<'_>) -> Result<Created> {
    names::check_name(&req.name).map_err(|e| {
        Error::usage(
            format!("bad node name: {e}"),
            "use a-z, 0-9 and `-`, starting with a letter",
        )
    })?;
    let cluster = state.load()?;
    if req.repin {
        let node = cluster.node(&req.name)?.clone();
        return repin(req, node, state, status).await;
    }
    if cluster.nodes.contains_key(&req.name) {
        return Err(Error::usage(
            format!("node `{}` already exists", req.name),
            format!(
                "pick another name, or remove it first with `skiff destroy-node {}`",
                req.name
            ),
        ));
    }
    match req.provider {
        Provider::Ssh => create_ssh(req, state, status).await,
        Provider::Local => create_local(req, state, status).await,
        Provider::Vagrant => create_vagrant(req, state, status).await,
    }
}

fn refuse_flags(req: &CreateRequest, provider: &str) -> Result<()> {
    for (flag, given) in [
        ("--host", req.host.is_some()),
        ("--user", req.user.is_some()),
        ("--port", req.port.is_some()),
        ("--identity", req.identity.is_some()),
    ] {
        if given {
            return Err(Error::usage(
                format!("`{flag}` is not used with `--provider {provider}`"),
                format!(
                    "{provider} nodes get their address and key from the provider; drop `{flag}`"
                ),
            ));
        }
    }
    Ok(())
}

/// `--os` chooses a local node's release; other providers' nodes are what they are.
fn refuse_os(req: &CreateRequest, provider: &str) -> Result<()> {
    if req.suite.is_some() {
        return Err(Error::usage(
            format!("`--os` is not used with `--provider {provider}`"),
            "the node runs what it runs; drop `--os` (it chooses a local node's release)",
        ));
    }
    Ok(())
}

async fn create_ssh(req: &CreateRequest, state: &StateFile, status: Status<'_>) -> Result<Created> {
    refuse_os(req, "ssh")?;
    let host = req.host.clone().ok_or_else(|| {
        Error::usage(
            "`--provider ssh` needs `--host`",
            format!(
                "e.g. `skiff create-node {} --host 203.0.113.7 --user root`",
                req.name
            ),
        )
    })?;
    names::check_node_address(&host).map_err(|e| {
        Error::usage(
            format!("bad `--host`: {e}"),
            "give an IP address or a host name",
        )
    })?;
    if let Some(user) = &req.user {
        names::check_login_user(user).map_err(|e| {
            Error::usage(
                format!("bad `--user`: {e}"),
                "give the login name on the node",
            )
        })?;
    }
    let (cfg_user, cfg_port) = ssh_config_defaults(&host).await;
    let user = req
        .user
        .clone()
        .or(cfg_user)
        .unwrap_or_else(|| "root".into());
    let port = req.port.or(cfg_port).unwrap_or(22);
    let identity = match &req.identity {
        Some(p) => Some(std::path::absolute(p).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let node = Node {
        address: host,
        user,
        port,
        provider: Provider::Ssh,
        identity,
        host_key: None,
        os: None,
        setup: None,
        provider_data: BTreeMap::new(),
        deploy_user: None,
    };
    let target = target_of(&req.name, &node);
    // First contact is the moment of pinning: a key pinned for this address by a node
    // that is no longer in cluster.toml belongs to a forgotten server.
    forget_key_if_unused(state, &req.name, &target)?;
    status(
        "Connecting",
        format!("to {}@{}:{}", node.user, node.address, node.port),
    );
    let result = probe_and_record(req, node, state, status, false).await;
    if result.is_err() {
        // Leave no pin behind for a node we did not record.
        let _ = forget_key_if_unused(state, &req.name, &target);
    }
    result
}

/// The user and port `ssh` would use for `host` (`ssh -G`: `~/.ssh/config`, else the
/// local login name and 22), so a `Host` block with `User`/`Port` is honoured.
async fn ssh_config_defaults(host: &str) -> (Option<String>, Option<u16>) {
    let Ok(out) = tokio::process::Command::new("ssh")
        .arg("-G")
        .arg("--")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
        .await
    else {
        return (None, None);
    };
    if !out.status.success() {
        return (None, None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut user = None;
    let mut port = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("user", u)) if names::check_login_user(u.trim()).is_ok() => {
                user = Some(u.trim().to_string())
            }
            Some(("port", p)) => port = p.trim().parse().ok(),
            _ => {}
        }
    }
    (user, port)
}

async fn create_local(
    req: &CreateRequest,
    state: &StateFile,
    status: Status<'_>,
) -> Result<Created> {
    refuse_flags(req, "local")?;
    if let Some(problem) = local::host_problem() {
        return Err(Error::usage(
            format!("cannot create a local node: {problem}"),
            local::HOST_HINT,
        ));
    }
    let suite = local::suite(req.suite);
    if !local::rootfs_ready(suite) {
        status(
            "Preparing",
            format!(
                "the Debian {suite} rootfs at `{}` with debootstrap (about 1 minute, once)",
                local::rootfs(suite).display()
            ),
        );
        local::ensure_rootfs(suite).await?;
    }
    status("Starting", format!("local node `{}`", req.name));
    let made = local::create(suite).await?;
    let mut data = BTreeMap::new();
    data.insert("number".to_string(), made.number.to_string());
    data.insert("home".to_string(), made.home.display().to_string());
    data.insert("id".to_string(), made.id.clone());
    let node = Node {
        address: made.address.clone(),
        user: "root".into(),
        port: 22,
        provider: Provider::Local,
        identity: Some(made.identity.clone()),
        host_key: None,
        os: None,
        setup: None,
        provider_data: data,
        deploy_user: None,
    };
    // A fresh node at a reused address: any key pinned for it belongs to a node gone.
    let target = target_of(&req.name, &node);
    ssh::forget_host_key(&state.dir(), &target)?;
    match probe_and_record(req, node, state, status, false).await {
        Ok(created) => Ok(created),
        Err(err) => {
            let _ = local::destroy(&made.home, made.number, Some(&made.id)).await;
            let _ = forget_key_if_unused(state, &req.name, &target);
            Err(err)
        }
    }
}

async fn create_vagrant(
    req: &CreateRequest,
    state: &StateFile,
    status: Status<'_>,
) -> Result<Created> {
    refuse_flags(req, "vagrant")?;
    refuse_os(req, "vagrant")?;
    let dir = vagrant::node_dir(state, &req.name);
    status(
        "Starting",
        format!(
            "the Vagrant VM for `{}` (vagrant up; several minutes the first time)",
            req.name
        ),
    );
    let found = match vagrant::up(&dir).await {
        Ok(found) => found,
        Err(err) => {
            // A half-made VM (or just its folder) must not stay behind.
            let _ = vagrant::destroy(&dir).await;
            return Err(err);
        }
    };
    let mut data = BTreeMap::new();
    data.insert("dir".to_string(), dir.display().to_string());
    let node = Node {
        address: found.address,
        user: found.user,
        port: found.port,
        provider: Provider::Vagrant,
        identity: found.identity,
        host_key: None,
        os: None,
        setup: None,
        provider_data: data,
        deploy_user: None,
    };
    // `vagrant ssh-config` points at a forwarded port on 127.0.0.1 that a re-created VM
    // reuses: a key pinned there belongs to a VM that is gone.
    let target = target_of(&req.name, &node);
    ssh::forget_host_key(&state.dir(), &target)?;
    match probe_and_record(req, node, state, status, false).await {
        Ok(created) => Ok(created),
        Err(err) => {
            let _ = vagrant::destroy(&dir).await;
            let _ = forget_key_if_unused(state, &req.name, &target);
            Err(err)
        }
    }
}

async fn repin(
    req: &CreateRequest,
    node: Node,
    state: &StateFile,
    status: Status<'_>,
) -> Result<Created> {
    if req.host.is_some() || req.user.is_some() || req.port.is_some() || req.identity.is_some() {
        return Err(Error::usage(
            "`--repin` takes the node's address, user, port and key from cluster.toml",
            format!("run `skiff create-node {} --repin` alone", req.name),
        ));
    }
    let target = target_of(&req.name, &node);
    let previous = ssh::pinned_fingerprint(&state.dir(), &target)?.or(node.host_key.clone());
    status(
        "Re-pinning",
        format!(
            "the host key of `{}` ({})",
            req.name,
            target.known_hosts_name()
        ),
    );
    ssh::forget_host_key(&state.dir(), &target)?;
    let mut created = probe_and_record(req, node, state, status, true).await?;
    created.previous_host_key = previous.filter(|p| Some(p) != created.node.host_key.as_ref());
    Ok(created)
}

fn target_of(name: &str, node: &Node) -> Target {
    Target::admin_for_node(name, node)
}

/// Connects (pinning the key on first contact), reads the OS, records the node.
async fn probe_and_record(
    req: &CreateRequest,
    mut node: Node,
    state: &StateFile,
    status: Status<'_>,
    replace: bool,
) -> Result<Created> {
    let target = target_of(&req.name, &node);
    let session = Session::connect(&target, &state.dir()).await?;
    let os_text = session.run_ok(&["cat", "/etc/os-release"]).await;
    let _ = session.close().await;
    let os = OsRelease::parse(&String::from_utf8_lossy(&os_text?));
    if !os.supported() {
        if req.force {
            status(
                "Warning",
                format!(
                    "`{}` runs {}, which skiff does not support; added anyway (--force)",
                    req.name, os.pretty
                ),
            );
        } else {
            return Err(Error::NotSupported {
                what: format!(
                    "node `{}` runs {} (`{}`), which",
                    req.name,
                    os.pretty,
                    os.short()
                ),
                hint: Some(format!(
                    "skiff provisions {}; pass `--force` to add it anyway",
                    SUPPORTED_OS
                        .iter()
                        .map(|(i, v)| format!("{i} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
    }
    node.host_key = ssh::pinned_fingerprint(&state.dir(), &target)?;
    node.os = Some(os.short());
    let name = req.name.clone();
    let recorded = node.clone();
    state.update(
        &mut |p: &Path| {
            status(
                "Waiting",
                format!("for another skiff to release `{}`", p.display()),
            )
        },
        move |cluster| {
            if !replace && cluster.nodes.contains_key(&name) {
                return Err(Error::usage(
                    format!("node `{name}` already exists"),
                    "another skiff added it meanwhile; pick another name",
                ));
            }
            cluster.nodes.insert(name.clone(), recorded);
            Ok(())
        },
    )?;
    Ok(Created {
        name: req.name.clone(),
        node,
        previous_host_key: None,
    })
}

/// What `destroy-node` did, for the verb to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    /// The node's name.
    pub name: String,
    /// How it had come to exist (says whether a machine was destroyed).
    pub provider: Provider,
    /// Apps whose node lists named it (their entries were removed).
    pub apps: Vec<String>,
    /// Whether it was the default node (the default is now unset).
    pub was_default: bool,
}

/// Destroys a local or vagrant node (an ssh node's server is left alone), then forgets
/// it: cluster.toml entry, default-node mark, app node lists, its pinned host key.
pub async fn destroy(name: &str, state: &StateFile, status: Status<'_>) -> Result<Destroyed> {
    let cluster = state.load()?;
    let node = cluster.node(name)?.clone();
    match node.provider {
        Provider::Local => {
            let number: u8 = node
                .provider_data
                .get("number")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad_provider_data(state, name, "number"))?;
            let home = node
                .provider_data
                .get("home")
                .map(PathBuf::from)
                .unwrap_or_else(local::home);
            if let Some(problem) = local::host_problem() {
                return Err(Error::usage(
                    format!("cannot destroy local node `{name}`: {problem}"),
                    local::HOST_HINT,
                ));
            }
            status(
                "Destroying",
                format!("local node `{name}` ({})", node.address),
            );
            let id = node.provider_data.get("id").map(String::as_str);
            local::destroy(&home, number, id).await?;
        }
        Provider::Vagrant => {
            let dir = node
                .provider_data
                .get("dir")
                .map(PathBuf::from)
                .ok_or_else(|| bad_provider_data(state, name, "dir"))?;
            status(
                "Destroying",
                format!("the Vagrant VM of `{name}` (vagrant destroy)"),
            );
            vagrant::destroy(&dir).await?;
        }
        Provider::Ssh => {}
    }
    forget_key_if_unused(state, name, &target_of(name, &node))?;
    let name_owned = name.to_string();
    let (apps, was_default) = state.update(
        &mut |p: &Path| {
            status(
                "Waiting",
                format!("for another skiff to release `{}`", p.display()),
            )
        },
        move |cluster| {
            cluster.nodes.remove(&name_owned);
            let was_default = cluster.default_node.as_deref() == Some(name_owned.as_str());
            if was_default {
                cluster.default_node = None;
            }
            let mut apps = Vec::new();
            for (host, app) in cluster.apps.iter_mut() {
                if app.nodes.contains(&name_owned) {
                    app.nodes.retain(|n| n != &name_owned);
                    apps.push(host.clone());
                }
            }
            Ok((apps, was_default))
        },
    )?;
    Ok(Destroyed {
        name: name.to_string(),
        provider: node.provider,
        apps,
        was_default,
    })
}

fn bad_provider_data(state: &StateFile, name: &str, key: &str) -> Error {
    Error::config(crate::error::ConfigProblem {
        file: state.path().to_path_buf(),
        key: format!("nodes.{name}.provider_data.{key}"),
        problem: "missing or not valid".into(),
        fix: Some(format!(
            "the node was not made by this skiff; remove `[nodes.{name}]` by hand"
        )),
        location: None,
    })
}

/// Removes the pinned key of `target` unless another node (not `name`) uses the same
/// address and port.
fn forget_key_if_unused(state: &StateFile, name: &str, target: &Target) -> Result<()> {
    let cluster = state.load()?;
    let shared = cluster
        .nodes
        .iter()
        .any(|(n, node)| n != name && node.address == target.address && node.port == target.port);
    if shared {
        return Ok(());
    }
    ssh::forget_host_key(&state.dir(), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_is_parsed_and_checked() {
        let debian = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(debian.short(), "debian 12");
        assert!(debian.supported());
        let noble = OsRelease::parse(
            "ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n",
        );
        assert!(noble.supported());
        let jammy = OsRelease::parse("ID=ubuntu\nVERSION_ID=\"22.04\"\n");
        assert!(jammy.supported());
        let focal = OsRelease::parse("ID=ubuntu\nVERSION_ID=\"20.04\"\n");
        assert!(!focal.supported());
        let fedora = OsRelease::parse("ID=fedora\nVERSION_ID=40\n");
        assert!(!fedora.supported());
        assert_eq!(fedora.pretty, "fedora 40");
    }
}
