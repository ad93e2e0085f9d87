//! The node side of a sync: the embedded script and how its framed output is read.
//!
//! `node.sh` is sent with every call (comments and blank lines stripped) rather than
//! installed on the node, so a sync needs nothing on the node but a POSIX `sh`, GNU
//! coreutils/findutils/sed/tar, gzip and `rdiff`, and never runs a stale copy.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

use flate2::read::GzDecoder;

use super::manifest::{escape, unescape};

/// The node script as written (see its header for modes, inputs and output).
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

/// The node script as sent for one call: the compact script after a prelude of
/// `NAME='VALUE'` lines, the contract's exit codes first
/// ([`crate::deploy::contract::sync_prelude`]), then the call's `inputs` (the script's
/// header says which mode reads which).
pub fn with_inputs(inputs: &[(&str, String)]) -> String {
    let contract = crate::deploy::contract::sync_prelude();
    let vars: Vec<(&str, &str)> = contract
        .iter()
        .chain(inputs)
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    crate::transport::ssh::with_prelude(script(), &vars)
}

/// The `sigs` input: one `BLOCK PATH` line per (path, block size) request, the path
/// escaped as in a manifest; the i-th line's signature comes back as frame `S<i>`.
pub fn sig_lines(requests: &[(String, u32)]) -> String {
    requests
        .iter()
        .map(|(path, block)| format!("{block} {}\n", escape(path, false)))
        .collect()
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

    /// Runs `mode` of node.sh on this machine with its named inputs, as a sync sends it
    /// (`sh -c SCRIPT sh MODE`, `stdin` on stdin): (exit code, stdout).
    fn run(mode: &str, inputs: &[(&str, String)], stdin: &[u8]) -> (i32, Vec<u8>) {
        use std::process::Stdio;
        let mut child = Command::new("sh")
            .args(["-c", &with_inputs(inputs), "sh", mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), out.stdout)
    }

    /// The named inputs on a temporary releases folder: `prepare` checks the base's
    /// manifest digest and makes the signatures `sigs` asks for (a path with a space, a
    /// `%` and a newline included), `upload` applies a control archive and publishes
    /// with `new_digest`, and the exits are the contract's.
    #[test]
    fn named_inputs_on_a_temporary_releases_folder() {
        use crate::deploy::contract::exit;
        use crate::sync::control::{Control, ManifestPayload};
        use crate::sync::manifest::digest_of;
        use crate::sync::scan::{ScanOptions, scan};

        let tmp = tempfile::tempdir().unwrap();
        let releases = tmp.path().join("releases");
        let odd = "odd name %0A\nend.txt";
        std::fs::create_dir_all(releases.join("1")).unwrap();
        std::fs::write(releases.join("1/a.txt"), "a".repeat(5000)).unwrap();
        std::fs::write(releases.join("1").join(odd), "b".repeat(5000)).unwrap();
        let base_text = scan(&releases.join("1"), &ScanOptions::default())
            .unwrap()
            .to_text();
        std::fs::write(releases.join("1.manifest"), &base_text).unwrap();
        let common = |base_digest: &str| {
            vec![
                ("releases", releases.to_str().unwrap().to_string()),
                ("n", "2".to_string()),
                ("base", "1".to_string()),
                ("base_digest", base_digest.to_string()),
            ]
        };
        let sigs = sig_lines(&[
            ("a.txt".into(), 64),
            ("gone.txt".into(), 64),
            (odd.into(), 64),
        ]);

        let mut inputs = common(&digest_of(base_text.as_bytes()));
        inputs.push(("sigs", sigs.clone()));
        let (code, out) = run("prepare", &inputs, b"");
        assert_eq!(code, 0);
        let f = parse(&out).unwrap();
        assert_eq!(f.result.as_deref(), Some("ready"));
        assert!(f.manifest.is_none() && f.missing.is_empty());
        assert_eq!(f.signatures.keys().copied().collect::<Vec<_>>(), [0, 2]);

        // a stale cache: the base's manifest comes back, no signatures
        let mut inputs = common("0000");
        inputs.push(("sigs", sigs));
        let f = parse(&run("prepare", &inputs, b"").1).unwrap();
        assert_eq!(f.manifest.as_deref(), Some(base_text.as_str()));
        assert!(f.signatures.is_empty());

        // upload: a.txt removed, the new manifest whole
        std::fs::remove_file(releases.join("1/a.txt")).unwrap();
        let new_text = scan(&releases.join("1"), &ScanOptions::default())
            .unwrap()
            .to_text();
        std::fs::write(releases.join("1/a.txt"), "a".repeat(5000)).unwrap();
        let archive = Control {
            remove: vec!["a.txt".into()],
            manifest: ManifestPayload::Whole(new_text.clone().into_bytes()),
            ..Control::default()
        }
        .archive()
        .unwrap();
        let mut inputs = common("");
        inputs.truncate(3);
        inputs.push(("new_digest", digest_of(new_text.as_bytes())));
        inputs.push(("ctl", archive.spec()));
        inputs.push(("data", "0".into()));
        let (code, out) = run("upload", &inputs, &archive.bytes);
        assert_eq!(code, 0);
        assert_eq!(parse(&out).unwrap().result.as_deref(), Some("done"));
        assert_eq!(
            std::fs::read_to_string(releases.join("2.manifest")).unwrap(),
            new_text
        );
        assert!(releases.join("2").join(odd).is_file());
        assert!(!releases.join("2/a.txt").exists());
        assert!(releases.join("1/a.txt").exists(), "the base is untouched");

        // the contract's exit codes
        let mut inputs = common("");
        inputs.push(("sigs", String::new()));
        assert_eq!(run("prepare", &inputs, b"").0, exit::SYNC_EXISTS);
        assert_eq!(run("unknown", &inputs, b"").0, exit::USAGE);
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
