//! `output.console`: events on standard output, one per line.
//!
//! As Filebeat's: NDJSON with `@metadata` by default, `pretty: true` (or `codec.json.pretty`)
//! for indented JSON, `codec.format.string` for plain text. A batch is encoded into one buffer
//! and written with one locked write and one flush, so lines of concurrent writers never
//! interleave and a batch is acked only after it reached the OS (the pipe, the terminal).

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Event;
use skiff_metrics::{Counter, names};
use skiff_pipeline::{BuildContext, Outcome, Output, OutputSet};

use crate::codec::{Codec, CodecConfig, Scratch, encode_batch};

/// `output.console.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `enabled`. Default true.
    #[serde(default = "crate::yes")]
    pub enabled: bool,
    /// `pretty`: indented JSON (the same as `codec.json.pretty`). Default false.
    #[serde(default)]
    pub pretty: bool,
    /// `codec`: `json` (default) or `format`.
    #[serde(default)]
    pub codec: CodecConfig,
    /// `bulk_max_size`: events per batch. Default 2048.
    #[serde(default = "crate::default_bulk_max_size")]
    pub bulk_max_size: usize,
    /// `max_retries`: attempts per batch before its events go to the dead-letter file; -1
    /// (the default) retries forever.
    #[serde(default = "crate::default_max_retries")]
    pub max_retries: i64,
    /// `backoff.init` / `backoff.max`: the wait between retries. Default 1s doubling to 60s.
    #[serde(default)]
    pub backoff: crate::Backoff,
}

/// Builds `output.console`.
pub fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let cfg: ConsoleConfig = node.deserialize()?;
    let codec = Codec::build(&cfg.codec, cfg.pretty, node)?;
    let client = Console::with_writer(
        codec,
        Box::new(std::io::stdout()),
        ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES),
    );
    Ok(OutputSet {
        clients: vec![Box::new(client)],
        settings: crate::settings(cfg.bulk_max_size, cfg.max_retries, cfg.backoff),
    })
}

/// Where the console writes: standard output, or anything else (tests).
pub type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// The console client.
pub struct Console {
    codec: Codec,
    sink: Sink,
    buf: Vec<u8>,
    scratch: Scratch,
    ends: Vec<usize>,
    bytes: Counter,
}

impl Console {
    /// A console client writing to `writer` (standard output in production) and counting the
    /// bytes written into `bytes`.
    pub fn with_writer(codec: Codec, writer: Box<dyn Write + Send>, bytes: Counter) -> Self {
        Console {
            codec,
            sink: Arc::new(Mutex::new(writer)),
            buf: Vec::new(),
            scratch: Scratch::default(),
            ends: Vec::new(),
            bytes,
        }
    }
}

#[async_trait]
impl Output for Console {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        let mut buf = std::mem::take(&mut self.buf);
        let rejected = encode_batch(
            &self.codec,
            events,
            &mut buf,
            &mut self.scratch,
            &mut self.ends,
            None,
        );
        let n = buf.len() as u64;
        let sink = self.sink.clone();
        // The write may block (a full pipe, a slow terminal): keep it off the async workers.
        let (buf, result) = tokio::task::spawn_blocking(move || {
            let result = {
                let mut w = sink.lock().unwrap_or_else(|p| p.into_inner());
                w.write_all(&buf).and_then(|()| w.flush())
            };
            (buf, result)
        })
        .await
        .context("the console writer task failed")?;
        self.buf = buf;
        if self.buf.capacity() > 8 << 20 {
            // One huge batch should not pin its buffer for the rest of the run.
            self.buf = Vec::new();
        }
        result
            .context("cannot write to standard output (was the reading end of the pipe closed?)")?;
        self.bytes.add(n);
        Ok(Outcome {
            retry: Vec::new(),
            rejected,
        })
    }

    fn describe(&self) -> String {
        "console".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_metrics::Registry;

    /// A writer whose contents the test can read, counting flushes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<(Vec<u8>, usize)>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    fn events(n: usize) -> Vec<Event> {
        let shared = json!({"@metadata": {"beat": "filebeat", "type": "_doc", "version": "0.1.0"}, "input": {"type": "stdin"}});
        let shared = Arc::new(shared.as_object().unwrap().clone());
        (0..n)
            .map(|i| Event::new(shared.clone(), format!("line {i}")))
            .collect()
    }

    #[tokio::test]
    async fn writes_ndjson_with_metadata_and_flushes_once_per_batch() {
        let w = Shared::default();
        let reg = Registry::new();
        let mut c = Console::with_writer(
            Codec::Json {
                pretty: false,
                escape_html: false,
            },
            Box::new(w.clone()),
            reg.counter(&names::OUTPUT_WRITE_BYTES),
        );
        let evs = events(3);
        let o = c.send(&evs).await.unwrap();
        assert!(o.retry.is_empty() && o.rejected.is_empty());
        let (out, flushes) = w.0.lock().unwrap().clone();
        assert_eq!(flushes, 1);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["message"], format!("line {i}"));
            assert_eq!(v["@metadata"]["beat"], "filebeat");
            assert_eq!(v["input"]["type"], "stdin");
        }
        assert_eq!(
            reg.counter(&names::OUTPUT_WRITE_BYTES).get(),
            text.len() as u64
        );
    }

    #[tokio::test]
    async fn format_codec_rejects_only_events_it_cannot_render() {
        let w = Shared::default();
        let reg = Registry::new();
        let t = skiff_event::template::Template::parse("%{[message]} %{[fields.x]}").unwrap();
        let mut c = Console::with_writer(
            Codec::Format(t),
            Box::new(w.clone()),
            reg.counter(&names::OUTPUT_WRITE_BYTES),
        );
        let mut evs = events(3);
        evs[0].insert("fields.x", json!("a"));
        evs[2].insert("fields.x", json!(7));
        let o = c.send(&evs).await.unwrap();
        assert_eq!(o.rejected.len(), 1);
        assert_eq!(o.rejected[0].0, 1);
        assert!(o.rejected[0].1.contains("fields.x"));
        let text = String::from_utf8(w.0.lock().unwrap().0.clone()).unwrap();
        assert_eq!(text, "line 0 a\nline 2 7\n");
    }

    #[tokio::test]
    async fn write_errors_fail_the_batch() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "broken pipe",
                ))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let reg = Registry::new();
        let mut c = Console::with_writer(
            Codec::Json {
                pretty: false,
                escape_html: false,
            },
            Box::new(Broken),
            reg.counter(&names::OUTPUT_WRITE_BYTES),
        );
        let err = c.send(&events(1)).await.unwrap_err();
        assert!(format!("{err:#}").contains("standard output"), "{err:#}");
        assert_eq!(reg.counter(&names::OUTPUT_WRITE_BYTES).get(), 0);
    }
}
