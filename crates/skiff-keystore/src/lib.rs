//! skiff's keystore: named secrets that the configuration refers to as `${KEY}`, kept out of
//! the YAML, as the Beats' `filebeat keystore`.
//!
//! `skiff keystore create|add|list|remove` edit one file, `<path.data>/skiff.keystore`. When
//! skiff loads its configuration, a `${KEY}` reference is looked up in the configuration itself,
//! then in the keystore, then in the environment (Beats' order: the keystore wins over the
//! environment). Values that came from the keystore are masked wherever secrets are masked
//! (`skiff export config`), whatever the name of the key that uses them.
//!
//! # What "encrypted at rest" protects against, honestly
//!
//! The file is AES-256-GCM sealed with a key derived (PBKDF2-HMAC-SHA256) from a passphrase,
//! and written with mode 0600 (owned by the service user when root edits the store of a data
//! directory that belongs to that user). By default the passphrase is empty, as in Beats,
//! because skiff must start unattended: the key material is then effectively on the same host,
//! in skiff itself. So the encryption:
//!
//! * **does** keep secrets out of the configuration file, out of `skiff export config`, out of
//!   support bundles and version control that hold configuration only, and out of `grep -r`
//!   over the disk; and it detects any change to the file (GCM tag);
//! * **does not** protect against anyone who can read the file *and* run skiff (or this code):
//!   root, the `skiff` user, or whoever gets a copy of the file. The file's permissions are the
//!   real protection against other local users.
//!
//! Setting `SKIFF_KEYSTORE_PASSPHRASE` (for example from a systemd credential or an
//! environment file readable only by root) makes a stolen copy of the file useless without the
//! passphrase; the passphrase must then be present wherever skiff starts.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), skiff_keystore::KeystoreError> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = skiff_keystore::Keystore::path_in(dir.path());
//! let mut ks = skiff_keystore::Keystore::create(&path, b"", false)?;
//! ks.insert("ES_PWD", "changeme".into(), false)?;
//! ks.save()?;
//! let again = skiff_keystore::Keystore::open(&path, b"")?;
//! assert_eq!(again.get("ES_PWD"), Some("changeme"));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod sealed;
mod store_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Name of the keystore file inside `path.data`.
pub const FILE_NAME: &str = "skiff.keystore";
/// The environment variable holding the passphrase (empty when unset).
pub const PASSPHRASE_ENV: &str = "SKIFF_KEYSTORE_PASSPHRASE";
/// Longest key name.
pub const MAX_KEY_LEN: usize = 256;
/// Longest value (a secret, a certificate at most).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// What can go wrong with the keystore.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No keystore file yet.
    #[error("no keystore at {0} (create it with `skiff keystore create`)")]
    NotFound(PathBuf),
    /// `create` over an existing keystore without `--force`.
    #[error("a keystore exists at {0} already (use --force to replace it with an empty one)")]
    Exists(PathBuf),
    /// The file is not a keystore of a version this skiff reads.
    #[error("keystore format: {0}")]
    Format(String),
    /// Wrong passphrase, or the file was changed.
    #[error(
        "the keystore cannot be decrypted: wrong passphrase (${PASSPHRASE_ENV}) or the file was changed"
    )]
    Decrypt,
    /// Encryption failed (should not happen).
    #[error("keystore encryption failed")]
    Crypto,
    /// The system's random number generator failed.
    #[error("no randomness from the system: {0}")]
    Random(String),
    /// The decrypted content is not a map of strings.
    #[error("keystore content: {0}")]
    Content(String),
    /// A key name that `${...}` could not refer to.
    #[error(
        "invalid key {0:?}: use 1 to {MAX_KEY_LEN} letters, digits, `_`, `-` or `.`, starting with a letter or `_`"
    )]
    InvalidKey(String),
    /// A value over [`MAX_VALUE_LEN`].
    #[error("the value is longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong,
    /// `add` of an existing key without `--force`.
    #[error("key {0} exists already (use --force to replace its value)")]
    KeyExists(String),
    /// `remove` of a key that is not there.
    #[error("no key {0} in the keystore")]
    NoSuchKey(String),
}

/// The keystore: an in-memory copy of the file's entries, saved with [`Keystore::save`].
pub struct Keystore {
    path: PathBuf,
    passphrase: Zeroizing<Vec<u8>>,
    entries: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Keystore {
    // Never print values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keystore {
    /// Where the keystore of data directory `data` is.
    pub fn path_in(data: &Path) -> PathBuf {
        data.join(FILE_NAME)
    }

    /// Writes a new empty keystore at `path` (creating its directory, mode 0750). An existing
    /// one is an error unless `force`.
    pub fn create(path: &Path, passphrase: &[u8], force: bool) -> Result<Keystore, KeystoreError> {
        if !force && path.exists() {
            return Err(KeystoreError::Exists(path.to_owned()));
        }
        let ks = Keystore {
            path: path.to_owned(),
            passphrase: Zeroizing::new(passphrase.to_vec()),
            entries: BTreeMap::new(),
        };
        ks.save()?;
        Ok(ks)
    }

    /// Reads and decrypts the keystore at `path`.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Keystore, KeystoreError> {
        Self::open_if_exists(path, passphrase)?.ok_or_else(|| KeystoreError::NotFound(path.into()))
    }

    /// As [`Keystore::open`], but a missing file is `None` (a configuration without a keystore
    /// is the common case).
    pub fn open_if_exists(
        path: &Path,
        passphrase: &[u8],
    ) -> Result<Option<Keystore>, KeystoreError> {
        let Some(bytes) = store_file::read(path)? else {
            return Ok(None);
        };
        let plain = sealed::open(&bytes, passphrase)?;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|e| KeystoreError::Content(e.to_string()))?;
        Ok(Some(Keystore {
            path: path.to_owned(),
            passphrase: Zeroizing::new(passphrase.to_vec()),
            entries: map
                .into_iter()
                .map(|(k, v)| (k, Zeroizing::new(v)))
                .collect(),
        }))
    }

    /// The file this keystore is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|v| v.as_str())
    }

    /// The key names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Every value (for masking).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.entries.values().map(|v| v.as_str())
    }

    /// Sets `key`. An existing key is an error unless `force`.
    pub fn insert(&mut self, key: &str, value: String, force: bool) -> Result<(), KeystoreError> {
        validate_key(key)?;
        let value = Zeroizing::new(value);
        if value.len() > MAX_VALUE_LEN {
            return Err(KeystoreError::ValueTooLong);
        }
        if !force && self.entries.contains_key(key) {
            return Err(KeystoreError::KeyExists(key.to_owned()));
        }
        self.entries.insert(key.to_owned(), value);
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Result<(), KeystoreError> {
        self.entries
            .remove(key)
            .map(|_| ())
            .ok_or_else(|| KeystoreError::NoSuchKey(key.to_owned()))
    }

    /// Encrypts and writes the keystore: a new file with mode 0600 renamed over the old one,
    /// so a crash leaves either the old or the new keystore, never half of one.
    pub fn save(&self) -> Result<(), KeystoreError> {
        let map: BTreeMap<&str, &str> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let plain = Zeroizing::new(
            serde_json::to_vec(&map).map_err(|e| KeystoreError::Content(e.to_string()))?,
        );
        let bytes = sealed::seal(&plain, &self.passphrase, sealed::ITERATIONS)?;
        store_file::write(&self.path, &bytes)
    }
}

/// Checks that `key` can be written as `${key}`: ASCII letters, digits, `_`, `-`, `.`,
/// starting with a letter or `_`.
pub fn validate_key(key: &str) -> Result<(), KeystoreError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(KeystoreError::InvalidKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn create_add_list_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(&dir.path().join("data"));
        let mut ks = Keystore::create(&path, b"", false).unwrap();
        assert!(matches!(
            Keystore::create(&path, b"", false),
            Err(KeystoreError::Exists(_))
        ));
        ks.insert("ES_PWD", "s3cr3t-\u{e9}".into(), false).unwrap();
        ks.insert("b.key", "two".into(), false).unwrap();
        assert!(matches!(
            ks.insert("ES_PWD", "x".into(), false),
            Err(KeystoreError::KeyExists(_))
        ));
        ks.save().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"s3cr3t"), "plaintext on disk");

        let mut ks = Keystore::open(&path, b"").unwrap();
        assert_eq!(ks.keys().collect::<Vec<_>>(), ["ES_PWD", "b.key"]);
        assert_eq!(ks.get("ES_PWD"), Some("s3cr3t-\u{e9}"));
        ks.insert("ES_PWD", "new".into(), true).unwrap();
        ks.remove("b.key").unwrap();
        assert!(matches!(
            ks.remove("b.key"),
            Err(KeystoreError::NoSuchKey(_))
        ));
        ks.save().unwrap();
        let ks = Keystore::open(&path, b"").unwrap();
        assert_eq!(ks.keys().collect::<Vec<_>>(), ["ES_PWD"]);
        assert_eq!(ks.get("ES_PWD"), Some("new"));
        assert!(!format!("{ks:?}").contains("new"));
    }

    #[test]
    fn missing_file_and_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(dir.path());
        assert!(Keystore::open_if_exists(&path, b"").unwrap().is_none());
        assert!(matches!(
            Keystore::open(&path, b""),
            Err(KeystoreError::NotFound(_))
        ));
        Keystore::create(&path, b"pp", false).unwrap();
        assert!(matches!(
            Keystore::open(&path, b""),
            Err(KeystoreError::Decrypt)
        ));
        assert!(Keystore::open(&path, b"pp").is_ok());
    }

    #[test]
    fn key_names() {
        for good in ["ES_PWD", "_x", "a.b-c", "k9"] {
            validate_key(good).unwrap();
        }
        for bad in [
            "",
            "9a",
            "a b",
            "a:b",
            "a}",
            "${A}",
            "\u{e9}",
            &"a".repeat(257),
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
    }
}
