//! A real ACME server for the TLS tests: Debian's `pebble` (host package `pebble`) and
//! `pebble-challtestsrv` as its DNS, which answers the test host names with the test
//! nodes' addresses. One pair per test, on free ports, stopped (by PID) on drop.
//!
//! Pebble's ACME endpoint listens on the host's address on the nodes' network
//! (10.250.0.1, the bridge the local provider makes), with a certificate made here by a
//! throwaway CA: the nodes' certbot trusts that CA through the account's `--ca-bundle`.
//! Its management port (the issuing root at `/roots/0`) and the DNS server listen on
//! loopback only. Validation requests go to port 80 of the nodes.
//!
//! ```ignore
//! let pebble = Pebble::start(&env);       // after a node was launched (the bridge exists)
//! pebble.add_a("app.test", &node.address);
//! env.skiff().args(["tls", "account", "--server", &pebble.directory, "--ca-bundle"])
//!     .arg(&pebble.listener_ca).assert().success();
//! ```

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestEnv;

/// The host's address on the test nodes' network.
pub const HOST_IP: &str = "10.250.0.1";

/// Whether pebble is installed here; says why not (a failure under `CI=true`).
pub fn pebble_available() -> bool {
    let missing: Vec<&str> = ["pebble", "pebble-challtestsrv", "openssl", "curl"]
        .into_iter()
        .filter(|b| which(b).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "the TLS tests need {} on this machine (`apt-get install pebble openssl curl`, as .ci/run does)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|f| f.is_file())
    })
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0 ({e}); is a test node up?"))
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `openssl ARGS` (no shell) and asserts it worked.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA (EC P-256, 3 days): its key and certificate into these files.
pub fn make_ca(key: &str, cert: &str, cn: &str) {
    let subject = format!("/CN={cn}");
    let mut args = vec![
        "req", "-x509", "-days", "3", "-out", cert, "-subj", &subject,
    ];
    args.extend(EC_KEY);
    args.extend(["-keyout", key]);
    openssl(&args);
}

/// A new EC P-256 key and a certificate request for `cn`.
pub fn make_csr(key: &str, csr: &str, cn: &str) {
    let subject = format!("/CN={cn}");
    let mut args = vec!["req", "-out", csr, "-subj", &subject];
    args.extend(EC_KEY);
    args.extend(["-keyout", key]);
    openssl(&args);
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A running pebble and its DNS.
pub struct Pebble {
    dir: PathBuf,
    children: Vec<Child>,
    /// The ACME directory URL, reachable from the nodes.
    pub directory: String,
    /// The CA of pebble's own HTTPS listener (what certbot must trust).
    pub listener_ca: PathBuf,
    /// Pebble's issuing root (`/roots/0`): what a client of the apps trusts.
    pub root: PathBuf,
    dns_management: String,
}

impl Pebble {
    /// Starts pebble and pebble-challtestsrv in a folder of `env`, and waits until both
    /// answer (at most 15 s).
    pub fn start(env: &TestEnv) -> Pebble {
        let dir = env.root().join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        // the listener's certificate, for 10.250.0.1 and loopback
        make_ca(&p("ca.key"), &p("ca.pem"), "skiff test pebble listener CA");
        make_csr(&p("key.pem"), &p("req.csr"), "pebble");
        std::fs::write(
            dir.join("ext.cnf"),
            format!("subjectAltName = IP:{HOST_IP}, IP:127.0.0.1\n"),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("req.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("cert.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ]);
        let acme_port = free_port(HOST_IP);
        let mgmt_port = free_port("127.0.0.1");
        let dns_port = free_port("127.0.0.1");
        let dns_mgmt_port = free_port("127.0.0.1");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("{HOST_IP}:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
                "certificate": p("cert.pem"),
                "privateKey": p("key.pem"),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt_port}")])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv starts");
        let mut pebble = Pebble {
            dir: dir.clone(),
            children: vec![dns],
            directory: format!("https://{HOST_IP}:{acme_port}/dir"),
            listener_ca: dir.join("ca.pem"),
            root: dir.join("root.pem"),
            dns_management: format!("http://127.0.0.1:{dns_mgmt_port}"),
        };
        let server = Command::new("pebble")
            .args(["-config", &p("pebble.json")])
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble starts");
        pebble.children.push(server);
        // both up: the issuing root downloads, the DNS management answers
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let root = Command::new("curl")
                .args([
                    "-sf",
                    "-m",
                    "2",
                    "--cacert",
                    &p("ca.pem"),
                    "-o",
                    &p("root.pem"),
                ])
                .arg(format!("https://127.0.0.1:{mgmt_port}/roots/0"))
                .status()
                .unwrap();
            let dns = Command::new("curl")
                .args(["-sf", "-m", "2", "-o", "/dev/null", "-X", "POST", "-d"])
                .arg(r#"{"host":"skiff-probe.test","addresses":["10.250.0.254"]}"#)
                .arg(format!("http://127.0.0.1:{dns_mgmt_port}/add-a"))
                .status()
                .unwrap();
            if root.success() && dns.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start within 15 s: {}",
                pebble.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        pebble
    }

    /// DNS: `host` is `address` (an A record), for pebble's validation requests.
    pub fn add_a(&self, host: &str, address: &str) {
        let body = serde_json::json!({ "host": host, "addresses": [address] }).to_string();
        let ok = Command::new("curl")
            .args([
                "-sf",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-X",
                "POST",
                "-d",
                &body,
            ])
            .arg(format!("{}/add-a", self.dns_management))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pebble-challtestsrv refused the A record of {host}");
    }

    /// What pebble and its DNS logged (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["pebble.log", "pebble.err", "challtestsrv.err"] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- {f}\n{}\n",
                lines[lines.len().saturating_sub(30)..].join("\n")
            ));
        }
        out
    }

    /// The folder pebble's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill(); // by its PID: only what this test started
            let _ = c.wait();
        }
    }
}

/// `curl` over HTTPS to `host` at the node `address` (SNI and Host: `host`), trusting only
/// `root`: (status, body). Status 0: no answer (a TLS failure among them).
pub fn https_get(address: &str, host: &str, path: &str, root: &Path) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:443:{address}"))
        .arg(format!("https://{host}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The headers (lower case) of `GET https://HOST/` at the node `address`, trusting `root`.
pub fn https_headers(address: &str, host: &str, root: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-m", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:443:{address}"))
        .arg(format!("https://{host}/"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

/// The serial number of the certificate the node at `address` serves for `host`.
pub fn served_serial(address: &str, host: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{address}:443")])
        .args(["-servername", host])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let serial = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&serial.stdout).trim().to_string()
}

/// A bounded HTTPS request loop (curl, one fresh connection each): `threads` threads, at
/// most `max` requests each and `max_time` in all, until [`HttpsLoop::stop`].
pub struct HttpsLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<(u16, String)>>>,
}

impl HttpsLoop {
    /// Starts the loop against `host` at `address`, trusting `root`.
    pub fn start(address: &str, host: &str, root: &Path, threads: usize) -> HttpsLoop {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let handles = (0..threads)
            .map(|_| {
                let (a, h, r, stop) = (
                    address.to_string(),
                    host.to_string(),
                    root.to_path_buf(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while seen.len() < 2000
                        && started.elapsed() < Duration::from_secs(120)
                        && !stop.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        seen.push(https_get(&a, &h, "/", &r));
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    seen
                })
            })
            .collect();
        HttpsLoop {
            stop,
            threads: handles,
        }
    }

    /// Stops it; every answer (status, body).
    pub fn stop(self) -> Vec<(u16, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("a loop thread panicked"))
            .collect()
    }
}
