//! The `docker` provider: the containers of a Docker daemon, through its Engine API
//! ([`crate::engine`]): the running containers at start, then the event stream (`start`,
//! `unpause`; `die`, `stop`, `kill`, `destroy`). When the stream breaks (the daemon restarted,
//! the socket went away) it connects again with backoff and reports the difference: a `Stop`
//! for each container gone meanwhile, a `Start` for each new one.
//!
//! Settings (Filebeat's): `host` (default `unix:///var/run/docker.sock`), `ssl.*` (TLS to a
//! `tcp://` daemon: `certificate_authorities`, `certificate`, `key`, as `docker --tlsverify`),
//! `labels.dedot` (default true: `.` in label names becomes `_` in the data and the events).
//!
//! The data, as Filebeat's docker provider documents it:
//! `docker.container.{id,name,image,labels}` and `container.{id,name,image.name,labels}`; the
//! events get `container.{id,name,image.name,labels}`. Hints are the `co.elastic.logs/*`
//! labels. The default input for hints reads the container's `json-file` log:
//! `/var/lib/docker/containers/<id>/*-json.log` with the `container` input.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use skiff_config::{ConfigErrors, Node, NodeValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError, filters_query};
use crate::{Change, Discovered, Provider, ProviderError, ProviderPlugin};

/// The daemon's default socket.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Where Docker keeps containers' `json-file` logs.
pub const CONTAINERS_PATH: &str = "/var/lib/docker/containers";
/// The prefix of hint labels.
pub const HINTS_PREFIX: &str = "co.elastic.logs/";
/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The provider's descriptor.
pub static PLUGIN: ProviderPlugin = ProviderPlugin {
    name: "docker",
    build,
    default_hints_config: "type: container\npaths: ['/var/lib/docker/containers/${data.container.id}/*-json.log']\n",
};

/// The provider's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DockerSettings {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default)]
    ssl: Option<skiff_tls::SslConfig>,
    #[serde(default)]
    labels: Labels,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Labels {
    #[serde(default = "yes")]
    dedot: bool,
}

impl Default for Labels {
    fn default() -> Self {
        Labels { dedot: true }
    }
}

fn yes() -> bool {
    true
}

fn default_host() -> String {
    DEFAULT_HOST.into()
}

fn build(node: &Node) -> Result<Box<dyn Provider>, ConfigErrors> {
    let s: DockerSettings = node.deserialize()?;
    let engine = engine_from(node, &s.host, s.ssl.as_ref())?;
    Ok(Box::new(Docker {
        engine,
        dedot: s.labels.dedot,
    }))
}

/// The Engine API client of `host` and `ssl` (the settings of `node`, for located errors):
/// shared by the provider and `add_docker_metadata`.
pub(crate) fn engine_from(
    node: &Node,
    host: &str,
    ssl: Option<&skiff_tls::SslConfig>,
) -> Result<Engine, ConfigErrors> {
    let at = |key: &str, msg: String| {
        let n = node.get(key).unwrap_or(node);
        ConfigErrors::from(skiff_config::ConfigError::new(
            n.path.clone(),
            n.mark.clone(),
            msg,
        ))
    };
    let tls = match ssl.filter(|s| s.is_enabled()) {
        None => None,
        Some(s) => Some(skiff_tls::client_config(s).map_err(|e| at("ssl", e.to_string()))?),
    };
    Engine::new(host, tls).map_err(|e| at("host", e.to_string()))
}

/// What the provider knows of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as the container was created from it (`nginx:1.25`).
    pub image: String,
    /// Labels, as set.
    pub labels: BTreeMap<String, String>,
}

impl Container {
    /// From an item of `GET /containers/json`.
    pub fn from_list(v: &Value) -> Option<Container> {
        Some(Container {
            id: v.get("Id")?.as_str()?.to_owned(),
            name: v
                .get("Names")
                .and_then(Value::as_array)
                .and_then(|n| n.first())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: str_of(v.get("Image")),
            labels: labels_of(v.get("Labels")),
        })
    }

    /// From `GET /containers/{id}/json`.
    pub fn from_inspect(v: &Value) -> Option<Container> {
        let config = v.get("Config");
        Some(Container {
            id: v.get("Id")?.as_str()?.to_owned(),
            name: str_of(v.get("Name")).trim_start_matches('/').to_owned(),
            image: str_of(config.and_then(|c| c.get("Image"))),
            labels: labels_of(config.and_then(|c| c.get("Labels"))),
        })
    }

    /// The fields events of this container get (`container.*`), labels dedotted or not.
    pub fn meta(&self, dedot: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "container".into(),
            json!({"id": self.id, "name": self.name, "image": {"name": self.image}, "labels": self.labels_json(dedot)}),
        );
        m
    }

    fn labels_json(&self, dedot: bool) -> Value {
        let m: Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| {
                let k = if dedot {
                    k.replace('.', "_")
                } else {
                    k.clone()
                };
                (k, Value::from(v.as_str()))
            })
            .collect();
        Value::Object(m)
    }

    /// What the runner gets.
    pub fn discovered(&self, dedot: bool) -> Discovered {
        let labels = self.labels_json(dedot);
        let mut data = Map::new();
        data.insert(
            "docker".into(),
            json!({"container": {"id": self.id, "name": self.name, "image": self.image, "labels": labels}}),
        );
        data.insert(
            "container".into(),
            json!({"id": self.id, "name": self.name, "image": {"name": self.image}, "labels": labels}),
        );
        let hints = self
            .labels
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(HINTS_PREFIX)?.to_owned(), v.clone())))
            .collect();
        Discovered {
            id: self.id.clone(),
            data,
            hints,
            meta: self.meta(dedot),
        }
    }
}

fn str_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The provider.
pub struct Docker {
    engine: Engine,
    dedot: bool,
}

/// Event actions that mean the container runs.
const STARTS: &[&str] = &["start", "unpause", "restart"];
/// Event actions that mean it stopped.
const STOPS: &[&str] = &["die", "stop", "kill", "destroy", "pause"];

#[async_trait::async_trait]
impl Provider for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Change>,
        cancel: CancellationToken,
    ) -> Result<(), ProviderError> {
        let mut known: HashSet<String> = HashSet::new();
        let mut backoff = Duration::from_secs(1);
        let mut first = true;
        while !cancel.is_cancelled() {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = self.session(&tx, &mut known, &mut backoff) => r,
            };
            match outcome {
                Ok(()) => tracing::warn!(
                    host = self.engine.host(),
                    "docker: the event stream ended; connecting again"
                ),
                Err(e) if first => {
                    tracing::warn!(host = self.engine.host(), retry_in = ?backoff, "docker: {e}")
                }
                Err(e) => {
                    tracing::debug!(host = self.engine.host(), retry_in = ?backoff, "docker: {e}")
                }
            }
            first = false;
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(())
    }
}

impl Docker {
    /// One connection: the event stream opened first (nothing is missed between the list and
    /// the stream), the list reported as a difference to `known`, then events until the
    /// stream ends.
    async fn session(
        &self,
        tx: &mpsc::Sender<Change>,
        known: &mut HashSet<String>,
        backoff: &mut Duration,
    ) -> Result<(), EngineError> {
        let prefix = self.engine.version_prefix().await?;
        let filters = json!({"type": ["container"]});
        let mut events = self
            .engine
            .stream(&format!("{prefix}/events?{}", filters_query(&filters)))
            .await?;
        let list = self
            .engine
            .get_json(&format!("{prefix}/containers/json"))
            .await?;
        let Value::Array(items) = list else {
            return Err(EngineError::Answer {
                path: "/containers/json".into(),
                reason: "not a list".into(),
            });
        };
        let now: Vec<Container> = items.iter().filter_map(Container::from_list).collect();
        let ids: HashSet<String> = now.iter().map(|c| c.id.clone()).collect();
        let gone: Vec<String> = known.difference(&ids).cloned().collect();
        if !known.is_empty() {
            tracing::info!(
                host = self.engine.host(),
                gone = gone.len(),
                "docker: connected again; reporting what changed meanwhile"
            );
        }
        for id in gone {
            known.remove(&id);
            if tx.send(Change::Stop { id }).await.is_err() {
                return Ok(());
            }
        }
        for c in now {
            if known.insert(c.id.clone())
                && tx
                    .send(Change::Start(c.discovered(self.dedot)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        *backoff = Duration::from_secs(1);
        while let Some(ev) = events.next().await? {
            let action = ev
                .get("Action")
                .or_else(|| ev.get("status"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = ev
                .get("Actor")
                .and_then(|a| a.get("ID"))
                .or_else(|| ev.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if id.is_empty() {
                continue;
            }
            if STARTS.contains(&action) && !known.contains(&id) {
                let path = format!("{prefix}/containers/{}/json", url_segment(&id));
                let c = match self.engine.get_json(&path).await {
                    Ok(v) => Container::from_inspect(&v),
                    // Gone again already: its stop event follows.
                    Err(EngineError::Status { status: 404, .. }) => None,
                    Err(e) => return Err(e),
                };
                if let Some(c) = c {
                    known.insert(c.id.clone());
                    if tx
                        .send(Change::Start(c.discovered(self.dedot)))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            } else if STOPS.contains(&action)
                && known.remove(&id)
                && tx.send(Change::Stop { id }).await.is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A container id as a path segment: ids are hex, anything else is dropped.
fn url_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect()
}

/// Filebeat 6/7 templates start `type: docker` inputs (`containers.ids`, `containers.path`,
/// `containers.stream`): the `container` input reading `<path>/<id>/*-json.log` does that.
pub fn map_docker_input(cfg: &mut Node) {
    if !matches!(cfg.get("type").map(|n| &n.value), Some(NodeValue::String(t)) if t == "docker") {
        return;
    }
    let mark = cfg.mark.clone();
    let text = |s: &str| Node::new(NodeValue::String(s.to_owned()), mark.clone());
    let containers = cfg.remove("containers");
    let base = match containers
        .as_ref()
        .and_then(|c| c.get("path"))
        .map(|n| &n.value)
    {
        Some(NodeValue::String(p)) => p.clone(),
        _ => CONTAINERS_PATH.to_owned(),
    };
    let ids: Vec<String> = match containers
        .as_ref()
        .and_then(|c| c.get("ids"))
        .map(|n| &n.value)
    {
        Some(NodeValue::Seq(items)) => items
            .iter()
            .filter_map(|n| match &n.value {
                NodeValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Some(NodeValue::String(s)) => vec![s.clone()],
        _ => vec!["*".into()],
    };
    let paths = ids
        .iter()
        .map(|id| text(&format!("{}/{id}/*-json.log", base.trim_end_matches('/'))))
        .collect();
    cfg.insert("type", text("container"), &mark);
    cfg.insert(
        "paths",
        Node::new(NodeValue::Seq(paths), mark.clone()),
        &mark,
    );
    if let Some(stream) = containers.as_ref().and_then(|c| c.get("stream")) {
        cfg.insert("stream", stream.clone(), &mark);
    }
    let path = cfg.path.clone();
    cfg.fix_paths(&path);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn data_meta_and_hints_from_an_inspect_answer() {
        let v = json!({"Id": "abc123", "Name": "/web", "Config": {"Image": "nginx:1.25",
            "Labels": {"co.elastic.logs/module": "nginx", "com.example.team": "ops"}}});
        let d = Container::from_inspect(&v).unwrap().discovered(true);
        assert_eq!(d.id, "abc123");
        assert_eq!(d.data["docker"]["container"]["image"], "nginx:1.25");
        assert_eq!(d.data["container"]["image"]["name"], "nginx:1.25");
        assert_eq!(d.data["container"]["labels"]["com_example_team"], "ops");
        assert_eq!(d.meta["container"]["name"], "web");
        assert_eq!(d.hints, vec![("module".to_owned(), "nginx".to_owned())]);
    }

    #[test]
    fn the_old_docker_input_becomes_a_container_input() {
        let mut n = skiff_config::parse_str(
            "type: docker\ncontainers.ids: ['abc']\ncontainers.path: /d\ncontainers.stream: stderr\n",
            Some("t.yml"),
        )
        .unwrap();
        map_docker_input(&mut n);
        let j = n.to_json();
        assert_eq!(j["type"], "container");
        assert_eq!(j["paths"], json!(["/d/abc/*-json.log"]));
        assert_eq!(j["stream"], "stderr");
        assert!(j.get("containers").is_none());
    }

    #[test]
    fn settings_are_checked() {
        let n = skiff_config::parse_str("host: /no/scheme\n", Some("t.yml")).unwrap();
        assert!(build(&n).err().unwrap().to_string().contains("t.yml:1"));
        let n = skiff_config::parse_str("hots: unix:///x\n", Some("t.yml")).unwrap();
        assert!(build(&n).err().unwrap().to_string().contains("host"));
        let n = skiff_config::parse_str("host: unix:///x\nlabels.dedot: false\n", Some("t.yml"))
            .unwrap();
        assert!(build(&n).is_ok());
    }
}
