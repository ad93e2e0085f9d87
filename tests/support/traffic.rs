//! A bounded HTTP request loop against a node, for zero-downtime tests and the update
//! benchmark: a few threads on this machine each send `GET PATH` with `Host: HOST` to
//! the node's NGINX, one fresh TCP connection per request (`Connection: close`, so every
//! request goes through NGINX's accept and sees whichever config the worker that accepts
//! it runs), paced, and record what came back and how long it took.
//!
//! Every loop is bounded in count (`max_requests` per thread) and in time (`max_time`);
//! [`Traffic::stop`] ends it early. No dependency beyond std, so the benchmark in
//! `benches/` includes this same file with `#[path]`.
//!
//! ```ignore
//! let traffic = Traffic::start(Spec::new("10.250.0.70", "pyapp.test"));
//! // ... deploy ...
//! let report = traffic.stop();
//! assert!(report.failures().is_empty());
//! report.check_order(&[1, 2])?;
//! ```

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to request, how often, and the bounds.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The node's address (port 80).
    pub address: String,
    /// The Host header.
    pub host: String,
    /// The path.
    pub path: String,
    /// Threads sending requests (each one request at a time).
    pub threads: usize,
    /// Pause between the starts of two requests of one thread (a thread that falls
    /// behind sends the next one at once).
    pub interval: Duration,
    /// At most this many requests per thread.
    pub max_requests: usize,
    /// At most this long in all.
    pub max_time: Duration,
    /// Connect, send and receive timeout of one request.
    pub timeout: Duration,
}

impl Spec {
    /// 3 threads, a request every 15 ms each (about 200 requests/s in all), at most
    /// 2,000 requests per thread and 60 s.
    pub fn new(address: &str, host: &str) -> Spec {
        Spec {
            address: address.to_string(),
            host: host.to_string(),
            path: "/".to_string(),
            threads: 3,
            interval: Duration::from_millis(15),
            max_requests: 2000,
            max_time: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Which thread sent it.
    pub thread: usize,
    /// When it was sent.
    pub sent: Instant,
    /// How long until the whole answer was read (or the error).
    pub took: Duration,
    /// HTTP status and body, or what went wrong.
    pub outcome: Result<(u16, String), String>,
}

impl Sample {
    /// When the answer was complete.
    pub fn done(&self) -> Instant {
        self.sent + self.took
    }

    /// The `version=N` field of a 2xx body.
    pub fn version(&self) -> Option<u32> {
        match &self.outcome {
            Ok((code, body)) if (200..300).contains(code) => field(body, "version")?.parse().ok(),
            _ => None,
        }
    }

    /// The `pid=N` field of a 2xx body.
    pub fn pid(&self) -> Option<u32> {
        match &self.outcome {
            Ok((code, body)) if (200..300).contains(code) => field(body, "pid")?.parse().ok(),
            _ => None,
        }
    }
}

/// The `KEY=VALUE` word of a body.
pub fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A running loop.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    started: Instant,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Traffic {
    /// Starts the threads; they run until [`Traffic::stop`] or their bounds.
    pub fn start(spec: Spec) -> Traffic {
        let addr: SocketAddr = format!("{}:80", spec.address)
            .parse()
            .expect("a node address is an IP address");
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let spec = Arc::new(spec);
        let threads = (0..spec.threads)
            .map(|thread| {
                let stop = stop.clone();
                let spec = spec.clone();
                std::thread::spawn(move || run_thread(thread, addr, &spec, &stop, started))
            })
            .collect();
        Traffic {
            stop,
            started,
            threads,
        }
    }

    /// When the loop started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Stops the loop (the requests in flight finish) and returns what it saw.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        for t in self.threads {
            samples.extend(t.join().expect("a traffic thread panicked"));
        }
        samples.sort_by_key(|s| s.sent);
        Report {
            started: self.started,
            ended: Instant::now(),
            samples,
        }
    }
}

fn run_thread(
    thread: usize,
    addr: SocketAddr,
    spec: &Spec,
    stop: &AtomicBool,
    started: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    // spread the threads' first requests over one interval
    let offset = spec.interval * thread as u32 / spec.threads.max(1) as u32;
    let mut next = started + offset;
    while samples.len() < spec.max_requests
        && !stop.load(Ordering::SeqCst)
        && started.elapsed() < spec.max_time
    {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += spec.interval;
        let sent = Instant::now();
        let outcome = request(addr, &spec.host, &spec.path, spec.timeout);
        samples.push(Sample {
            thread,
            sent,
            took: sent.elapsed(),
            outcome,
        });
    }
    samples
}

/// One `GET` over a fresh connection: (status, body).
pub fn request(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream.set_nodelay(true).ok();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: skiff-traffic\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete answer ({} bytes)", raw.len()))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", head.lines().next()))?;
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        return Err("chunked answer (the fixture apps send Content-Length)".into());
    }
    Ok((status, body.to_string()))
}

/// An answer of an older version to a request sent after a newer one was answered.
#[derive(Debug)]
pub struct Stale<'a> {
    /// The request.
    pub sample: &'a Sample,
    /// The version it got.
    pub version: u32,
    /// The newer version answered before it was sent.
    pub newer: u32,
    /// How long after that answer it was sent.
    pub lag: Duration,
}

/// What a loop saw.
pub struct Report {
    /// When it started.
    pub started: Instant,
    /// When it stopped.
    pub ended: Instant,
    /// Every request, in the order they were sent.
    pub samples: Vec<Sample>,
}

impl Report {
    /// Requests that failed or were answered with anything but 2xx (with a description).
    pub fn failures(&self) -> Vec<String> {
        self.samples
            .iter()
            .filter_map(|s| {
                let at = s.sent.duration_since(self.started).as_secs_f64();
                match &s.outcome {
                    Err(e) => Some(format!("t+{at:.3}s thread {}: {e}", s.thread)),
                    Ok((code, body)) if !(200..300).contains(code) => Some(format!(
                        "t+{at:.3}s thread {}: HTTP {code}: {}",
                        s.thread,
                        body.lines().next().unwrap_or("")
                    )),
                    Ok(_) => None,
                }
            })
            .collect()
    }

    /// The slowest request.
    pub fn longest(&self) -> Option<&Sample> {
        self.samples.iter().max_by_key(|s| s.took)
    }

    /// The slowest request sent in `[from, to]`.
    pub fn longest_between(&self, from: Instant, to: Instant) -> Option<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.sent >= from && s.sent <= to)
            .max_by_key(|s| s.took)
    }

    /// Every distinct version seen, ascending.
    pub fn versions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.samples.iter().filter_map(Sample::version).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The first answer (by completion) with `version` sent at or after `after`.
    pub fn first_with(&self, version: u32, after: Instant) -> Option<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.sent >= after && s.version() == Some(version))
            .min_by_key(|s| s.done())
    }

    /// Answers of an older version (by `expected`'s order) sent after an answer of a
    /// newer one had completed, in any thread (so also every one a single thread saw
    /// after a newer one), oldest first. Answers of versions not in `expected` are left
    /// out (see [`Report::check_order`]).
    pub fn stale(&self, expected: &[u32]) -> Vec<Stale<'_>> {
        let rank = |v: u32| expected.iter().position(|e| *e == v);
        // first completion of each version
        let mut first: Vec<Option<Instant>> = vec![None; expected.len()];
        for s in &self.samples {
            if let Some(r) = s.version().and_then(rank) {
                let d = s.done();
                if first[r].is_none_or(|f| d < f) {
                    first[r] = Some(d);
                }
            }
        }
        let mut out = Vec::new();
        for s in &self.samples {
            let Some(v) = s.version() else { continue };
            let Some(r) = rank(v) else { continue };
            // the earliest answer of any newer version
            let newer = (r + 1..expected.len())
                .filter_map(|k| Some((first[k]?, expected[k])))
                .min();
            if let Some((at, newer)) = newer
                && s.sent > at
            {
                out.push(Stale {
                    sample: s,
                    version: v,
                    newer,
                    lag: s.sent - at,
                });
            }
        }
        out
    }

    /// Checks that only the versions of `expected` answered, every one of them did, and
    /// versions only moved forward in `expected`'s order: no answer of an older version
    /// to a request sent more than `grace` after an answer of a newer one (any thread;
    /// a thread sends its next request after the previous answer, so this covers every
    /// thread's own order too). A `grace` above zero allows for NGINX's reload: its
    /// master starts the new workers, then lets the old ones accept for 100 ms more
    /// before it stops them.
    pub fn check_order(&self, expected: &[u32], grace: Duration) -> Result<(), String> {
        let seen = self.versions();
        if let Some(v) = seen.iter().find(|v| !expected.contains(v)) {
            return Err(format!(
                "version {v} answered, not one of {expected:?} (seen: {seen:?})"
            ));
        }
        let missing: Vec<u32> = expected
            .iter()
            .copied()
            .filter(|v| !seen.contains(v))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "no request saw version(s) {missing:?} (seen: {seen:?})"
            ));
        }
        if let Some(st) = self.stale(expected).into_iter().find(|st| st.lag > grace) {
            return Err(format!(
                "thread {} got version {} for a request sent at t+{:.3}s, {:.0} ms after \
                 version {} had been answered (allowed: {:.0} ms)",
                st.sample.thread,
                st.version,
                st.sample.sent.duration_since(self.started).as_secs_f64(),
                st.lag.as_secs_f64() * 1000.0,
                st.newer,
                grace.as_secs_f64() * 1000.0
            ));
        }
        Ok(())
    }

    /// One line: requests, threads, span, rate, longest.
    pub fn summary(&self) -> String {
        let span = self.ended.duration_since(self.started).as_secs_f64();
        let threads = self
            .samples
            .iter()
            .map(|s| s.thread)
            .max()
            .map_or(0, |t| t + 1);
        let longest = self
            .longest()
            .map_or(0.0, |s| s.took.as_secs_f64() * 1000.0);
        let mut took: Vec<Duration> = self.samples.iter().map(|s| s.took).collect();
        took.sort_unstable();
        let median = took
            .get(took.len() / 2)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        format!(
            "{} requests from {threads} threads (a fresh connection each) over {span:.1} s \
             ({:.0}/s); median {median:.1} ms, longest {longest:.1} ms",
            self.samples.len(),
            self.samples.len() as f64 / span.max(0.001),
        )
    }
}
