//! The Vagrant VM of vagrant/Vagrantfile: `create-node --provider vagrant`.
//!
//! Each node gets its own folder beside cluster.toml (`vagrant/NAME/`) holding a copy of
//! the embedded Vagrantfile and Vagrant's `.vagrant/` state; `vagrant up` starts the VM,
//! `vagrant ssh-config` says how to log in, `vagrant destroy -f` removes it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cluster::StateFile;
use crate::error::{Error, Result};

/// The Vagrantfile shipped in the binary (Ubuntu 24.04 on a private network).
pub const VAGRANTFILE: &str = include_str!("../../vagrant/Vagrantfile");

/// The folder for node `name`'s VM: `<folder of cluster.toml>/vagrant/<name>`.
pub fn node_dir(state: &StateFile, name: &str) -> PathBuf {
    state.dir().join("vagrant").join(name)
}

/// How to log in to the VM, from `vagrant ssh-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// `HostName`.
    pub address: String,
    /// `User`.
    pub user: String,
    /// `Port`.
    pub port: u16,
    /// `IdentityFile` (Vagrant's per-VM private key).
    pub identity: Option<PathBuf>,
}

fn vagrant_missing() -> Error {
    Error::Failed {
        message: "the `vagrant` program was not found on PATH".into(),
        hint: Some(
            "install Vagrant and a provider (VirtualBox or libvirt), or use `--provider local` / `--provider ssh`"
                .into(),
        ),
    }
}

/// Runs `vagrant ARGS` in `dir`; stdout on success, else an error with its last words.
async fn vagrant(dir: &Path, args: &[&str]) -> Result<String> {
    let program = which::which("vagrant").map_err(|_| vagrant_missing())?;
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("VAGRANT_CWD", dir)
        .env("VAGRANT_NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::failed(format!("could not run `vagrant {}`: {e}", args.join(" "))))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.trim_end().lines().collect();
    Err(Error::Failed {
        message: format!(
            "`vagrant {}` in `{}` failed:\n  {}",
            args.join(" "),
            dir.display(),
            lines[lines.len().saturating_sub(8)..].join("\n  ")
        ),
        hint: Some(format!(
            "run `vagrant {}` in `{}` to see everything",
            args.join(" "),
            dir.display()
        )),
    })
}

/// Writes the Vagrantfile into `dir`, runs `vagrant up` and returns how to log in.
pub async fn up(dir: &Path) -> Result<SshConfig> {
    which::which("vagrant").map_err(|_| vagrant_missing())?;
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let file = dir.join("Vagrantfile");
    fs::write(&file, VAGRANTFILE).map_err(|source| Error::Write { path: file, source })?;
    vagrant(dir, &["up"]).await?;
    let text = vagrant(dir, &["ssh-config"]).await?;
    parse_ssh_config(&text).ok_or_else(|| {
        Error::failed(format!(
            "`vagrant ssh-config` in `{}` gave no HostName/User/Port",
            dir.display()
        ))
    })
}

/// `vagrant destroy -f` in `dir`, then removes the folder. A missing folder is fine.
pub async fn destroy(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if has_machine(dir) {
        vagrant(dir, &["destroy", "-f"]).await?;
    }
    fs::remove_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Whether Vagrant recorded a machine in `dir` (`.vagrant/machines/NAME/PROVIDER/id`):
/// without one there is no VM to destroy, only the folder (a `vagrant up` that failed
/// before creating anything, e.g. with no hypervisor installed).
fn has_machine(dir: &Path) -> bool {
    let Ok(machines) = fs::read_dir(dir.join(".vagrant/machines")) else {
        return false;
    };
    machines.flatten().any(|m| {
        fs::read_dir(m.path())
            .map(|providers| providers.flatten().any(|p| p.path().join("id").exists()))
            .unwrap_or(false)
    })
}

/// Reads the first `Host` block of `vagrant ssh-config` output.
pub fn parse_ssh_config(text: &str) -> Option<SshConfig> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((k, v)) = line.split_once(char::is_whitespace) {
            map.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.trim().trim_matches('"').to_string());
        }
    }
    Some(SshConfig {
        address: map.get("hostname")?.clone(),
        user: map.get("user")?.clone(),
        port: map.get("port")?.parse().ok()?,
        identity: map.get("identityfile").map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_config_is_parsed() {
        let text = "Host default\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile \"/home/u/.config/skiff/vagrant/web1/.vagrant/machines/default/virtualbox/private_key\"\n  IdentitiesOnly yes\n  LogLevel FATAL\n";
        let cfg = parse_ssh_config(text).unwrap();
        assert_eq!(cfg.address, "127.0.0.1");
        assert_eq!(cfg.user, "vagrant");
        assert_eq!(cfg.port, 2222);
        assert_eq!(
            cfg.identity.unwrap(),
            PathBuf::from(
                "/home/u/.config/skiff/vagrant/web1/.vagrant/machines/default/virtualbox/private_key"
            )
        );
        assert!(parse_ssh_config("Host default\n").is_none());
    }

    #[test]
    fn vagrantfile_is_ubuntu_2404_on_a_private_network() {
        assert!(VAGRANTFILE.contains("ubuntu-24.04"));
        assert!(VAGRANTFILE.contains("private_network"));
    }
}
