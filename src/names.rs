//! The grammars for every name that can reach a template, a path or a command.
//!
//! Validating here, once, is what lets the rest of skiff put names into NGINX configs,
//! file paths and argv without escaping worries. Each function returns the problem as a
//! sentence (naming the bad value) for the caller to wrap with the file and key.

use std::path::{Component, Path};

/// Longest app or node name; keeps mod_wsgi group names (`<app>-a`) and unix users short.
pub const MAX_NAME_LEN: usize = 32;

/// App and node names: `[a-z][a-z0-9-]*`, no trailing or doubled `-`, at most 32 chars.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("`{name}` is longer than {MAX_NAME_LEN} characters"));
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_lowercase() {
        return Err(format!("`{name}` must start with a lower-case letter a-z"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{name}` contains `{bad}`; use only a-z, 0-9 and `-`"
        ));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(format!("`{name}` must not end with `-` or contain `--`"));
    }
    Ok(())
}

/// The system user a Python or Ruby app's processes run as on a node (slots, workers,
/// cron jobs, `skiff run`), so that one app cannot read another's environment, secrets
/// or data: `app-NAME`, or for a name longer than 28 characters (user names stop at 32)
/// its first 19 characters, a dash and 8 hex digits of its sha256. The node computes the
/// same name (server-files/lib/appuser.sh; a unit test holds the two together).
pub fn app_user(app: &str) -> String {
    if app.len() <= 28 {
        format!("app-{app}")
    } else {
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest(app.as_bytes()));
        format!("app-{}-{}", &app[..19], &hash[..8])
    }
}

/// Host names: RFC 1123 labels, lower case, total length <= 253, at least two labels,
/// a wildcard only as a whole leading `*.` label, never an IP address.
pub fn check_hostname(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "`{host}` is an IP address; skiff routes by host name"
        ));
    }
    if host.len() > 253 {
        return Err(format!("`{host}` is longer than 253 characters"));
    }
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "`{host}` has upper-case letters; write it in lower case: `{}`",
            host.to_ascii_lowercase()
        ));
    }
    let rest = host.strip_prefix("*.").unwrap_or(host);
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{host}` has a single label; use a full name like `{host}.example.com` (or `{host}.test` for local use)"
        ));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(format!(
                "`{host}` has an empty label (`..` or a leading/trailing `.`)"
            ));
        }
        if *label == "*" || label.contains('*') {
            return Err(format!(
                "`{host}` has a wildcard that is not a whole leading `*.` label"
            ));
        }
        if label.len() > 63 {
            return Err(format!("`{host}` has a label longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "`{host}` contains `{bad}`; host names use only a-z, 0-9, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{host}` has a label that starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{host}` ends in an all-numeric label"));
    }
    Ok(())
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`, not reserved for skiff.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the variable name is empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Err(format!("`{name}` must start with a letter or `_`"));
        }
        _ => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!(
            "`{name}` contains `{bad}`; use only A-Z, a-z, 0-9 and `_`"
        ));
    }
    if name.starts_with("SKIFF_") {
        return Err(format!(
            "`{name}` starts with `SKIFF_`, which skiff reserves for its own variables"
        ));
    }
    Ok(())
}

/// Paths inside the app tree: relative, no `..`, no empty path.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    let p = Path::new(path);
    for component in p.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{path}` is absolute; give a path relative to the app folder"
                ));
            }
            Component::ParentDir => {
                return Err(format!("`{path}` leaves the app folder through `..`"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Node addresses as given to `create-node --host`: an IPv4/IPv6 address, a DNS name or
/// an alias from `~/.ssh/config`. They end up as an `ssh` argument, so a leading `-`
/// (an option) and anything outside `[A-Za-z0-9.:_-]` are refused.
pub fn check_node_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("the address is empty".into());
    }
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if address.len() > 253 {
        return Err(format!("`{address}` is longer than 253 characters"));
    }
    if address.starts_with('-') || address.starts_with('.') {
        return Err(format!("`{address}` must start with a letter or digit"));
    }
    if let Some(bad) = address
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "`{address}` contains `{bad}`; use an IP address or a host name (a-z, 0-9, `.`, `-`)"
        ));
    }
    Ok(())
}

/// Login user names for nodes: `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most 32 characters
/// (they reach `ssh -l` and the node's passwd database).
pub fn check_login_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if user.len() > 32 {
        return Err(format!("`{user}` is longer than 32 characters"));
    }
    if user.starts_with('-') || user.starts_with('.') {
        return Err(format!("`{user}` must start with a letter, digit or `_`"));
    }
    if let Some(bad) = user
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "`{user}` contains `{bad}`; use a-z, 0-9, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["blog", "a", "my-app2", "x1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Blog",
            "1app",
            "my_app",
            "app-",
            "a--b",
            "a.b",
            &"a".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        for ok in [
            "blog.example.com",
            "*.example.com",
            "a-b.test",
            "x.y.z.io",
            "3.blog.test",
        ] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Blog.example.com",
            "10.0.0.1",
            "::1",
            "blog",
            "a..b",
            "-a.com",
            "a-.com",
            "foo.*.com",
            "*foo.com",
            "a_b.com",
            "a.123",
            ".a.com",
            "a.com.",
            "é.com",
            "*.com",
        ] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert!(check_env_name("LOG_LEVEL").is_ok());
        assert!(check_env_name("_x1").is_ok());
        for bad in ["", "1A", "A-B", "SKIFF_VERSION", "A B"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(check_relative_path("public").is_ok());
        assert!(check_relative_path("a/b.txt").is_ok());
        for bad in ["", "/etc", "../x", "a/../../b"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_addresses() {
        for ok in [
            "10.250.0.5",
            "::1",
            "fe80::1",
            "web1",
            "web1.example.com",
            "my_alias",
        ] {
            assert!(check_node_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "user@host",
            "h;rm",
            ".x",
            "a/b",
        ] {
            assert!(check_node_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn login_users() {
        for ok in ["root", "deploy", "ubuntu", "a.b", "_svc", "vagrant"] {
            assert!(check_login_user(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-l", "a b", "a@b", "$(id)"] {
            assert!(check_login_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_users_match_the_nodes_mapping() {
        let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/server-files/lib/appuser.sh");
        for app in [
            "blog",
            "a",
            &"x".repeat(28),
            &"y".repeat(29),
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            let ours = app_user(app);
            assert!(ours.len() <= 32, "{ours}");
            let out = std::process::Command::new("sh")
                .args(["-c", ". \"$0\"; app_user_of \"$1\"", lib, app])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim_end(),
                ours,
                "{app}"
            );
        }
        assert_eq!(app_user("blog"), "app-blog");
    }
}
