//! `skiff logs HOST`: the app's access and error logs (NGINX's `skiff` access log, whose
//! lines name the app; NGINX's and Apache's error logs, whose request lines name the
//! host), its workers' and cron jobs' journal and skiff's own deploy log (the history
//! file `skiff history` reads), from every node of the app, merged by
//! time. With `follow`, the node-side readers are tied to the SSH channel: they stop
//! when skiff closes its input (Ctrl-C, SIGTERM) or the connection drops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cluster::StateFile;
use crate::deploy::{app_for_host, contract, remote};
use crate::error::{Error, Result};
use crate::transport::Session;

/// Which log a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// NGINX's access log, the app's requests.
    Access,
    /// NGINX's and Apache's error logs, the lines of the app's requests.
    Error,
    /// The workers' journal.
    Worker,
    /// The cron jobs' journal.
    Cron,
    /// skiff's deploy log on the node (`update`, `rollback`, ... with their results).
    Deploy,
}

/// What `skiff logs` reads.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    /// The app's main host.
    pub host: String,
    /// Only this node (default: every node of the app).
    pub node: Option<String>,
    /// Which logs (empty: all).
    pub kinds: Vec<LogKind>,
    /// Only lines newer than this.
    pub since: Option<Duration>,
    /// Lines per log and node without `since` (the last ones).
    pub lines: u32,
    /// Keep reading until interrupted.
    pub follow: bool,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// The node it comes from.
    pub node: String,
    /// When (seconds since the epoch).
    #[serde(skip)]
    pub epoch: f64,
    /// When, RFC 3339 (UTC, milliseconds).
    pub time: String,
    /// Which log.
    pub kind: LogKind,
    /// The line as the log has it (journal lines: time, unit and message).
    pub line: String,
}

/// The node side: prints `tz +HHMM`, then `KIND<TAB>LINE` lines (`journal` for both
/// workers and cron; JSON from journalctl). Arguments: app, main host, the app's host
/// names (space separated), kinds, since (epoch seconds or empty), lines, follow (0/1),
/// the access log, NGINX's and Apache's error logs, the app's deploy log.
const SCRIPT: &str = r#"set -u
app=$1 main=$2 hosts=" $3 " kinds=$4 since=$5 lines=$6 follow=$7 access=$8 nerr=$9 aerr=${10} hist=${11}
printf 'tz %s\n' "$(date +%z)"
# mawk (Debian's awk) reads a pipe in blocks unless told to read it line by line
mawk=0
if awk -W version 2>/dev/null | grep -q mawk; then mawk=1; fi
lawk() { if [ "$mawk" = 1 ]; then awk -W interactive "$@"; else awk "$@"; fi; }
access_f() {
  lawk -v app="$app" -v since="$since" '$2 == app && (since == "" || $1 >= since) { print "access\t" $0; fflush() }'
}
error_f() {
  lawk -v hosts="$hosts" -v main="$main" '{
    h = ""
    if (match($0, /host: "[^"]*"/)) h = substr($0, RSTART + 7, RLENGTH - 8)
    else if (match($0, /\[host [^]]*\]/)) h = substr($0, RSTART + 6, RLENGTH - 7)
    sub(/:[0-9]+$/, "", h)
    if (h == "") next
    if (index(hosts, " " h " ") == 0 && !(length(h) > length(main) + 1 && substr(h, length(h) - length(main)) == "." main)) next
    print "error\t" $0; fflush()
  }'
}
deploy_f() { lawk '{ print "deploy\t" $0; fflush() }'; }
journal() {
  [ -d /run/systemd/system ] || return 0
  set -- -u "skiff_${app}_*" -o json --output-fields=_SYSTEMD_UNIT,UNIT,MESSAGE --no-pager -q
  if [ -n "$since" ]; then set -- "$@" --since "@${since%.*}"; else set -- "$@" -n "$lines"; fi
  if [ "$follow" = 1 ]; then set -- "$@" -f; fi
  journalctl "$@" 2>/dev/null | lawk '{ print "journal\t" $0; fflush() }'
}
last() { if [ -n "$since" ]; then cat; else tail -n "$lines"; fi; }
if [ "$follow" = 1 ]; then
  trap 'exit 0' TERM
  n=$lines
  [ -n "$since" ] && n=+1
  for k in $kinds; do
    case $k in
      access) tail -q -n "$n" -F "$access" 2>/dev/null | access_f & ;;
      error) tail -q -n "$n" -F "$nerr" "$aerr" 2>/dev/null | error_f & ;;
      journal) journal & ;;
      deploy) tail -q -n "$n" -F "$hist" 2>/dev/null | deploy_f & ;;
    esac
  done
  # until skiff closes its end (Ctrl-C, exit) or the connection drops: then every
  # process of this SSH session goes (the readers, their filters, this shell)
  cat >/dev/null
  read -r _ _ _ _ _ sid _ </proc/$$/stat
  pkill -TERM -s "$sid"
  exit 0
fi
for k in $kinds; do
  case $k in
    access) [ ! -f "$access" ] || access_f <"$access" | last ;;
    error)
      for f in "$nerr" "$aerr"; do [ ! -f "$f" ] || error_f <"$f" | last; done
      ;;
    journal) journal ;;
    deploy) [ ! -f "$hist" ] || deploy_f <"$hist" | last ;;
  esac
done
"#;

/// Reads the logs of `req.host`: every line goes to `on_line`, merged by time (with
/// `follow`, in the order they arrive, until Ctrl-C or SIGTERM).
pub async fn logs(
    state: &StateFile,
    req: &LogsRequest,
    on_line: &mut (dyn FnMut(LogLine) + Send),
) -> Result<()> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, &req.host)?;
    let nodes = match &req.node {
        Some(n) if nodes.contains(n) => vec![n.clone()],
        Some(n) => {
            return Err(Error::usage(
                format!("`{}` is not deployed to node `{n}`", req.host),
                format!("its nodes: {}", nodes.join(", ")),
            ));
        }
        None => nodes,
    };
    let mut sessions = Vec::new();
    for node in &nodes {
        match Session::for_node(node, cluster.node(node)?, state).await {
            Ok(s) => sessions.push(s),
            Err(e) => {
                close_all(sessions).await;
                return Err(e);
            }
        }
    }
    let result = read(&sessions, req, &app, on_line).await;
    close_all(sessions).await;
    result
}

async fn close_all(sessions: Vec<Session>) {
    for s in sessions {
        let _ = s.close().await;
    }
}

/// The app's host names (error lines name the host they are for), from the node state.
async fn hostnames(session: &Session, app: &str, main: &str) -> Vec<String> {
    let mut hosts = remote::peek(session, None)
        .await
        .ok()
        .and_then(|p| p.state.apps.get(app).map(|a| a.hostnames.clone()))
        .unwrap_or_default();
    if !hosts.iter().any(|h| h == main) {
        hosts.push(main.to_string());
    }
    hosts
}

async fn read(
    sessions: &[Session],
    req: &LogsRequest,
    app: &str,
    on_line: &mut (dyn FnMut(LogLine) + Send),
) -> Result<()> {
    let hostnames = hostnames(&sessions[0], app, &req.host).await;
    let kinds: Vec<LogKind> = if req.kinds.is_empty() {
        vec![
            LogKind::Access,
            LogKind::Error,
            LogKind::Worker,
            LogKind::Cron,
            LogKind::Deploy,
        ]
    } else {
        req.kinds.clone()
    };
    let mut node_kinds: Vec<&str> = Vec::new();
    for k in &kinds {
        let word = match k {
            LogKind::Access => "access",
            LogKind::Error => "error",
            LogKind::Worker | LogKind::Cron => "journal",
            LogKind::Deploy => "deploy",
        };
        if !node_kinds.contains(&word) {
            node_kinds.push(word);
        }
    }
    let since = req.since.map(|d| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:.3}", now.saturating_sub(d).as_secs_f64())
    });
    let args = NodeArgs {
        app: app.to_string(),
        main: req.host.clone(),
        hosts: hostnames.join(" "),
        kinds: node_kinds.join(" "),
        since: since.clone().unwrap_or_default(),
        lines: req.lines.to_string(),
        follow: if req.follow { "1" } else { "0" }.into(),
        history: format!("{}/{app}.jsonl", contract::HISTORY_DIR),
    };
    let since_epoch: Option<f64> = since.and_then(|s| s.parse().ok());

    let keep =
        |line: &LogLine| kinds.contains(&line.kind) && since_epoch.is_none_or(|s| line.epoch >= s);
    let nodes = Nodes {
        sessions,
        argv: args.argv(),
        app,
        keep: &keep,
    };
    if req.follow {
        follow(&nodes, on_line).await
    } else {
        once(&nodes, on_line).await
    }
}

/// The nodes to read, the node-side argv, and which lines to keep.
struct Nodes<'a> {
    sessions: &'a [Session],
    argv: Vec<&'a str>,
    app: &'a str,
    keep: &'a (dyn Fn(&LogLine) -> bool + Sync),
}

struct NodeArgs {
    app: String,
    main: String,
    hosts: String,
    kinds: String,
    since: String,
    lines: String,
    follow: String,
    history: String,
}

impl NodeArgs {
    fn argv(&self) -> Vec<&str> {
        vec![
            "sh",
            "-c",
            SCRIPT,
            "skiff-logs",
            &self.app,
            &self.main,
            &self.hosts,
            &self.kinds,
            &self.since,
            &self.lines,
            &self.follow,
            contract::ACCESS_LOG,
            contract::NGINX_ERROR_LOG,
            contract::APACHE_ERROR_LOG,
            &self.history,
        ]
    }
}

async fn once(nodes: &Nodes<'_>, on_line: &mut (dyn FnMut(LogLine) + Send)) -> Result<()> {
    let (sessions, app, keep) = (nodes.sessions, nodes.app, nodes.keep);
    let outs = futures_util::future::join_all(sessions.iter().map(|s| s.run(&nodes.argv))).await;
    let mut all = Vec::new();
    for (session, out) in sessions.iter().zip(outs) {
        let out = out?;
        if !out.success() {
            return Err(Error::Remote {
                node: session.node().to_string(),
                command: "reading the logs".into(),
                status: out.status,
                output: out.tail(10),
                hint: None,
            });
        }
        let mut parser = Parser::new(session.node(), app);
        for raw in out.stdout_text().lines() {
            if let Some(line) = parser.parse(raw).filter(|l| keep(l)) {
                all.push(line);
            }
        }
    }
    all.sort_by(|a, b| a.epoch.total_cmp(&b.epoch));
    for line in all {
        on_line(line);
    }
    Ok(())
}

async fn follow(nodes: &Nodes<'_>, on_line: &mut (dyn FnMut(LogLine) + Send)) -> Result<()> {
    let (sessions, app, keep, argv) = (nodes.sessions, nodes.app, nodes.keep, &nodes.argv);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<LogLine>>();
    let mut stops = Vec::new();
    let mut readers = Vec::new();
    for session in sessions {
        // stdin: nothing is ever written; dropping `stop` ends it, which ends the node side
        let (stop, input) = tokio::io::duplex(64);
        stops.push(stop);
        let (mut sink, output) = tokio::io::duplex(64 * 1024);
        let line_tx = tx.clone();
        let node = session.node().to_string();
        let app = app.to_string();
        readers.push(Box::pin(async move {
            let mut parser = Parser::new(&node, &app);
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(raw)) = lines.next_line().await {
                if let Some(line) = parser.parse(&raw) {
                    let _ = line_tx.send(Ok(line));
                }
            }
        }) as Reader<'_>);
        let tx = tx.clone();
        let argv = argv.clone();
        readers.push(Box::pin(async move {
            let res = session.run_streaming(&argv, input, &mut sink).await;
            drop(sink);
            if let Err(e) = res {
                let _ = tx.send(Err(e));
            }
        }) as Reader<'_>);
    }
    drop(tx);
    let all = futures_util::future::join_all(readers);
    tokio::pin!(all);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::failed(format!("could not watch for SIGTERM: {e}")))?;
    let mut done = false;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Ok(line)) => if keep(&line) { on_line(line) },
                Some(Err(e)) => return Err(e),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = &mut all, if !done => done = true,
        }
    }
    // the node sides end when their input does (every process of their SSH session
    // goes); wait for that, a little
    stops.clear();
    if !done {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut all).await;
    }
    Ok(())
}

type Reader<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Turns the node side's lines into [`LogLine`]s: `tz +HHMM` (the node's offset, for the
/// error logs' local times), `access`, `error` and `journal` lines.
pub(crate) struct Parser {
    node: String,
    app: String,
    /// The node's offset from UTC, seconds east.
    tz: i64,
}

impl Parser {
    pub(crate) fn new(node: &str, app: &str) -> Parser {
        Parser {
            node: node.to_string(),
            app: app.to_string(),
            tz: 0,
        }
    }

    pub(crate) fn parse(&mut self, raw: &str) -> Option<LogLine> {
        if let Some(tz) = raw.strip_prefix("tz ") {
            self.tz = parse_offset(tz.trim()).unwrap_or(0);
            return None;
        }
        let (kind, text) = raw.split_once('\t')?;
        let (kind, epoch, text) = match kind {
            "access" => {
                let mut words = text.splitn(3, ' ');
                let msec: f64 = words.next()?.parse().ok()?;
                let _app = words.next()?;
                (LogKind::Access, msec, words.next()?.to_string())
            }
            "error" => {
                let local = if text.starts_with('[') {
                    apache_time(text)?
                } else {
                    nginx_time(text)?
                };
                (LogKind::Error, local - self.tz as f64, text.to_string())
            }
            "journal" => {
                let v: serde_json::Value = serde_json::from_str(text).ok()?;
                let micros: f64 = v.get("__REALTIME_TIMESTAMP")?.as_str()?.parse().ok()?;
                let epoch = micros / 1e6;
                let unit = ["_SYSTEMD_UNIT", "UNIT"]
                    .iter()
                    .filter_map(|k| v.get(*k).and_then(|u| u.as_str()))
                    .find(|u| u.starts_with("skiff_"))
                    .unwrap_or("?")
                    .to_string();
                let message = match v.get("MESSAGE") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Array(bytes)) => {
                        let bytes: Vec<u8> = bytes
                            .iter()
                            .filter_map(|b| b.as_u64().map(|b| b as u8))
                            .collect();
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                    _ => String::new(),
                };
                let kind = if is_cron_unit(&unit, &self.app) {
                    LogKind::Cron
                } else {
                    LogKind::Worker
                };
                (kind, epoch, format!("{} {unit}: {message}", rfc3339(epoch)))
            }
            "deploy" => {
                let e: crate::deploy::history::Entry = serde_json::from_str(text).ok()?;
                let epoch = humantime::parse_rfc3339_weak(&e.time)
                    .ok()?
                    .duration_since(UNIX_EPOCH)
                    .ok()?
                    .as_secs_f64();
                (LogKind::Deploy, epoch, deploy_line(&e))
            }
            _ => return None,
        };
        Some(LogLine {
            node: self.node.clone(),
            epoch,
            time: rfc3339(epoch),
            kind,
            line: text,
        })
    }
}

/// `skiff_APP_N_cronI.service` (and its timer): a cron job's unit.
fn is_cron_unit(unit: &str, app: &str) -> bool {
    let Some(rest) = unit.strip_prefix(&format!("skiff_{app}_")) else {
        return false;
    };
    let Some((n, rest)) = rest.split_once('_') else {
        return false;
    };
    let name = rest.split('.').next().unwrap_or("");
    n.chars().all(|c| c.is_ascii_digit())
        && name
            .strip_prefix("cron")
            .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()))
}

/// A deploy log entry as one line: `TIME VERB vN RESULT by WHO in S s (commit C) [: REASON]`.
fn deploy_line(e: &crate::deploy::history::Entry) -> String {
    let mut line = format!("{} {}", e.time, e.verb);
    if let Some(v) = e.version {
        line.push_str(&format!(" v{v}"));
    }
    line.push_str(&format!(" {} by {} in {:.1} s", e.result, e.who, e.seconds));
    if let Some(c) = &e.commit {
        let short: String = c.chars().take(12).collect();
        let dirty = if e.dirty == Some(true) { "+dirty" } else { "" };
        line.push_str(&format!(" (commit {short}{dirty})"));
    }
    if let Some(r) = &e.reason {
        line.push_str(&format!(": {r}"));
    }
    line
}

/// The last instant RFC 3339 can write (9999-12-31T23:59:59.999Z), in epoch seconds.
const LAST_RFC3339: f64 = 253_402_300_799.999;

/// `epoch` as RFC 3339 (UTC, milliseconds), clamped to 1970..=9999: a node's line may
/// carry any number (`access\t1e300 ...`), and a later year has no RFC 3339 form.
fn rfc3339(epoch: f64) -> String {
    let millis = (epoch.clamp(0.0, LAST_RFC3339) * 1000.0).round() as u64;
    let t = UNIX_EPOCH + Duration::from_millis(millis);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `+0100` / `-0530` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch of a local time `HH:MM:SS[.frac]` on a civil date, as if UTC;
/// `None` for a field out of its range (year 0..=9999), so no arithmetic overflows.
fn local_epoch(y: i64, mo: i64, d: i64, clock: &str) -> Option<f64> {
    let mut parts = clock.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    let in_range = (0..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0.0..61.0).contains(&s);
    if !in_range {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) as f64 + s)
}

/// NGINX: `2026/11/30 13:57:46 [error] ...` (local time).
fn nginx_time(line: &str) -> Option<f64> {
    let date = line.get(..10)?;
    let clock = line.get(11..19)?;
    let mut ymd = date.split('/');
    let y = ymd.next()?.parse().ok()?;
    let m = ymd.next()?.parse().ok()?;
    let d = ymd.next()?.parse().ok()?;
    local_epoch(y, m, d, clock)
}

/// Apache: `[Mon Nov 30 13:57:46.123456 2026] ...` (local time).
fn apache_time(line: &str) -> Option<f64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    let w: Vec<&str> = inner.split_whitespace().collect();
    let [_, month, day, clock, year] = w.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    local_epoch(year.parse().ok()?, m, day.parse().ok()?, clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_every_kind_are_parsed() {
        let mut p = Parser::new("web1", "blog");
        assert!(p.parse("tz +0100").is_none());
        let a = p
            .parse(
                "access\t1700000000.123 blog blog.test 10.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 5",
            )
            .unwrap();
        assert_eq!(a.kind, LogKind::Access);
        assert_eq!(a.epoch, 1700000000.123);
        assert!(a.line.starts_with("blog.test 10.0.0.1"), "{}", a.line);
        assert_eq!(a.time, "2023-11-14T22:13:20.123Z");
        let e = p
            .parse("error\t2023/11/14 23:13:20 [error] 1#1: *1 x, host: \"blog.test\"")
            .unwrap();
        assert_eq!((e.kind, e.epoch), (LogKind::Error, 1700000000.0));
        let e = p
            .parse("error\t[Tue Nov 14 23:13:20.500000 2023] [wsgi:error] [pid 1:tid 2] [host blog.test] boom")
            .unwrap();
        assert_eq!(e.epoch, 1700000000.5);
        let j = p
            .parse(r#"journal	{"__REALTIME_TIMESTAMP":"1700000000250000","_SYSTEMD_UNIT":"skiff_blog_3_cron0.service","MESSAGE":"done"}"#)
            .unwrap();
        assert_eq!((j.kind, j.epoch), (LogKind::Cron, 1700000000.25));
        assert!(
            j.line.ends_with("skiff_blog_3_cron0.service: done"),
            "{}",
            j.line
        );
        let j = p
            .parse(r#"journal	{"__REALTIME_TIMESTAMP":"1","_SYSTEMD_UNIT":"init.scope","UNIT":"skiff_blog_3_ticker@1.service","MESSAGE":[104,105]}"#)
            .unwrap();
        assert_eq!(j.kind, LogKind::Worker);
        assert!(
            j.line.ends_with("skiff_blog_3_ticker@1.service: hi"),
            "{}",
            j.line
        );
        assert!(p.parse("garbage").is_none());
        let d = p
            .parse(r#"deploy	{"time":"2023-11-14T22:13:20Z","who":"ann@laptop pid=7","verb":"update","version":3,"commit":"0123456789abcdef","dirty":true,"seconds":1.25,"result":"failed","reason":"health check"}"#)
            .unwrap();
        assert_eq!((d.kind, d.epoch), (LogKind::Deploy, 1700000000.0));
        assert_eq!(
            d.line,
            "2023-11-14T22:13:20Z update v3 failed by ann@laptop pid=7 in 1.2 s (commit 0123456789ab+dirty): health check"
        );
    }

    /// Found by the `node_output` fuzz target: times no calendar can write or hold.
    #[test]
    fn times_out_of_range_do_not_panic() {
        let mut p = Parser::new("web1", "blog");
        let far = p
            .parse("access\t17000000000000123 blog blog.test x")
            .unwrap();
        assert_eq!(far.time, "9999-12-31T23:59:59.999Z");
        let inf = p.parse("access\tinf blog blog.test x").unwrap();
        assert_eq!(inf.time, "9999-12-31T23:59:59.999Z");
        let nan = p.parse("access\tNaN blog blog.test x").unwrap();
        assert_eq!(nan.time, "1970-01-01T00:00:00.000Z");
        for line in [
            "error\t[Tue Nov 14 23:13:20 9223372036854775807] boom",
            "error\t[Tue Nov 14 9223372036854775807:13:20 2023] boom",
            "error\t[Tue Nov 14 23:9223372036854775807:20 2023] boom",
            "error\t[Tue Nov 9223372036854775807 23:13:20 2023] boom",
            "error\t[Tue Nov 14 23:13:1e300 2023] boom",
            "error\t-999/11/14 23:13:20 [error] x",
        ] {
            assert!(p.parse(line).is_none(), "{line}");
        }
    }

    #[test]
    fn cron_units_are_told_from_workers() {
        assert!(is_cron_unit("skiff_blog_3_cron0.service", "blog"));
        assert!(is_cron_unit("skiff_blog_12_cron10.timer", "blog"));
        assert!(!is_cron_unit("skiff_blog_3_cronjob@1.service", "blog"));
        assert!(!is_cron_unit("skiff_blog_3_worker@1.service", "blog"));
        assert!(!is_cron_unit("skiff_blogx_3_cron0.service", "blog"));
        assert_eq!(parse_offset("-0530"), Some(-19800));
    }

    #[test]
    fn the_node_script_is_valid_sh() {
        let sh = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .status();
        assert!(sh.unwrap().success());
    }
}
