//! rsync deltas: signatures made on the node by librsync's `rdiff`, deltas made here with
//! fast_rsync, patches applied on the node by `rdiff patch`.
//!
//! fast_rsync 0.2 speaks librsync's format only with MD4 strong sums and the rollsum weak
//! sum, so the node runs `rdiff -H md4 -R rollsum -b B -S 8 signature` (librsync >= 2.2:
//! Debian 12, Ubuntu 22.04 and 24.04, package `rdiff`). MD4 is weak, so every patched
//! file is checked against the manifest's sha256 before it is renamed into place.

use fast_rsync::{Signature, SignatureOptions};

/// Bytes of the MD4 strong sum kept per block (what `-S 8` asks of rdiff).
pub const STRONG_LEN: u32 = 8;

/// Smallest block size used (rsync's own minimum is 700).
pub const MIN_BLOCK: u32 = 512;

/// Largest block size used.
pub const MAX_BLOCK: u32 = 128 * 1024;

/// The block size for a file of `size` bytes: about its square root (which balances the
/// signature's size against the literal data a change costs), a multiple of 8, clamped.
pub fn block_size(size: u64) -> u32 {
    let root = (size as f64).sqrt() as u64;
    let rounded = root.div_ceil(8) * 8;
    rounded.clamp(MIN_BLOCK as u64, MAX_BLOCK as u64) as u32
}

/// The argv (before the input and output file names) that makes a signature on the node.
pub fn signature_argv(block: u32) -> Vec<String> {
    [
        "rdiff",
        "-H",
        "md4",
        "-R",
        "rollsum",
        "-b",
        &block.to_string(),
        "-S",
        &STRONG_LEN.to_string(),
        "signature",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The signature of `data` exactly as the node's `rdiff ... signature` makes it.
pub fn signature(data: &[u8], block: u32) -> Vec<u8> {
    Signature::calculate(
        data,
        SignatureOptions {
            block_size: block,
            crypto_hash_size: STRONG_LEN,
        },
    )
    .into_serialized()
}

/// Computes the delta that turns the file behind `signature` into `new`.
///
/// `block` is the block size the signature was asked for; a signature with another block
/// size or strong-sum length (or not MD4) is refused, naming the problem.
pub fn diff(signature: Vec<u8>, block: u32, new: &[u8]) -> Result<Vec<u8>, String> {
    if signature.len() < 12 {
        return Err("the signature is truncated".into());
    }
    let got_block = u32::from_be_bytes(signature[4..8].try_into().expect("4 bytes"));
    let got_strong = u32::from_be_bytes(signature[8..12].try_into().expect("4 bytes"));
    if got_block != block || got_strong != STRONG_LEN {
        return Err(format!(
            "the signature has block size {got_block} and strong sum {got_strong}, expected {block} and {STRONG_LEN}"
        ));
    }
    let sig = Signature::deserialize(signature).map_err(|e| format!("bad signature: {e}"))?;
    let mut out = Vec::with_capacity(new.len() / 64 + 64);
    fast_rsync::diff(&sig.index(), new, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Applies a delta locally (used by tests and to check a delta before sending it).
pub fn apply(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    fast_rsync::apply(base, delta, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn rdiff_available() -> bool {
        let ok = Command::new("rdiff")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let why = "rdiff (librsync) is not installed: apt-get install rdiff";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}");
            }
            eprintln!("skipping rdiff interop test: {why}");
        }
        ok
    }

    /// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
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

    #[test]
    fn block_size_is_about_the_square_root() {
        assert_eq!(block_size(0), MIN_BLOCK);
        assert_eq!(block_size(64 * 1024), MIN_BLOCK);
        assert_eq!(block_size(1 << 20), 1024);
        assert_eq!(block_size(100_000_000), 10000);
        assert_eq!(block_size(1 << 40), MAX_BLOCK);
        assert_eq!(block_size(3_000_000) % 8, 0);
    }

    #[test]
    fn local_signature_equals_rdiff_signature_and_rdiff_applies_our_delta() {
        if !rdiff_available() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        for (len, seed) in [(0usize, 1u64), (1000, 2), (300_000, 3), (1_048_583, 4)] {
            let old = noise(len, seed);
            let mut new = old.clone();
            // A one-line change in the middle, an insertion, and a changed tail.
            if len > 10_000 {
                new[len / 2..len / 2 + 20].copy_from_slice(b"-- a changed line --");
                new.splice(len / 3..len / 3, b"inserted bytes\n".iter().copied());
                new.truncate(len - 100);
                new.extend_from_slice(&noise(333, seed + 9));
            } else {
                new.extend_from_slice(b"appended\n");
            }
            let block = block_size(len as u64);
            let base = t.path().join("base");
            std::fs::write(&base, &old).unwrap();
            let sig_path = t.path().join("sig");
            let argv = signature_argv(block);
            let st = Command::new(&argv[0])
                .args(&argv[1..])
                .arg(&base)
                .arg(&sig_path)
                .status()
                .unwrap();
            assert!(st.success());
            let remote_sig = std::fs::read(&sig_path).unwrap();
            assert_eq!(remote_sig, signature(&old, block), "len {len}");

            let delta = diff(remote_sig, block, &new).unwrap();
            if len > 10_000 {
                assert!(delta.len() < len / 4, "delta {} for {len}", delta.len());
            }
            assert_eq!(apply(&old, &delta).unwrap(), new);
            let delta_path = t.path().join("delta");
            let out_path = t.path().join("out");
            std::fs::write(&delta_path, &delta).unwrap();
            let st = Command::new("rdiff")
                .args(["patch"])
                .arg(&base)
                .arg(&delta_path)
                .arg(&out_path)
                .status()
                .unwrap();
            assert!(st.success());
            assert_eq!(std::fs::read(&out_path).unwrap(), new, "len {len}");
            for p in [&out_path, &sig_path, &delta_path] {
                std::fs::remove_file(p).unwrap();
            }
        }
    }

    #[test]
    fn a_signature_with_other_parameters_is_refused() {
        let sig = signature(b"hello world", 512);
        let err = diff(sig.clone(), 1024, b"x").unwrap_err();
        assert!(err.contains("block size 512"), "{err}");
        assert!(diff(sig[..5].to_vec(), 512, b"x").is_err());
        let mut bad = sig;
        bad[0] ^= 0xff;
        assert!(diff(bad, 512, b"x").is_err());
    }
}
