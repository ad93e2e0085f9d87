//! The data stream: new and small changed entries, straight from the local tree.
//!
//! Format (after the control archive on the upload's stdin): sections, each a line
//! `KIND LENGTH` then LENGTH bytes, ending with `e 0`:
//! - `t`: a plain tar archive, unpacked with `head -c LENGTH | tar -x`;
//! - `z`: a gzip tar archive, unpacked with `head -c LENGTH | tar -xz`;
//! - `e`: the end. Without it the stream was cut short (skiff killed, link lost) and the
//!   node publishes nothing: GNU tar alone would accept an archive cut at an entry
//!   boundary, so the explicit end is what proves the upload complete.
//!
//! Sections: first every folder and symlink; then files, compressed in chunks of about
//! [`CHUNK`] bytes built in memory (a compressible file of [`BIG`] bytes or more alone,
//! spooled to a temp file), or plain in groups of up to [`PLAIN_GROUP`] bytes streamed
//! straight from the files (a plain tar's length is known in advance). Files whose first
//! 64 KiB do not compress always go plain.
//!
//! Compression adapts to the link: measured on this project's 2-core machine, deflate here
//! and GNU gzip's inflate on the node (about 150 MB/s) made a LAN cold copy much slower
//! than plain tar, while on a slow link compression is what makes it fast. A writer
//! thread feeds the pipe to SSH and measures time blocked writing (waiting for the link)
//! and time idle (waiting for the producer). The stream starts compressed. When the writer
//! mostly waits for the producer and enough is left to send, the next [`PROBE`] bytes go
//! plain and the link's speed is measured on their second half (the first half fills the
//! buffers between here and the node). If plain tar moves at least as fast as compression
//! here (measured, at most [`FAST_LINK`]), the rest goes plain, re-checked as it goes;
//! else compressed. Small transfers never probe.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::ProgressFn;
use super::manifest::{Kind, Manifest, local_path};
use super::scan::{changed_during_scan, stamp_of};
use crate::error::{Error, Result};

/// Content bytes gathered into one compressed section (built in memory).
pub const CHUNK: u64 = 8 * 1024 * 1024;

/// Content bytes gathered into one plain section (streamed, so it may be big: fewer
/// `tar` processes on the node).
pub const PLAIN_GROUP: u64 = 64 * 1024 * 1024;

/// Compressible files at least this big are compressed alone, into a temp file.
pub const BIG: u64 = 8 * 1024 * 1024;

/// Transfers with more content than this compress at gzip level 1 (speed), smaller ones
/// at level 6 (size), where the CPU time is negligible either way.
const FAST_COMPRESSION_ABOVE: u64 = 8 * 1024 * 1024;

/// Chunks smaller than this go plain: compressing them saves little and costs the node a
/// gzip process.
const SMALL_CHUNK: usize = 16 * 1024;

/// Files at least this big are sampled for compressibility.
const SAMPLE_ABOVE: u64 = 128 * 1024;

/// How much of a file is sampled.
const SAMPLE_LEN: usize = 64 * 1024;

/// A link that moves plain tar faster than this (bytes per second) gets no compression:
/// above it, deflate here and GNU gzip's inflate on the node cost more time than the
/// bytes they save.
pub const FAST_LINK: f64 = 150e6;

/// Content bytes between two looks at the link.
const ADAPT_EVERY: u64 = 8 * 1024 * 1024;

/// Content bytes sent plain to measure the link.
pub const PROBE: u64 = 16 * 1024 * 1024;

/// A probe is only worth it with at least this much content left to send.
const PROBE_IF_LEFT: u64 = 32 * 1024 * 1024;

/// Size of the pieces handed to the writer thread.
const PIECE: usize = 1024 * 1024;

/// Pieces (or whole chunks) queued between the producer and the writer thread.
const QUEUE: usize = 4;

/// What was sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DataStats {
    /// File content bytes read into the stream (before compression).
    pub bytes: u64,
    /// Entries sent.
    pub entries: u64,
    /// Sections sent compressed and plain.
    pub sections: (u64, u64),
}

/// The data stream's content and how to report on it.
pub struct DataJob {
    /// The scanned local tree.
    pub manifest: Arc<Manifest>,
    /// Entries to send, parents before children.
    pub paths: Vec<String>,
    /// Bytes already counted in progress (deltas) before this stream starts.
    pub progress_base: u64,
    /// Files already counted in progress before this stream starts.
    pub files_base: u64,
    /// Totals for progress: (bytes, files).
    pub totals: (u64, u64),
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl DataJob {
    /// A job sending `paths` of `manifest`.
    pub fn new(manifest: Arc<Manifest>, paths: Vec<String>) -> DataJob {
        DataJob {
            manifest,
            paths,
            progress_base: 0,
            files_base: 0,
            totals: (0, 0),
            progress: None,
        }
    }

    /// Total content bytes of the files to send.
    pub fn content_bytes(&self) -> u64 {
        self.paths
            .iter()
            .filter_map(|p| self.manifest.entries.get(p))
            .filter(|e| e.is_file())
            .map(|e| e.size)
            .sum()
    }

    /// Writes the sections into `out`. On an error the stream ends without its `e`
    /// section, so the node publishes nothing.
    pub fn write_to<W: Write + Send>(self, out: W) -> Result<DataStats> {
        let link = Link::default();
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::scope(|s| {
            let writer = s.spawn(|| write_pieces(rx, out, &link));
            let mut producer = Producer {
                job: &self,
                root: self
                    .manifest
                    .root
                    .clone()
                    .ok_or_else(|| Error::failed("the manifest was not made by scanning"))?,
                tx,
                link: &link,
                mode: Mode::Compress,
                mark: (link.snapshot(), 0),
                left: self.content_bytes(),
                compression: (0, 0),
                level: if self.content_bytes() > FAST_COMPRESSION_ABOVE {
                    1
                } else {
                    6
                },
                stats: DataStats::default(),
            };
            let produced = producer.run();
            let stats = producer.stats;
            drop(producer);
            let written = writer.join().expect("the writer thread does not panic");
            match (produced, written) {
                (Ok(()), Ok(())) => Ok(stats),
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(Error::failed(format!(
                    "the node stopped reading the upload: {e}"
                ))),
            }
        })
    }
}

/// What the writer thread saw: bytes written, time blocked writing (the link was slower
/// than the producer) and time idle (the producer was slower than the link).
#[derive(Default)]
struct Link {
    bytes: AtomicU64,
    write_ns: AtomicU64,
    idle_ns: AtomicU64,
}

impl Link {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.write_ns.load(Ordering::Relaxed),
            self.idle_ns.load(Ordering::Relaxed),
        )
    }
}

fn write_pieces<W: Write>(rx: Receiver<Vec<u8>>, mut out: W, link: &Link) -> io::Result<()> {
    loop {
        let t = Instant::now();
        let Ok(piece) = rx.recv() else {
            break;
        };
        link.idle_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let t = Instant::now();
        out.write_all(&piece)?;
        link.write_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        link.bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
    }
    out.flush()
}

/// Builds the sections and hands them to the writer thread.
struct Producer<'a> {
    job: &'a DataJob,
    root: PathBuf,
    tx: SyncSender<Vec<u8>>,
    link: &'a Link,
    mode: Mode,
    /// Link snapshot and content bytes at the last look.
    mark: ((u64, u64, u64), u64),
    /// Content bytes left to send.
    left: u64,
    /// Content bytes compressed here and the nanoseconds it took.
    compression: (u64, u64),
    level: u32,
    stats: DataStats,
}

/// Whether chunks are compressed, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Compressed (the start, and whenever the link is slow).
    Compress,
    /// Plain, measuring the link; `half` is the snapshot halfway through.
    Probe { half: Option<(u64, u64, u64)> },
    /// Plain: the link is fast.
    Plain,
}

impl Producer<'_> {
    fn run(&mut self) -> Result<()> {
        let m = &self.job.manifest;
        let mut others = Vec::new();
        let mut files = Vec::new();
        for rel in &self.job.paths {
            match m.entries.get(rel) {
                Some(e) if e.is_file() => files.push((rel.clone(), e.size)),
                Some(_) => others.push(rel.clone()),
                None => return Err(Error::failed(format!("`{rel}` is not in the manifest"))),
            }
        }
        // Folders and symlinks first, so every file's folder exists.
        if !others.is_empty() {
            self.chunk(&others, false)?;
        }
        let mut files = files.into_iter().peekable();
        // Incompressible files met while compressing, sent plain in groups.
        let mut pending: (Vec<String>, u64) = (Vec::new(), 0);
        while files.peek().is_some() {
            self.adapt();
            if self.mode == Mode::Compress {
                let mut group = Vec::new();
                let mut bytes = 0;
                while bytes < CHUNK {
                    let Some((rel, size)) = files.next() else {
                        break;
                    };
                    if size >= SAMPLE_ABOVE && !self.compressible(&rel) {
                        pending.0.push(rel);
                        pending.1 += size;
                    } else if size >= BIG {
                        self.spooled(&rel)?;
                    } else {
                        group.push(rel);
                        bytes += size;
                    }
                }
                if !group.is_empty() {
                    self.chunk(&group, true)?;
                }
                if pending.1 >= PLAIN_GROUP {
                    let (group, _) = std::mem::take(&mut pending);
                    self.plain(&group)?;
                }
            } else {
                let limit = if matches!(self.mode, Mode::Probe { .. }) {
                    PROBE / 2
                } else {
                    PLAIN_GROUP
                };
                let (mut group, mut bytes) = std::mem::take(&mut pending);
                while bytes < limit {
                    let Some((rel, size)) = files.next() else {
                        break;
                    };
                    group.push(rel);
                    bytes += size;
                }
                self.plain(&group)?;
            }
        }
        if !pending.0.is_empty() {
            self.plain(&pending.0)?;
        }
        self.send(b"e 0\n".to_vec())
    }

    fn send(&self, piece: Vec<u8>) -> Result<()> {
        self.tx
            .send(piece)
            .map_err(|_| Error::failed("the node stopped reading the upload"))
    }

    fn section(&mut self, kind: char, body: Vec<u8>) -> Result<()> {
        self.send(format!("{kind} {}\n", body.len()).into_bytes())?;
        self.send(body)?;
        if kind == 'z' {
            self.stats.sections.0 += 1;
        } else {
            self.stats.sections.1 += 1;
        }
        Ok(())
    }

    /// Whether the start of a file compresses (a 64 KiB sample, at level 1).
    fn compressible(&self, rel: &str) -> bool {
        let Ok(f) = fs::File::open(local_path(&self.root, rel)) else {
            return true;
        };
        let mut sample = vec![0u8; SAMPLE_LEN];
        let Ok(n) = f.read_at(&mut sample, 0) else {
            return true;
        };
        let mut c = flate2::Compress::new(Compression::fast(), false);
        let mut out = Vec::with_capacity(n + 1024);
        if c.compress_vec(&sample[..n], &mut out, flate2::FlushCompress::Finish)
            .is_err()
        {
            return true;
        }
        out.len() * 10 < n * 9
    }

    /// Looks at the link since the last look and decides whether to compress.
    fn adapt(&mut self) {
        let now = self.link.snapshot();
        let input = self.stats.bytes - self.mark.1;
        let since = |then: (u64, u64, u64)| (now.0 - then.0, now.1 - then.1, now.2 - then.2);
        let rate =
            |(bytes, write_ns, _): (u64, u64, u64)| bytes as f64 / (write_ns.max(1) as f64 / 1e9);
        match self.mode {
            Mode::Compress if input >= ADAPT_EVERY => {
                let (_, write_ns, idle_ns) = since(self.mark.0);
                // The link waited for the compressor: would it take plain tar faster?
                if idle_ns > write_ns && self.left >= PROBE_IF_LEFT {
                    self.mode = Mode::Probe { half: None };
                }
            }
            Mode::Probe { half: None } if input >= PROBE / 2 => {
                self.mode = Mode::Probe { half: Some(now) };
                return;
            }
            Mode::Probe { half: Some(half) } if input >= PROBE => {
                self.mode = if rate(since(half)) >= self.threshold() {
                    Mode::Plain
                } else {
                    Mode::Compress
                };
            }
            Mode::Plain if input >= ADAPT_EVERY => {
                if rate(since(self.mark.0)) < self.threshold() / 1.5 {
                    self.mode = Mode::Compress;
                }
            }
            _ => return,
        }
        self.mark = (now, self.stats.bytes);
    }

    /// One section of small entries, compressed when it pays.
    fn chunk(&mut self, paths: &[String], compressible: bool) -> Result<()> {
        self.adapt();
        let mut b = tar::Builder::new(Vec::with_capacity(CHUNK as usize + 64 * 1024));
        for rel in paths {
            self.append(&mut b, rel)?;
        }
        let raw = b.into_inner().map_err(stream_err)?;
        // A small chunk is not worth a gzip process on the node.
        if compressible && self.mode == Mode::Compress && raw.len() >= SMALL_CHUNK {
            let t = Instant::now();
            let mut gz = GzEncoder::new(
                Vec::with_capacity(raw.len() / 3),
                Compression::new(self.level),
            );
            gz.write_all(&raw).map_err(stream_err)?;
            let gz = gz.finish().map_err(stream_err)?;
            self.compressed(raw.len() as u64, t.elapsed().as_nanos() as u64);
            if gz.len() * 10 < raw.len() * 9 {
                return self.section('z', gz);
            }
        }
        self.section('t', raw)
    }

    /// A big compressible file, compressed into a temp file first (a section's length
    /// must be known before it is sent).
    fn spooled(&mut self, rel: &str) -> Result<()> {
        let mut spool = tempfile::tempfile().map_err(stream_err)?;
        let t = Instant::now();
        let before = self.stats.bytes;
        {
            let mut b = tar::Builder::new(GzEncoder::new(
                io::BufWriter::with_capacity(PIECE, &mut spool),
                Compression::new(self.level),
            ));
            self.append(&mut b, rel)?;
            let gz = b.into_inner().map_err(stream_err)?;
            gz.finish()
                .map_err(stream_err)?
                .flush()
                .map_err(stream_err)?;
        }
        self.compressed(self.stats.bytes - before, t.elapsed().as_nanos() as u64);
        let len = spool.stream_position().map_err(stream_err)?;
        spool.rewind().map_err(stream_err)?;
        self.send(format!("z {len}\n").into_bytes())?;
        let mut left = len;
        while left > 0 {
            let mut piece = vec![0u8; PIECE.min(left as usize)];
            spool.read_exact(&mut piece).map_err(stream_err)?;
            left -= piece.len() as u64;
            self.send(piece)?;
        }
        self.stats.sections.0 += 1;
        Ok(())
    }

    /// Files streamed as one plain section, read while they are sent (its length is known
    /// in advance: the tar writer's headers plus the padded contents).
    fn plain(&mut self, paths: &[String]) -> Result<()> {
        let len = plain_tar_len(&self.job.manifest, paths)?;
        self.send(format!("t {len}\n").into_bytes())?;
        let mut out = Pieces {
            tx: Some(self.tx.clone()),
            buf: Vec::with_capacity(PIECE),
            count: 0,
        };
        {
            let mut b = tar::Builder::new(&mut out);
            for rel in paths {
                self.append(&mut b, rel)?;
            }
            b.into_inner().map_err(stream_err)?;
        }
        out.flush().map_err(stream_err)?;
        if out.count != len {
            return Err(Error::failed(format!(
                "a tar section of {} bytes went out where {len} were announced",
                out.count
            )));
        }
        self.stats.sections.1 += 1;
        Ok(())
    }

    /// Records the speed of compression here (content bytes per second).
    fn compressed(&mut self, bytes: u64, ns: u64) {
        self.compression.0 += bytes;
        self.compression.1 += ns;
    }

    /// Plain tar must move at least this fast (bytes per second) to beat compression: the
    /// speed of compression measured here, at most [`FAST_LINK`] (GNU gzip's inflate on
    /// the node is not faster).
    fn threshold(&self) -> f64 {
        let (bytes, ns) = self.compression;
        if bytes < ADAPT_EVERY || ns == 0 {
            return FAST_LINK;
        }
        (bytes as f64 / (ns as f64 / 1e9)).min(FAST_LINK)
    }

    /// Appends one entry of the manifest to a tar builder, reading files with checks.
    fn append<W: Write>(&mut self, b: &mut tar::Builder<W>, rel: &str) -> Result<()> {
        let entry = &self.job.manifest.entries[rel];
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(entry.mode());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match &entry.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mtime(now);
                b.append_data(&mut h, rel, io::empty())
                    .map_err(|e| write_err(rel, e))?;
            }
            Kind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mtime(now);
                b.append_link(&mut h, rel, target)
                    .map_err(|e| write_err(rel, e))?;
            }
            Kind::File { .. } => self.append_file(b, &mut h, rel, entry.size)?,
        }
        self.stats.entries += 1;
        Ok(())
    }

    fn append_file<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        h: &mut tar::Header,
        rel: &str,
        size: u64,
    ) -> Result<()> {
        let path = local_path(&self.root, rel);
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let f = fs::File::open(&path).map_err(read_err)?;
        let meta = f.metadata().map_err(read_err)?;
        let scanned = self.job.manifest.stamps.get(rel);
        if meta.len() != size || scanned.is_some_and(|s| *s != stamp_of(&meta)) {
            return Err(changed_during_scan(&path));
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mtime(meta.mtime().max(0) as u64);
        let job = self.job;
        let mut read = 0u64;
        let reader = Progressing {
            inner: f.take(size),
            done: &mut read,
            base: job.progress_base + self.stats.bytes,
            files: job.files_base + self.stats.entries,
            totals: job.totals,
            since_report: 0,
            progress: job.progress.as_ref(),
        };
        b.append_data(h, rel, reader)
            .map_err(|e| write_err(rel, e))?;
        if read != size {
            return Err(changed_during_scan(&path));
        }
        self.stats.bytes += size;
        self.left = self.left.saturating_sub(size);
        if let Some(p) = &job.progress {
            p(super::Progress {
                bytes_done: job.progress_base + self.stats.bytes,
                bytes_total: job.totals.0,
                files_done: job.files_base + self.stats.entries + 1,
                files_total: job.totals.1,
            });
        }
        Ok(())
    }
}

/// The exact length of a plain tar of the files `paths`: the tar writer's own headers (a
/// dry run with empty files) plus the padded contents.
fn plain_tar_len(manifest: &Manifest, paths: &[String]) -> Result<u64> {
    let mut b = tar::Builder::new(Pieces::counter());
    let mut content = 0;
    for rel in paths {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        b.append_data(&mut h, rel, io::empty())
            .map_err(|e| write_err(rel, e))?;
        content += manifest.entries[rel].size.div_ceil(512) * 512;
    }
    let headers = b.into_inner().map_err(stream_err)?.count;
    Ok(headers + content)
}

/// A writer that hands [`PIECE`]-sized pieces to the writer thread (or, as a counter,
/// only counts).
struct Pieces {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    count: u64,
}

impl Pieces {
    fn counter() -> Pieces {
        Pieces {
            tx: None,
            buf: Vec::new(),
            count: 0,
        }
    }
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.count += data.len() as u64;
        if self.tx.is_none() {
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        tx.send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the writer stopped"))
    }
}

/// Reports progress while a file is read into the stream.
struct Progressing<'a, R> {
    inner: R,
    done: &'a mut u64,
    base: u64,
    files: u64,
    totals: (u64, u64),
    since_report: u64,
    progress: Option<&'a ProgressFn>,
}

impl<R: Read> Read for Progressing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.done += n as u64;
        self.since_report += n as u64;
        if self.since_report >= 1 << 20 {
            self.since_report = 0;
            if let Some(p) = self.progress {
                p(super::Progress {
                    bytes_done: self.base + *self.done,
                    bytes_total: self.totals.0,
                    files_done: self.files,
                    files_total: self.totals.1,
                });
            }
        }
        Ok(n)
    }
}

fn stream_err(e: io::Error) -> Error {
    Error::failed(format!("could not build the upload stream: {e}"))
}

fn write_err(rel: &str, e: io::Error) -> Error {
    Error::failed(format!("could not send `{rel}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::scan::{ScanOptions, scan};
    use std::os::unix::fs::symlink;
    use std::process::{Command, Stdio};

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Splits a stream into its sections: (kind, body); panics on a malformed stream.
    fn sections(mut s: &[u8]) -> Vec<(char, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let nl = s.iter().position(|b| *b == b'\n').expect("a header line");
            let head = std::str::from_utf8(&s[..nl]).unwrap();
            let (kind, len) = head.split_once(' ').unwrap();
            let len: usize = len.parse().unwrap();
            let kind = kind.chars().next().unwrap();
            s = &s[nl + 1..];
            if kind == 'e' {
                assert!(s.is_empty(), "bytes after the end");
                return out;
            }
            out.push((kind, s[..len].to_vec()));
            s = &s[len..];
        }
    }

    /// What the node does with a stream (the loop of node.sh), into `dir`.
    fn unpack(stream: &[u8], dir: &std::path::Path) -> std::process::ExitStatus {
        let script = r#"
            set -eu
            while :; do
              read -r kind len || exit 7
              case $kind in
                t) head -c "$len" | tar -xpf - -C "$1" ;;
                z) head -c "$len" | tar -xzpf - -C "$1" ;;
                e) break ;;
                *) exit 8 ;;
              esac
            done"#;
        let mut sh = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = sh.stdin.take().unwrap().write_all(stream);
        sh.wait().unwrap()
    }

    #[test]
    fn sections_unpack_to_the_same_tree_and_random_files_stream_plain() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("app");
        let long = "d".repeat(120);
        fs::create_dir_all(r.join(&long)).unwrap();
        fs::write(r.join(&long).join("random.bin"), noise(600_001, 1)).unwrap();
        fs::write(r.join("big-random.bin"), noise(BIG as usize + 3, 2)).unwrap();
        fs::write(r.join("text.txt"), "hello world ".repeat(50_000)).unwrap();
        fs::create_dir(r.join("empty")).unwrap();
        symlink("text.txt", r.join("link")).unwrap();
        fs::write(r.join("run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(
            r.join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let m = Arc::new(scan(&r, &ScanOptions::default()).unwrap());
        let job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        let mut out = Vec::new();
        let stats = job.write_to(&mut out).unwrap();
        assert_eq!(stats.entries as usize, m.entries.len());
        let secs = sections(&out);
        // Folders and links; the text (and the small executable) compressed (too little
        // data to probe the link); both random files, judged from a sample, plain and
        // streamed in one section.
        let kinds: String = secs.iter().map(|s| s.0).collect();
        assert_eq!(kinds, "tzt", "{kinds}");
        assert!(secs[1].1.len() < 10_000);
        assert!(secs[2].1.len() > BIG as usize + 600_000);
        let dest = t.path().join("out");
        fs::create_dir(&dest).unwrap();
        assert!(unpack(&out, &dest).success());
        let back = scan(&dest, &ScanOptions::default()).unwrap();
        assert_eq!(back.to_text(), m.to_text());
    }

    #[test]
    fn a_big_compressible_file_is_compressed_alone_through_a_temp_file() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("app");
        fs::create_dir(&r).unwrap();
        let line = "a big log line that compresses well\n";
        fs::write(
            r.join("big.log"),
            line.repeat(BIG as usize / line.len() + 10),
        )
        .unwrap();
        let m = Arc::new(scan(&r, &ScanOptions::default()).unwrap());
        let job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        let mut out = Vec::new();
        let stats = job.write_to(&mut out).unwrap();
        assert_eq!(stats.sections, (1, 0));
        assert!(out.len() < 200_000, "{}", out.len());
        let dest = t.path().join("out");
        fs::create_dir(&dest).unwrap();
        assert!(unpack(&out, &dest).success());
        let back = scan(&dest, &ScanOptions::default()).unwrap();
        assert_eq!(back.to_text(), m.to_text());
    }

    #[test]
    fn a_cut_stream_is_refused_by_the_node_loop() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("app");
        fs::create_dir(&r).unwrap();
        for i in 0..20 {
            fs::write(r.join(format!("f{i}")), noise(10_000, i)).unwrap();
        }
        let m = Arc::new(scan(&r, &ScanOptions::default()).unwrap());
        let job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        let mut out = Vec::new();
        job.write_to(&mut out).unwrap();
        // Cut anywhere (even right after a whole section): never accepted.
        for cut in [out.len() - 4, out.len() - 100, out.len() / 2, 5] {
            let dest = t.path().join(format!("out{cut}"));
            fs::create_dir(&dest).unwrap();
            assert!(!unpack(&out[..cut], &dest).success(), "cut at {cut}");
        }
    }

    #[test]
    fn a_file_changed_after_the_scan_ends_the_stream_without_its_end() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a"), vec![b'a'; 100_000]).unwrap();
        fs::write(r.join("b"), b"short").unwrap();
        let m = Arc::new(scan(r, &ScanOptions::default()).unwrap());
        fs::write(r.join("b"), b"longer now").unwrap();
        let job = DataJob::new(m, vec!["a".into(), "b".into()]);
        let mut out = Vec::new();
        let err = job.write_to(&mut out).unwrap_err();
        assert!(err.to_string().contains("changed while skiff"), "{err}");
        assert!(!out.ends_with(b"e 0\n"));
    }

    #[test]
    fn compression_stops_on_a_link_faster_than_compression() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // 60 MB of compressible text into a sink that never blocks: after the probe,
        // chunks go plain.
        for i in 0..60 {
            let line = format!("line {i} of some compressible text\n");
            fs::write(
                r.join(format!("f{i:02}.txt")),
                line.repeat(1_000_000 / line.len()),
            )
            .unwrap();
        }
        let m = Arc::new(scan(r, &ScanOptions::default()).unwrap());
        let job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        let stats = job.write_to(io::sink()).unwrap();
        assert!(stats.sections.0 >= 1, "{stats:?}");
        assert!(stats.sections.1 >= 1, "{stats:?}");

        // A slow sink (about 20 MB/s): everything stays compressed.
        struct Slow;
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_micros(b.len() as u64 / 20));
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        let stats = job.write_to(Slow).unwrap();
        // At most the probe went plain; everything after it compressed.
        assert!(stats.sections.1 <= 2, "{stats:?}");
        assert!(stats.sections.0 >= 2, "{stats:?}");
    }
}
