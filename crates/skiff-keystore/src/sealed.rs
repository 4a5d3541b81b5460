//! The keystore file format: a small authenticated header, then the entries as one AES-256-GCM
//! sealed JSON object.
//!
//! ```text
//! offset size  field
//! 0      8     magic "SKIFFKS\0"
//! 8      1     format version (1)
//! 9      4     PBKDF2-HMAC-SHA256 iterations, big endian
//! 13     16    salt (random per save)
//! 29     12    nonce (random per save)
//! 41     ..    ciphertext of `{"KEY": "value", ...}` followed by the 16-byte GCM tag
//! ```
//!
//! The whole header is the GCM associated data, so changing the iteration count, the salt or
//! the version is detected like a change to the ciphertext. A fresh salt and nonce are drawn
//! for every save: a nonce is never reused with the same key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeystoreError;

const MAGIC: &[u8; 8] = b"SKIFFKS\0";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + 1 + 4 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Iterations used when saving. PBKDF2 only slows down guessing a passphrase; with the default
/// empty passphrase it changes nothing (see the crate documentation). 100,000 costs tens of
/// milliseconds at start-up.
pub const ITERATIONS: u32 = 100_000;
/// Bounds accepted when reading: a damaged or hostile file must not make start-up take hours
/// before the tag check fails.
const MIN_ITERATIONS: u32 = 1_000;
const MAX_ITERATIONS: u32 = 10_000_000;

/// Longest keystore file read (the entries are small secrets; this bounds the allocation).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Seals `plaintext` with a key derived from `passphrase`.
pub fn seal(
    plaintext: &[u8],
    passphrase: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, KeystoreError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|e| KeystoreError::Random(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| KeystoreError::Random(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&iterations.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let cipher = cipher(passphrase, &salt, iterations);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &out,
            },
        )
        .map_err(|_| KeystoreError::Crypto)?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] produced. Any change to the file, or another passphrase, is
/// [`KeystoreError::Decrypt`].
pub fn open(file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    if file.len() < HEADER_LEN + TAG_LEN || !file.starts_with(MAGIC) {
        return Err(KeystoreError::Format(
            "not a skiff keystore (bad magic or too short)".into(),
        ));
    }
    let (header, sealed) = file.split_at(HEADER_LEN);
    let version = header[MAGIC.len()];
    if version != VERSION {
        return Err(KeystoreError::Format(format!(
            "keystore format version {version} is not supported (this skiff reads version {VERSION})"
        )));
    }
    let mut it = [0u8; 4];
    it.copy_from_slice(&header[9..13]);
    let iterations = u32::from_be_bytes(it);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(KeystoreError::Format(format!(
            "implausible key derivation iteration count {iterations}"
        )));
    }
    let salt = &header[13..13 + SALT_LEN];
    let nonce = &header[13 + SALT_LEN..HEADER_LEN];
    let plain = cipher(passphrase, salt, iterations)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: header,
            },
        )
        .map_err(|_| KeystoreError::Decrypt)?;
    Ok(Zeroizing::new(plain))
}

fn cipher(passphrase: &[u8], salt: &[u8], iterations: u32) -> Aes256Gcm {
    let key = Zeroizing::new(pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(
        passphrase, salt, iterations,
    ));
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_fresh_salt_and_nonce_per_seal() {
        let a = seal(b"{\"K\":\"v\"}", b"", MIN_ITERATIONS).unwrap();
        let b = seal(b"{\"K\":\"v\"}", b"", MIN_ITERATIONS).unwrap();
        assert_ne!(a[13..HEADER_LEN], b[13..HEADER_LEN]);
        assert_eq!(open(&a, b"").unwrap().as_slice(), b"{\"K\":\"v\"}");
        // The plaintext is not in the file.
        assert!(!a.windows(3).any(|w| w == b"\"v\""));
    }

    #[test]
    fn any_flipped_bit_or_other_passphrase_is_refused() {
        let f = seal(b"secret", b"pp", MIN_ITERATIONS).unwrap();
        assert!(matches!(open(&f, b"other"), Err(KeystoreError::Decrypt)));
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x01;
            assert!(open(&g, b"pp").is_err(), "bit flip at byte {i} accepted");
        }
    }

    #[test]
    fn truncated_and_hostile_headers_are_errors() {
        let f = seal(b"x", b"", MIN_ITERATIONS).unwrap();
        for n in 0..f.len() {
            assert!(open(&f[..n], b"").is_err());
        }
        let mut g = f.clone();
        g[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(open(&g, b""), Err(KeystoreError::Format(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = open(&data, b"");
            let mut with_magic = MAGIC.to_vec();
            with_magic.push(VERSION);
            with_magic.extend_from_slice(&MIN_ITERATIONS.to_be_bytes());
            with_magic.extend_from_slice(&data);
            proptest::prop_assert!(open(&with_magic, b"").is_err());
        }
    }
}
