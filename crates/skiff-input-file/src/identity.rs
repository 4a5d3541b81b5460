//! File identity: device + inode, confirmed by a fingerprint of the file's head.
//!
//! The rules and the cases they cover are in `docs/file-identity.md`. In short: a file is known
//! by `(device, inode)`; since inodes are reused after a delete, the first bytes of the file
//! (up to [`FINGERPRINT_MAX`]) are hashed and remembered with how many bytes were hashed. When a
//! known inode is seen again, its head must hash the same, or it is a different file (inode
//! reuse, copytruncate, rewritten in place) and is read from offset 0. The fingerprint grows
//! with the file until it covers `FINGERPRINT_MAX` bytes, so even a 20-byte file has one.

use std::os::unix::fs::MetadataExt;

/// Bytes of the head that the fingerprint covers at most.
pub const FINGERPRINT_MAX: u64 = 1024;

/// Where a file lives: its device and inode.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileKey {
    /// The key of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl std::fmt::Display for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.dev, self.ino)
    }
}

/// A hash of the first `len` bytes of a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// Bytes hashed (0 for an empty file).
    pub len: u64,
    /// FNV-1a 64 of those bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        // FNV-1a: stable across versions and platforms (it is persisted), and 1 KiB at most.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Fingerprint {
            len: bytes.len() as u64,
            hash: h,
        }
    }

    /// As text for `log.file.fingerprint` and status documents: `<len>-<hash hex>`.
    pub fn to_text(&self) -> String {
        format!("{}-{:016x}", self.len, self.hash)
    }

    /// Whether the fingerprint is complete (covers [`FINGERPRINT_MAX`] bytes).
    pub fn is_full(&self) -> bool {
        self.len >= FINGERPRINT_MAX
    }
}

/// Reads the head of an open file (`min(size, FINGERPRINT_MAX)` bytes) and fingerprints it.
/// The file's position is restored.
pub fn head_fingerprint(file: &mut std::fs::File, size: u64) -> std::io::Result<Fingerprint> {
    read_prefix(file, size.min(FINGERPRINT_MAX)).map(|b| Fingerprint::of(&b))
}

/// Whether the open file's head still hashes to `fp` (false when it is shorter now).
pub fn head_matches(
    file: &mut std::fs::File,
    size: u64,
    fp: &Fingerprint,
) -> std::io::Result<bool> {
    if fp.len == 0 {
        return Ok(true);
    }
    if size < fp.len {
        return Ok(false);
    }
    Ok(Fingerprint::of(&read_prefix(file, fp.len)?) == *fp)
}

fn read_prefix(file: &mut std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_grows_and_detects_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"twenty bytes here!!\n").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let fp = head_fingerprint(&mut f, 20).unwrap();
        assert_eq!(fp.len, 20);
        assert!(head_matches(&mut f, 20, &fp).unwrap());
        std::fs::write(&p, b"TWENTY bytes here!!\nmore\n").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        assert!(!head_matches(&mut f, 25, &fp).unwrap());
        assert!(!head_matches(&mut f, 10, &fp).unwrap());
    }
}
