//! The bytes a sync sends up: a small control archive, then one data archive.
//!
//! Both are gzip-compressed tar streams. The control archive (built in memory, its length
//! passed to the node script so `head -c` can split stdin) holds the lists of paths to
//! remove and chmod, the deltas, and the new manifest (or its delta against the base's).
//! The data archive streams new and small changed entries straight from the local tree,
//! made by a thread writing into a pipe while SSH reads the other end.
//!
//! The data comes in two parts: first a plain tar of the files whose first 64 KiB do not
//! compress (media, archives, random data), its exact length computed beforehand and
//! passed to the node (`head -c`); then the gzip tar of everything else. Compressing
//! incompressible data costs CPU on both ends for nothing: measured on a 2-core machine,
//! GNU gzip's inflate on the node was the bottleneck of a cold copy.
//!
//! A data archive that fails or is cut half way (a file changed during the upload, skiff
//! killed) must never look complete on the node. GNU tar accepts an archive cut at an
//! entry boundary, so the last entry of the gzip part is an end marker with a per-upload
//! random name that the node checks for (and removes) before it publishes anything. On an
//! error here the pipe writer is also poisoned before the encoders are dropped, so no
//! trailer is written after the failure.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::ProgressFn;
use super::manifest::{Kind, Manifest, local_path};
use super::scan::{changed_during_scan, stamp_of};
use crate::error::{Error, Result};

/// Files bigger than this in total are compressed at gzip level 1 (speed); smaller
/// transfers at level 6 (size), where the CPU time is negligible either way.
const FAST_COMPRESSION_ABOVE: u64 = 8 * 1024 * 1024;

/// Files at least this big are sampled for compressibility.
const SAMPLE_ABOVE: u64 = 128 * 1024;

/// How much of a file is sampled.
const SAMPLE_LEN: usize = 64 * 1024;

/// One delta for the control archive.
#[derive(Debug, Clone)]
pub struct DeltaItem {
    /// Manifest path of the file.
    pub path: String,
    /// Mode of the result (0o644 or 0o755).
    pub mode: u32,
    /// Expected sha256 of the patched file.
    pub sha256: [u8; 32],
    /// The librsync delta.
    pub delta: Vec<u8>,
}

/// What the control archive tells the node.
#[derive(Debug, Default)]
pub struct Control {
    /// Paths removed (`rm -rf`) from the clone before the data archive is unpacked.
    pub remove: Vec<String>,
    /// Paths whose exec bit changes, with the new mode.
    pub chmod: Vec<(String, u32)>,
    /// Deltas for large changed files.
    pub deltas: Vec<DeltaItem>,
    /// The new manifest: whole (no base) or as a delta against the base's manifest.
    pub manifest: ManifestPayload,
}

/// How the new manifest travels.
#[derive(Debug, Default)]
pub enum ManifestPayload {
    /// No manifest (only for tests).
    #[default]
    None,
    /// The whole text.
    Whole(Vec<u8>),
    /// An rdiff delta against the base release's stored manifest.
    Delta(Vec<u8>),
}

impl Control {
    /// The gzip-compressed tar of the control files.
    pub fn archive(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::new(6)));
        let nul_list = |paths: &mut dyn Iterator<Item = &String>| -> Vec<u8> {
            let mut out = Vec::new();
            for p in paths {
                out.extend_from_slice(p.as_bytes());
                out.push(0);
            }
            out
        };
        if !self.remove.is_empty() {
            add(&mut b, "rm", &nul_list(&mut self.remove.iter()))?;
        }
        for mode in [0o644, 0o755] {
            let list = nul_list(
                &mut self
                    .chmod
                    .iter()
                    .filter(|(_, m)| *m == mode)
                    .map(|(p, _)| p),
            );
            if !list.is_empty() {
                add(&mut b, &format!("chmod{mode:o}"), &list)?;
            }
        }
        if !self.deltas.is_empty() {
            let mut index = String::new();
            for (i, d) in self.deltas.iter().enumerate() {
                index.push_str(&format!("{i} {:o} {}\n", d.mode, hex::encode(d.sha256)));
                add(&mut b, &format!("d{i}"), &d.delta)?;
                add(&mut b, &format!("d{i}.p"), d.path.as_bytes())?;
            }
            add(&mut b, "deltas", index.as_bytes())?;
        }
        match &self.manifest {
            ManifestPayload::None => {}
            ManifestPayload::Whole(text) => add(&mut b, "manifest", text)?,
            ManifestPayload::Delta(delta) => add(&mut b, "manifest.delta", delta)?,
        }
        let gz = b.into_inner().map_err(stream_err)?;
        gz.finish().map_err(stream_err)
    }
}

fn add<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    b.append_data(&mut h, name, data).map_err(stream_err)
}

fn stream_err(e: io::Error) -> Error {
    Error::failed(format!("could not build the sync stream: {e}"))
}

/// Whether the start of a file barely compresses (then it goes in the plain part).
fn looks_incompressible(file: &fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut sample = vec![0u8; SAMPLE_LEN];
    let Ok(n) = file.read_at(&mut sample, 0) else {
        return false;
    };
    let mut c = flate2::Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(n + 1024);
    if c.compress_vec(&sample[..n], &mut out, flate2::FlushCompress::Finish)
        .is_err()
    {
        return false;
    }
    out.len() * 10 >= n * 9
}

/// A random name for the end marker of one upload.
pub fn end_marker_name() -> String {
    let mut seed = [0u8; 16];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        seed[..16].copy_from_slice(&(nanos ^ std::process::id() as u128).to_le_bytes());
    }
    format!(".skiff-end-{}", hex::encode(seed))
}

/// Where the data archive producer is: bytes of file content read and entries written.
#[derive(Debug, Default, Clone, Copy)]
pub struct DataStats {
    /// File content bytes put in the archive (before compression).
    pub bytes: u64,
    /// Entries put in the archive.
    pub entries: u64,
}

/// A writer that fails every write once poisoned, so encoders dropped after an error
/// cannot finish the stream with valid trailers.
struct Poisonable<W> {
    inner: W,
    poisoned: Arc<AtomicBool>,
}

impl<W: Write> Write for Poisonable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(io::Error::other("stream aborted"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(io::Error::other("stream aborted"));
        }
        self.inner.flush()
    }
}

/// Counts bytes written (and passes them on when it wraps a writer).
struct Counter<W = ()>(W);

impl Counter<()> {
    fn wrap<W: Write>(inner: W) -> CountingWriter<W> {
        CountingWriter { inner, count: 0 }
    }
}

impl Write for Counter<u64> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that counts what passes through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reports progress while a file is read into the archive.
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

/// The data archive's content and how to report on it.
pub struct DataJob {
    /// The scanned local tree.
    pub manifest: Arc<Manifest>,
    /// Entries to put in the archive, parents before children.
    pub paths: Vec<String>,
    /// Files (taken from `paths` by [`DataJob::split_incompressible`]) sent in the plain
    /// part, and its exact length in bytes.
    pub plain: (Vec<String>, u64),
    /// Bytes already counted in progress (deltas) before this archive starts.
    pub progress_base: u64,
    /// Files already counted in progress before this archive starts.
    pub files_base: u64,
    /// Totals for progress: (bytes, files).
    pub totals: (u64, u64),
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Name of the end marker entry written last (see the module docs).
    pub end_marker: String,
}

impl DataJob {
    /// A job for `paths` of `manifest`, all in the gzip part for now.
    pub fn new(manifest: Arc<Manifest>, paths: Vec<String>) -> DataJob {
        DataJob {
            manifest,
            paths,
            plain: (Vec::new(), 0),
            progress_base: 0,
            files_base: 0,
            totals: (0, 0),
            progress: None,
            end_marker: end_marker_name(),
        }
    }

    /// Total content bytes of the files in the archive.
    pub fn content_bytes(&self) -> u64 {
        self.paths
            .iter()
            .chain(&self.plain.0)
            .filter_map(|p| self.manifest.entries.get(p))
            .filter(|e| e.is_file())
            .map(|e| e.size)
            .sum()
    }

    /// Moves big files whose start does not compress to the plain part and computes its
    /// exact length (a dry run of the tar writer for the headers, plus padded contents).
    pub fn split_incompressible(&mut self) -> Result<()> {
        let root = self.root()?;
        let mut plain = Vec::new();
        let mut rest = Vec::new();
        for rel in std::mem::take(&mut self.paths) {
            let entry = &self.manifest.entries[&rel];
            let incompressible = entry.is_file()
                && entry.size >= SAMPLE_ABOVE
                && fs::File::open(local_path(&root, &rel))
                    .map(|f| looks_incompressible(&f))
                    .unwrap_or(false);
            if incompressible {
                plain.push(rel);
            } else {
                rest.push(rel);
            }
        }
        self.paths = rest;
        if plain.is_empty() {
            return Ok(());
        }
        let mut headers = tar::Builder::new(Counter(0u64));
        let mut content = 0u64;
        for rel in &plain {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            headers
                .append_data(&mut h, rel, io::empty())
                .map_err(|e| write_err(rel, e))?;
            content += self.manifest.entries[rel].size.div_ceil(512) * 512;
        }
        let headers = headers.into_inner().map_err(stream_err)?.0;
        self.plain = (plain, headers + content);
        Ok(())
    }

    fn root(&self) -> Result<PathBuf> {
        self.manifest
            .root
            .clone()
            .ok_or_else(|| Error::failed("the manifest was not made by scanning a folder"))
    }

    /// Writes the plain part, then the gzip part, into `out`; on error the stream is left
    /// truncated (see the module docs).
    pub fn write_to<W: Write>(self, out: W) -> Result<DataStats> {
        let poisoned = Arc::new(AtomicBool::new(false));
        let writer = Poisonable {
            inner: out,
            poisoned: poisoned.clone(),
        };
        let mut buffered = io::BufWriter::with_capacity(256 * 1024, writer);
        let mut stats = DataStats::default();
        let result = self.write_parts(&mut buffered, &mut stats);
        match result.and_then(|()| buffered.flush().map_err(stream_err)) {
            Ok(()) => Ok(stats),
            Err(err) => {
                poisoned.store(true, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    fn write_parts<W: Write>(&self, out: &mut W, stats: &mut DataStats) -> Result<()> {
        if !self.plain.0.is_empty() {
            let mut b = tar::Builder::new(Counter::wrap(&mut *out));
            self.fill(&mut b, &self.plain.0, stats)?;
            let written = b.into_inner().map_err(stream_err)?.count;
            if written != self.plain.1 {
                return Err(Error::failed(format!(
                    "the plain part of the sync stream has {written} bytes, {} were announced",
                    self.plain.1
                )));
            }
        }
        let level = if self.content_bytes() > FAST_COMPRESSION_ABOVE {
            1
        } else {
            6
        };
        let mut b = tar::Builder::new(GzEncoder::new(&mut *out, Compression::new(level)));
        self.fill(&mut b, &self.paths, stats)?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(0);
        b.append_data(&mut h, &self.end_marker, io::empty())
            .map_err(|e| write_err(&self.end_marker, e))?;
        b.into_inner()
            .map_err(stream_err)?
            .finish()
            .map_err(stream_err)?;
        Ok(())
    }

    fn fill<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        paths: &[String],
        stats: &mut DataStats,
    ) -> Result<()> {
        let root = self.root()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for rel in paths {
            let entry = self
                .manifest
                .entries
                .get(rel)
                .ok_or_else(|| Error::failed(format!("`{rel}` is not in the manifest")))?;
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mode(entry.mode());
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
                Kind::File { .. } => {
                    let path = local_path(&root, rel);
                    self.append_file(b, &mut h, rel, path, entry.size, stats)?;
                }
            }
            stats.entries += 1;
        }
        Ok(())
    }

    fn append_file<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        h: &mut tar::Header,
        rel: &str,
        path: PathBuf,
        size: u64,
        stats: &mut DataStats,
    ) -> Result<()> {
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let f = fs::File::open(&path).map_err(read_err)?;
        let meta = f.metadata().map_err(read_err)?;
        let scanned = self.manifest.stamps.get(rel);
        if meta.len() != size || scanned.is_some_and(|s| *s != stamp_of(&meta)) {
            return Err(changed_during_scan(&path));
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mtime(meta.mtime().max(0) as u64);
        let mut read = 0u64;
        let reader = Progressing {
            inner: f.take(size),
            done: &mut read,
            base: self.progress_base + stats.bytes,
            files: self.files_base + stats.entries,
            totals: self.totals,
            since_report: 0,
            progress: self.progress.as_ref(),
        };
        b.append_data(h, rel, reader)
            .map_err(|e| write_err(rel, e))?;
        if read != size {
            return Err(changed_during_scan(&path));
        }
        stats.bytes += size;
        if let Some(p) = &self.progress {
            p(super::Progress {
                bytes_done: self.progress_base + stats.bytes,
                bytes_total: self.totals.0,
                files_done: self.files_base + stats.entries + 1,
                files_total: self.totals.1,
            });
        }
        Ok(())
    }
}

fn write_err(rel: &str, e: io::Error) -> Error {
    Error::failed(format!("could not send `{rel}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::scan::{ScanOptions, scan};
    use flate2::read::GzDecoder;
    use std::os::unix::fs::symlink;

    fn entries(gz: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut a = tar::Archive::new(GzDecoder::new(gz));
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let ty = e.header().entry_type();
                let mode = e.header().mode().unwrap();
                let mut body = Vec::new();
                if ty == tar::EntryType::Symlink {
                    body = e.link_name_bytes().unwrap().to_vec();
                } else {
                    e.read_to_end(&mut body).unwrap();
                }
                (path, ty, mode, body)
            })
            .collect()
    }

    #[test]
    fn data_archive_holds_files_dirs_and_links_with_normalised_modes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let long = "x".repeat(150);
        fs::create_dir_all(r.join("d ü").join(&long)).unwrap();
        fs::write(r.join("d ü").join(&long).join("f.txt"), b"hello").unwrap();
        fs::write(r.join("run"), b"#!").unwrap();
        fs::set_permissions(
            r.join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o775),
        )
        .unwrap();
        symlink(format!("d ü/{long}/f.txt"), r.join("l")).unwrap();
        let m = Arc::new(scan(r, &ScanOptions::default()).unwrap());
        let mut job = DataJob::new(m.clone(), m.entries.keys().cloned().collect());
        job.end_marker = ".skiff-end-test".into();
        let mut out = Vec::new();
        let stats = job.write_to(&mut out).unwrap();
        assert_eq!(stats.bytes, 7);
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names[5], ".skiff-end-test");
        let f = got.iter().find(|e| e.0.ends_with("f.txt")).unwrap();
        assert_eq!((f.2, f.3.as_slice()), (0o644, &b"hello"[..]));
        let run = got.iter().find(|e| e.0 == "run").unwrap();
        assert_eq!(run.2, 0o755);
        let l = got.iter().find(|e| e.0 == "l").unwrap();
        assert_eq!(l.1, tar::EntryType::Symlink);
        assert_eq!(l.3, format!("d ü/{long}/f.txt").into_bytes());
    }

    #[test]
    fn incompressible_files_go_in_a_plain_part_of_exact_length() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let mut x: u64 = 88172645463325252;
        let random: Vec<u8> = (0..600_001)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let long = format!("{}/random.bin", "d".repeat(120));
        fs::create_dir_all(r.join("d".repeat(120))).unwrap();
        fs::write(r.join(&long), &random).unwrap();
        fs::write(r.join("text.txt"), "hello world ".repeat(50_000)).unwrap();
        let m = Arc::new(scan(r, &ScanOptions::default()).unwrap());
        let mut job = DataJob::new(m, vec![long.clone(), "text.txt".into()]);
        job.end_marker = ".skiff-end-x".into();
        job.split_incompressible().unwrap();
        assert_eq!(job.plain.0, vec![long.clone()]);
        assert_eq!(job.paths, vec!["text.txt".to_string()]);
        let plain_len = job.plain.1 as usize;
        let mut out = Vec::new();
        job.write_to(&mut out).unwrap();
        // The plain part is a whole tar of exactly the announced length.
        let mut a = tar::Archive::new(&out[..plain_len]);
        let mut files = a.entries().unwrap();
        let mut e = files.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_string_lossy(), long);
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        assert_eq!(body, random);
        drop(e);
        assert!(files.next().is_none());
        // Then the compressed part, the end marker last.
        let got = entries(&out[plain_len..]);
        assert_eq!(got[0].0, "text.txt");
        assert_eq!(got[1].0, ".skiff-end-x");
        assert!(out.len() - plain_len < 10_000, "{}", out.len() - plain_len);
        // What the node does: head -c P | tar -x, then tar -xz of the rest.
        let dir = t.path().join("out");
        fs::create_dir(&dir).unwrap();
        let script = format!(
            "head -c {plain_len} | tar -xf - -C {0} && tar -xzf - -C {0}",
            dir.display()
        );
        let mut sh = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        sh.stdin.take().unwrap().write_all(&out).unwrap();
        assert!(sh.wait().unwrap().success());
        assert_eq!(fs::read(dir.join(&long)).unwrap(), random);
        assert_eq!(fs::read(dir.join("text.txt")).unwrap().len(), 600_000);
    }

    #[test]
    fn end_marker_names_differ() {
        let a = end_marker_name();
        assert!(a.starts_with(".skiff-end-") && a.len() == 11 + 32, "{a}");
        assert_ne!(a, end_marker_name());
    }

    #[test]
    fn a_file_changed_after_the_scan_truncates_the_stream() {
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
        // What was written is not a complete gzip stream.
        let mut dec = GzDecoder::new(&out[..]);
        let mut sink = Vec::new();
        assert!(dec.read_to_end(&mut sink).is_err());
    }

    #[test]
    fn control_archive_lists_are_nul_separated() {
        let c = Control {
            remove: vec!["a b".into(), "c\nd".into()],
            chmod: vec![("x".into(), 0o755), ("y".into(), 0o644)],
            deltas: vec![DeltaItem {
                path: "big".into(),
                mode: 0o644,
                sha256: [1; 32],
                delta: vec![1, 2, 3],
            }],
            manifest: ManifestPayload::Whole(b"m".to_vec()),
        };
        let got = entries(&c.archive().unwrap());
        let get = |n: &str| got.iter().find(|e| e.0 == n).unwrap().3.clone();
        assert_eq!(get("rm"), b"a b\0c\nd\0");
        assert_eq!(get("chmod755"), b"x\0");
        assert_eq!(get("chmod644"), b"y\0");
        assert_eq!(get("d0"), vec![1, 2, 3]);
        assert_eq!(get("d0.p"), b"big");
        assert_eq!(
            String::from_utf8(get("deltas")).unwrap(),
            format!("0 644 {}\n", hex::encode([1u8; 32]))
        );
        assert_eq!(get("manifest"), b"m");
    }
}
