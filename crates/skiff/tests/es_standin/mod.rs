//! The Elasticsearch stand-in (`../shared/tools/es-standin`, Python, written from the
//! Elasticsearch documentation: no real Elasticsearch can run on these machines) for the
//! binary's tests, with HTTP Basic authentication required.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The Elasticsearch stand-in, killed on drop.
pub struct EsStandIn {
    child: Child,
    pub url: String,
}

impl EsStandIn {
    pub fn start(dump: &Path, user: &str, password: &str) -> EsStandIn {
        Self::start_with(dump, &["--user", user, "--password", password])
    }

    /// Starts with the stand-in's own flags `args` (credentials, `--api-key`, `--tls-cert` ...).
    pub fn start_with(dump: &Path, args: &[&str]) -> EsStandIn {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/tools/es-standin/es_standin.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0"])
            .args(args)
            .arg("--dump-dir")
            .arg(dump)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 and ../shared/tools/es-standin (scripts/ensure-test-deps)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("es-standin listening on ")
            .unwrap_or_else(|| panic!("es-standin said {line:?}"))
            .to_owned();
        EsStandIn { child, url }
    }
}

impl Drop for EsStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every document the stand-in stored (all indices and data streams).
pub fn stored_messages(dump: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dump).into_iter().flatten() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(m) = v["message"].as_str()
            {
                out.push(m.to_owned());
            }
        }
    }
    out.sort();
    out
}
