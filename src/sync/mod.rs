//! Delta sync: ship an app tree into a new release on a node in a few SSH round trips.
//!
//! How a sync goes (docs/architecture.md, the `sync::push` lines):
//! 1. [`scan()`] the local tree into a [`Manifest`] (ignore rules, symlink checks, sha256 of
//!    every file in parallel, optionally through a hash cache).
//! 2. [`push`] compares it, on the laptop, with the base release's manifest (cached from
//!    the push that made the base, or read from the node) and builds the new release
//!    `N` as a hard-link clone of the base, checked against the base's manifest (kinds,
//!    modes, sizes; extras removed, missing entries sent): new and small changed files
//!    in tar sections on one stream ([`data`]: plain or gzip, chosen by measuring the
//!    link), large changed files as rsync deltas against the node's copy ([`delta`]:
//!    signatures made on the node by `rdiff`, deltas here by fast_rsync, patches applied
//!    and sha256-checked on the node), removals and exec-bit changes in the same batch
//!    ([`control`]). Nothing is ever written into a file shared by hard link with the
//!    base; the release is built in `R/.tmp-N` and renamed to `R/N` only when complete
//!    (with its manifest beside it as `R/N.manifest`), so a sync killed at any point
//!    leaves the base untouched and the next sync clears the leftovers. After publishing,
//!    the node makes the next sync's clone of `N` in the background (`R/.spare-N`).
//!
//! Round trips: with the base manifest cached and no large changed file, one (prepare,
//! upload and publish in one script); otherwise two (prepare + signatures, then upload),
//! three when the cache was stale and large files changed, plus one if a delta fails to
//! apply (those files are then sent whole, and the summary says so).
//!
//! The node side is one embedded POSIX sh script ([`remote`], `node.sh`), sent with each
//! call. The caller holds the app's deploy lock on the node: a sync removes every
//! `R/.tmp-*` and every `R/.spare-*` but the base's. The releases folder and its files
//! must belong to the user that syncs (with `fs.protected_hardlinks`, the Debian and
//! Ubuntu default, `cp -al` cannot link other users' files), and nothing may write in
//! place into a release's files: they are shared by hard link with other releases.

pub mod control;
pub mod data;
pub mod delta;
pub mod manifest;
pub mod plan;
pub mod remote;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Cursor;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

pub use manifest::Manifest;
pub use plan::{Counts, DELTA_THRESHOLD, Plan};
pub use scan::{ScanOptions, scan};

use crate::deploy::contract::exit;
use crate::error::{Error, Result};
use crate::transport::{Output, Session, command_line};
use control::{Control, DeltaItem, ManifestPayload};
use data::{DataJob, DataStats};
use manifest::{Kind, digest_of, local_path};
use remote::Frames;

/// Block size of the signature used to send a manifest as a delta of the base's.
const MANIFEST_BLOCK: u32 = 256;

/// How many cached manifests to keep per node and releases folder.
const CACHE_KEEP: u32 = 10;

/// A progress report: content bytes and files handed to SSH so far, out of the totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Bytes of file content (and deltas) sent so far.
    pub bytes_done: u64,
    /// Bytes to send in all.
    pub bytes_total: u64,
    /// Files sent so far.
    pub files_done: u64,
    /// Files to send in all.
    pub files_total: u64,
}

/// The progress callback: called from a worker thread, so it must be `Send + Sync`.
/// Library code never prints; the command layer renders this (indicatif).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The releases folder of an app on a node: `DIR/N/` trees, `DIR/N.manifest`, and
/// `DIR/.tmp-N/` while a sync is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases {
    dir: String,
}

impl Releases {
    /// The folder the node contract gives an app: `/srv/skiff/apps/<app>/releases`.
    pub fn for_app(app: &str) -> Result<Releases> {
        crate::names::check_name(app).map_err(|why| {
            Error::usage(
                format!("invalid app name: {why}"),
                "app names are [a-z][a-z0-9-]*",
            )
        })?;
        Releases::new(&format!(
            "{}/releases",
            crate::deploy::contract::app_dir(app)
        ))
    }

    /// Any absolute folder on the node (kept generic for tests and other layouts).
    pub fn new(dir: &str) -> Result<Releases> {
        let dir = dir.trim_end_matches('/');
        if !dir.starts_with('/') || dir.contains('\n') || dir.contains('\0') {
            return Err(Error::usage(
                format!("the releases folder `{dir}` is not an absolute path"),
                "give an absolute path on the node, e.g. /srv/skiff/apps/blog/releases",
            ));
        }
        Ok(Releases {
            dir: dir.to_string(),
        })
    }

    /// The folder itself.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The tree of release `n`.
    pub fn release_dir(&self, n: u32) -> String {
        format!("{}/{n}", self.dir)
    }

    /// The manifest of release `n`.
    pub fn manifest_path(&self, n: u32) -> String {
        format!("{}/{n}.manifest", self.dir)
    }
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// A local folder for the manifests of releases this machine made, so the next push
    /// need not download the base's manifest (the node still checks its digest).
    pub cache_dir: Option<PathBuf>,
    /// Changed files at least this big go as deltas ([`DELTA_THRESHOLD`]).
    pub delta_threshold: u64,
    /// Called as content goes up.
    pub progress: Option<ProgressFn>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            cache_dir: None,
            delta_threshold: DELTA_THRESHOLD,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("cache_dir", &self.cache_dir)
            .field("delta_threshold", &self.delta_threshold)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A file that was meant to go as a delta but went whole, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fallback {
    /// The file.
    pub path: String,
    /// Why the delta was not used.
    pub reason: String,
}

/// Seconds spent in each phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Local work before the first round trip (cached manifest, plan, control archive).
    pub local: f64,
    /// Clone the base on the node, check it, read its manifest if not cached (and, when
    /// everything fits in one round trip, upload and publish too).
    pub prepare: f64,
    /// Signatures of large changed files, when not made during prepare.
    pub signatures: f64,
    /// Computing deltas locally.
    pub deltas: f64,
    /// Sending the streams, applying them and publishing the release.
    pub upload: f64,
    /// The whole push (local work plus time over the session; not the connect).
    pub total: f64,
}

/// What a push did (also the `--json` form).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncSummary {
    /// The node.
    pub node: String,
    /// The release made.
    pub release: u32,
    /// The release it was cloned from.
    pub base: Option<u32>,
    /// sha256 of the new release's manifest: identifies the tree.
    pub digest: String,
    /// Files and symlinks by class (folders are not counted).
    pub files: Counts,
    /// Files sent as deltas.
    pub delta_files: usize,
    /// File content sent whole, before compression.
    pub bytes_literal: u64,
    /// Delta bytes sent, before compression.
    pub bytes_delta: u64,
    /// Bytes written to SSH channels (command lines, scripts, streams).
    pub bytes_sent: u64,
    /// Bytes read back from SSH channels.
    pub bytes_received: u64,
    /// SSH commands run (each one network round trip).
    pub round_trips: u64,
    /// Whether the base manifest came from the local cache (not downloaded).
    pub base_manifest_cached: bool,
    /// Files meant as deltas that went whole.
    pub fallbacks: Vec<Fallback>,
    /// Seconds per phase.
    pub seconds: Phases,
}

/// Pushes the scanned tree `local` to `releases/new` on the node behind `session`,
/// cloning `releases/base` when given (else sending everything).
///
/// Requirements on the node: POSIX `sh`, GNU coreutils, findutils, sed and tar, gzip and
/// `rdiff` (librsync >= 2.2); write access to the releases folder (created if missing).
/// The caller holds the app's deploy lock. `new` must not exist yet; `base` must have been
/// made by a push (it needs `base.manifest`).
///
/// To save time, make the local part ([`scan()`], then [`Push::new`]) while the SSH
/// connection is being made, then call [`Push::run`]; this function does them in a row.
pub async fn push(
    session: &Session,
    local: &Manifest,
    releases: &Releases,
    base: Option<u32>,
    new: u32,
    options: &PushOptions,
) -> Result<SyncSummary> {
    Push::new(local, session.node(), releases, base, new, options)?
        .run(session)
        .await
}

/// A push prepared on the laptop (cached base manifest read, plan made, the first
/// stream's control part built), ready to [`Push::run`] over a session to the node.
pub struct Push {
    run: Run,
    local_secs: f64,
    new_digest: String,
    cache: Option<ManifestCache>,
    base_state: BaseState,
    expected_base_digest: String,
    first_plan: Plan,
    first: First,
}

/// How the first round trip goes.
enum First {
    /// Everything in one script: prepare, upload, publish (the plan is certain).
    Go {
        control: control::Archive,
        data: Option<DataJob>,
    },
    /// Prepare (and signatures for the files the cached manifest says changed).
    Prepare { requests: Vec<(String, u32)> },
}

impl Push {
    /// Does the local part of a push to node `node` (its name, for the manifest cache).
    ///
    /// See [`push`] for the arguments.
    pub fn new(
        local: &Manifest,
        node: &str,
        releases: &Releases,
        base: Option<u32>,
        new: u32,
        options: &PushOptions,
    ) -> Result<Push> {
        let started = Instant::now();
        if local.root.is_none() {
            return Err(Error::failed(
                "sync::push needs a manifest made by sync::scan (it reads the files)",
            ));
        }
        if base == Some(new) {
            return Err(Error::usage(
                format!("release {new} cannot be its own base"),
                "pick a new release number",
            ));
        }
        let run = Run {
            node: node.to_string(),
            releases: releases.clone(),
            base,
            new,
            local: Arc::new(local.clone()),
            new_text: local.to_text(),
            threshold: options.delta_threshold,
            progress: options.progress.clone(),
            sent: 0,
            received: 0,
            round_trips_at_start: 0,
            bytes_literal: 0,
            bytes_delta: 0,
        };
        let new_digest = digest_of(run.new_text.as_bytes());
        let cache = options
            .cache_dir
            .as_deref()
            .map(|d| ManifestCache::new(d, node, releases.dir()));
        let cached = match (base, &cache) {
            (Some(b), Some(c)) => c.load(b),
            _ => None,
        };
        let base_state = BaseState {
            cached: cached.is_some(),
            manifest: cached.as_ref().map(|(_, m)| m.clone()),
            text: cached.map(|(t, _)| t),
            missing: BTreeSet::new(),
        };
        let expected_base_digest = base_state
            .text
            .as_deref()
            .map(|t| digest_of(t.as_bytes()))
            .unwrap_or_default();
        let first_plan = Plan::new(
            &run.local,
            base_state.manifest.as_ref(),
            &base_state.missing,
            run.threshold,
        );
        let first = if base.is_none() || (base_state.cached && first_plan.delta.is_empty()) {
            let (control, data) = run.upload_parts(&first_plan, Vec::new(), &base_state, false)?;
            First::Go { control, data }
        } else {
            First::Prepare {
                requests: signature_requests(&first_plan, base_state.manifest.as_ref()),
            }
        };
        Ok(Push {
            run,
            local_secs: started.elapsed().as_secs_f64(),
            new_digest,
            cache,
            base_state,
            expected_base_digest,
            first_plan,
            first,
        })
    }

    /// Sends the push over `session` (a connection to the node named in [`Push::new`]).
    pub async fn run(self, session: &Session) -> Result<SyncSummary> {
        let Push {
            mut run,
            local_secs,
            new_digest,
            cache,
            mut base_state,
            expected_base_digest,
            first_plan,
            first,
        } = self;
        let run_started = Instant::now();
        run.round_trips_at_start = session.round_trips();
        let (releases, base, new) = (run.releases.clone(), run.base, run.new);
        let releases = &releases;
        let mut phases = Phases {
            local: local_secs,
            ..Phases::default()
        };
        let mut fallbacks = Vec::new();

        // Round trip 1: prepare (and, when the cache makes the plan certain, everything).
        let t = Instant::now();
        let mut signatures = BTreeMap::new();
        let mut requests = Vec::new();
        let mut published = None;
        match first {
            First::Go { control, data } => {
                let (frames, _) = run
                    .stream(
                        session,
                        "go",
                        Some(&expected_base_digest),
                        &new_digest,
                        control,
                        data,
                    )
                    .await?;
                match frames.result.as_deref() {
                    Some("done") => published = Some(first_plan),
                    Some("stale") => base_state.update(&frames, releases, base)?,
                    other => return Err(run.unexpected(other)),
                }
            }
            First::Prepare { requests: r } => {
                requests = r;
                let frames = run
                    .script(session, "prepare", Some(&expected_base_digest), &requests)
                    .await?;
                let stale = frames.manifest.is_some() || !frames.missing.is_empty();
                base_state.update(&frames, releases, base)?;
                if !stale {
                    signatures = frames.signatures;
                }
            }
        }
        phases.prepare = t.elapsed().as_secs_f64();

        let plan = match published {
            Some(plan) => plan,
            None => {
                let mut plan = Plan::new(
                    &run.local,
                    base_state.manifest.as_ref(),
                    &base_state.missing,
                    run.threshold,
                );
                // Signatures, unless prepare already made exactly these.
                let wanted = signature_requests(&plan, base_state.manifest.as_ref());
                if !wanted.is_empty() && (wanted != requests || signatures.len() < wanted.len()) {
                    let t = Instant::now();
                    let frames = run.script(session, "sigs", None, &wanted).await?;
                    signatures = frames.signatures;
                    phases.signatures = t.elapsed().as_secs_f64();
                }
                // Deltas, computed locally in parallel.
                let t = Instant::now();
                let local = run.local.clone();
                let outcomes = tokio::task::spawn_blocking(move || {
                    compute_deltas(&local, &wanted, &signatures)
                })
                .await
                .map_err(|e| Error::failed(format!("delta worker failed: {e}")))??;
                let mut items = Vec::new();
                for (path, outcome) in outcomes {
                    match outcome {
                        DeltaOutcome::Delta(item) => items.push(item),
                        DeltaOutcome::Whole(reason) => {
                            if let Some(reason) = reason {
                                fallbacks.push(Fallback {
                                    path: path.clone(),
                                    reason,
                                });
                            }
                            plan.delta.retain(|p| p != &path);
                            plan.whole.push(path.clone());
                            plan.remove.push(path);
                        }
                    }
                }
                phases.deltas = t.elapsed().as_secs_f64();

                // Upload and publish.
                let t = Instant::now();
                let (control, data) = run.upload_parts(&plan, items.clone(), &base_state, false)?;
                let (frames, _) = run
                    .stream(session, "upload", None, &new_digest, control, data)
                    .await?;
                run.bytes_delta += items.iter().map(|d| d.delta.len() as u64).sum::<u64>();
                match frames.result.as_deref() {
                    Some("done") => {}
                    Some("partial") => {
                        // Deltas that did not apply or verify: send those files whole.
                        let mut again = Plan::default();
                        for i in frames.failed {
                            let item = items
                                .get(i)
                                .ok_or_else(|| run.unexpected(Some("partial")))?;
                            fallbacks.push(Fallback {
                                path: item.path.clone(),
                                reason: "rdiff patch failed on the node, or its result did not \
                                         match the file's sha256"
                                    .into(),
                            });
                            plan.delta.retain(|p| p != &item.path);
                            again.whole.push(item.path.clone());
                            again.remove.push(item.path.clone());
                        }
                        plan.whole.extend(again.whole.iter().cloned());
                        let (control, data) = run.upload_parts(
                            &again,
                            Vec::new(),
                            &base_state,
                            frames.manifest_failed,
                        )?;
                        let (frames, _) = run
                            .stream(session, "upload", None, &new_digest, control, data)
                            .await?;
                        if frames.result.as_deref() != Some("done") {
                            return Err(run.unexpected(frames.result.as_deref()));
                        }
                    }
                    other => return Err(run.unexpected(other)),
                }
                phases.upload = t.elapsed().as_secs_f64();
                plan
            }
        };

        if let Some(c) = &cache {
            c.store(new, &run.new_text)?;
        }
        phases.total = local_secs + run_started.elapsed().as_secs_f64();
        Ok(SyncSummary {
            node: session.node().to_string(),
            release: new,
            base,
            digest: new_digest,
            files: plan.counts,
            delta_files: plan.delta.len(),
            bytes_literal: run.bytes_literal,
            bytes_delta: run.bytes_delta,
            bytes_sent: run.sent,
            bytes_received: run.received,
            round_trips: session.round_trips() - run.round_trips_at_start,
            base_manifest_cached: base_state.cached,
            fallbacks,
            seconds: phases,
        })
    }
}

/// What skiff knows of the base release.
struct BaseState {
    manifest: Option<Manifest>,
    text: Option<String>,
    missing: BTreeSet<String>,
    cached: bool,
}

impl BaseState {
    /// Takes in what prepare reported: the node's own manifest, missing paths.
    fn update(&mut self, frames: &Frames, releases: &Releases, base: Option<u32>) -> Result<()> {
        if let Some(text) = &frames.manifest {
            let origin = base.map(|b| releases.manifest_path(b)).unwrap_or_default();
            self.manifest = Some(Manifest::parse(text, &origin)?);
            self.text = Some(text.clone());
            self.cached = false;
        }
        self.missing = frames.missing.iter().cloned().collect();
        Ok(())
    }
}

/// The state of one push.
struct Run {
    node: String,
    releases: Releases,
    base: Option<u32>,
    new: u32,
    local: Arc<Manifest>,
    new_text: String,
    threshold: u64,
    progress: Option<ProgressFn>,
    sent: u64,
    received: u64,
    round_trips_at_start: u64,
    bytes_literal: u64,
    bytes_delta: u64,
}

impl Run {
    /// The named inputs of node.sh that every mode reads (or may): the releases folder,
    /// the new number and the base; `base_digest` (prepare, go) when given.
    fn inputs(&self, base_digest: Option<&str>) -> Vec<(&'static str, String)> {
        let mut inputs = vec![
            ("releases", self.releases.dir().to_string()),
            ("n", self.new.to_string()),
            ("base", self.base.map(|b| b.to_string()).unwrap_or_default()),
        ];
        if let Some(digest) = base_digest {
            inputs.push(("base_digest", digest.to_string()));
        }
        inputs
    }

    /// Runs the node script with no input stream: `prepare` (given the digest skiff
    /// expects of the base's manifest) or `sigs`.
    async fn script(
        &mut self,
        session: &Session,
        mode: &str,
        base_digest: Option<&str>,
        requests: &[(String, u32)],
    ) -> Result<Frames> {
        let mut inputs = self.inputs(base_digest);
        inputs.push(("sigs", remote::sig_lines(requests)));
        let script = remote::with_inputs(&inputs);
        self.sent += (script.len() + command_line(&[mode]).len() + 12) as u64;
        let out = session.script(&script, &[mode]).await?;
        crate::failpoint::hit("sync:round", Some(session.node()))?;
        self.received += (out.stdout.len() + out.stderr.len()) as u64;
        self.check(mode, out, None)
    }

    /// Builds the control archive and the data job for `plan`.
    fn upload_parts(
        &self,
        plan: &Plan,
        deltas: Vec<DeltaItem>,
        base: &BaseState,
        whole_manifest: bool,
    ) -> Result<(control::Archive, Option<DataJob>)> {
        let mut control = Control {
            remove: plan.remove.clone(),
            chmod: plan
                .mode_only
                .iter()
                .map(|p| (p.clone(), self.local.entries[p].mode()))
                .collect(),
            deltas,
            manifest: ManifestPayload::Whole(self.new_text.clone().into_bytes()),
        };
        if let Some(base_text) = base.text.as_ref().filter(|_| !whole_manifest) {
            let sig = delta::signature(base_text.as_bytes(), MANIFEST_BLOCK);
            if let Ok(d) = delta::diff(sig, MANIFEST_BLOCK, self.new_text.as_bytes()) {
                control.manifest = ManifestPayload::Delta(d);
            }
        }
        let delta_bytes: u64 = control.deltas.iter().map(|d| d.delta.len() as u64).sum();
        let archive = control.archive()?;
        let data = if plan.whole.is_empty() {
            None
        } else {
            let mut job = DataJob::new(self.local.clone(), plan.whole.clone());
            job.progress_base = delta_bytes;
            job.files_base = control.deltas.len() as u64;
            job.progress = self.progress.clone();
            let files = plan
                .whole
                .iter()
                .filter(|p| self.local.entries[*p].is_file())
                .count() as u64;
            job.totals = (
                delta_bytes + job.content_bytes(),
                control.deltas.len() as u64 + files,
            );
            Some(job)
        };
        if let Some(p) = &self.progress {
            p(Progress {
                bytes_done: delta_bytes,
                bytes_total: data.as_ref().map(|d| d.totals.0).unwrap_or(delta_bytes),
                files_done: control.deltas.len() as u64,
                files_total: data
                    .as_ref()
                    .map(|d| d.totals.1)
                    .unwrap_or(control.deltas.len() as u64),
            });
        }
        Ok((archive, data))
    }

    /// Runs the node script with the control archive and the data archive on stdin:
    /// `upload`, or `go` (given the digest skiff expects of the base's manifest). The
    /// script and its prelude go in argv (`sh -c`): stdin is the stream.
    async fn stream(
        &mut self,
        session: &Session,
        mode: &str,
        base_digest: Option<&str>,
        new_digest: &str,
        control: control::Archive,
        data: Option<DataJob>,
    ) -> Result<(Frames, Option<DataStats>)> {
        let mut inputs = self.inputs(base_digest);
        inputs.push(("new_digest", new_digest.to_string()));
        inputs.push(("ctl", control.spec()));
        inputs.push(("data", if data.is_some() { "1" } else { "0" }.into()));
        let script = remote::with_inputs(&inputs);
        let argv = ["sh", "-c", script.as_str(), "sh", mode];
        self.sent += command_line(&argv).len() as u64;

        let counter = Arc::new(AtomicU64::new(0));
        let (input, producer): (Box<dyn AsyncRead + Unpin + Send>, _) = match data {
            None => (Box::new(Cursor::new(control.bytes)), None),
            Some(job) => {
                let literal = job.content_bytes();
                let (reader, writer) = std::io::pipe()
                    .map_err(|e| Error::failed(format!("could not make a pipe: {e}")))?;
                let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
                    .map_err(|e| Error::failed(format!("could not use a pipe: {e}")))?;
                let handle = std::thread::spawn(move || job.write_to(writer));
                (
                    Box::new(Cursor::new(control.bytes).chain(reader)),
                    Some((handle, literal)),
                )
            }
        };
        let counted = Counting {
            inner: input,
            count: counter.clone(),
        };
        let result = session.run_with_input(&argv, counted).await;
        crate::failpoint::hit("sync:round", Some(session.node()))?;
        self.sent += counter.load(Ordering::Relaxed);
        let produced = match producer {
            None => None,
            Some((handle, literal)) => {
                let joined = tokio::task::spawn_blocking(move || handle.join())
                    .await
                    .map_err(|e| Error::failed(format!("stream worker failed: {e}")))?
                    .map_err(|_| Error::failed("the stream worker panicked"))?;
                Some((joined, literal))
            }
        };
        let out = result?;
        self.received += (out.stdout.len() + out.stderr.len()) as u64;
        let (stats, producer_err) = match produced {
            None => (None, None),
            Some((Ok(stats), literal)) => {
                debug_assert_eq!(stats.bytes, literal);
                (Some(stats), None)
            }
            Some((Err(e), _)) => (None, Some(e)),
        };
        let frames = match self.check(mode, out, producer_err.as_ref()) {
            Ok(f) => f,
            Err(e) => return Err(producer_err.unwrap_or(e)),
        };
        let stale = frames.result.as_deref() == Some("stale");
        if let Some(e) = producer_err
            && !stale
        {
            return Err(e);
        }
        if !stale {
            self.bytes_literal += stats.map(|s| s.bytes).unwrap_or(0);
        }
        Ok((frames, stats))
    }

    /// Turns the script's output into frames, or its failure into an error with a hint.
    fn check(&self, mode: &str, out: Output, producer_err: Option<&Error>) -> Result<Frames> {
        let stale = mode == "go" && out.status == Some(exit::SYNC_STALE);
        if !out.success() && !stale {
            if let Some(e) = producer_err {
                return Err(Error::failed(e.to_string()));
            }
            let hint = match out.status {
                Some(exit::SYNC_EXISTS) => {
                    "pick a release number that does not exist on the node".into()
                }
                Some(exit::SYNC_NO_BASE) => {
                    "deploy without a base release (a full copy), or pick one that exists".into()
                }
                Some(exit::SYNC_STAGING_GONE) => {
                    "another sync of this app ran at the same time; run again".into()
                }
                Some(exit::SYNC_MANIFEST) => {
                    "run again; if it persists, report a bug with this output".into()
                }
                Some(exit::SYNC_CUT_SHORT) => {
                    "the connection dropped during the upload; run again".into()
                }
                _ if out.tail(5).contains("not found") => {
                    "the node lacks a tool the sync needs: install `rdiff`, GNU tar, gzip \
                     (run `skiff setup-node`)"
                        .to_string()
                }
                _ => "run again; nothing was published, the base release is untouched".into(),
            };
            return Err(Error::Remote {
                node: self.node.clone(),
                command: format!(
                    "sync {mode} of release {} in {}",
                    self.new,
                    self.releases.dir()
                ),
                status: out.status,
                output: out.tail(20),
                hint: Some(hint),
            });
        }
        let frames = remote::parse(&out.stdout).map_err(|why| Error::Remote {
            node: self.node.clone(),
            command: format!("sync {mode} of release {}", self.new),
            status: out.status,
            output: format!("{why}\n{}", out.tail(20)),
            hint: Some("is the login shell printing text? check the node's shell rc files".into()),
        })?;
        Ok(frames)
    }

    fn unexpected(&self, result: Option<&str>) -> Error {
        Error::Remote {
            node: self.node.clone(),
            command: format!("sync of release {}", self.new),
            status: Some(0),
            output: format!("unexpected result `{}`", result.unwrap_or("(none)")),
            hint: Some("run again; if it persists, report a bug with this output".into()),
        }
    }
}

/// Counts the bytes read through it (what went up the SSH channel).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        res
    }
}

/// Signature requests (path, block size) for the plan's delta files, by base size.
fn signature_requests(plan: &Plan, base: Option<&Manifest>) -> Vec<(String, u32)> {
    plan.delta
        .iter()
        .map(|p| {
            let size = base
                .and_then(|b| b.entries.get(p))
                .map(|e| e.size)
                .unwrap_or(0);
            (p.clone(), delta::block_size(size))
        })
        .collect()
}

enum DeltaOutcome {
    Delta(DeltaItem),
    /// Send whole; `Some(reason)` when the delta failed (reported), `None` when the delta
    /// would not have been smaller than the file.
    Whole(Option<String>),
}

/// Computes the deltas for `requests` from the node's signatures, in parallel.
fn compute_deltas(
    local: &Manifest,
    requests: &[(String, u32)],
    signatures: &BTreeMap<usize, Vec<u8>>,
) -> Result<Vec<(String, DeltaOutcome)>> {
    let root = local.root.clone().unwrap_or_default();
    requests
        .par_iter()
        .enumerate()
        .map(|(i, (path, block))| {
            let entry = &local.entries[path];
            let Kind::File { sha256, .. } = entry.kind else {
                return Ok((path.clone(), DeltaOutcome::Whole(None)));
            };
            let Some(sig) = signatures.get(&i) else {
                return Ok((
                    path.clone(),
                    DeltaOutcome::Whole(Some("the node made no signature for it".into())),
                ));
            };
            let file = local_path(&root, path);
            let data = read_checked(&file, local, path)?;
            match delta::diff(sig.clone(), *block, &data) {
                Ok(d) if (d.len() as u64) < entry.size - entry.size / 10 => Ok((
                    path.clone(),
                    DeltaOutcome::Delta(DeltaItem {
                        path: path.clone(),
                        mode: entry.mode(),
                        sha256,
                        delta: d,
                    }),
                )),
                Ok(_) => Ok((path.clone(), DeltaOutcome::Whole(None))),
                Err(why) => Ok((path.clone(), DeltaOutcome::Whole(Some(why)))),
            }
        })
        .collect()
}

/// Reads a file, checking it still looks as it did when scanned.
fn read_checked(file: &Path, local: &Manifest, rel: &str) -> Result<Vec<u8>> {
    let data = fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let meta = fs::metadata(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let same = local
        .stamps
        .get(rel)
        .is_none_or(|s| *s == scan::stamp_of(&meta));
    if data.len() as u64 != local.entries[rel].size || !same {
        return Err(scan::changed_during_scan(file));
    }
    Ok(data)
}

/// Manifests of releases this machine pushed, so the next push can skip downloading the
/// base's (a stale or foreign entry is harmless: the node checks the digest).
struct ManifestCache {
    dir: PathBuf,
    prefix: String,
}

impl ManifestCache {
    fn new(dir: &Path, node: &str, releases: &str) -> ManifestCache {
        let key = digest_of(format!("{node}\0{releases}").as_bytes());
        ManifestCache {
            dir: dir.to_path_buf(),
            prefix: key[..16].to_string(),
        }
    }

    fn path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{}-{n}.manifest", self.prefix))
    }

    fn load(&self, n: u32) -> Option<(String, Manifest)> {
        let text = fs::read_to_string(self.path(n)).ok()?;
        let m = Manifest::parse(&text, "cache").ok()?;
        Some((text, m))
    }

    fn store(&self, n: u32, text: &str) -> Result<()> {
        let path = self.path(n);
        let write_err = |source| Error::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(write_err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(write_err)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(write_err)?;
        tmp.persist(&path).map_err(|e| write_err(e.error))?;
        // Keep the newest few of this node and folder.
        if let Ok(list) = fs::read_dir(&self.dir) {
            let prefix = format!("{}-", self.prefix);
            for e in list.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let old = name
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".manifest"))
                    .and_then(|r| r.parse::<u32>().ok())
                    .is_some_and(|m| m + CACHE_KEEP <= n);
                if old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_paths() {
        let r = Releases::for_app("blog").unwrap();
        assert_eq!(r.dir(), "/srv/skiff/apps/blog/releases");
        assert_eq!(r.release_dir(3), "/srv/skiff/apps/blog/releases/3");
        assert_eq!(
            r.manifest_path(3),
            "/srv/skiff/apps/blog/releases/3.manifest"
        );
        assert!(Releases::for_app("Bad Name").is_err());
        assert!(Releases::new("relative/dir").is_err());
        assert_eq!(Releases::new("/x/y/").unwrap().dir(), "/x/y");
    }

    #[test]
    fn manifest_cache_round_trips_and_prunes() {
        let t = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(t.path(), "node1", "/srv/x");
        let other = ManifestCache::new(t.path(), "node2", "/srv/x");
        let text = "skiff-manifest 1\nd 755 0 - a\n";
        c.store(1, text).unwrap();
        assert_eq!(c.load(1).unwrap().0, text);
        assert!(other.load(1).is_none());
        other.store(1, text).unwrap();
        c.store(11, text).unwrap();
        assert!(c.load(1).is_none(), "pruned");
        assert!(other.load(1).is_some(), "other node untouched");
        fs::write(c.path(12), "garbage").unwrap();
        assert!(c.load(12).is_none());
    }
}
