//! The runner, shared by every provider: providers' [`Change`]s into inputs added to and
//! removed from the running topology.
//!
//! * `Start`: the first template whose condition matches the container's data, its `config`
//!   with `${data.*}` filled in; else, with `hints.enabled`, the container's hints (or
//!   `hints.default_config`). Each input gets the id `<provider>-<container id>-<index>`, stable
//!   across restarts of skiff, so a file input resumes from its registry: a container still
//!   running after a restart is read on from where it was, not again. Its events get the
//!   container's fields (`Discovered::meta`) by an `add_fields` processor put first in its
//!   `processors`.
//! * `Stop`: the inputs are stopped `cleanup_timeout` later (a container started again within
//!   it keeps them). Even then, an input is stopped only once every file it reads is fully
//!   shipped (everything read up to the file's end and acknowledged, as `GET /inputs/` shows):
//!   a container that stops while the output is slow or down loses nothing. Removing waits for
//!   the input to save its state, as a reload does.
//!
//! The runner does not own the topology: the binary's main loop calls [`Runner::next`] and
//! hands each [`Step`] to [`Runner::apply`] with the `Running` it owns, beside reloads and
//! signals.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use skiff_config::{Mark, Node, NodeValue};
use skiff_metrics::names;
use skiff_pipeline::BuildContext;
use skiff_topology::{Plugins, Running, input_from_config};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AutodiscoverConfig, ProviderConfig};
use crate::hints::{self, Hinted};
use crate::template;
use crate::{Change, Discovered};

/// How often a due stop looks again at an input whose files are not fully shipped yet.
const SHIPPED_RECHECK: Duration = Duration::from_millis(500);
/// The longest wait between restarts of a provider that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Changes buffered between the providers and the main loop.
const CHANNEL: usize = 256;

/// What [`Runner::next`] found to do.
#[derive(Debug)]
pub enum Step {
    /// Provider `0` reported a change.
    Change(usize, Change),
    /// A stop's `cleanup_timeout` has passed.
    StopDue,
}

/// The inputs started for one container.
struct Started {
    name: String,
    inputs: Vec<String>,
    /// When its stop is due (the container stopped).
    stop_at: Option<Instant>,
    /// Whether the wait for its files to be shipped was logged.
    waiting_logged: bool,
}

/// The autodiscover runner: provider tasks and what they started.
pub struct Runner {
    providers: Vec<ProviderConfig>,
    rx: mpsc::Receiver<(usize, Change)>,
    cancel: CancellationToken,
    started: HashMap<(usize, String), Started>,
    plugins: Plugins,
    ctx: BuildContext,
    stop_wait: Duration,
}

impl Runner {
    /// Starts every provider's task (each restarted with backoff when it fails). `stop_wait`:
    /// how long a removed input waits for its events to be acknowledged (as a reload's).
    pub fn start(
        cfg: AutodiscoverConfig,
        plugins: Plugins,
        ctx: BuildContext,
        stop_wait: Duration,
    ) -> Runner {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        for (i, p) in cfg.providers.iter().enumerate() {
            tokio::spawn(supervise(
                i,
                p.plugin,
                p.settings.clone(),
                tx.clone(),
                cancel.clone(),
            ));
        }
        Runner {
            providers: cfg.providers,
            rx,
            cancel,
            started: HashMap::new(),
            plugins,
            ctx,
            stop_wait,
        }
    }

    /// Stops the providers (the inputs they started stop with the topology).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// The ids of the inputs started for containers, sorted.
    pub fn input_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .started
            .values()
            .flat_map(|s| s.inputs.iter().cloned())
            .collect();
        ids.sort();
        ids
    }

    /// Waits for the next change or due stop. Never returns while there is neither.
    pub async fn next(&mut self) -> Step {
        let due = self.started.values().filter_map(|s| s.stop_at).min();
        tokio::select! {
            Some((i, c)) = self.rx.recv() => Step::Change(i, c),
            _ = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Step::StopDue,
        }
    }

    /// Applies a step to the running topology.
    pub async fn apply(&mut self, step: Step, running: &mut Running) {
        match step {
            Step::Change(i, Change::Start(d)) => {
                self.count_change(i, "start");
                self.start_container(i, d, running);
            }
            Step::Change(i, Change::Stop { id }) => {
                self.count_change(i, "stop");
                let cleanup = self.providers[i].cleanup_timeout;
                if let Some(s) = self.started.get_mut(&(i, id)) {
                    s.stop_at.get_or_insert(Instant::now() + cleanup);
                    tracing::info!(container = %s.name, inputs = ?s.inputs, cleanup_timeout = ?cleanup, "autodiscover: container stopped; its inputs stop after cleanup_timeout");
                }
            }
            Step::StopDue => self.stop_due(running).await,
        }
    }

    fn count_change(&self, i: usize, change: &str) {
        let provider = self.providers[i].plugin.name;
        self.ctx
            .metrics
            .counter_with(
                &names::AUTODISCOVER_CHANGES,
                &[("provider", provider), ("change", change)],
            )
            .inc();
    }

    fn count_inputs(&self, i: usize, action: &str, n: usize) {
        let provider = self.providers[i].plugin.name;
        let m = &self.ctx.metrics;
        m.counter_with(
            &names::AUTODISCOVER_INPUTS,
            &[("provider", provider), ("action", action)],
        )
        .add(n as u64);
        let running: usize = self
            .started
            .iter()
            .filter(|((p, _), _)| *p == i)
            .map(|(_, s)| s.inputs.len())
            .sum();
        m.gauge_with(&names::AUTODISCOVER_RUNNING, &[("provider", provider)])
            .set(running as i64);
    }

    fn start_container(&mut self, i: usize, d: Discovered, running: &mut Running) {
        let key = (i, d.id.clone());
        if let Some(s) = self.started.get_mut(&key) {
            // Started again within cleanup_timeout, or reported again after a reconnect: its
            // inputs run on.
            s.stop_at = None;
            return;
        }
        let p = &self.providers[i];
        let name = d
            .data
            .get("container")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(&d.id)
            .to_owned();
        let configs = match configs_for(p, &d) {
            Ok(c) => c,
            Err(why) => {
                tracing::error!(container = %name, "autodiscover: no input for this container: {why}");
                self.count_inputs(i, "failed", 1);
                return;
            }
        };
        let mut ids = Vec::new();
        let mut failed = 0;
        for (n, mut cfg) in configs.into_iter().enumerate() {
            let id = format!("{}-{}-{n}", p.plugin.name, d.id);
            prepare(&mut cfg, &id, &d.meta);
            let built = skiff_config::collect(false, || {
                input_from_config(n, &cfg, &self.plugins, &self.ctx)
            })
            .0;
            let spec = match built {
                Ok(Some(spec)) => spec.stop_wait(self.stop_wait),
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(container = %name, input = %id, "autodiscover: cannot build the input: {e}");
                    failed += 1;
                    continue;
                }
            };
            match running.add_input(spec) {
                Ok(()) => ids.push(id),
                Err(e) => {
                    tracing::error!(container = %name, input = %id, "autodiscover: cannot start the input: {e}");
                    failed += 1;
                }
            }
        }
        if ids.is_empty() && failed == 0 {
            tracing::debug!(container = %name, "autodiscover: no template or hint matches");
            return;
        }
        tracing::info!(container = %name, inputs = ?ids, "autodiscover: inputs started");
        let n = ids.len();
        self.started.insert(
            key,
            Started {
                name,
                inputs: ids,
                stop_at: None,
                waiting_logged: false,
            },
        );
        self.count_inputs(i, "started", n);
        if failed > 0 {
            self.count_inputs(i, "failed", failed);
        }
    }

    async fn stop_due(&mut self, running: &mut Running) {
        let now = Instant::now();
        let due: Vec<(usize, String)> = self
            .started
            .iter()
            .filter(|(_, s)| s.stop_at.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let status = self.ctx.status.snapshot();
        for key in due {
            let Some(s) = self.started.get_mut(&key) else {
                continue;
            };
            let pending: Vec<&String> = s
                .inputs
                .iter()
                .filter(|id| status.get(*id).is_some_and(|doc| !fully_shipped(doc)))
                .collect();
            if !pending.is_empty() {
                if !s.waiting_logged {
                    tracing::info!(container = %s.name, inputs = ?pending, "autodiscover: the stopped container's logs are not all shipped yet; its inputs stop once they are");
                    s.waiting_logged = true;
                }
                s.stop_at = Some(now + SHIPPED_RECHECK);
                continue;
            }
            let Some(s) = self.started.remove(&key) else {
                continue;
            };
            for id in &s.inputs {
                running.remove_input(id).await;
            }
            tracing::info!(container = %s.name, inputs = ?s.inputs, "autodiscover: inputs stopped");
            self.count_inputs(key.0, "stopped", s.inputs.len());
        }
    }
}

/// Whether every file of a file input's status document is fully shipped (read to its end and
/// acknowledged). Documents of other inputs have no files: nothing to wait for.
fn fully_shipped(doc: &Value) -> bool {
    doc.get("files")
        .and_then(Value::as_array)
        .is_none_or(|files| {
            files.iter().all(|f| {
                f.get("fully_shipped").and_then(Value::as_bool) == Some(true)
                    || f.get("state").and_then(Value::as_str) == Some("removed")
            })
        })
}

/// The input settings for a container: the first matching template's, else its hints'.
fn configs_for(p: &ProviderConfig, d: &Discovered) -> Result<Vec<Node>, String> {
    if let Some(t) = p.templates.iter().find(|t| t.matches(&d.data)) {
        let mut out = Vec::new();
        for c in &t.config {
            let mut c = c.clone();
            template::substitute(&mut c, &d.data).map_err(|e| e.to_string())?;
            out.extend(module_inputs(c)?);
        }
        return Ok(out);
    }
    if !p.hints.enabled {
        return Ok(Vec::new());
    }
    let mut default = p.hints.default_config.clone();
    template::substitute(&mut default, &d.data).map_err(|e| e.to_string())?;
    let Value::Object(default) = default.to_json() else {
        return Err("hints.default_config is not a map".into());
    };
    let mark = Mark {
        file: Some(std::sync::Arc::from(format!(
            "co.elastic.logs/* hints of container {}",
            d.id
        ))),
        line: 0,
        column: 0,
    };
    match hints::build(&d.hints, &default, p.hints.default_enabled)? {
        Hinted::Nothing => Ok(Vec::new()),
        Hinted::Inputs(list) => Ok(list
            .iter()
            .map(|v| {
                let mut n = Node::new(template::json_node(v, &mark), mark.clone());
                n.fix_paths("");
                n
            })
            .collect()),
    }
}

/// A template's `config` item that names a module (`- module: nginx` with each fileset's
/// `input:` settings, e.g. `type: container` and the container's `paths`, as Filebeat's
/// autodiscover documentation shows) becomes its filesets' inputs, as `filebeat.modules` does;
/// any other item is an input already.
fn module_inputs(item: Node) -> Result<Vec<Node>, String> {
    if item.get("module").is_none() {
        return Ok(vec![item]);
    }
    let made = skiff_modules::config::expand(&[item.to_json()], skiff_modules::config::this_os())
        .map_err(|e| e.to_string())?;
    Ok(made
        .iter()
        .map(|v| {
            let mut n = Node::new(template::json_node(v, &item.mark), item.mark.clone());
            n.fix_paths("");
            n
        })
        .collect())
}

/// Gives an input its autodiscover id, the container's fields first in its processors, and
/// maps the old `docker` input to the `container` input.
fn prepare(cfg: &mut Node, id: &str, meta: &Map<String, Value>) {
    let mark = cfg.mark.clone();
    crate::docker::map_docker_input(cfg);
    cfg.insert(
        "id",
        Node::new(NodeValue::String(id.into()), mark.clone()),
        &mark,
    );
    if meta.is_empty() {
        return;
    }
    let add = json!({"add_fields": {"target": "", "fields": meta}});
    let add = Node::new(template::json_node(&add, &mark), mark.clone());
    let mut list = vec![add];
    match cfg.remove("processors").map(|n| n.value) {
        Some(NodeValue::Seq(items)) => list.extend(items),
        Some(NodeValue::Null) | None => {}
        Some(other) => list.push(Node::new(other, mark.clone())),
    }
    cfg.insert(
        "processors",
        Node::new(NodeValue::Seq(list), mark.clone()),
        &mark,
    );
    cfg.fix_paths(&cfg.path.clone());
}

/// Runs one provider until cancelled, building and starting it again (with backoff) when it
/// fails; its changes are tagged with its index.
async fn supervise(
    index: usize,
    plugin: &'static crate::ProviderPlugin,
    settings: Node,
    tx: mpsc::Sender<(usize, Change)>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    while !cancel.is_cancelled() {
        let provider = match (plugin.build)(&settings) {
            Ok(p) => p,
            Err(e) => {
                // Checked when the configuration was read; nothing to retry.
                tracing::error!(provider = plugin.name, "autodiscover: {e}");
                return;
            }
        };
        let (ptx, mut prx) = mpsc::channel(CHANNEL);
        let run = provider.run(ptx, cancel.clone());
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(c) = prx.recv() => {
                    if tx.send((index, c)).await.is_err() {
                        return;
                    }
                }
            }
        };
        // What the provider sent before it returned.
        while let Ok(c) = prx.try_recv() {
            if tx.send((index, c)).await.is_err() {
                return;
            }
        }
        match result {
            Ok(()) if cancel.is_cancelled() => return,
            Ok(()) => {
                tracing::warn!(
                    provider = plugin.name,
                    "autodiscover: the provider ended; starting it again"
                );
            }
            Err(e) => {
                tracing::warn!(provider = plugin.name, retry_in = ?backoff, "autodiscover: {e}");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_input_is_shipped_when_every_file_is() {
        let doc = |files: Value| json!({"id": "x", "files": files});
        assert!(fully_shipped(&doc(json!([]))));
        assert!(
            fully_shipped(&json!({"id": "tcp"})),
            "no files: nothing to wait for"
        );
        assert!(fully_shipped(&doc(
            json!([{"fully_shipped": true}, {"fully_shipped": false, "state": "removed"}])
        )));
        assert!(!fully_shipped(&doc(
            json!([{"fully_shipped": true}, {"fully_shipped": false, "state": "reading"}])
        )));
    }

    #[test]
    fn prepared_inputs_get_the_id_and_the_container_fields_first() {
        let mut n = skiff_config::parse_str(
            "type: docker\ncontainers.ids: [abc]\nprocessors: [{add_tags: {tags: [x]}}]\n",
            Some("t.yml"),
        )
        .unwrap();
        let meta = json!({"container": {"id": "abc"}})
            .as_object()
            .unwrap()
            .clone();
        prepare(&mut n, "docker-abc-0", &meta);
        let j = n.to_json();
        assert_eq!(j["id"], "docker-abc-0");
        assert_eq!(j["type"], "container");
        assert_eq!(
            j["processors"][0]["add_fields"],
            json!({"target": "", "fields": {"container": {"id": "abc"}}})
        );
        assert_eq!(j["processors"][1]["add_tags"]["tags"], json!(["x"]));
    }

    #[test]
    fn a_module_in_a_template_becomes_its_filesets_inputs() {
        let n = skiff_config::parse_str(
            "module: nginx\naccess:\n  input: {type: container, stream: stdout, paths: [/c/abc/*.log]}\nerror:\n  enabled: false\n",
            Some("t.yml"),
        )
        .unwrap();
        let made: Vec<Value> = module_inputs(n)
            .unwrap()
            .iter()
            .map(Node::to_json)
            .collect();
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(made[0]["type"], "container");
        assert_eq!(made[0]["stream"], "stdout");
        assert_eq!(made[0]["paths"], json!(["/c/abc/*.log"]));
        assert_eq!(
            made[0]["processors"][0]["module_pipeline"],
            json!({"module": "nginx", "fileset": "access"})
        );
        // An input is left as it is; an unknown module is refused.
        let input = skiff_config::parse_str("type: container\npaths: [/x]\n", None).unwrap();
        assert_eq!(module_inputs(input).unwrap().len(), 1);
        let bad = skiff_config::parse_str("module: ngnix\n", None).unwrap();
        assert!(module_inputs(bad).unwrap_err().contains("unknown module"));
    }
}
