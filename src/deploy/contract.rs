//! The Rust-to-node contract, in one place: the node's paths, ports and exit codes. The
//! node scripts define none of them themselves: every deploy step's prelude (see
//! [`crate::transport::ssh::Session::script_with`]) starts with [`prelude`], every sync
//! call's with [`sync_prelude`], so the scripts read `$APPS`, `$CHECK_PORT`,
//! `$EXIT_LOCK_HELD`... and the laptop parses exits and builds paths from the same
//! constants.

/// The apps' folders: `APP/releases/N`, `APP/venvs/KEY`, `APP/meta/N.json`...
pub const APPS: &str = "/srv/skiff/apps";
/// The locks folder: `APP.lock/` and [`NODE_LOCK`].
pub const LOCKS: &str = "/var/lib/skiff/locks";
/// The node lock: what apps share (slots, state.toml, routes).
pub const NODE_LOCK: &str = "/var/lib/skiff/locks/.node.lock";
/// The node's truth.
pub const STATE: &str = crate::node_state::PATH;
/// What setup-node recorded (version, digest, slot counts).
pub const SETUP: &str = "/var/lib/skiff/setup.toml";
/// The one privileged helper.
pub const SKIFF_NODE: &str = "/usr/local/share/skiff/bin/skiff-node";
/// Files handed to `skiff-node`.
pub const STAGING: &str = "/var/lib/skiff/staging";
/// The slot pool: `python/pyNN/`, `ruby/rbNN/`.
pub const SLOTS: &str = "/srv/skiff/slots";
/// Node-side secrets: `APP.env`.
pub const ENVDIR: &str = "/etc/skiff/env";
/// Backups taken on the node before a release command (`[deploy] backup_before_release`):
/// `APP/N/NAME`, the deploy user's only (0700).
pub const BACKUPS_DIR: &str = "/var/backups/skiff";
/// The deploy log: `APP.jsonl`, one JSON line per run (see `deploy::history`).
pub const HISTORY_DIR: &str = "/var/lib/skiff/history";
/// Services' credentials, root's, readable by the deploy user's group (0750/0640, made by
/// `skiff-node service-ensure` and `service-put`): `APP/NAME.env` and `APP/NAME.json`.
pub const SERVICES_DIR: &str = "/etc/skiff/services";
/// Files services' folders: `APP/NAME`, owned by www-data, outside every release.
pub const DATA_DIR: &str = "/srv/skiff/data";
/// Runs an app's worker or cron job from its job file (installed by setup-node).
pub const RUNNER: &str = "/usr/local/share/skiff/bin/skiff-run";
/// The shell functions that read and write env files' escaped values (`env_export`,
/// `env_encode`; the format is `env_file`'s), sourced by node.sh and skiff-run.
pub const ENV_LIB: &str = "/usr/local/share/skiff/lib/envfile.sh";
/// The node's web-cron secret (`SKIFF_CRON_SECRET=HEX`, root only): made by the first
/// switch that enables a web cron (`skiff-node cron-secret`, which keeps its own copy of
/// this path and of [`CRON_MAP`], [`SYSTEMD_DIR`], [`APPS`] and [`STATE`]: a unit test
/// holds them together), read by systemd for the web cron's unit.
pub const CRON_SECRET: &str = "/etc/skiff/cron.secret";
/// The NGINX map entry that recognises the secret (`"HEX" 1;`), included by skiff.conf.
pub const CRON_MAP: &str = "/etc/nginx/skiff-cron.map";
/// Where the switch installs an app's current units.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// NGINX's access log of every app (format `skiff` in skiff.conf: epoch with ms, app,
/// host, then the combined fields): what `skiff logs --kind access` filters by app.
pub const ACCESS_LOG: &str = "/var/log/nginx/skiff-access.log";
/// NGINX's error log (request lines name their `host: "..."`).
pub const NGINX_ERROR_LOG: &str = "/var/log/nginx/error.log";
/// Apache's error log (the apps' own errors; skiff's ErrorLogFormat names the host).
pub const APACHE_ERROR_LOG: &str = "/var/log/apache2/error.log";
/// TLS: one folder per app (root 0700): `APP/fullchain.pem` (0644) and `APP/privkey.pem`
/// (0600), the certificate NGINX serves; `APP/site.conf`, the app's HTTPS server blocks
/// (rendered by the laptop); `APP/source` (`acme` or `custom`); `APP/status`, the last
/// order's, renewal's or installation's outcome (`ok TIME` or `failed TIME: why`).
pub const TLS_DIR: &str = "/etc/skiff/tls";
/// The CA bundle certbot trusts for the ACME server (only when the account names one,
/// e.g. a test CA): certbot's `REQUESTS_CA_BUNDLE`, here and in its timer's drop-in.
pub const ACME_CA: &str = "/etc/skiff/tls/acme-ca.pem";
/// The ACME webroot: NGINX serves `.well-known/acme-challenge/` from it on port 80 for
/// every host, before any redirect; certbot writes its challenge files there.
pub const ACME_WEBROOT: &str = "/var/lib/skiff/acme";
/// The NGINX file that holds an app's HTTPS server (and its port-80 redirect).
pub fn tls_site(app: &str) -> String {
    format!("/etc/skiff/sites/nginx/{app}.tls.conf")
}
/// Seconds a new release's workers must stay up, unrestarted, before its switch goes on.
pub const WORKER_GRACE: u32 = 2;
/// NGINX's loopback-only port where a backend name (`N.APP.KIND.skiff`) is its own
/// route: the health check reaches a release there before any route points at it
/// (setup-node renders it into NGINX's config).
pub const CHECK_PORT: u16 = 8079;
/// Apache's loopback port behind NGINX (setup-node's ports.conf).
pub const APACHE_PORT: u16 = 8080;

/// skiff's nftables ruleset (`table inet skiff`), written by setup-node unless
/// `--no-firewall`; loaded at boot by [`FIREWALL_UNIT`], and again by `skiff-node
/// service-ensure` when an app's other nodes change. skiff-node keeps its own copy of
/// this path (`FIREWALL=`; a unit test holds the two together).
pub const FIREWALL: &str = "/etc/skiff/firewall.nft";
/// Files the ruleset includes (`*.nft`): `db-IDENT.nft` (from service-ensure) add the
/// app's other nodes to the `db_clients` set; an operator may add `add element inet skiff
/// open_tcp { PORT }` lines in a file of their own.
pub const FIREWALL_DIR: &str = "/etc/skiff/firewall.d";
/// The nftables table skiff owns; no other table is touched.
pub const FIREWALL_TABLE: &str = "inet skiff";
/// The unit that loads [`FIREWALL`] at boot (systemd nodes).
pub const FIREWALL_UNIT: &str = "skiff-firewall.service";
/// TCP ports open to everyone: SSH, HTTP, HTTPS.
pub const OPEN_TCP_PORTS: [u16; 3] = [22, 80, 443];
/// Database ports, open only to the `db_clients` set (PostgreSQL, MariaDB).
pub const DB_PORTS: [u16; 2] = [5432, 3306];
/// sshd's drop-in for key-only logins, written once a key login of the login user and
/// of the deploy user is confirmed. Named to sort before the distributions' and
/// cloud-init's `50-*.conf`: sshd keeps the first value it reads.
pub const SSHD_DROPIN: &str = "/etc/ssh/sshd_config.d/10-skiff.conf";
/// Turns on the daily apt run and unattended-upgrades (APT::Periodic).
pub const AUTO_UPGRADES: &str = "/etc/apt/apt.conf.d/20auto-upgrades";
/// Limits unattended-upgrades to the distribution's security archive.
pub const UPGRADES_ORIGINS: &str = "/etc/apt/apt.conf.d/52skiff-security-only";

/// Exit codes of the node scripts' steps that the laptop tells apart.
pub mod exit {
    /// Bad input (a value that fails its grammar).
    pub const USAGE: i32 = 2;
    /// NGINX refused the routing table (the previous one is back) or its config test.
    pub const NGINX: i32 = 4;
    /// A build command failed or timed out.
    pub const BUILD: i32 = 5;
    /// The slot never answered with the new release.
    pub const NOT_WARM: i32 = 6;
    /// The health check failed.
    pub const HEALTH_FAILED: i32 = 7;
    /// `[packages] apt` could not be installed.
    pub const PACKAGES_FAILED: i32 = 8;
    /// A worker of the new release did not stay up (its journal tail follows
    /// `---workers`); the previous release's workers run again.
    pub const WORKERS: i32 = 9;
    /// The app has workers or cron and the node has no systemd as PID 1.
    pub const NO_SYSTEMD: i32 = 11;
    /// The release command failed or timed out.
    pub const RELEASE: i32 = 12;
    /// A service could not be made ready (package, server, database).
    pub const SERVICE: i32 = 13;
    /// A certificate could not be ordered or renewed (the previous one, if any, serves on).
    pub const ACME: i32 = 14;
    /// A lock is held by someone else (its owner line follows `HELD`).
    pub const LOCK_HELD: i32 = 75;
    /// The node was never set up.
    pub const NOT_SET_UP: i32 = 78;

    // The sync's node.sh (src/sync/node.sh); an unknown mode is `USAGE`.
    /// Sync: the new release already exists.
    pub const SYNC_EXISTS: i32 = 3;
    /// Sync: the base release (or its manifest) is missing.
    pub const SYNC_NO_BASE: i32 = 4;
    /// Sync: its staging folder is gone (another sync of the app started).
    pub const SYNC_STAGING_GONE: i32 = 5;
    /// Sync: the new manifest on the node is not the one skiff sent.
    pub const SYNC_MANIFEST: i32 = 6;
    /// Sync: the upload stream ended early or is damaged.
    pub const SYNC_CUT_SHORT: i32 = 7;
    /// Sync `go`: the base is not what skiff expected (the frames say why; stdin unread).
    pub const SYNC_STALE: i32 = 10;
}

/// Exit codes of `skiff-node` (server-files/bin/skiff-node, whose header lists them too).
pub mod skiff_node_exit {
    /// A config test (`nginx -t`, `apache2ctl configtest`) failed; the previous files are
    /// back in place.
    pub const CONFIG_TEST: i32 = 3;
    /// certbot could not order or renew a certificate; the previous one serves on.
    pub const ACME: i32 = 6;
}

/// An app's folder on the node.
pub fn app_dir(app: &str) -> String {
    format!("{APPS}/{app}")
}

/// Release `n` of `app`.
pub fn release_dir(app: &str, n: u32) -> String {
    format!("{APPS}/{app}/releases/{n}")
}

/// The snapshot of the node-side env file that release `n` runs with.
pub fn env_snapshot(app: &str, n: u32) -> String {
    format!("{APPS}/{app}/env/{n}.env")
}

/// Release `n`'s systemd units and job files.
pub fn units_dir(app: &str, n: u32) -> String {
    format!("{APPS}/{app}/units/{n}")
}

/// Release `n`'s environment for its workers and cron commands (`KEY=VALUE` lines:
/// `[env]`, the node's env file, the venv or bundle on PATH), 0640 root:www-data.
pub fn run_env(app: &str, n: u32) -> String {
    format!("{APPS}/{app}/env/{n}.run")
}

/// Release `n`'s meta (`env`, `venv`, `bundle`...), 0640 www-data.
pub fn meta_file(app: &str, n: u32) -> String {
    format!("{APPS}/{app}/meta/{n}.json")
}

/// The app's venv of key `key`.
pub fn venv_dir(app: &str, key: &str) -> String {
    format!("{APPS}/{app}/venvs/{key}")
}

/// The app's Bundler bundle of key `key`.
pub fn bundle_dir(app: &str, key: &str) -> String {
    format!("{APPS}/{app}/bundles/{key}")
}

/// `app`'s deploy lock.
pub fn app_lock(app: &str) -> String {
    format!("{LOCKS}/{app}.lock")
}

/// The contract as `(NAME, VALUE)` pairs, first in every step's prelude.
pub fn prelude() -> Vec<(&'static str, String)> {
    [
        ("APPS", APPS.into()),
        ("LOCKS", LOCKS.into()),
        ("NODE_LOCK", NODE_LOCK.into()),
        ("STATE", STATE.into()),
        ("SETUP", SETUP.into()),
        ("NODE", SKIFF_NODE.into()),
        ("STAGING", STAGING.into()),
        ("SLOTS", SLOTS.into()),
        ("ENVDIR", ENVDIR.into()),
        ("CHECK_PORT", CHECK_PORT.to_string()),
        ("APACHE_PORT", APACHE_PORT.to_string()),
        ("SERVICES_DIR", SERVICES_DIR.into()),
        ("HISTORY_DIR", HISTORY_DIR.into()),
        ("BACKUPS_DIR", BACKUPS_DIR.into()),
        ("ENV_LIB", ENV_LIB.into()),
        ("WORKER_GRACE", WORKER_GRACE.to_string()),
    ]
    .into_iter()
    .chain(exit_codes())
    .collect()
}

/// The TLS steps' contract (src/deploy/tls.sh) as `(NAME, VALUE)` pairs: where files are
/// handed over, the helper that installs them, and the exit codes they tell apart.
pub fn tls_prelude() -> Vec<(&'static str, String)> {
    vec![
        ("STAGING", STAGING.into()),
        ("NODE", SKIFF_NODE.into()),
        ("EXIT_USAGE", exit::USAGE.to_string()),
        ("EXIT_NGINX", exit::NGINX.to_string()),
        ("EXIT_ACME", exit::ACME.to_string()),
        ("NODE_EXIT_TEST", skiff_node_exit::CONFIG_TEST.to_string()),
        ("NODE_EXIT_ACME", skiff_node_exit::ACME.to_string()),
    ]
}

/// The sync's contract as `(NAME, VALUE)` pairs, first in every sync call's prelude.
pub fn sync_prelude() -> Vec<(&'static str, String)> {
    exit_codes()
}

/// Every exit code as an `EXIT_*` pair: both scripts get the one table (each uses its
/// own, and `EXIT_USAGE`).
fn exit_codes() -> Vec<(&'static str, String)> {
    [
        ("EXIT_USAGE", exit::USAGE),
        ("EXIT_NGINX", exit::NGINX),
        ("EXIT_BUILD", exit::BUILD),
        ("EXIT_NOT_WARM", exit::NOT_WARM),
        ("EXIT_HEALTH", exit::HEALTH_FAILED),
        ("EXIT_PACKAGES", exit::PACKAGES_FAILED),
        ("EXIT_LOCK_HELD", exit::LOCK_HELD),
        ("EXIT_NOT_SET_UP", exit::NOT_SET_UP),
        ("EXIT_WORKERS", exit::WORKERS),
        ("EXIT_RELEASE", exit::RELEASE),
        ("EXIT_SERVICE", exit::SERVICE),
        ("EXIT_NO_SYSTEMD", exit::NO_SYSTEMD),
        ("EXIT_SYNC_EXISTS", exit::SYNC_EXISTS),
        ("EXIT_SYNC_NO_BASE", exit::SYNC_NO_BASE),
        ("EXIT_SYNC_STAGING_GONE", exit::SYNC_STAGING_GONE),
        ("EXIT_SYNC_MANIFEST", exit::SYNC_MANIFEST),
        ("EXIT_SYNC_CUT_SHORT", exit::SYNC_CUT_SHORT),
        ("EXIT_SYNC_STALE", exit::SYNC_STALE),
    ]
    .into_iter()
    .map(|(name, code)| (name, code.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiff_node_keeps_the_paths_of_the_contract() {
        let text = crate::assets::server_file("bin/skiff-node").text();
        for line in [
            format!("FIREWALL={FIREWALL}"),
            format!("FIREWALL_DIR={FIREWALL_DIR}"),
            format!("FIREWALL_TABLE='{FIREWALL_TABLE}'"),
            format!("APPS={APPS}"),
            format!("STATE={STATE}"),
            format!("SYSTEMD_DIR={SYSTEMD_DIR}"),
            format!("CRON_SECRET={CRON_SECRET}"),
            format!("CRON_MAP={CRON_MAP}"),
        ] {
            assert!(text.lines().any(|l| l == line), "skiff-node lacks `{line}`");
        }
    }

    /// The deploy's node.sh reads every name of the contract (but the sync's exit codes)
    /// and defines none of them itself; every `$NAME` in upper case it uses is one of them
    /// (or its own `PATH`/`T0`).
    #[test]
    fn node_sh_uses_the_contract_and_defines_none_of_it() {
        let own = ["PATH", "T0", "VIRTUAL_ENV", "HOME"];
        let mine = |name: &str| !name.starts_with("EXIT_SYNC_");
        uses_only_the_contract(super::super::remote::SCRIPT, &prelude(), mine, &own);
    }

    /// The same for the sync's node.sh and [`sync_prelude`]: it uses its exit codes.
    #[test]
    fn sync_node_sh_uses_its_contract_and_defines_none_of_it() {
        let own = ["LC_ALL", "SPARE", "STALE"];
        let mine = |name: &str| name.starts_with("EXIT_SYNC_") || name == "EXIT_USAGE";
        let script = crate::sync::remote::SCRIPT_SOURCE;
        uses_only_the_contract(script, &sync_prelude(), mine, &own);
    }

    fn uses_only_the_contract(
        script: &str,
        contract: &[(&str, String)],
        mine: impl Fn(&str) -> bool,
        own: &[&str],
    ) {
        let names: Vec<&str> = contract.iter().map(|(n, _)| *n).collect();
        for name in names.iter().filter(|n| mine(n)) {
            assert!(
                script.contains(&format!("${name}")) || script.contains(&format!("${{{name}")),
                "the script never uses ${name}"
            );
            assert!(
                !script
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name}="))),
                "the script defines {name} itself"
            );
        }
        let mut used = std::collections::BTreeSet::new();
        let bytes = script.as_bytes();
        for (i, _) in script.match_indices('$') {
            let rest = &script[i + 1..];
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if word.len() > 1
                && word.starts_with(|c: char| c.is_ascii_uppercase())
                && bytes.get(i + 1) != Some(&b'(')
            {
                used.insert(word);
            }
        }
        for word in used {
            assert!(
                names.contains(&word.as_str()) || own.contains(&word.as_str()),
                "the script uses ${word}, which the contract does not define"
            );
        }
    }

    #[test]
    fn paths_hang_off_the_constants() {
        assert_eq!(release_dir("blog", 3), "/srv/skiff/apps/blog/releases/3");
        assert_eq!(env_snapshot("blog", 3), "/srv/skiff/apps/blog/env/3.env");
        assert_eq!(app_lock("blog"), "/var/lib/skiff/locks/blog.lock");
        assert!(NODE_LOCK.starts_with(LOCKS));
    }
}
