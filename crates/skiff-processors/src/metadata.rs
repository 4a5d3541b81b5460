//! Processors that add metadata about where skiff runs: `add_host_metadata`, `add_locale`, and
//! the not-yet-supported `add_cloud_metadata` and `add_docker_metadata` (accepted so that
//! existing `filebeat.yml` files load; one warning at start, no fields added).
//! `add_kubernetes_metadata` is built by crates/skiff-kubernetes.
//!
//! The host facts are read once, when the processor is built (`/etc/os-release`,
//! `/proc/sys/kernel/osrelease`, `/etc/machine-id`). They are the same for every event of a
//! source, so they are added to the source's *shared* fields: the first event of a source pays
//! for one copy of them, and every later event of that source just points at the same copy
//! (see [`Overlay`]). Adding host metadata therefore costs no allocation per event.

use std::sync::{Arc, Mutex, Once, Weak};

use serde::Deserialize;
use skiff_config::{ConfigErrors, Duration, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::plugin;

plugin!(ADD_HOST_METADATA, "add_host_metadata", build_host);
plugin!(ADD_LOCALE, "add_locale", build_locale);
plugin!(ADD_CLOUD_METADATA, "add_cloud_metadata", build_cloud);
plugin!(ADD_DOCKER_METADATA, "add_docker_metadata", build_docker);
plugin!(
    ADD_KUBERNETES_METADATA,
    "add_kubernetes_metadata",
    build_kubernetes
);

/// Fields merged into the shared fields of every source an event comes from, with a cache from
/// each source's shared map to its patched copy.
pub struct Overlay {
    patch: Map,
    /// Whether the patch's top-level objects replace the event's (true) or fill in only what is
    /// missing (false).
    replace: bool,
    cache: Mutex<Vec<(Weak<Map>, Arc<Map>)>>,
}

/// Sources remembered at most; beyond that the cache starts over.
const CACHE_MAX: usize = 256;

impl Overlay {
    /// An overlay adding `patch`.
    pub fn new(patch: Map, replace: bool) -> Self {
        Overlay {
            patch,
            replace,
            cache: Mutex::new(Vec::new()),
        }
    }

    /// Points the event's shared fields at the patched copy of its source's (made once).
    pub fn apply(&self, event: &mut Event) {
        let ptr = Arc::as_ptr(&event.shared);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // A held `Weak` keeps its allocation from being reused, so an equal pointer is the
        // same live map.
        if let Some((_, patched)) = cache.iter().find(|(w, _)| Weak::as_ptr(w) == ptr) {
            event.shared = patched.clone();
            return;
        }
        if cache.iter().any(|(_, p)| Arc::ptr_eq(p, &event.shared)) {
            return; // already patched
        }
        let mut m = (*event.shared).clone();
        for (k, v) in &self.patch {
            match (m.get_mut(k), v) {
                (Some(Value::Object(have)), Value::Object(add)) => merge(have, add, self.replace),
                (Some(_), _) if !self.replace => {}
                _ => {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        let patched = Arc::new(m);
        cache.retain(|(w, _)| w.strong_count() > 0);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.push((Arc::downgrade(&event.shared), patched.clone()));
        event.shared = patched;
    }
}

fn merge(have: &mut Map, add: &Map, replace: bool) {
    for (k, v) in add {
        match (have.get_mut(k), v) {
            (Some(Value::Object(h)), Value::Object(a)) => merge(h, a, replace),
            (Some(_), _) if !replace => {}
            _ => {
                have.insert(k.clone(), v.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `add_host_metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostConfig {
    /// `replace_fields`: replace host fields the event has. Default true.
    #[serde(default = "yes")]
    replace_fields: bool,
    /// `netinfo.enabled`: add `host.ip` and `host.mac` (not supported yet: ignored).
    #[serde(default)]
    netinfo: Option<NetInfo>,
    /// `cache.ttl`: accepted for compatibility; the facts are read once at start.
    #[serde(default)]
    cache: Option<CacheConfig>,
    /// `geo.*`: added as `host.geo.*`.
    #[serde(default)]
    geo: Option<Map>,
    /// `name`: `host.name` (default: the agent's host name).
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetInfo {
    #[serde(default)]
    #[allow(dead_code)]
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheConfig {
    #[serde(default)]
    #[allow(dead_code)]
    ttl: Option<Duration>,
}

fn yes() -> bool {
    true
}

struct AddHost(Overlay);

fn build_host(node: &Node, ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: HostConfig = node.deserialize()?;
    let _ = (&cfg.netinfo, &cfg.cache);
    let mut host = host_facts(&ctx.agent.hostname);
    if let Some(n) = cfg.name {
        host.insert("name".into(), Value::String(n));
    }
    if let Some(geo) = cfg.geo {
        host.insert("geo".into(), Value::Object(geo));
    }
    let mut patch = Map::new();
    patch.insert("host".into(), Value::Object(host));
    Ok(Box::new(AddHost(Overlay::new(patch, cfg.replace_fields))))
}

impl Processor for AddHost {
    fn process(&self, event: &mut Event) -> Verdict {
        self.0.apply(event);
        Verdict::Keep
    }
}

/// What Filebeat's `add_host_metadata` reports, from the files Linux has.
pub fn host_facts(hostname: &str) -> Map {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let release = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .unwrap_or_default();
    let mut os = Map::new();
    os.insert("type".into(), Value::from(std::env::consts::OS));
    let fields = parse_os_release(&release);
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = get("NAME") {
        os.insert("name".into(), Value::from(v));
    }
    if let Some(v) = get("VERSION").or_else(|| get("VERSION_ID")) {
        os.insert("version".into(), Value::from(v));
    }
    if let Some(v) = get("ID") {
        os.insert("platform".into(), Value::from(v.clone()));
        let family = get("ID_LIKE")
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or(v);
        os.insert("family".into(), Value::from(family));
    }
    if let Some(v) = get("VERSION_CODENAME") {
        os.insert("codename".into(), Value::from(v));
    }
    if let Some(k) = read("/proc/sys/kernel/osrelease") {
        os.insert("kernel".into(), Value::from(k));
    }
    let mut host = Map::new();
    host.insert("hostname".into(), Value::from(hostname));
    host.insert("name".into(), Value::from(hostname));
    host.insert("architecture".into(), Value::from(std::env::consts::ARCH));
    host.insert("os".into(), Value::Object(os));
    if let Some(id) = read("/etc/machine-id").filter(|s| !s.is_empty()) {
        host.insert("id".into(), Value::from(id));
    }
    let containerized = std::path::Path::new("/.dockerenv").exists()
        || read("/proc/1/cgroup").is_some_and(|c| c.contains("docker") || c.contains("kubepods"));
    host.insert("containerized".into(), Value::Bool(containerized));
    host
}

/// `KEY=value` / `KEY="value"` lines.
fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            if k.starts_with('#') {
                return None;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// `add_locale`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocaleConfig {
    /// `format`: `offset` (`+02:00`, the default) or `abbreviation` (the `TZ` name when set,
    /// else the offset: skiff does not read time zone databases).
    #[serde(default)]
    format: Option<String>,
}

struct AddLocale(Overlay);

fn build_locale(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: LocaleConfig = node.deserialize()?;
    let offset = chrono::Local::now().format("%:z").to_string();
    let tz = match cfg.format.as_deref().unwrap_or("offset") {
        "offset" => offset,
        "abbreviation" => std::env::var("TZ")
            .ok()
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .unwrap_or(offset),
        other => {
            return Err(crate::error_at(
                node.get("format").unwrap_or(node),
                format!("add_locale.format is `offset` or `abbreviation`, not `{other}`"),
            )
            .with_suggestion(skiff_config::suggest(other, &["offset", "abbreviation"]))
            .into());
        }
    };
    let mut patch = Map::new();
    patch.insert("event".into(), serde_json::json!({ "timezone": tz }));
    Ok(Box::new(AddLocale(Overlay::new(patch, true))))
}

impl Processor for AddLocale {
    fn process(&self, event: &mut Event) -> Verdict {
        self.0.apply(event);
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// A processor skiff accepts but does not implement yet: passes events through.
struct NotYet;

impl Processor for NotYet {
    fn process(&self, _event: &mut Event) -> Verdict {
        Verdict::Keep
    }
}

fn not_yet(
    node: &Node,
    once: &'static Once,
    name: &'static str,
    fields: &'static str,
) -> Box<dyn Processor> {
    // Also a configuration warning, so that `skiff test config` lists it with its place
    // (outside a check it is only a debug line: the log line below says it once).
    skiff_config::diag::warn(skiff_config::ConfigError::new(
        &node.path,
        node.mark.clone(),
        format!(
            "{name} is not supported by skiff yet and does nothing: events will not carry {fields} fields"
        ),
    ));
    once.call_once(|| {
        tracing::warn!(
            processor = name,
            "processor is not supported by skiff yet and does nothing; events will not carry {fields} fields"
        )
    });
    Box::new(NotYet)
}

static CLOUD: Once = Once::new();
static DOCKER: Once = Once::new();

fn build_cloud(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(not_yet(node, &CLOUD, "add_cloud_metadata", "cloud.*"))
}

fn build_docker(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(not_yet(node, &DOCKER, "add_docker_metadata", "container.*"))
}

/// `add_kubernetes_metadata` lives with the Kubernetes API client it shares with the kubernetes
/// autodiscover provider (crates/skiff-kubernetes).
fn build_kubernetes(node: &Node, ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    skiff_kubernetes::processor::build(node, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    #[test]
    fn processors_not_supported_yet_are_configuration_warnings() {
        let (p, diag) = skiff_config::collect(false, || {
            build("processors: [{add_host_metadata: ~}, {add_cloud_metadata: ~}]")
        });
        assert!(p.is_ok());
        assert_eq!(diag.warnings.len(), 1, "{:?}", diag.warnings);
        let w = diag.warnings[0].to_string();
        assert!(
            w.contains("add_cloud_metadata is not supported by skiff yet"),
            "{w}"
        );
    }

    #[test]
    fn host_metadata_is_shared_per_source_and_copy_on_write() {
        let p = build("processors: [{add_host_metadata: {when.not.contains.tags: forwarded}}]")
            .unwrap();
        let a = event("a");
        let source = a.shared.clone();
        let b = Event::new(source.clone(), "b".into());
        let a = run(&p, a).unwrap();
        let b = run(&p, b).unwrap();
        // One patched copy for the source; the source itself is untouched.
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &source));
        assert!(source["host"].get("architecture").is_none());
        let v = json(&a);
        assert_eq!(v["host"]["hostname"], "myhost");
        assert_eq!(v["host"]["name"], "myhost");
        assert_eq!(v["host"]["architecture"], std::env::consts::ARCH);
        assert_eq!(v["host"]["os"]["type"], "linux");
        assert_eq!(v["input"]["type"], "filestream");
        // Forwarded events are left alone.
        let mut fwd = event("f");
        fwd.insert("tags", json!(["forwarded"]));
        assert!(json(&run(&p, fwd).unwrap())["host"].get("os").is_none());
    }

    #[test]
    fn host_metadata_options() {
        let p = build("processors: [{add_host_metadata: {name: custom, geo: {name: dc1}, netinfo.enabled: true, cache.ttl: 5m}}]").unwrap();
        let v = json(&run(&p, event("a")).unwrap());
        assert_eq!(v["host"]["name"], "custom");
        assert_eq!(v["host"]["geo"]["name"], "dc1");
        let p = build("processors: [{add_host_metadata: {replace_fields: false}}]").unwrap();
        let v = json(&run(&p, event("a")).unwrap());
        assert_eq!(v["host"]["name"], "web-1");
        assert_eq!(v["host"]["hostname"], "myhost");
        assert!(build("processors: [{add_host_metadata: {netinfo: {enable: true}}}]").is_err());
    }

    #[test]
    fn os_release_parsing() {
        let f = parse_os_release("NAME=\"Debian GNU/Linux\"\nID=debian\n# c\nVERSION_ID='12'\n");
        assert_eq!(
            f,
            [
                ("NAME".to_string(), "Debian GNU/Linux".to_string()),
                ("ID".into(), "debian".into()),
                ("VERSION_ID".into(), "12".into())
            ]
        );
    }

    #[test]
    fn locale_and_unsupported_ones() {
        let p = build("processors: [{add_locale: ~}, {add_cloud_metadata: {timeout: 3s}}, {add_docker_metadata: ~}, {add_kubernetes_metadata: {host: x}}]").unwrap();
        let v = json(&run(&p, event("a")).unwrap());
        let tz = v["event"]["timezone"].as_str().unwrap();
        assert!(
            tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')),
            "{tz}"
        );
        assert!(v.get("cloud").is_none());
        let e = build("processors: [{add_locale: {format: abbrev}}]")
            .err()
            .unwrap();
        assert!(e.to_string().contains("abbreviation"), "{e}");
    }
}
