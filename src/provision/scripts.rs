//! Renders the apt and apply scripts from a [`Plan`], and reads the apply script's
//! markers (`@@step NAME NANOS`, `@@fail WHAT`, `@@output BASE64`) back into step times
//! and errors that name the file a config test rejected.

use base64::Engine as _;
use tera::Context;

use super::desired::{APT_PROXY_PATH, Desired};
use super::plan::{FileAction, Plan};
use super::render::render;
use crate::error::{Error, Result};

fn b64(bytes: &[u8]) -> String {
    // wrapped at 76 columns: `base64 -d` reads it, and no line of a script gets long
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(s.len() + s.len() / 76 + 1);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 76 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out
}

/// The apt step: pre-seeds Apache's ports, finishes an interrupted dpkg, installs.
pub fn apt_script(plan: &Plan, desired: &Desired) -> Result<String> {
    let mut ctx = Context::new();
    let packages = if plan.packages.is_empty() {
        desired.packages.iter().map(|p| p.to_string()).collect()
    } else {
        plan.packages.clone()
    };
    ctx.insert("packages", &packages);
    ctx.insert("ports_conf", &desired.ports_conf);
    let proxy = desired
        .files
        .iter()
        .find(|f| f.path == APT_PROXY_PATH)
        .map(|f| b64(&f.content));
    ctx.insert("apt_proxy", &proxy);
    render("setup/apt.sh.tera", &ctx)
}

/// The apply step: everything in the plan but packages, in one script.
pub fn apply_script(plan: &Plan, desired: &Desired, services_lib: &str) -> Result<String> {
    let mut ctx = Context::new();
    ctx.insert("services_lib", services_lib);
    ctx.insert("user", desired.user);
    ctx.insert("create_user", &plan.create_user.is_some());
    ctx.insert("add_groups", &plan.add_groups.join(","));
    ctx.insert("migrate", &plan.migrate);
    let dirs: Vec<serde_json::Value> = plan
        .dirs
        .iter()
        .map(|d| {
            serde_json::json!({
                "path": d.dir.path, "mode": format!("{:04o}", d.dir.mode),
                "owner": d.dir.owner, "group": d.dir.group,
            })
        })
        .collect();
    ctx.insert("dirs", &dirs);
    let file_json = |f: &super::plan::FileChange| {
        serde_json::json!({
            "path": f.file.path, "mode": format!("{:04o}", f.file.mode),
            "owner": f.file.owner, "group": f.file.group,
            "b64": b64(&f.content), "validate": f.file.validate,
        })
    };
    let stamp_path = &desired.stamp.path;
    let files: Vec<_> = plan
        .files
        .iter()
        .filter(|f| !f.create_only && &f.path != stamp_path)
        .map(file_json)
        .collect();
    let create_only: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.create_only)
        .map(file_json)
        .collect();
    ctx.insert("files", &files);
    ctx.insert("create_only", &create_only);
    ctx.insert("removals", &plan.removals);
    ctx.insert("apache", &plan.apache);
    // NGINX and Apache configs change as one transaction when any of theirs change
    let web = plan.files.iter().any(|f| {
        f.action != FileAction::Chmod
            && (f.path.starts_with("/etc/nginx/") || f.path.starts_with("/etc/apache2/"))
    }) || !plan.removals.is_empty()
        || !plan.apache.is_empty();
    ctx.insert("snapshot", &web);
    ctx.insert("firewall", &plan.firewall);
    ctx.insert("fw_file", crate::deploy::contract::FIREWALL);
    ctx.insert("fw_unit", crate::deploy::contract::FIREWALL_UNIT);
    ctx.insert("fw_table", crate::deploy::contract::FIREWALL_TABLE);
    ctx.insert("nginx_action", &plan.nginx);
    ctx.insert("apache_action", &plan.apache2);
    let stamp = &desired.stamp;
    ctx.insert(
        "stamp",
        &serde_json::json!({
            "path": stamp.path, "mode": format!("{:04o}", stamp.mode),
            "owner": stamp.owner, "group": stamp.group, "b64": b64(&stamp.content),
        }),
    );
    render("setup/apply.sh.tera", &ctx)
}

/// The key-only SSH step: writes sshd's drop-in, checks it (`sshd -t`, `sshd -T`),
/// reloads sshd. Run only once key logins are confirmed.
pub fn ssh_script(change: &super::plan::FileChange) -> Result<String> {
    let mut ctx = Context::new();
    ctx.insert("path", &change.file.path);
    ctx.insert("mode", &format!("{:04o}", change.file.mode));
    ctx.insert("b64", &b64(&change.content));
    render("setup/ssh.sh.tera", &ctx)
}

/// One step of the apply script, as timed on the node.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedStep {
    /// The script's step name (`files`, `services`, ...).
    pub name: String,
    /// Seconds it took.
    pub seconds: f64,
}

/// What the apply script reported.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Steps in order, with their times.
    pub steps: Vec<TimedStep>,
    /// `(what, output)` when a check rejected the result (`nginx`, `apache2`, `sudoers`, `check`).
    pub failure: Option<(String, String)>,
}

/// Reads the markers of the apply script's stdout.
pub fn parse_report(stdout: &str) -> Report {
    let mut report = Report::default();
    let mut marks: Vec<(String, u128)> = Vec::new();
    let mut fail_what = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("@@step ") {
            let mut it = rest.split(' ');
            if let (Some(name), Some(ns)) = (it.next(), it.next().and_then(|n| n.parse().ok())) {
                marks.push((name.to_string(), ns));
            }
        } else if let Some(what) = line.strip_prefix("@@fail ") {
            fail_what = Some(what.trim().to_string());
        } else if let Some(data) = line.strip_prefix("@@output ") {
            let text = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| data.to_string());
            if let Some(what) = fail_what.take() {
                report.failure = Some((what, text));
            }
        }
    }
    if let Some(what) = fail_what {
        report.failure = Some((what, String::new()));
    }
    for pair in marks.windows(2) {
        report.steps.push(TimedStep {
            name: pair[0].0.clone(),
            seconds: pair[1].1.saturating_sub(pair[0].1) as f64 / 1e9,
        });
    }
    report
}

/// The file a config test's output blames: the first absolute path in it, without the
/// `:LINE` suffix (`... in /etc/nginx/sites-enabled/broken:1`, `... of /etc/apache2/x.conf:`).
pub fn blamed_file(output: &str) -> Option<String> {
    for line in output.lines() {
        for token in line.split_whitespace() {
            let token = token.trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == ',');
            if !token.starts_with('/') || token.len() < 2 {
                continue;
            }
            let mut path = token.trim_end_matches(':');
            if let Some((p, line_no)) = path.rsplit_once(':')
                && !line_no.is_empty()
                && line_no.chars().all(|c| c.is_ascii_digit())
            {
                path = p;
            }
            return Some(path.to_string());
        }
    }
    None
}

/// The error for a config a check rejected (after the script put the old files back).
pub fn rejected(node: &str, what: &str, output: String, restored: bool) -> Error {
    let command = match what {
        "nginx" => "nginx -t",
        "apache2" => "apache2ctl configtest",
        "sudoers" => "visudo -cf",
        "nft" => "nft -c -f",
        "sshd" => "sshd -t",
        "check" => "the unknown-host check",
        other => other,
    }
    .to_string();
    let after = if restored {
        "skiff put its previous files back and reloaded nothing"
    } else {
        "nothing was reloaded"
    };
    let hint = match (what, blamed_file(&output)) {
        ("check", _) => format!(
            "NGINX on node `{node}` does not answer unknown hosts with skiff's page; look at \
             /etc/nginx/conf.d/ and /etc/nginx/sites-enabled/ for another default server"
        ),
        ("sudoers", _) => "this is a bug in skiff's sudoers template; please report it".into(),
        ("nft", _) => format!(
            "nftables on node `{node}` refused skiff's table ({after}); if the node runs a \
             firewall of its own, run setup-node with `--no-firewall`"
        ),
        ("sshd", _) => format!(
            "sshd on node `{node}` did not take the key-only settings; the previous file is \
             back and sshd was not reloaded (passwords still work): fix the file named above, \
             then run setup-node again"
        ),
        (_, Some(file)) => {
            format!("fix or remove `{file}` on node `{node}`, then run setup-node again ({after})")
        }
        (_, None) => {
            format!("fix the config on node `{node}`, then run setup-node again ({after})")
        }
    };
    Error::Remote {
        node: node.into(),
        command,
        status: Some(1),
        output,
        hint: Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blamed_file() {
        let nginx = "2026/11/21 22:16:35 [emerg] 12827#12827: unknown directive \"bogus\" in /etc/nginx/sites-enabled/broken:1\nnginx: configuration file /etc/nginx/nginx.conf test failed\n";
        assert_eq!(
            blamed_file(nginx).as_deref(),
            Some("/etc/nginx/sites-enabled/broken")
        );
        let apache = "AH00526: Syntax error on line 3 of /etc/apache2/sites-enabled/x.conf:\nInvalid command 'Bogus', perhaps misspelled\n";
        assert_eq!(
            blamed_file(apache).as_deref(),
            Some("/etc/apache2/sites-enabled/x.conf")
        );
        assert_eq!(blamed_file("Syntax OK"), None);
    }

    #[test]
    fn reads_markers() {
        let out =
            "@@step users 1000000000\n@@step files 1500000000\nnoise\n@@step done 3500000000\n";
        let r = parse_report(out);
        assert_eq!(r.steps.len(), 2);
        assert_eq!(
            r.steps[0],
            TimedStep {
                name: "users".into(),
                seconds: 0.5
            }
        );
        assert_eq!(r.steps[1].seconds, 2.0);
        assert!(r.failure.is_none());
        let out = "@@step files 1\n@@fail nginx\n@@output YmFkIGluIC9ldGMvbmdpbngvc2l0ZXMtZW5hYmxlZC94OjE=\n";
        let r = parse_report(out);
        let (what, text) = r.failure.unwrap();
        assert_eq!(what, "nginx");
        assert!(text.contains("/etc/nginx/sites-enabled/x:1"));
    }

    #[test]
    fn the_rejection_names_the_file() {
        let e = rejected(
            "n1",
            "nginx",
            "x in /etc/nginx/sites-enabled/broken:1".into(),
            true,
        );
        let hint = e.hint().unwrap();
        assert!(hint.contains("`/etc/nginx/sites-enabled/broken`"), "{hint}");
        assert_eq!(e.to_string(), "`nginx -t` failed on node `n1` (exit 1)");
    }

    /// `sh -n` and, when installed, `shellcheck -s sh -S warning` on a rendered script.
    fn check_sh(name: &str, text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "sh -n {name}: {out:?}");
        if let Ok(out) = std::process::Command::new("shellcheck")
            .args(["-s", "sh", "-S", "warning"])
            .arg(&path)
            .output()
        {
            assert!(
                out.status.success(),
                "shellcheck {name}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn rendered_setup_scripts_parse_and_pass_shellcheck() {
        use super::super::desired::{Choices, Distro, RenderFacts};
        use super::super::probe::Facts;
        for firewall in [true, false] {
            let choices = Choices {
                apt_proxy: Some("http://10.0.0.1:3142".into()),
                python_slots: Some(2),
                ruby_slots: Some(1),
                operator_keys: vec!["ssh-ed25519 AAAAkey op@laptop".into()],
                skiff_version: "0.1.0".into(),
                firewall,
            };
            let facts = RenderFacts {
                ipv6: true,
                os: "debian 12".into(),
                python_slots: 2,
                ruby_slots: 1,
            };
            let d = Desired::build(Distro::Debian12, &facts, &choices).unwrap();
            let mut node = Facts {
                os_id: "debian".into(),
                os_version: "12".into(),
                sshd: true,
                ..Facts::default()
            };
            if !firewall {
                node.firewall = super::super::probe::FirewallState::Loaded;
                node.firewall_unit = true;
            }
            let plan = super::super::plan::compute("n1", "Debian 12", &d, &d, &node).unwrap();
            let lib = crate::assets::server_file("lib/services.sh").text();
            let apply = apply_script(&plan, &d, lib).unwrap();
            if firewall {
                assert!(apply.contains("nft -c -f /var/lib/skiff/firewall.check"));
                assert!(apply.contains("systemctl enable --quiet skiff-firewall.service"));
            } else {
                assert!(apply.contains("nft delete table inet skiff"));
            }
            check_sh("apply.sh", &apply);
            check_sh("apt.sh", &apt_script(&plan, &d).unwrap());
            check_sh(
                "probe.sh",
                &super::super::probe::script(&d, "root", lib).unwrap(),
            );
            check_sh("ssh.sh", &ssh_script(plan.sshd.as_ref().unwrap()).unwrap());
        }
    }
}
