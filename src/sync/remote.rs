//! The node side of a sync: the embedded script and how its framed output is read.
//!
//! `node.sh` is sent with every call (comments and blank lines stripped) rather than
//! installed on the node, so a sync needs nothing on the node but a POSIX `sh`, GNU
//! coreutils/findutils/sed/tar, gzip and `rdiff`, and never runs a stale copy.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

use flate2::read::GzDecoder;

use super::manifest::unescape;

/// The node script as written (see its header for modes, arguments and output).
pub const SCRIPT_SOURCE: &str = include_str!("node.sh");

/// The node script as sent: without comment-only and blank lines.
pub fn script() -> &'static str {
    static COMPACT: OnceLock<String> = OnceLock::new();
    COMPACT.get_or_init(|| {
        let mut out = String::with_capacity(SCRIPT_SOURCE.len());
        for line in SCRIPT_SOURCE.lines() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    })
}

/// What the node script printed, by tag.
#[derive(Debug, Default)]
pub struct Frames {
    /// The base release's manifest text (the node's copy differed from skiff's cache).
    pub manifest: Option<String>,
    /// Base paths missing from (or different in) the node's copy of the base release.
    pub missing: Vec<String>,
    /// Signatures by request index.
    pub signatures: BTreeMap<usize, Vec<u8>>,
    /// Indices of deltas that failed to apply or verify.
    pub failed: Vec<usize>,
    /// Whether the manifest delta failed to give the expected manifest.
    pub manifest_failed: bool,
    /// The result word: `ready`, `stale`, `done` or `partial`.
    pub result: Option<String>,
}

/// Parses `TAG LENGTH\n<bytes>` frames.
pub fn parse(out: &[u8]) -> Result<Frames, String> {
    let mut frames = Frames::default();
    let mut rest = out;
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("a frame header without a newline")?;
        let header = std::str::from_utf8(&rest[..nl]).map_err(|_| "a frame header not in UTF-8")?;
        let (tag, len) = header
            .split_once(' ')
            .ok_or_else(|| format!("a bad frame header `{header}`"))?;
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("a bad frame length in `{header}`"))?;
        let body = rest
            .get(nl + 1..nl + 1 + len)
            .ok_or_else(|| format!("a truncated frame `{header}`"))?;
        rest = &rest[nl + 1 + len..];
        match tag {
            "M" => {
                let mut text = String::new();
                GzDecoder::new(body)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("the base manifest does not decompress: {e}"))?;
                frames.manifest = Some(text);
            }
            "X" => {
                let text = std::str::from_utf8(body).map_err(|_| "missing paths not in UTF-8")?;
                for line in text.lines() {
                    frames
                        .missing
                        .push(unescape(line).ok_or_else(|| format!("bad path `{line}`"))?);
                }
            }
            "F" => {
                let text = std::str::from_utf8(body).map_err(|_| "bad failure list")?;
                for i in text.split_whitespace() {
                    if i == "m" {
                        frames.manifest_failed = true;
                        continue;
                    }
                    frames
                        .failed
                        .push(i.parse().map_err(|_| format!("bad index `{i}`"))?);
                }
            }
            "R" => {
                frames.result = Some(String::from_utf8_lossy(body).into_owned());
            }
            t if t.starts_with('S') => {
                let i: usize = t[1..]
                    .parse()
                    .map_err(|_| format!("bad signature tag `{t}`"))?;
                frames.signatures.insert(i, body.to_vec());
            }
            t => return Err(format!("an unknown frame `{t}`")),
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    #[test]
    fn parses_every_frame_kind() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"skiff-manifest 1\n").unwrap();
        let gz = gz.finish().unwrap();
        let mut out = format!("M {}\n", gz.len()).into_bytes();
        out.extend_from_slice(&gz);
        out.extend_from_slice(b"X 10\na b\nc%0Ad\n");
        out.extend_from_slice(b"S3 4\n\x00\x01\n\x02");
        out.extend_from_slice(b"F 6\n1 2 m R 5\nready");
        let f = parse(&out).unwrap();
        assert_eq!(f.manifest.as_deref(), Some("skiff-manifest 1\n"));
        assert_eq!(f.missing, vec!["a b".to_string(), "c\nd".to_string()]);
        assert_eq!(f.signatures[&3], vec![0, 1, b'\n', 2]);
        assert_eq!(f.failed, vec![1, 2]);
        assert!(f.manifest_failed);
        assert_eq!(f.result.as_deref(), Some("ready"));
        assert!(parse(b"R 9\nshort").is_err());
        assert!(parse(b"Q 0\n").is_err());
    }

    #[test]
    fn the_script_parses_in_sh_and_compacting_keeps_it_valid() {
        for text in [SCRIPT_SOURCE, script()] {
            let st = Command::new("sh")
                .args(["-n", "-c", text])
                .status()
                .unwrap();
            assert!(st.success());
        }
        assert!(script().len() < SCRIPT_SOURCE.len());
        assert!(!script().contains("\n#"));
    }
}
