//! The control archive: what the node does besides unpacking new files.
//!
//! A small tar (gzip-compressed when it is not small) built in memory and sent first on
//! the upload's stdin (its kind and length are passed to the node script so `head -c`
//! splits it off): the NUL-separated lists of paths
//! to remove and to chmod, the deltas for large changed files with their expected sha256,
//! and the new manifest (whole, or as a delta against the base release's manifest).

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{Error, Result};

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

/// Control archives at least this big are compressed; smaller ones go as plain tar (one
/// process less on the node, which counts on a busy machine).
const COMPRESS_ABOVE: usize = 16 * 1024;

/// A built control archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The tar, gzip-compressed when `compressed`.
    pub bytes: Vec<u8>,
    /// Whether `bytes` is gzip.
    pub compressed: bool,
}

impl Archive {
    /// How the node script is told the archive's kind and length: `t:LEN` or `z:LEN`.
    pub fn spec(&self) -> String {
        format!(
            "{}:{}",
            if self.compressed { 'z' } else { 't' },
            self.bytes.len()
        )
    }
}

impl Control {
    /// The tar of the control files (compressed when big).
    pub fn archive(&self) -> Result<Archive> {
        let mut b = tar::Builder::new(Vec::new());
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
        let raw = b.into_inner().map_err(stream_err)?;
        if raw.len() < COMPRESS_ABOVE {
            return Ok(Archive {
                bytes: raw,
                compressed: false,
            });
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
        gz.write_all(&raw).map_err(stream_err)?;
        Ok(Archive {
            bytes: gz.finish().map_err(stream_err)?,
            compressed: true,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(GzDecoder::new(bytes))
        } else {
            Box::new(bytes)
        };
        let mut a = tar::Archive::new(reader);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (path, body)
            })
            .collect()
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
        let a = c.archive().unwrap();
        assert!(!a.compressed && a.spec() == format!("t:{}", a.bytes.len()));
        let got = entries(&a.bytes);
        let get = |n: &str| got.iter().find(|e| e.0 == n).unwrap().1.clone();
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
        // A big one is compressed.
        let big = Control {
            manifest: ManifestPayload::Whole("line of a manifest\n".repeat(5_000).into_bytes()),
            ..Control::default()
        };
        let a = big.archive().unwrap();
        assert!(a.compressed && a.spec().starts_with("z:"));
        assert_eq!(entries(&a.bytes)[0].1.len(), 95_000);
    }
}
