//! The slot pool follows the apps: a deploy that finds no free slot grows the pool by a
//! batch (one Apache graceful reload, under the node lock), and a graceful reload must
//! not fail requests of the other apps on the node.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use crate::support::traffic::{Report, Spec, Traffic};
use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, edit, get};

/// A copy of fixture `fixture` as app `name` at host `NAME.test`, answering `message=NAME`.
fn app_copy(env: &TestEnv, fixture: &str, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apps")
        .join(fixture);
    let dest = env.root().join(format!("app-{name}"));
    let status = StdCommand::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    let toml = dest.join("app.toml");
    let (old_name, old_host, code) = match fixture {
        "python" => ("pyapp", "pyapp.test", "app.py"),
        "ruby" => ("rbapp", "rbapp.test", "config.ru"),
        other => panic!("no copy rule for fixture {other}"),
    };
    edit(&toml, &format!("\"{old_name}\""), &format!("\"{name}\""));
    edit(&toml, old_host, &format!("{name}.test"));
    edit(
        &dest.join(code),
        "MESSAGE = \"hello\"",
        &format!("MESSAGE = \"{name}\""),
    );
    dest
}

/// A loop against `host` light enough to run three at once on a shared 2-core machine:
/// 2 threads, a request every 20 ms each (about 100 requests/s).
fn light_traffic(node: &TestNode, host: &str) -> Traffic {
    let mut spec = Spec::new(&node.address, host);
    spec.threads = 2;
    spec.interval = Duration::from_millis(20);
    Traffic::start(spec)
}

/// Failed requests and the longest one, in one line.
fn tally(host: &str, report: &Report) -> (usize, f64) {
    let failures = report.failures();
    let longest = report
        .longest()
        .map_or(0.0, |s| s.took.as_secs_f64() * 1000.0);
    eprintln!(
        "{host}: {} of {} requests failed, longest {longest:.0} ms; {}",
        failures.len(),
        report.samples.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(" | ")
    );
    (failures.len(), longest)
}

/// Two Python apps and one Ruby app on a set-up node, all answering.
fn three_apps<'a>(env: &'a TestEnv) -> (TestNode<'a>, Vec<String>) {
    let node = TestNode::launch_set_up(env);
    let mut hosts = Vec::new();
    for (fixture, name) in [("python", "pya"), ("python", "pyb"), ("ruby", "rba")] {
        let dir = app_copy(env, fixture, name);
        deploy(env, &node, &dir);
        let host = format!("{name}.test");
        let (code, body) = get(&node.address, &host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains(&format!("message={name}")), "{host}: {body}");
        hosts.push(host);
    }
    (node, hosts)
}

/// Runs `action` `times` times, 2 s apart, under traffic to every host; per host: failed
/// requests and the longest request.
fn under_traffic(
    node: &TestNode,
    hosts: &[String],
    times: usize,
    action: &dyn Fn(usize),
) -> Vec<(usize, f64)> {
    let loops: Vec<Traffic> = hosts.iter().map(|h| light_traffic(node, h)).collect();
    std::thread::sleep(Duration::from_millis(700));
    for i in 0..times {
        let t = Instant::now();
        action(i);
        eprintln!("action {i}: {:.2} s", t.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_secs(2));
    }
    loops
        .into_iter()
        .zip(hosts)
        .map(|(l, h)| tally(h, &l.stop()))
        .collect()
}

/// Measurement (not a check; run with `--ignored --nocapture`): what an Apache graceful
/// reload costs the other apps on a node, as installed and with candidate settings
/// applied on top (each variant keeps the ones before it).
#[test]
#[ignore = "a measurement: prints numbers for docs/node-layout.md"]
fn measure_graceful_reload() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let (node, hosts) = three_apps(&env);
    let reload = |_| {
        node.exec("/usr/local/share/skiff/bin/skiff-node reload apache2");
    };
    let spec = std::env::var("SKIFF_MEASURE_VARIANTS").ok();
    let variants: Vec<(&str, String)> = match &spec {
        Some(v) => v
            .split(";;")
            .map(|x| x.split_once("::").expect("LABEL::COMMAND"))
            .map(|(l, c)| (l, c.to_string()))
            .collect(),
        None => vec![("as installed", String::new())],
    };
    for (label, setup) in &variants {
        if !setup.is_empty() {
            node.exec(setup);
        }
        node.exec(": >/var/log/apache2/error.log; : >/var/log/nginx/error.log");
        let got = under_traffic(&node, &hosts, 5, &reload);
        eprintln!("graceful x5, {label}: {got:?}");
        eprintln!(
            "{}",
            node.exec(
                "grep -h -e wsgi: -e 'upstream' -e 'E ' /var/log/apache2/error.log /var/log/nginx/error.log | tail -n 8"
            )
        );
    }
}
