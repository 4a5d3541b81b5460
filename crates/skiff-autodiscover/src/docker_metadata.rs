//! The `add_docker_metadata` processor: events read from a container's log file (its
//! `log.file.path` names the container id, `match_source`) or carrying the id in a field
//! (`match_fields`) get the container's `container.{id,name,image.name,labels}`.
//!
//! It lives here, not in `skiff-processors`, because it needs the Engine API client of this
//! crate, and this crate uses the processors' conditions (a dependency the other way would be a
//! cycle); the binary lists it with the other processors (`crates/skiff/src/registry.rs`,
//! `EXTRA_PROCESSORS`).
//!
//! Like Filebeat's, it does not ask the daemon per event: one watcher per daemon (a thread of
//! its own, started by the first event, shared by every `add_docker_metadata` of the process)
//! keeps the running containers' metadata from the container list and the event stream.
//! An event looked up before the watcher's first list waits for it, at most
//! [`FIRST_SYNC_WAIT`]; after that lookups are a map read.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use skiff_config::{ConfigErrors, Node, NodeValue};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Processor, ProcessorPlugin, Verdict};
use skiff_processors::condition::Condition;

use crate::docker::{Container, DEFAULT_HOST};
use crate::engine::{Engine, filters_query};

/// How long the first events wait for the watcher's first container list.
pub const FIRST_SYNC_WAIT: Duration = Duration::from_secs(2);
/// The most containers kept (a bound on memory; the cache is refilled after it is emptied).
const MAX_CONTAINERS: usize = 20_000;

/// The processor's descriptor.
pub static PLUGIN: ProcessorPlugin = ProcessorPlugin {
    name: "add_docker_metadata",
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default)]
    match_fields: Vec<String>,
    #[serde(default = "yes")]
    match_source: bool,
    #[serde(default = "default_index")]
    match_source_index: usize,
    /// Accepted for compatibility: process ids are not looked up.
    #[serde(default)]
    #[allow(dead_code)]
    match_pids: Option<Value>,
    #[serde(default)]
    labels: Option<Labels>,
    /// Accepted for compatibility: stopped containers are forgotten when destroyed.
    #[serde(default)]
    #[allow(dead_code)]
    cleanup_timeout: Option<Value>,
    #[serde(default)]
    ssl: Option<skiff_tls::SslConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Labels {
    #[serde(default = "yes")]
    dedot: bool,
}

fn default_host() -> String {
    DEFAULT_HOST.into()
}
fn yes() -> bool {
    true
}
fn default_index() -> usize {
    4
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut own = node.clone();
    if matches!(own.value, NodeValue::Null) {
        own.value = NodeValue::Map(Vec::new());
    }
    let when = own
        .remove("when")
        .map(|w| Condition::build(&w))
        .transpose()?;
    let s: Settings = own.deserialize()?;
    let engine = crate::docker::engine_from(&own, &s.host, s.ssl.as_ref())?;
    Ok(Box::new(AddDockerMetadata {
        when,
        engine,
        fields: s.match_fields,
        source_index: s.match_source.then_some(s.match_source_index),
        dedot: s.labels.is_none_or(|l| l.dedot),
    }))
}

struct AddDockerMetadata {
    when: Option<Condition>,
    engine: Engine,
    fields: Vec<String>,
    source_index: Option<usize>,
    dedot: bool,
}

impl AddDockerMetadata {
    /// The container id the event names, if any.
    fn container_id(&self, event: &Event) -> Option<String> {
        for f in &self.fields {
            if let Some(id) = event.get(f).and_then(|v| v.as_str().map(str::to_owned))
                && !id.is_empty()
            {
                return Some(id);
            }
        }
        let index = self.source_index?;
        let path = event.get("log.file.path")?;
        let path = path.as_str()?;
        // As Filebeat: split on `/`, empty parts dropped, the part at `match_source_index`
        // (4: /var/lib/docker/containers/<id>/...).
        path.split('/')
            .filter(|p| !p.is_empty())
            .nth(index)
            .map(str::to_owned)
    }
}

impl Processor for AddDockerMetadata {
    fn process(&self, event: &mut Event) -> Verdict {
        if self.when.as_ref().is_some_and(|c| !c.matches(event)) {
            return Verdict::Keep;
        }
        let Some(id) = self.container_id(event) else {
            return Verdict::Keep;
        };
        let cache = cache_for(&self.engine);
        if let Some(c) = cache.get(&id)
            && let Some(Value::Object(m)) = c.meta(self.dedot).remove("container")
        {
            for (k, v) in m {
                event.insert(&format!("container.{k}"), v);
            }
        }
        Verdict::Keep
    }
}

/// The containers of one daemon, kept by a watcher thread.
struct Cache {
    containers: Mutex<HashMap<String, Container>>,
    synced: Mutex<bool>,
    synced_cv: Condvar,
}

impl Cache {
    /// The container `id` (a full id, or a prefix of at least 12 characters as `docker ps`
    /// shows).
    fn get(&self, id: &str) -> Option<Container> {
        {
            let synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
            if !*synced {
                // Blocks this input's task at most FIRST_SYNC_WAIT, once, at start: events read
                // before the first list would otherwise miss their metadata.
                let _ = self
                    .synced_cv
                    .wait_timeout_while(synced, FIRST_SYNC_WAIT, |s| !*s);
            }
        }
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(id) {
            return Some(c.clone());
        }
        if id.len() >= 12 {
            return map.values().find(|c| c.id.starts_with(id)).cloned();
        }
        None
    }

    fn set_synced(&self) {
        *self.synced.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.synced_cv.notify_all();
    }

    fn replace(&self, all: Vec<Container>) {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        map.clear();
        for c in all.into_iter().take(MAX_CONTAINERS) {
            map.insert(c.id.clone(), c);
        }
    }

    fn insert(&self, c: Container) {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CONTAINERS {
            map.clear();
        }
        map.insert(c.id.clone(), c);
    }

    fn remove(&self, id: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The cache of `engine`'s daemon, its watcher started on first use.
fn cache_for(engine: &Engine) -> Arc<Cache> {
    static CACHES: OnceLock<Mutex<HashMap<String, Arc<Cache>>>> = OnceLock::new();
    let mut all = CACHES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = all.get(engine.host()) {
        return c.clone();
    }
    let cache = Arc::new(Cache {
        containers: Mutex::new(HashMap::new()),
        synced: Mutex::new(false),
        synced_cv: Condvar::new(),
    });
    all.insert(engine.host().to_owned(), cache.clone());
    let (engine, c) = (engine.clone(), cache.clone());
    let spawned = std::thread::Builder::new()
        .name("docker-metadata".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(watch(engine, c)),
                Err(e) => {
                    tracing::error!("add_docker_metadata: cannot start its watcher: {e}");
                    c.set_synced();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("add_docker_metadata: cannot start its watcher: {e}");
        cache.set_synced();
    }
    cache
}

/// Keeps `cache` up to date for the process's lifetime, reconnecting with backoff.
async fn watch(engine: Engine, cache: Arc<Cache>) {
    let mut backoff = Duration::from_secs(1);
    let mut logged = false;
    loop {
        let r: Result<(), crate::engine::EngineError> = async {
            let prefix = engine.version_prefix().await?;
            let mut events = engine
                .stream(&format!(
                    "{prefix}/events?{}",
                    filters_query(&json!({"type": ["container"]}))
                ))
                .await?;
            let list = engine
                .get_json(&format!("{prefix}/containers/json"))
                .await?;
            let all = list
                .as_array()
                .map(|l| l.iter().filter_map(Container::from_list).collect())
                .unwrap_or_default();
            cache.replace(all);
            cache.set_synced();
            backoff = Duration::from_secs(1);
            while let Some(ev) = events.next().await? {
                let action = ev.get("Action").and_then(Value::as_str).unwrap_or_default();
                let id = ev
                    .get("Actor")
                    .and_then(|a| a.get("ID"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match action {
                    "start" | "create" | "rename" => {
                        let path = format!("{prefix}/containers/{id}/json");
                        if id.chars().all(|c| c.is_ascii_alphanumeric())
                            && let Ok(v) = engine.get_json(&path).await
                            && let Some(c) = Container::from_inspect(&v)
                        {
                            cache.insert(c);
                        }
                    }
                    "destroy" => cache.remove(id),
                    _ => {}
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            // The first failure is worth a warning; the retries are not.
            if !logged {
                tracing::warn!(host = engine.host(), "add_docker_metadata: {e}");
                logged = true;
            }
            cache.set_synced();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The fields the processor adds for `c` (for tests and docs).
pub fn fields_of(c: &Container, dedot: bool) -> Map<String, Value> {
    c.meta(dedot)
}
