//! The bytes a sync sends up: a small control archive, then one data archive.
//!
//! Both are gzip-compressed tar streams. The control archive (built in memory, its length
//! passed to the node script so `head -c` can split stdin) holds the lists of paths to
//! remove and chmod, the deltas, and the new manifest (or its delta against the base's).
//! The data archive streams new and small changed entries straight from the local tree,
//! made by a thread writing into a pipe while SSH reads the other end.
//!
//! A data archive that fails half way (a file changed or vanished during the upload) must
//! never look complete on the node: the pipe writer is poisoned before the tar and gzip
//! encoders are dropped, so their trailers are never written and the node's `tar` fails.

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
    /// Bytes already counted in progress (deltas) before this archive starts.
    pub progress_base: u64,
    /// Files already counted in progress before this archive starts.
    pub files_base: u64,
    /// Totals for progress: (bytes, files).
    pub totals: (u64, u64),
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl DataJob {
    /// Total content bytes of the files in the archive.
    pub fn content_bytes(&self) -> u64 {
        self.paths
            .iter()
            .filter_map(|p| self.manifest.entries.get(p))
            .filter(|e| e.is_file())
            .map(|e| e.size)
            .sum()
    }

    /// Writes the gzip-compressed tar into `out`; on error the stream is left truncated.
    pub fn write_to<W: Write>(self, out: W) -> Result<DataStats> {
        let poisoned = Arc::new(AtomicBool::new(false));
        let writer = Poisonable {
            inner: out,
            poisoned: poisoned.clone(),
        };
        let level = if self.content_bytes() > FAST_COMPRESSION_ABOVE {
            1
        } else {
            6
        };
        let mut b = tar::Builder::new(GzEncoder::new(
            io::BufWriter::with_capacity(256 * 1024, writer),
            Compression::new(level),
        ));
        let result = self.fill(&mut b);
        match result {
            Ok(stats) => {
                let gz = b.into_inner().map_err(stream_err)?;
                let mut buf = gz.finish().map_err(stream_err)?;
                buf.flush().map_err(stream_err)?;
                Ok(stats)
            }
            Err(err) => {
                poisoned.store(true, Ordering::Relaxed);
                drop(b);
                Err(err)
            }
        }
    }

    fn fill<W: Write>(&self, b: &mut tar::Builder<W>) -> Result<DataStats> {
        let root = self
            .manifest
            .root
            .clone()
            .ok_or_else(|| Error::failed("the manifest was not made by scanning a folder"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut stats = DataStats::default();
        for rel in &self.paths {
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
                    self.append_file(b, &mut h, rel, path, entry.size, &mut stats)?;
                }
            }
            stats.entries += 1;
        }
        Ok(stats)
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
        let job = DataJob {
            paths: m.entries.keys().cloned().collect(),
            manifest: m.clone(),
            progress_base: 0,
            files_base: 0,
            totals: (0, 0),
            progress: None,
        };
        let mut out = Vec::new();
        let stats = job.write_to(&mut out).unwrap();
        assert_eq!(stats.bytes, 7);
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names.len(), 5);
        let f = got.iter().find(|e| e.0.ends_with("f.txt")).unwrap();
        assert_eq!((f.2, f.3.as_slice()), (0o644, &b"hello"[..]));
        let run = got.iter().find(|e| e.0 == "run").unwrap();
        assert_eq!(run.2, 0o755);
        let l = got.iter().find(|e| e.0 == "l").unwrap();
        assert_eq!(l.1, tar::EntryType::Symlink);
        assert_eq!(l.3, format!("d ü/{long}/f.txt").into_bytes());
    }

    #[test]
    fn a_file_changed_after_the_scan_truncates_the_stream() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a"), vec![b'a'; 100_000]).unwrap();
        fs::write(r.join("b"), b"short").unwrap();
        let m = Arc::new(scan(r, &ScanOptions::default()).unwrap());
        fs::write(r.join("b"), b"longer now").unwrap();
        let job = DataJob {
            paths: vec!["a".into(), "b".into()],
            manifest: m,
            progress_base: 0,
            files_base: 0,
            totals: (0, 0),
            progress: None,
        };
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
