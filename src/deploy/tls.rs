//! HTTPS for an app's hosts (`[tls]` in app.toml, `skiff tls`).
//!
//! Certificates live on the nodes only: with `[tls] acme = true`, each node orders its own
//! from the account's CA with certbot (webroot: NGINX answers
//! `/.well-known/acme-challenge/` on port 80 for every host, before any redirect, and
//! relays a token it does not have to the app's other nodes), and certbot's own systemd
//! timer renews it, so renewal never needs this machine. Every certificate a node
//! installs (order, renewal, `skiff tls add HOST --cert FILE --key FILE`) goes through `nginx -t` before NGINX reloads
//! (`skiff-node tls-deployed`, certbot's deploy hook); a refused one leaves the previous
//! certificate serving and is recorded for `skiff status`.
//!
//! `skiff tls add HOST --cert FILE --key FILE` checks a custom certificate on this machine before anything is
//! uploaded, with the `openssl` command (run with arguments, never through a shell): it is
//! on every machine that has TLS at all, its `verify` does the chain building and date
//! checks that a parser crate would leave to us, and it reads the private key from its
//! file, so the key never passes through skiff's memory for the checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tera::Context;

use super::contract::{self, exit};
use crate::app_config::{AppConfig, TlsConfig};
use crate::cluster::{Cluster, StateFile, TlsAccount};
use crate::error::{Error, Result};
use crate::transport::ssh::Session;

/// The node-side half of the TLS steps.
pub const SCRIPT: &str = include_str!("tls.sh");

/// What a certificate covers: the app's host names (wildcards left out, which ACME's
/// HTTP challenge cannot prove) and `prev.MAIN`.
pub fn cert_names(hostnames: &[String]) -> Vec<String> {
    let mut names: Vec<String> = hostnames
        .iter()
        .filter(|h| !h.starts_with("*."))
        .cloned()
        .collect();
    if let Some(main) = crate::routing::main_host(hostnames) {
        names.push(format!("prev.{main}"));
    }
    names.dedup();
    names
}

/// The app's HTTPS server (and, with `redirect`, its port-80 redirect server) for NGINX.
/// `wildcard`: the certificate also covers `*.MAIN`, so the version hosts `N.MAIN` are
/// served over HTTPS too.
pub fn render_site(
    app: &str,
    hostnames: &[String],
    tls: &TlsConfig,
    wildcard: bool,
) -> Result<String> {
    let names = cert_names(hostnames);
    let mut server_names = names.clone();
    if wildcard && let Some(main) = crate::routing::main_host(hostnames) {
        server_names.push(format!("*.{main}"));
    }
    let mut ctx = Context::new();
    ctx.insert("app", app);
    ctx.insert("server_names", &server_names);
    ctx.insert("redirect_names", &names);
    ctx.insert("redirect", &tls.redirect);
    ctx.insert("hsts", &tls.hsts);
    ctx.insert("tls_dir", contract::TLS_DIR);
    ctx.insert("access_log", contract::ACCESS_LOG);
    crate::provision::render::render("nginx/tls-site.conf.tera", &ctx)
}

/// For an app on several nodes: the upstream of the other nodes (`APP.relay.conf`) and the
/// map lines that send the app's challenge hosts there (`APP.relay`).
pub fn render_relay(app: &str, names: &[String], peers: &[String]) -> Result<(String, String)> {
    let mut ctx = Context::new();
    ctx.insert("app", app);
    ctx.insert("peers", peers);
    let conf = crate::provision::render::render("nginx/acme-relay.conf.tera", &ctx)?;
    let map = names
        .iter()
        .map(|n| format!("{n} skiff_acme_{app};\n"))
        .collect();
    Ok((conf, map))
}

async fn step(session: &Session, vars: &[(&str, &str)]) -> Result<(i32, String, String)> {
    let contract = contract::tls_prelude();
    let mut all: Vec<(&str, &str)> = contract.iter().map(|(n, v)| (*n, v.as_str())).collect();
    all.extend_from_slice(vars);
    let out = session.script_with(SCRIPT, &all, &[]).await?;
    Ok((
        out.status.unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn step_error(session: &Session, what: &str, status: i32, err: &str, hint: String) -> Error {
    let lines: Vec<&str> = err.trim().lines().collect();
    Error::Remote {
        node: session.node().to_string(),
        command: what.to_string(),
        status: Some(status),
        output: lines[lines.len().saturating_sub(20)..].join("\n"),
        hint: Some(hint),
    }
}

/// The account's settings as the node gets them: `email=`, `server=` lines, and the CA
/// bundle's text (read here, from the file `skiff tls account --ca-bundle` named).
fn account_inputs(account: &TlsAccount) -> Result<(String, String)> {
    let mut lines = format!("server={}\n", account.server());
    if let Some(e) = &account.email {
        lines.push_str(&format!("email={e}\n"));
    }
    let ca = match &account.ca_bundle {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            Error::usage(
                format!("cannot read the ACME CA bundle `{}`: {e}", p.display()),
                "point `skiff tls account --ca-bundle FILE` at a PEM file, or set the account again without it",
            )
        })?,
        None => String::new(),
    };
    Ok((lines, ca))
}

/// One node's part of an app with `[tls] acme = true`: its HTTPS server and the relay to
/// `peers` (the app's other nodes' addresses) go in, and certbot orders the certificate
/// unless the node has a valid one for these names (`force`: renew it anyway).
#[allow(clippy::too_many_arguments)]
pub async fn acme_on_node(
    session: &Session,
    account: &TlsAccount,
    app: &str,
    hostnames: &[String],
    tls: &TlsConfig,
    peers: &[String],
    force: bool,
) -> Result<()> {
    let names = cert_names(hostnames);
    let site = render_site(app, hostnames, tls, false)?;
    let (relay_conf, relay) = if peers.is_empty() {
        (String::new(), String::new())
    } else {
        render_relay(app, &names, peers)?
    };
    let (account_lines, ca) = account_inputs(account)?;
    let domains: String = names.iter().map(|n| format!("{n}\n")).collect();
    let vars = [
        ("op", "acme"),
        ("app", app),
        ("domains", domains.as_str()),
        ("account", account_lines.as_str()),
        ("ca", ca.as_str()),
        ("site", site.as_str()),
        ("relay_conf", relay_conf.as_str()),
        ("relay", relay.as_str()),
        ("force", if force { "1" } else { "0" }),
    ];
    let (status, _out, err) = step(session, &vars).await?;
    match status {
        0 => Ok(()),
        exit::ACME => Err(step_error(
            session,
            &format!("ordering a certificate for {}", names.join(", ")),
            status,
            &err,
            format!(
                "the CA must reach every name over HTTP on port 80 of a node of the app (DNS, firewall); \
                 whatever served before serves on. Then run `skiff update` again (or `skiff tls renew {}` \
                 when the node had a certificate)",
                names[0]
            ),
        )),
        exit::NGINX => Err(step_error(
            session,
            "installing the certificate",
            status,
            &err,
            "NGINX refused it and the previous configuration serves on; see the output above"
                .into(),
        )),
        _ => Err(step_error(
            session,
            "the TLS step",
            status,
            &err,
            "see the output above".into(),
        )),
    }
}

/// After `skiff update` switched an app with `[tls]`: with `acme = true` every node orders
/// (or keeps) its certificate (the account must be set); else a node with a certificate
/// from `skiff tls add HOST --cert FILE --key FILE` gets the HTTPS server app.toml's `redirect` and `hsts` ask for.
/// Whether there was anything to do.
pub async fn after_update(
    cluster: &Cluster,
    sessions: &[(&str, &Session)],
    config: &AppConfig,
    hostnames: &[String],
) -> Result<bool> {
    let Some(tls) = &config.tls else {
        return Ok(false);
    };
    if !tls.acme {
        // a custom certificate's HTTPS server follows app.toml's redirect and hsts
        let site = render_site(&config.name, hostnames, tls, false)?;
        let wild = render_site(&config.name, hostnames, tls, true)?;
        for (_, session) in sessions {
            let vars = [
                ("op", "site"),
                ("app", config.name.as_str()),
                ("site", site.as_str()),
                ("site_wildcard", wild.as_str()),
            ];
            let (status, _, err) = step(session, &vars).await?;
            if status != 0 {
                return Err(step_error(
                    session,
                    "installing the HTTPS server",
                    status,
                    &err,
                    "NGINX refused it and the previous configuration serves on".into(),
                ));
            }
        }
        return Ok(true);
    }
    let account = account_of(cluster)?;
    for (node, session) in sessions {
        let peers = peers_of(cluster, sessions.iter().map(|(n, _)| *n), node)?;
        acme_on_node(
            session,
            account,
            &config.name,
            hostnames,
            tls,
            &peers,
            false,
        )
        .await?;
    }
    Ok(true)
}

/// The account, or an error saying how to set it.
pub fn account_of(cluster: &Cluster) -> Result<&TlsAccount> {
    cluster.tls.as_ref().ok_or_else(|| {
        Error::usage(
            "`[tls] acme = true` needs an ACME account, and cluster.toml has none",
            "set one with `skiff tls account --email YOU@EXAMPLE.COM` (Let's Encrypt; `--server staging` for its test CA)",
        )
    })
}

fn peers_of<'a>(
    cluster: &Cluster,
    nodes: impl Iterator<Item = &'a str>,
    me: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in nodes.filter(|n| *n != me) {
        out.push(cluster.node(n)?.address.clone());
    }
    Ok(out)
}

/// Sets the ACME account in cluster.toml. `server`: a URL, `staging` (Let's Encrypt's
/// staging CA) or `production`.
pub fn set_account(
    state: &StateFile,
    email: Option<&str>,
    server: Option<&str>,
    ca_bundle: Option<&Path>,
) -> Result<TlsAccount> {
    if let Some(e) = email {
        check_email(e)?;
    }
    let server = match server {
        None | Some("production") => None,
        Some("staging") => Some(crate::cluster::LETSENCRYPT_STAGING.to_string()),
        Some(url) => {
            check_server(url)?;
            Some(url.to_string())
        }
    };
    let ca_bundle = match ca_bundle {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::usage(
                    format!("cannot read `--ca-bundle {}`: {e}", p.display()),
                    "pass a PEM file with the ACME server's CA certificate",
                )
            })?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::usage(
                    format!("`--ca-bundle {}` holds no PEM certificate", p.display()),
                    "pass a PEM file (-----BEGIN CERTIFICATE-----) with the ACME server's CA",
                ));
            }
            Some(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
        }
        None => None,
    };
    let account = TlsAccount {
        email: email.map(str::to_string),
        server,
        ca_bundle,
    };
    let saved = account.clone();
    state.update(&mut |_| {}, move |c| {
        c.tls = Some(saved);
        Ok(())
    })?;
    Ok(account)
}

fn check_email(e: &str) -> Result<()> {
    let ok = e.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
            && crate::names::check_hostname(domain).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            format!("`--email {e}` is not an email address skiff accepts"),
            "write it as `name@example.com` (letters, digits and ._%+- before the @)",
        ))
    }
}

fn check_server(url: &str) -> Result<()> {
    let ok = url.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:/_~%-".contains(c))
    });
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            format!("`--server {url}` is not an https:// ACME directory URL"),
            "pass the CA's directory URL (https://...), `staging` or `production`",
        ))
    }
}

/// HOST's app: its name, nodes, and (from its current release's app.toml on the first
/// node) its host names and `[tls]` settings.
async fn app_of(
    cluster: &Cluster,
    state: &StateFile,
    host: &str,
) -> Result<(String, Vec<String>, AppConfig)> {
    let (app, nodes) = super::app_for_host(cluster, host)?;
    let session = Session::for_node(&nodes[0], cluster.node(&nodes[0])?, state).await?;
    let config = release_config(&session, &app).await;
    let _ = session.close().await;
    Ok((app, nodes, config?))
}

async fn release_config(session: &Session, app: &str) -> Result<AppConfig> {
    let (node_state, release) = super::remote::live_release(session, app).await?;
    let files = super::remote::release_files(
        session,
        app,
        release.number,
        &[crate::app_config::FILE_NAME.to_string()],
    )
    .await?;
    let text = files
        .get(crate::app_config::FILE_NAME)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let path = PathBuf::from(format!("release {} app.toml", release.number));
    let mut config = AppConfig::parse(&path, &text)?;
    // the hosts the node serves (`update --host` may have chosen others than app.toml's)
    if let Some(a) = node_state.apps.get(app) {
        config.hostnames = a.hostnames.clone();
    }
    Ok(config)
}

/// `skiff tls renew HOST`: a new certificate now on every node of the app (certbot
/// `--force-renewal`, installed through the same `nginx -t` gate). The nodes renewed.
pub async fn renew(state: &StateFile, host: &str) -> Result<Vec<String>> {
    let cluster = state.load()?;
    let (app, nodes) = super::app_for_host(&cluster, host)?;
    let mut done = Vec::new();
    for node in &nodes {
        let session = Session::for_node(node, cluster.node(node)?, state).await?;
        let r = step(&session, &[("op", "renew"), ("app", app.as_str())]).await;
        let outcome = match r {
            Ok((0, _, _)) => Ok(()),
            Ok((status, _, err)) => Err(step_error(
                &session,
                &format!("renewing the certificate of {host}"),
                status,
                &err,
                "the certificate that served before serves on; `skiff status` shows each node's"
                    .into(),
            )),
            Err(e) => Err(e),
        };
        let _ = session.close().await;
        outcome?;
        done.push(node.clone());
    }
    Ok(done)
}

/// `destroy-app`: the app's HTTPS server, relay, certificate and certbot lineage leave
/// the node (certbot.timer stops renewing it).
pub async fn remove(session: &Session, app: &str) -> Result<()> {
    let (status, _, err) = step(session, &[("op", "remove"), ("app", app)]).await?;
    if status != 0 {
        return Err(step_error(
            session,
            "removing the app's certificate",
            status,
            &err,
            "see the output above".into(),
        ));
    }
    Ok(())
}

/// A certificate as a node serves it (`skiff-node tls-info`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertStatus {
    /// The app.
    pub app: String,
    /// `acme` or `custom`.
    pub source: String,
    /// Its end of validity (seconds since the epoch; 0 when unreadable).
    pub not_after: u64,
    /// Whether the last order, renewal or installation worked.
    pub ok: bool,
    /// What the node recorded about it (`failed ... why`, or what was installed).
    pub last: String,
}

impl CertStatus {
    /// Whole days until it expires (negative: expired).
    pub fn days_left(&self, now: u64) -> i64 {
        (self.not_after as i64 - now as i64).div_euclid(86_400)
    }
}

/// Parses `tls APP SOURCE NOTAFTER STATUS...` lines.
pub fn parse_info(text: &str) -> Vec<CertStatus> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.splitn(5, ' ');
            (w.next()? == "tls").then_some(())?;
            let app = w.next()?.to_string();
            let source = w.next()?.to_string();
            let not_after = w.next()?.parse().ok()?;
            let last = w.next().unwrap_or("").trim().to_string();
            Some(CertStatus {
                app,
                source,
                not_after,
                ok: !last.starts_with("failed"),
                last,
            })
        })
        .collect()
}

/// Every certificate a node serves.
pub async fn info(session: &Session) -> Result<Vec<CertStatus>> {
    let (status, out, err) = step(session, &[("op", "info")]).await?;
    if status != 0 {
        return Err(step_error(
            session,
            "reading the certificates",
            status,
            &err,
            "re-run `skiff setup-node` for this node".into(),
        ));
    }
    Ok(parse_info(&out))
}

/// What `skiff tls add HOST --cert FILE --key FILE` found in a certificate file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCert {
    /// Its DNS names.
    pub names: Vec<String>,
    /// `notAfter` as openssl prints it.
    pub not_after: String,
    /// Whether it covers `*.MAIN` (then `N.MAIN` is served over HTTPS too).
    pub wildcard: bool,
}

fn openssl(args: &[&str]) -> Result<std::process::Output> {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::usage(
                format!("cannot run `openssl` on this machine: {e}"),
                "install it (`sudo apt install openssl`): `skiff tls add HOST --cert FILE --key FILE` checks certificates with it",
            )
        })
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .trim()
    .to_string()
}

/// Whether `name` is covered by the certificate name `pattern` (`*.x` covers one label).
pub fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == name,
    }
}

/// Checks a custom certificate before anything is uploaded: the key is the certificate's,
/// it is valid now (not expired, not yet valid), the chain in the file leads to a root
/// this machine trusts (or `ca`, a private CA's root), and its names cover `needed`.
pub fn check_custom(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    needed: &[String],
    main: &str,
) -> Result<CustomCert> {
    let c = cert.to_string_lossy();
    let k = key.to_string_lossy();
    let bad = |what: String, hint: &str| Error::usage(what, hint);
    for (flag, p) in [("--cert", cert), ("--key", key)] {
        if !p.is_file() {
            return Err(bad(
                format!("`{flag} {}`: no such file", p.display()),
                "pass the PEM file's path",
            ));
        }
    }
    let pubkey = openssl(&["x509", "-in", &c, "-noout", "-pubkey"])?;
    if !pubkey.status.success() {
        return Err(bad(
            format!("`--cert {c}` is not a PEM certificate: {}", text(&pubkey)),
            "pass the certificate chain in PEM (-----BEGIN CERTIFICATE-----), the server's certificate first",
        ));
    }
    let keypub = openssl(&["pkey", "-in", &k, "-pubout", "-passin", "pass:"])?;
    if !keypub.status.success() {
        return Err(bad(
            format!("`--key {k}` is not an unencrypted PEM private key"),
            "pass the private key in PEM without a passphrase (`openssl pkey -in KEY -out PLAIN`)",
        ));
    }
    if pubkey.stdout != keypub.stdout {
        return Err(bad(
            format!("the key `{k}` does not belong to the certificate `{c}`"),
            "pass the private key the certificate was issued for",
        ));
    }
    let end = openssl(&["x509", "-in", &c, "-noout", "-enddate"])?;
    let not_after = String::from_utf8_lossy(&end.stdout)
        .trim()
        .trim_start_matches("notAfter=")
        .to_string();
    let expired = openssl(&["x509", "-in", &c, "-noout", "-checkend", "0"])?;
    if !expired.status.success() {
        return Err(bad(
            format!("the certificate `{c}` expired on {not_after}"),
            "renew it with its CA, or use `[tls] acme = true`",
        ));
    }
    // the chain: the file's first certificate, verified through the others it carries
    let pem = std::fs::read_to_string(cert).map_err(|e| {
        bad(
            format!("cannot read `--cert {c}`: {e}"),
            "pass a readable PEM file",
        )
    })?;
    let blocks: Vec<String> = pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| format!("{}\n", b.trim()))
        .collect();
    let dir = tempfile::tempdir()
        .map_err(|e| Error::failed(format!("could not make a temp folder: {e}")))?;
    let leaf = dir.path().join("leaf.pem");
    let rest = dir.path().join("chain.pem");
    std::fs::write(&leaf, blocks.first().cloned().unwrap_or_default())
        .and_then(|_| std::fs::write(&rest, blocks[1.min(blocks.len())..].concat()))
        .map_err(|e| Error::failed(format!("could not write a temp file: {e}")))?;
    let leaf_s = leaf.to_string_lossy().into_owned();
    let rest_s = rest.to_string_lossy().into_owned();
    let mut args = vec!["verify", "-purpose", "sslserver"];
    let ca_s = ca.map(|p| p.to_string_lossy().into_owned());
    if let Some(ca) = &ca_s {
        args.extend(["-CAfile", ca.as_str()]);
    }
    if blocks.len() > 1 {
        args.extend(["-untrusted", rest_s.as_str()]);
    }
    args.push(leaf_s.as_str());
    let verify = openssl(&args)?;
    if !verify.status.success() {
        let why = text(&verify);
        let hint = if why.contains("not yet valid") {
            "wait until it is valid, or use another certificate"
        } else {
            "put the intermediate certificates after the server's in the file (the full chain, as the CA sent it); \
             for a private CA, pass its root with `--ca FILE`"
        };
        return Err(bad(
            format!("the certificate chain in `{c}` does not verify: {why}"),
            hint,
        ));
    }
    let san = openssl(&["x509", "-in", &c, "-noout", "-ext", "subjectAltName"])?;
    let names: Vec<String> = String::from_utf8_lossy(&san.stdout)
        .split([',', '\n'])
        .filter_map(|w| w.trim().strip_prefix("DNS:"))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let missing: Vec<&String> = needed
        .iter()
        .filter(|n| !names.iter().any(|p| covers(p, n)))
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            format!(
                "the certificate `{c}` does not cover {} (it names: {})",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.is_empty() {
                    "no DNS names".to_string()
                } else {
                    names.join(", ")
                }
            ),
            "get one whose names (subjectAltName) include every host of the app and prev.HOST, or `*.HOST`",
        ));
    }
    let wildcard = names.iter().any(|n| n == &format!("*.{main}"));
    Ok(CustomCert {
        names,
        not_after,
        wildcard,
    })
}

/// `skiff tls add HOST --cert FILE --key FILE`: checked here first (nothing is uploaded
/// when a check fails), then installed on every node of the app (the key 0600 root,
/// `nginx -t` before the reload). The nodes it went to, and what was checked.
pub async fn add(
    state: &StateFile,
    host: &str,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<(Vec<String>, CustomCert)> {
    let cluster = state.load()?;
    let (app, nodes, config) = app_of(&cluster, state, host).await?;
    let main = crate::routing::main_host(&config.hostnames)
        .unwrap_or(host)
        .to_string();
    let needed = cert_names(&config.hostnames);
    let checked = check_custom(cert, key, ca, &needed, &main)?;
    let tls = config.tls.clone().unwrap_or(TlsConfig {
        acme: false,
        redirect: true,
        hsts: false,
    });
    let site = render_site(&app, &config.hostnames, &tls, checked.wildcard)?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            Error::usage(
                format!("cannot read `{}`: {e}", p.display()),
                "pass a readable PEM file",
            )
        })
    };
    let cert_text = read(cert)?;
    let key_text = read(key)?;
    let mut done = Vec::new();
    for node in &nodes {
        let session = Session::for_node(node, cluster.node(node)?, state).await?;
        let vars = [
            ("op", "install"),
            ("app", app.as_str()),
            ("cert", cert_text.as_str()),
            ("key", key_text.as_str()),
            ("site", site.as_str()),
            ("wildcard", if checked.wildcard { "1" } else { "0" }),
        ];
        let r = step(&session, &vars).await;
        let outcome = match r {
            Ok((0, _, _)) => Ok(()),
            Ok((status, _, err)) => Err(step_error(
                &session,
                "installing the certificate",
                status,
                &err,
                if done.is_empty() {
                    "the previous certificate serves on".to_string()
                } else {
                    format!(
                        "the previous certificate serves on here; {} have the new one already",
                        done.join(", ")
                    )
                },
            )),
            Err(e) => Err(e),
        };
        let _ = session.close().await;
        outcome?;
        done.push(node.clone());
    }
    Ok((done, checked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_hosts_and_prev() {
        let hosts = vec!["blog.test".to_string(), "www.blog.test".to_string()];
        assert_eq!(
            cert_names(&hosts),
            ["blog.test", "www.blog.test", "prev.blog.test"]
        );
        assert!(covers("*.blog.test", "prev.blog.test"));
        assert!(covers("*.blog.test", "3.blog.test"));
        assert!(!covers("*.blog.test", "blog.test"));
        assert!(!covers("*.blog.test", "a.b.blog.test"));
        assert!(covers("blog.test", "blog.test"));
    }

    #[test]
    fn site_has_https_server_and_redirect() {
        let hosts = vec!["blog.test".to_string()];
        let tls = TlsConfig {
            acme: true,
            redirect: true,
            hsts: false,
        };
        let site = render_site("blog", &hosts, &tls, false).unwrap();
        assert!(
            site.contains("server_name blog.test prev.blog.test;"),
            "{site}"
        );
        assert!(site.contains("ssl_certificate /etc/skiff/tls/blog/fullchain.pem;"));
        assert!(site.contains("return 301 https://$host$request_uri;"));
        assert!(site.contains("include /etc/nginx/snippets/skiff-acme.conf;"));
        assert!(!site.contains("Strict-Transport-Security"));
        let tls = TlsConfig {
            redirect: false,
            hsts: true,
            ..tls
        };
        let site = render_site("blog", &hosts, &tls, true).unwrap();
        assert!(!site.contains("return 301"));
        assert!(site.contains("Strict-Transport-Security"));
        assert!(site.contains("server_name blog.test prev.blog.test *.blog.test;"));
        let (conf, map) = render_relay("blog", &cert_names(&hosts), &["10.0.0.2".into()]).unwrap();
        assert!(conf.contains("upstream skiff_acme_blog {"));
        assert!(conf.contains("server 10.0.0.2:80 max_fails=0;"));
        assert_eq!(
            map,
            "blog.test skiff_acme_blog;\nprev.blog.test skiff_acme_blog;\n"
        );
    }

    #[test]
    fn acme_refuses_wildcard_hosts() {
        let text = "name = \"w\"\nruntime = \"static\"\nhostnames = [\"w.test\", \"*.w.test\"]\n[tls]\nacme = true\n";
        let e = AppConfig::parse(Path::new("app.toml"), text).unwrap_err();
        let shown = format!("{e} {}", e.hint().unwrap_or_default());
        assert!(shown.contains("wildcard"), "{shown}");
        assert!(shown.contains("skiff tls add"), "{shown}");
        let ok = text.replace(", \"*.w.test\"", "");
        let c = AppConfig::parse(Path::new("app.toml"), &ok).unwrap();
        let tls = c.tls.unwrap();
        assert!(tls.acme && tls.redirect && !tls.hsts);
    }

    #[test]
    fn info_lines_parse() {
        let out = "tls blog acme 1900000000 ok 2026-11-30T10:00:00Z certificate installed (acme)\n\
                   tls shop custom 0 failed 2026-11-30T10:00:00Z nginx -t refused it\nnoise\n";
        let v = parse_info(out);
        assert_eq!(v.len(), 2);
        assert!(v[0].ok && v[0].source == "acme" && v[0].not_after == 1_900_000_000);
        assert!(!v[1].ok && v[1].last.contains("nginx -t"));
        assert_eq!(v[0].days_left(1_900_000_000 - 86_400 * 3), 3);
    }

    #[test]
    fn account_inputs_are_checked() {
        assert!(check_email("ops@example.com").is_ok());
        assert!(check_email("ops@example.com\nserver=x").is_err());
        assert!(check_email("nobody").is_err());
        assert!(check_server("https://10.250.0.1:14000/dir").is_ok());
        assert!(check_server("http://x/dir").is_err());
        assert!(check_server("https://x/dir y").is_err());
    }

    /// The checks of `tls add` with real openssl: a chain missing its intermediate, a key
    /// of another certificate and names that leave a host out are refused, a complete
    /// chain passes.
    #[test]
    fn custom_certificates_are_checked_with_openssl() {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("SKIPPED: no openssl on this machine");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", text(&out));
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let req = |key: &str, out: &str, cn: &str| {
            let subj = format!("/CN={cn}");
            let mut a = vec!["req", "-keyout", key, "-out", out, "-subj", &subj];
            a.extend(ec);
            run(&a);
        };
        let sign = |csr: &str, ca: &str, ca_key: &str, out: &str, ext: &str| {
            let e = p(&format!("{out}.ext"));
            std::fs::write(&e, ext).unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                out,
                "-days",
                "2",
                "-extfile",
                &e,
            ]);
        };
        let (root, root_key) = (p("root.pem"), p("root.key"));
        let mut a = vec![
            "req", "-x509", "-days", "2", "-keyout", &root_key, "-out", &root,
        ];
        a.extend(["-subj", "/CN=root"]);
        a.extend(ec);
        run(&a);
        req(&p("int.key"), &p("int.csr"), "intermediate");
        sign(
            &p("int.csr"),
            &root,
            &root_key,
            &p("int.pem"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n",
        );
        req(&p("leaf.key"), &p("leaf.csr"), "blog.test");
        req(&p("other.key"), &p("other.csr"), "other");
        sign(
            &p("leaf.csr"),
            &p("int.pem"),
            &p("int.key"),
            &p("leaf.pem"),
            "subjectAltName=DNS:blog.test,DNS:prev.blog.test\n",
        );
        let leaf = std::fs::read_to_string(p("leaf.pem")).unwrap();
        let int = std::fs::read_to_string(p("int.pem")).unwrap();
        std::fs::write(p("full.pem"), format!("{leaf}{int}")).unwrap();
        let needed = cert_names(&["blog.test".to_string()]);
        let check = |cert: &str, key: &str, names: &[String]| {
            check_custom(
                Path::new(cert),
                Path::new(key),
                Some(Path::new(&root)),
                names,
                "blog.test",
            )
        };
        let ok = check(&p("full.pem"), &p("leaf.key"), &needed).unwrap();
        assert_eq!(ok.names, ["blog.test", "prev.blog.test"]);
        assert!(!ok.wildcard);
        let e = check(&p("leaf.pem"), &p("leaf.key"), &needed).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let e = check(&p("full.pem"), &p("other.key"), &needed).unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        let more = cert_names(&["blog.test".to_string(), "www.blog.test".to_string()]);
        let e = check(&p("full.pem"), &p("leaf.key"), &more).unwrap_err();
        assert!(
            e.to_string().contains("does not cover `www.blog.test`"),
            "{e}"
        );
    }

    /// The TLS script reads every name of its prelude and defines none of them.
    #[test]
    fn tls_sh_uses_its_contract() {
        for (name, _) in contract::tls_prelude() {
            assert!(
                SCRIPT.contains(&format!("\"${name}")),
                "tls.sh never uses ${name}"
            );
            assert!(
                !SCRIPT
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name}="))),
                "tls.sh defines {name}"
            );
        }
    }

    /// skiff-node's TLS paths and exit codes are the contract's.
    #[test]
    fn skiff_node_agrees_with_the_contract() {
        let node = crate::assets::server_file("bin/skiff-node").text();
        assert!(node.contains(&format!("TLS={}\n", contract::TLS_DIR)));
        assert!(node.contains(&format!("ACME_CA={}\n", contract::ACME_CA)));
        assert!(node.contains(&format!("ACME={}\n", contract::ACME_WEBROOT)));
        assert!(node.contains(&format!(
            "die \"nginx rejected the new certificate or HTTPS server of $_app; the previous one serves on\" {}",
            contract::skiff_node_exit::CONFIG_TEST
        )));
        assert!(node.contains(&format!(
            "{} a\n# certificate could not be ordered",
            contract::skiff_node_exit::ACME
        )));
        assert!(node.contains("_site=$SITES/nginx/$_app.tls.conf"));
        assert_eq!(
            contract::tls_site("blog"),
            "/etc/skiff/sites/nginx/blog.tls.conf"
        );
    }
}
