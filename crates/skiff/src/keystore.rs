//! The keystore from the binary's side: `skiff keystore create|add|list|remove`, the lookup
//! that resolves `${KEY}` from the keystore before the environment, and the masking of the
//! values it handed out. The store itself (format, encryption, threat model) is the crate
//! `skiff-keystore`.
//!
//! Where the keystore is: `<path.data>/skiff.keystore`. `path.data` is needed before the
//! configuration can be fully resolved, so it is found as in Beats: `--path.data`, else
//! `--path.home`/data, else the configuration's `path.data` / `path.home` read in a first pass
//! that resolves `${...}` from the environment only (a `path.data` that itself refers to a
//! keystore key is not supported).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, bail};
use skiff_config::{ConfigError, ConfigErrors, LoadOptions, Mark, Node, NodeValue};
use skiff_keystore::{Keystore, KeystoreError, MAX_VALUE_LEN, PASSPHRASE_ENV};
use zeroize::Zeroizing;

use crate::cli::{Global, KeystoreCommand};
use crate::settings;

/// Values resolved from the keystore by this process, masked by [`mask_used`]. A process
/// loads its configuration once or twice, so this stays as small as the keystore.
static USED: Mutex<Vec<Zeroizing<String>>> = Mutex::new(Vec::new());

/// The passphrase from `SKIFF_KEYSTORE_PASSPHRASE` (empty when unset, as Beats' default).
fn passphrase() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        std::env::var_os(PASSPHRASE_ENV)
            .map(|v| v.into_encoded_bytes())
            .unwrap_or_default(),
    )
}

/// The keystore file for this command line and configuration.
pub fn path(cli: &Global, opts: &LoadOptions) -> PathBuf {
    let data = match &cli.path_data {
        Some(d) => d.clone(),
        None => {
            // First pass: only the `path.*` keys matter; a `${KEY}` that only the keystore
            // knows resolves to "" here instead of failing.
            let env_only = |k: &str| Some(std::env::var(k).unwrap_or_default());
            let root = skiff_config::load(opts, &env_only).ok();
            let text = |key: &str| match root.as_ref().and_then(|r| r.get(key)).map(|n| &n.value) {
                Some(NodeValue::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
                _ => None,
            };
            let cfg = settings::PathConfig {
                home: text("path.home"),
                data: text("path.data"),
                ..Default::default()
            };
            settings::resolve_paths(&cfg, cli).data
        }
    };
    Keystore::path_in(&data)
}

/// Resolves `${NAME}` for the configuration: the keystore first, then the environment.
pub struct Lookup {
    store: Option<Keystore>,
}

impl Lookup {
    /// Opens the keystore of this configuration if there is one. A keystore that exists but
    /// cannot be read is an error: starting with secrets silently taken from elsewhere would be
    /// worse.
    pub fn for_config(cli: &Global, opts: &LoadOptions) -> Result<Lookup, ConfigErrors> {
        let file = path(cli, opts);
        match Keystore::open_if_exists(&file, &passphrase()) {
            Ok(store) => Ok(Lookup { store }),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                "keystore",
                Mark::none(),
                format!("{}: {e}", file.display()),
            )])),
        }
    }

    /// The value of `${name}`.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.store.as_ref().and_then(|s| s.get(name)) {
            if let Ok(mut used) = USED.lock()
                && !used.iter().any(|u| u.as_str() == v)
            {
                used.push(Zeroizing::new(v.to_owned()));
            }
            return Some(v.to_owned());
        }
        std::env::var(name).ok()
    }
}

/// Replaces every value that came from the keystore with the mask, wherever it is in `node`
/// and whatever the key (a keystore value under `hosts:` is as secret as one under
/// `password:`). Call with [`skiff_config::mask_secrets`].
pub fn mask_used(node: &mut Node) {
    let Ok(used) = USED.lock() else { return };
    let mut values: Vec<&str> = used
        .iter()
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    // Longest first, so a value containing another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    mask_values(node, &values);
}

fn mask_values(node: &mut Node, values: &[&str]) {
    let scalar = match &node.value {
        NodeValue::Map(_) | NodeValue::Seq(_) | NodeValue::Null => None,
        NodeValue::String(s) => Some(s.clone()),
        NodeValue::Int(i) => Some(i.to_string()),
        NodeValue::Float(f) => Some(f.to_string()),
        NodeValue::Bool(b) => Some(b.to_string()),
    };
    match (&mut node.value, scalar) {
        (NodeValue::Map(entries), _) => {
            entries.iter_mut().for_each(|(_, v)| mask_values(v, values))
        }
        (NodeValue::Seq(items), _) => items.iter_mut().for_each(|v| mask_values(v, values)),
        (value, Some(text)) => {
            let mut masked = text.clone();
            for v in values {
                masked = masked.replace(v, skiff_config::MASK);
            }
            if masked != text {
                *value = NodeValue::String(masked);
            }
        }
        _ => {}
    }
}

/// `skiff keystore ...`.
pub fn run(cmd: KeystoreCommand, g: &Global) -> anyhow::Result<i32> {
    let file = path(g, &settings::load_options(g));
    let pass = passphrase();
    match cmd {
        KeystoreCommand::Create { force } => {
            Keystore::create(&file, &pass, force)?;
            println!("Created skiff keystore at {}", file.display());
        }
        KeystoreCommand::Add { key, stdin, force } => {
            skiff_keystore::validate_key(&key)?;
            let mut store = open(&file, &pass)?;
            if !force && store.get(&key).is_some() {
                return Err(KeystoreError::KeyExists(key).into());
            }
            let value = read_value(&key, stdin)?;
            store.insert(&key, value.to_string(), force)?;
            store.save()?;
            println!("Added {key} to the keystore {}", file.display());
        }
        KeystoreCommand::List => {
            for key in open(&file, &pass)?.keys() {
                println!("{key}");
            }
        }
        KeystoreCommand::Remove { keys } => {
            let mut store = open(&file, &pass)?;
            // All or nothing: a typo in one key must not leave half of the removal done.
            if let Some(missing) = keys.iter().find(|k| store.get(k).is_none()) {
                return Err(KeystoreError::NoSuchKey(missing.clone()).into());
            }
            for k in &keys {
                store.remove(k)?;
            }
            store.save()?;
            println!(
                "Removed {} from the keystore {}",
                keys.join(", "),
                file.display()
            );
        }
    }
    Ok(0)
}

fn open(file: &std::path::Path, pass: &[u8]) -> anyhow::Result<Keystore> {
    Ok(Keystore::open(file, pass)?)
}

/// The value for `add`: a prompt without echo on a terminal, else all of standard input with
/// one trailing newline removed (`echo secret | skiff keystore add K --stdin`).
fn read_value(key: &str, force_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    let input = std::io::stdin();
    let value = if !force_stdin && input.is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!("Enter value for {key}: "))
                .context("cannot read the value from the terminal")?,
        )
    } else {
        let mut bytes = Zeroizing::new(Vec::new());
        input
            .lock()
            .take(MAX_VALUE_LEN as u64 + 2)
            .read_to_end(&mut bytes)
            .context("cannot read the value from standard input")?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.len() > MAX_VALUE_LEN {
            return Err(KeystoreError::ValueTooLong.into());
        }
        match std::str::from_utf8(&bytes) {
            Ok(s) => Zeroizing::new(s.to_owned()),
            Err(_) => bail!("the value is not UTF-8 text"),
        }
    };
    if value.is_empty() {
        bail!("the value for {key} is empty: nothing was added");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn masks_values_under_any_key_and_inside_strings() {
        let mut n = skiff_config::parse_str(
            "a: s3cret\nhosts: ['https://s3cret.example:9200', plain]\nport: 4711\nlist: [{x: s3cret}]\n",
            None,
        )
        .unwrap();
        mask_values(&mut n, &["s3cret", "4711"]);
        let j = n.to_json();
        assert_eq!(j["a"], "xxxxx");
        assert_eq!(j["hosts"][0], "https://xxxxx.example:9200");
        assert_eq!(j["hosts"][1], "plain");
        assert_eq!(j["port"], "xxxxx");
        assert_eq!(j["list"][0]["x"], "xxxxx");
    }
}
