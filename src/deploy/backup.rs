//! `skiff backup` and `skiff restore`: an app's services (databases and folders) to one
//! archive on the laptop, and back.
//!
//! The archive is a tar: one part per service (`NAME.pgdump` from `pg_dump -Fc`,
//! `NAME.sql` from `mysqldump --single-transaction --routines`, `NAME.tar` of a folder),
//! then `manifest.json` (app, version, time, skiff's and the tools' versions, each part's
//! service, type, size and sha256). A part is streamed from `skiff-node backup dump`
//! straight into the archive file (its tar header is written once its size is known), so
//! no dump is ever held in memory; the archive is a temporary file until it is complete.
//!
//! A restore reads the whole archive and checks every size and sha256 before it touches
//! the node; then `skiff-node restore` uploads the parts (checked again on the node),
//! restores them into fresh databases and folders, and swaps those in only when all are
//! restored. A restore that fails or is killed leaves the old data serving, and the next
//! one removes what it left.

use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use serde::Deserialize;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::*;
use crate::cluster::Cluster;

/// The archive's file name ending: `APP-YYYYmmddTHHMMSSZ.skiff-backup`.
pub const ARCHIVE_EXT: &str = "skiff-backup";
/// The manifest's name inside the archive.
pub const MANIFEST: &str = "manifest.json";
/// The archive format this skiff writes and reads.
pub const FORMAT: u32 = 1;

/// Exit code of `skiff-node restore put` when a part arrived damaged.
const NODE_PART_DAMAGED: i32 = 5;

/// What an archive holds: `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The archive format ([`FORMAT`]).
    pub format: u32,
    /// The app's name.
    pub app: String,
    /// The host it was taken from.
    pub host: String,
    /// The node that holds the services.
    pub node: String,
    /// The version HOST served then (cluster.toml's current).
    pub version: Option<u32>,
    /// When the backup began (RFC 3339, UTC).
    pub time: String,
    /// The skiff that wrote it.
    pub skiff: String,
    /// The dump tools' versions on the node (`pg_dump (PostgreSQL) 15.8`...).
    pub tools: Vec<String>,
    /// One part per service, in the archive's order.
    pub parts: Vec<Part>,
}

/// One service's dump in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its name in the archive (`db.pgdump`, `db.sql`, `uploads.tar`).
    pub name: String,
    /// The service (`[services]` key).
    pub service: String,
    /// `postgresql`, `mysql` or `files`.
    #[serde(rename = "type")]
    pub kind: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The result of `backup` (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// Where the archive is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The app.
    pub app: String,
    /// The host.
    pub host: String,
    /// The node the services are on.
    pub node: String,
    /// The version HOST served.
    pub version: Option<u32>,
    /// The parts, with their sha256.
    pub parts: Vec<Part>,
}

/// The result of `restore` (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The archive restored.
    pub archive: PathBuf,
    /// The app.
    pub app: String,
    /// The host.
    pub host: String,
    /// The node whose services now hold the archive's data.
    pub node: String,
    /// When the backup was taken.
    pub time: String,
    /// The services restored.
    pub parts: Vec<Part>,
}

/// What a backup or restore reports while it runs; the command renders it.
#[derive(Debug, Clone)]
pub enum BackupProgress {
    /// Bytes of a service's dump received so far.
    Dumping {
        /// The service.
        service: String,
        /// Bytes so far.
        bytes: u64,
    },
    /// Bytes of the archive checked so far.
    Checking {
        /// Bytes so far.
        bytes: u64,
        /// All the parts' bytes.
        total: u64,
    },
    /// Bytes of a part uploaded so far.
    Uploading {
        /// The service.
        service: String,
        /// Bytes so far.
        bytes: u64,
        /// The part's size.
        total: u64,
    },
    /// The node restores the parts into fresh copies and swaps them in.
    Restoring,
    /// A notice worth a status line (waiting for a deploy's lock, a stale lock broken).
    Note(String),
}

/// The progress callback.
pub type ProgressFn = Arc<dyn Fn(BackupProgress) + Send + Sync>;

/// A service as `skiff-node backup list` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    name: String,
    kind: String,
}

/// `skiff-node backup list APP`'s answer: the services and the tools' versions.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    services: Vec<Service>,
    tools: Vec<String>,
}

pub(crate) fn parse_listing(text: &str) -> Listing {
    let mut listing = Listing::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("service ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                listing.services.push(Service {
                    name: name.to_string(),
                    kind: kind.to_string(),
                });
            }
        } else if let Some(tool) = line.strip_prefix("tool ") {
            listing.tools.push(tool.trim().to_string());
        }
    }
    listing
}

/// A part's name in the archive for a service of `kind`.
fn part_name(service: &str, kind: &str) -> Option<String> {
    let ext = match kind {
        "postgresql" => "pgdump",
        "mysql" => "sql",
        "files" => "tar",
        _ => return None,
    };
    Some(format!("{service}.{ext}"))
}

/// The hint for a node whose `skiff-node` does not know the backup verbs yet.
fn setup_hint(node: &str) -> String {
    format!(
        "if the node was set up by an older skiff, re-run `skiff setup-node {node}` (it installs \
         the helper that backs up and restores)"
    )
}

fn remote_failed(
    session: &Session,
    what: String,
    out: &crate::transport::Output,
    hint: String,
) -> Error {
    Error::Remote {
        node: session.node().to_string(),
        command: what,
        status: out.status,
        output: out.tail(20),
        hint: Some(hint),
    }
}

/// Runs `skiff-node ARGS`; a failure (named `what`) hints at an old helper.
async fn skiff_node(session: &Session, args: &[&str], what: String) -> Result<String> {
    let mut argv = vec![contract::SKIFF_NODE];
    argv.extend_from_slice(args);
    let out = session.run(&session.as_root(&argv)).await?;
    if !out.success() {
        return Err(remote_failed(
            session,
            what,
            &out,
            setup_hint(session.node()),
        ));
    }
    Ok(out.stdout_text())
}

/// Lists `app`'s services on the node of `session`.
async fn list_services(session: &Session, app: &str) -> Result<Listing> {
    let what = format!("listing the services of `{app}`");
    let text = skiff_node(session, &["backup", "list", app], what).await?;
    Ok(parse_listing(&text))
}

/// The node of `nodes` that holds `app`'s services, its session and what it lists.
async fn services_node(
    state: &StateFile,
    cluster: &Cluster,
    app: &str,
    nodes: &[String],
) -> Result<(String, Session, Listing)> {
    // the node cluster.toml records as holding the services first: on an app with several
    // nodes the others keep copies of the credentials, not the data
    let recorded: Option<&String> = cluster
        .apps
        .values()
        .filter(|a| a.name == app)
        .flat_map(|a| a.services.values().map(|s| &s.node))
        .next();
    let mut ordered: Vec<&String> = recorded.filter(|n| nodes.contains(n)).into_iter().collect();
    ordered.extend(nodes.iter().filter(|n| Some(*n) != recorded));
    for node in ordered {
        let session = Session::for_node(node, cluster.node(node)?, state).await?;
        match list_services(&session, app).await {
            Ok(listing) if !listing.services.is_empty() => {
                return Ok((node.clone(), session, listing));
            }
            Ok(_) => {
                let _ = session.close().await;
            }
            Err(e) => {
                let _ = session.close().await;
                return Err(e);
            }
        }
    }
    Err(Error::usage(
        format!(
            "app `{app}` has no services on {} to back up or restore",
            nodes.join(", ")
        ),
        "declare them in app.toml's [services] and deploy with `skiff update`",
    ))
}

/// `YYYYmmddTHHMMSSZ` for `time`.
fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace(['-', ':'], "")
}

/// The default archive name for `app` taken at `time`.
pub fn archive_name(app: &str, time: SystemTime) -> String {
    format!("{app}-{}.{ARCHIVE_EXT}", stamp(time))
}

/// `backup HOST [--to DIR]`: every service of HOST's app, from the node that holds them,
/// into one archive in `dir` (the current folder by default). Ctrl-C leaves no file.
pub async fn backup(
    state: &StateFile,
    host: &str,
    dir: Option<&Path>,
    progress: ProgressFn,
) -> Result<BackupReport> {
    let cluster = state.load()?;
    let (app, nodes) = app_for_host(&cluster, host)?;
    let version = cluster.apps.get(host).and_then(|a| a.current);
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("`{}` is not a folder", dir.display()),
            "pass an existing folder to `--to`",
        ));
    }
    let (node, session, listing) = services_node(state, &cluster, &app, &nodes).await?;
    let time = SystemTime::now();
    let mut manifest = Manifest {
        format: FORMAT,
        app: app.clone(),
        host: host.to_string(),
        node: node.clone(),
        version,
        time: humantime::format_rfc3339_seconds(time).to_string(),
        skiff: env!("CARGO_PKG_VERSION").to_string(),
        tools: listing.tools.clone(),
        parts: Vec::new(),
    };
    let path = dir.join(archive_name(&app, time));
    let work = write_archive(&session, &path, &listing, &mut manifest, time, &progress);
    let done = tokio::select! {
        done = work => done,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    };
    let _ = session.close().await;
    let bytes = done?;
    Ok(BackupReport {
        path,
        bytes,
        app,
        host: host.to_string(),
        node,
        version,
        parts: manifest.parts,
    })
}

/// Writes the archive into a temporary file beside `path` and renames it to `path` when
/// complete (a failure or Ctrl-C removes the temporary file). Returns its size.
async fn write_archive(
    session: &Session,
    path: &Path,
    listing: &Listing,
    manifest: &mut Manifest,
    time: SystemTime,
    progress: &ProgressFn,
) -> Result<u64> {
    let write_err = |source: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return Err(Error::usage(
            format!("`{}` exists already", path.display()),
            "move it away, or pass another folder to `--to`",
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(write_err)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(write_err)?);
    let mtime = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for service in &listing.services {
        let Some(name) = part_name(&service.name, &service.kind) else {
            return Err(Error::failed(format!(
                "service `{}` of `{}` on node `{}` has a type skiff cannot back up: `{}`",
                service.name,
                manifest.app,
                session.node(),
                service.kind
            )));
        };
        let start = file.stream_position().await.map_err(write_err)?;
        file.write_all(&[0u8; 512]).await.map_err(write_err)?;
        let mut sink = HashingWriter::new(&mut file, |bytes| {
            progress(BackupProgress::Dumping {
                service: service.name.clone(),
                bytes,
            })
        });
        let argv = [
            contract::SKIFF_NODE,
            "backup",
            "dump",
            &manifest.app,
            &service.name,
        ];
        let out = session
            .run_to_writer(&session.as_root(&argv), &mut sink)
            .await?;
        let (sha256, size) = sink.finish();
        if !out.success() {
            let what = format!("dumping service `{}` ({})", service.name, service.kind);
            let hint = format!("no archive was written; {}", setup_hint(session.node()));
            return Err(remote_failed(session, what, &out, hint));
        }
        pad(&mut file, size).await.map_err(write_err)?;
        let end = file.stream_position().await.map_err(write_err)?;
        let header = tar_header(&name, size, mtime)?;
        file.seek(SeekFrom::Start(start)).await.map_err(write_err)?;
        file.write_all(header.as_bytes()).await.map_err(write_err)?;
        file.seek(SeekFrom::Start(end)).await.map_err(write_err)?;
        manifest.parts.push(Part {
            name,
            service: service.name.clone(),
            kind: service.kind.clone(),
            sha256,
            size,
        });
    }
    let json = serde_json::to_vec_pretty(&*manifest).expect("the manifest serializes");
    let header = tar_header(MANIFEST, json.len() as u64, mtime)?;
    file.write_all(header.as_bytes()).await.map_err(write_err)?;
    file.write_all(&json).await.map_err(write_err)?;
    pad(&mut file, json.len() as u64).await.map_err(write_err)?;
    // the end of a tar: two empty blocks
    file.write_all(&[0u8; 1024]).await.map_err(write_err)?;
    file.flush().await.map_err(write_err)?;
    file.sync_all().await.map_err(write_err)?;
    let bytes = file.stream_position().await.map_err(write_err)?;
    drop(file);
    tmp.persist_noclobber(path)
        .map_err(|e| write_err(e.error))?;
    Ok(bytes)
}

/// A regular file's tar header.
fn tar_header(name: &str, size: u64, mtime: u64) -> Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header
        .set_path(name)
        .map_err(|e| Error::failed(format!("cannot name `{name}` in a tar: {e}")))?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Zeros up to the next 512-byte block after `size` bytes of data.
async fn pad(file: &mut tokio::fs::File, size: u64) -> std::io::Result<()> {
    let pad = ((512 - size % 512) % 512) as usize;
    file.write_all(&[0u8; 512][..pad]).await
}

/// An [`AsyncWrite`] that hashes and counts what it passes on, and says how far it got.
struct HashingWriter<'a, W, F> {
    inner: &'a mut W,
    hash: Sha256,
    bytes: u64,
    told: u64,
    on_progress: F,
}

impl<'a, W, F: Fn(u64)> HashingWriter<'a, W, F> {
    fn new(inner: &'a mut W, on_progress: F) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            bytes: 0,
            told: 0,
            on_progress,
        }
    }

    /// The sha256 (hex) and the count of the bytes written.
    fn finish(self) -> (String, u64) {
        (self.on_progress)(self.bytes);
        (hex::encode(self.hash.finalize()), self.bytes)
    }
}

impl<W: AsyncWrite + Unpin, F: Fn(u64) + Unpin> AsyncWrite for HashingWriter<'_, W, F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            this.hash.update(&buf[..*n]);
            this.bytes += *n as u64;
            // at most every MiB, so a fast link does not redraw the line per packet
            if this.bytes - this.told >= 1 << 20 {
                this.told = this.bytes;
                (this.on_progress)(this.bytes);
            }
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An archive opened for a restore: its manifest and where each part's bytes are.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Each part's offset in the file, in the manifest's order.
    offsets: Vec<u64>,
}

/// An archive that is not a complete skiff backup: exit 1, nothing changed.
fn damaged(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Failed {
        message: format!(
            "`{}` is not a complete skiff backup ({why}); nothing was changed",
            path.display()
        ),
        hint: Some(
            "the file was cut short or altered: use another copy, or take a new one with \
             `skiff backup HOST`"
                .into(),
        ),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Opens `path`: reads the tar's headers and the manifest, and checks that the parts it
/// lists, and only those, are there with their sizes. Their bytes are checked by
/// [`Archive::verify`].
pub fn open_archive(path: &Path) -> Result<Archive> {
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut tar = tar::Archive::new(file);
    let mut entries: Vec<(String, u64, u64)> = Vec::new();
    let mut manifest_text = None;
    let iter = tar.entries_with_seek().map_err(|e| damaged(path, e))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| damaged(path, e))?;
        let name = entry
            .path()
            .map_err(|e| damaged(path, e))?
            .to_string_lossy()
            .into_owned();
        let size = entry.size();
        let offset = entry.raw_file_position();
        if offset + size > len {
            return Err(damaged(path, format!("`{name}` is cut short")));
        }
        if name == MANIFEST {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| damaged(path, e))?;
            manifest_text = Some(text);
        } else {
            entries.push((name, size, offset));
        }
    }
    let text = manifest_text.ok_or_else(|| damaged(path, "no manifest.json"))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| damaged(path, format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::Failed {
            message: format!(
                "`{}` is a backup of format {}; this skiff reads format {FORMAT}",
                path.display(),
                manifest.format
            ),
            hint: Some("restore it with the skiff that wrote it".into()),
        });
    }
    let mut offsets = Vec::new();
    for part in &manifest.parts {
        let good = valid_name(&part.service)
            && part_name(&part.service, &part.kind).as_deref() == Some(part.name.as_str())
            && part.sha256.len() == 64
            && part
                .sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !good {
            return Err(damaged(
                path,
                format!("manifest.json: bad part `{}`", part.name),
            ));
        }
        let Some((_, size, offset)) = entries.iter().find(|(n, _, _)| *n == part.name) else {
            return Err(damaged(path, format!("no part `{}`", part.name)));
        };
        if *size != part.size {
            return Err(damaged(
                path,
                format!(
                    "`{}` has {size} bytes, the manifest says {}",
                    part.name, part.size
                ),
            ));
        }
        offsets.push(*offset);
    }
    if let Some((extra, _, _)) = entries
        .iter()
        .find(|(n, _, _)| !manifest.parts.iter().any(|p| p.name == *n))
    {
        return Err(damaged(path, format!("`{extra}` is not in the manifest")));
    }
    if !valid_name(&manifest.app) {
        return Err(damaged(path, "manifest.json: bad app name"));
    }
    Ok(Archive {
        path: path.to_path_buf(),
        manifest,
        offsets,
    })
}

impl Archive {
    /// Reads every part and checks its sha256 against the manifest.
    pub fn verify(&self, progress: &ProgressFn) -> Result<()> {
        let mut file = std::fs::File::open(&self.path).map_err(|source| Error::Read {
            path: self.path.clone(),
            source,
        })?;
        let total: u64 = self.manifest.parts.iter().map(|p| p.size).sum();
        let mut done = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        for (part, offset) in self.manifest.parts.iter().zip(&self.offsets) {
            file.seek(SeekFrom::Start(*offset))
                .map_err(|e| damaged(&self.path, e))?;
            let mut hash = Sha256::new();
            let mut left = part.size;
            let mut told = 0u64;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = file
                    .read(&mut buf[..want])
                    .map_err(|e| damaged(&self.path, e))?;
                if n == 0 {
                    return Err(damaged(&self.path, format!("`{}` is cut short", part.name)));
                }
                hash.update(&buf[..n]);
                left -= n as u64;
                done += n as u64;
                if done - told >= 1 << 20 {
                    told = done;
                    progress(BackupProgress::Checking { bytes: done, total });
                }
            }
            if hex::encode(hash.finalize()) != part.sha256 {
                return Err(damaged(
                    &self.path,
                    format!("the sha256 of `{}` is not the manifest's", part.name),
                ));
            }
        }
        Ok(())
    }
}

/// The app name of `host`, checked against the archive's (before anything is asked).
pub fn check_app(state: &StateFile, host: &str, archive: &Archive) -> Result<String> {
    let cluster = state.load()?;
    let (app, _) = app_for_host(&cluster, host)?;
    if app != archive.manifest.app {
        return Err(Error::usage(
            format!(
                "`{}` is a backup of app `{}`, but `{host}` serves app `{app}`",
                archive.path.display(),
                archive.manifest.app
            ),
            format!(
                "restore it to the host of app `{}` ({})",
                archive.manifest.app, archive.manifest.host
            ),
        ));
    }
    Ok(app)
}

/// `restore ARCHIVE HOST` (asked already): checks every part's sha256, then, on the
/// node that holds HOST's services, uploads the parts, restores them into fresh
/// databases and folders and swaps those in once all are restored.
pub async fn restore(
    state: &StateFile,
    host: &str,
    archive: &Archive,
    progress: ProgressFn,
) -> Result<RestoreReport> {
    let app = check_app(state, host, archive)?;
    {
        let archive = archive.clone();
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || archive.verify(&progress))
            .await
            .map_err(|e| Error::failed(format!("checking the archive failed: {e}")))??;
    }
    let cluster = state.load()?;
    let (_, nodes) = app_for_host(&cluster, host)?;
    let (node, session, listing) = services_node(state, &cluster, &app, &nodes).await?;
    // the app's deploy lock: no update (and its release command) or other restore of the
    // app runs meanwhile
    let owner = owner_line(&app);
    let notes = progress.clone();
    let locked_app = app.clone();
    let events: EventFn = Arc::new(move |event| match event {
        Event::Waiting { holder, .. } => notes(BackupProgress::Note(format!(
            "waiting for another skiff to release the deploy lock of `{locked_app}` ({holder})"
        ))),
        Event::Note { message, .. } => notes(BackupProgress::Note(message)),
        _ => {}
    });
    let locked = wait_for_lock(
        &node,
        &format!("deploy lock of `{app}`"),
        &contract::app_lock(&app),
        &events,
        |brk| remote::begin(&session, &app, &owner, brk),
    )
    .await;
    let done = match locked {
        Ok(_) => {
            let done = restore_on(&session, &app, archive, &listing, &progress).await;
            let unlocked = remote::unlock(&session, &app, &owner).await;
            done.and(unlocked)
        }
        Err(e) => Err(e),
    };
    let _ = session.close().await;
    done?;
    Ok(RestoreReport {
        archive: archive.path.clone(),
        app,
        host: host.to_string(),
        node,
        time: archive.manifest.time.clone(),
        parts: archive.manifest.parts.clone(),
    })
}

async fn restore_on(
    session: &Session,
    app: &str,
    archive: &Archive,
    listing: &Listing,
    progress: &ProgressFn,
) -> Result<()> {
    for part in &archive.manifest.parts {
        let on_node = listing.services.iter().find(|s| s.name == part.service);
        match on_node {
            Some(s) if s.kind == part.kind => {}
            Some(s) => {
                return Err(Error::usage(
                    format!(
                        "service `{}` of `{app}` is {} on node `{}`, but {} in the backup; nothing was changed",
                        part.service,
                        s.kind,
                        session.node(),
                        part.kind
                    ),
                    "restore a backup taken since the service's type changed",
                ));
            }
            None => {
                return Err(Error::usage(
                    format!(
                        "app `{app}` has no service `{}` on node `{}`; nothing was changed",
                        part.service,
                        session.node()
                    ),
                    "name it in app.toml's [services] and deploy with `skiff update`, then restore",
                ));
            }
        }
    }
    let what = format!("preparing the restore of `{app}`");
    skiff_node(session, &["restore", "begin", app], what).await?;
    for (part, offset) in archive.manifest.parts.iter().zip(&archive.offsets) {
        let mut file = tokio::fs::File::open(&archive.path)
            .await
            .map_err(|source| Error::Read {
                path: archive.path.clone(),
                source,
            })?;
        file.seek(SeekFrom::Start(*offset))
            .await
            .map_err(|source| Error::Read {
                path: archive.path.clone(),
                source,
            })?;
        let service = part.service.clone();
        let total = part.size;
        let progress = progress.clone();
        let reader = CountingReader {
            inner: file.take(part.size),
            bytes: 0,
            told: 0,
            on_progress: move |bytes| {
                progress(BackupProgress::Uploading {
                    service: service.clone(),
                    bytes,
                    total,
                })
            },
        };
        let size = part.size.to_string();
        let argv = [
            contract::SKIFF_NODE,
            "restore",
            "put",
            app,
            &part.service,
            &part.sha256,
            &size,
        ];
        let out = session
            .run_with_input(&session.as_root(&argv), reader)
            .await?;
        if !out.success() {
            let hint = if out.status == Some(NODE_PART_DAMAGED) {
                "the part was damaged on the way; nothing was changed: run the restore again"
            } else {
                "nothing was changed"
            };
            let what = format!("uploading `{}`", part.name);
            return Err(remote_failed(session, what, &out, hint.into()));
        }
    }
    progress(BackupProgress::Restoring);
    let mut argv = vec![contract::SKIFF_NODE, "restore", "apply", app];
    argv.extend(archive.manifest.parts.iter().map(|p| p.service.as_str()));
    let out = session.run(&session.as_root(&argv)).await?;
    if !out.success() {
        let hint = "the old data still serves and the partial copies were removed; see the \
                    output above";
        return Err(remote_failed(
            session,
            format!("restoring `{app}`"),
            &out,
            hint.into(),
        ));
    }
    Ok(())
}

/// An [`AsyncRead`] that counts what passes and says how far it got.
struct CountingReader<R, F> {
    inner: R,
    bytes: u64,
    told: u64,
    on_progress: F,
}

impl<R: AsyncRead + Unpin, F: Fn(u64) + Unpin> AsyncRead for CountingReader<R, F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            this.bytes += (buf.filled().len() - before) as u64;
            if this.bytes - this.told >= 1 << 20 || buf.filled().len() == before {
                this.told = this.bytes;
                (this.on_progress)(this.bytes);
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_carry_the_app_and_a_utc_stamp() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
        assert_eq!(
            archive_name("notes", t),
            "notes-20260528T202640Z.skiff-backup"
        );
    }

    /// An archive as `backup` lays it out: the parts, then the manifest.
    fn archive_bytes(data: &[u8]) -> Vec<u8> {
        let manifest = Manifest {
            format: FORMAT,
            app: "notes".into(),
            host: "notes.test".into(),
            node: "web1".into(),
            version: Some(1),
            time: "2026-05-28T20:26:40Z".into(),
            skiff: "0".into(),
            tools: vec![],
            parts: vec![Part {
                name: "db.pgdump".into(),
                service: "db".into(),
                kind: "postgresql".into(),
                sha256: hex::encode(Sha256::digest(data)),
                size: data.len() as u64,
            }],
        };
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in [("db.pgdump", data), (MANIFEST, json.as_slice())] {
            let header = tar_header(name, bytes.len() as u64, 0).unwrap();
            tar.append(&header, bytes).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn a_cut_or_altered_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let good = archive_bytes(&data);
        let quiet: ProgressFn = Arc::new(|_| {});
        let path = dir.path().join("good.skiff-backup");
        std::fs::write(&path, &good).unwrap();
        let archive = open_archive(&path).unwrap();
        assert_eq!(archive.manifest.parts[0].size, 5000);
        archive.verify(&quiet).unwrap();

        let mut altered = good.clone();
        altered[512 + 100] ^= 1;
        std::fs::write(&path, &altered).unwrap();
        let err = open_archive(&path).unwrap().verify(&quiet).unwrap_err();
        assert!(err.to_string().contains("sha256 of `db.pgdump`"), "{err}");

        for cut in [good.len() / 2, 512 + 3000, 100] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let err = open_archive(&path)
                .and_then(|a| a.verify(&quiet))
                .unwrap_err();
            assert!(
                err.to_string().contains("not a complete skiff backup"),
                "{cut}: {err}"
            );
            assert_eq!(err.exit_code(), 1);
        }
    }

    #[test]
    fn listing_is_parsed() {
        let l = parse_listing(
            "service db postgresql\nservice uploads files\ntool pg_dump (PostgreSQL) 15.8\n",
        );
        assert_eq!(l.services.len(), 2);
        assert_eq!(l.services[1].kind, "files");
        assert_eq!(l.tools, ["pg_dump (PostgreSQL) 15.8"]);
    }
}
