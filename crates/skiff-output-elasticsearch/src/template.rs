//! The index template for the fields skiff emits (`skiff export template`), the
//! `setup.template.*` / `setup.ilm.*` settings, and installing the template at start-up.

use serde::Deserialize;
use serde_json::{Value, json};

/// `setup.template.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// enabled: install the template at start-up when it is missing. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// name: the template's name. Default `filebeat-<version>`.
    #[serde(default)]
    pub name: Option<String>,
    /// pattern: the index pattern it applies to. Default `filebeat-<version>` (the data stream).
    #[serde(default)]
    pub pattern: Option<String>,
    /// overwrite: replace an existing template. Default false.
    #[serde(default)]
    pub overwrite: bool,
    /// settings: `index.*` / `_source.*` settings merged into the template. Default none.
    #[serde(default)]
    pub settings: Option<Value>,
    /// priority: the composable template's priority. Default 150.
    #[serde(default = "priority")]
    pub priority: u32,
    /// fields, append_fields, json.*, type: accepted for compatibility; skiff's template is built
    /// in (a `json.path` template is not loaded). Default none.
    #[serde(default)]
    pub fields: Option<String>,
    /// See `fields`.
    #[serde(default)]
    pub append_fields: Option<Value>,
    /// See `fields`.
    #[serde(default)]
    pub json: Option<Value>,
    /// See `fields`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        TemplateSettings {
            enabled: true,
            name: None,
            pattern: None,
            overwrite: false,
            settings: None,
            priority: priority(),
            fields: None,
            append_fields: None,
            json: None,
            kind: None,
        }
    }
}

/// `setup.ilm.*`: accepted; skiff installs no lifecycle policy (data streams use the
/// cluster's default policy unless the template names one).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IlmSettings {
    /// enabled: whether the template names `policy_name` as its lifecycle. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// policy_name: the ILM policy referred to. Default none (no `index.lifecycle.name`).
    #[serde(default)]
    pub policy_name: Option<String>,
    /// policy_file, check_exists, overwrite, rollover_alias, pattern: accepted; not used.
    #[serde(default)]
    pub policy_file: Option<String>,
    /// See `policy_file`.
    #[serde(default)]
    pub check_exists: Option<bool>,
    /// See `policy_file`.
    #[serde(default)]
    pub overwrite: Option<bool>,
    /// See `policy_file`.
    #[serde(default)]
    pub rollover_alias: Option<String>,
    /// See `policy_file`.
    #[serde(default)]
    pub pattern: Option<String>,
}

fn yes() -> bool {
    true
}
fn priority() -> u32 {
    150
}

fn kw() -> Value {
    json!({"type": "keyword", "ignore_above": 1024})
}

/// The Beats whose events skiff ships, each with its own default index and template
/// (`<beat>-<version>`): events name theirs in `@metadata.beat`.
pub const BEATS: &[&str] = &["filebeat", "packetbeat", "metricbeat"];

/// A composable index template (data streams on) for the fields skiff emits, for data streams
/// named `filebeat-<version>`: ECS fields Filebeat sets, `message` as text, other strings as
/// keywords.
pub fn index_template(version: &str) -> Value {
    index_template_for("filebeat", version)
}

/// [`index_template`] for the data streams of `beat` (`packetbeat-<version>`, ...).
pub fn index_template_for(beat: &str, version: &str) -> Value {
    json!({
        "index_patterns": [format!("{beat}-{version}")],
        "data_stream": {},
        "priority": priority(),
        "template": {
            "settings": {
                "index": {
                    "mapping": {"total_fields": {"limit": 10000}},
                    "refresh_interval": "5s",
                }
            },
            "mappings": {
                "_meta": {"beat": beat, "version": version, "managed_by": "skiff"},
                "date_detection": false,
                "dynamic_templates": [
                    {"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}
                ],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "match_only_text"},
                    "tags": kw(),
                    "agent": {"properties": {"name": kw(), "type": kw(), "version": kw(), "id": kw(), "ephemeral_id": kw(), "hostname": kw()}},
                    "host": {"properties": {"name": kw(), "hostname": kw(), "ip": {"type": "ip"}, "mac": kw(), "architecture": kw(),
                        "os": {"properties": {"family": kw(), "name": kw(), "version": kw(), "kernel": kw(), "platform": kw(), "type": kw()}}}},
                    "ecs": {"properties": {"version": kw()}},
                    "input": {"properties": {"type": kw()}},
                    "log": {"properties": {
                        "offset": {"type": "long"},
                        "level": kw(),
                        "logger": kw(),
                        "flags": kw(),
                        "file": {"properties": {"path": kw(), "device_id": kw(), "inode": kw(), "fingerprint": kw()}},
                        "syslog": {"properties": {"facility": {"properties": {"code": {"type": "long"}, "name": kw()}}, "priority": {"type": "long"},
                            "severity": {"properties": {"code": {"type": "long"}, "name": kw()}}, "hostname": kw(), "appname": kw(), "procid": kw(), "msgid": kw()}}
                    }},
                    "event": {"properties": {"dataset": kw(), "module": kw(), "kind": kw(), "category": kw(), "type": kw(), "outcome": kw(),
                        "created": {"type": "date"}, "ingested": {"type": "date"}, "original": {"type": "keyword", "index": false, "doc_values": false}, "duration": {"type": "long"}}},
                    "data_stream": {"properties": {"type": {"type": "constant_keyword"}, "dataset": {"type": "constant_keyword"}, "namespace": {"type": "constant_keyword"}}},
                    "error": {"properties": {"message": {"type": "match_only_text"}, "type": kw(), "code": kw()}},
                    "container": {"properties": {"id": kw(), "name": kw(), "runtime": kw(), "image": {"properties": {"name": kw()}}}},
                    "cloud": {"properties": {"provider": kw(), "region": kw(), "availability_zone": kw(), "instance": {"properties": {"id": kw(), "name": kw()}}}},
                    "process": {"properties": {"pid": {"type": "long"}, "name": kw(), "executable": kw()}},
                    "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}, "address": kw()}},
                    "destination": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}, "address": kw()}},
                    "fields": {"type": "object", "dynamic": true}
                }
            }
        },
        "_meta": {"description": "skiff: fields of filebeat-compatible events", "managed_by": "skiff"}
    })
}

/// The template as `setup.template.*` / `setup.ilm.*` shape it: name and body.
pub fn configured_template(
    version: &str,
    t: &TemplateSettings,
    ilm: &IlmSettings,
) -> (String, Value) {
    configured_template_for("filebeat", version, t, ilm)
}

/// [`configured_template`] for the events of `beat`.
pub fn configured_template_for(
    beat: &str,
    version: &str,
    t: &TemplateSettings,
    ilm: &IlmSettings,
) -> (String, Value) {
    let mut body = index_template_for(beat, version);
    let name = t
        .name
        .clone()
        .unwrap_or_else(|| format!("{beat}-{version}"));
    if let Some(p) = &t.pattern {
        body["index_patterns"] = json!([p]);
    }
    body["priority"] = json!(t.priority);
    if let Some(s @ Value::Object(_)) = &t.settings {
        merge(&mut body["template"]["settings"], s);
    }
    if ilm.enabled.unwrap_or(true)
        && let Some(p) = &ilm.policy_name
    {
        body["template"]["settings"]["index"]["lifecycle"] = json!({"name": p});
    }
    (name, body)
}

/// Merges `over` into `base`, objects key by key (so `index.number_of_shards` keeps the other
/// `index.*` settings).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Installs the templates (one per Beat in [`BEATS`], or the one `setup.template.name` names)
/// on the output's first reachable host, unless they exist and `overwrite` is false. Returns
/// what was done, for the log.
///
/// The binary calls this once at start-up when `setup.template.enabled` is true (the default)
/// and the output is Elasticsearch; a failure should be logged, not fatal (Beats retries it with
/// the first connection).
pub async fn install_template(
    output: &skiff_config::Node,
    version: &str,
    t: &TemplateSettings,
    ilm: &IlmSettings,
) -> anyhow::Result<String> {
    if !t.enabled {
        return Ok("setup.template.enabled is false: not installed".into());
    }
    let beats: &[&str] = if t.name.is_some() { &BEATS[..1] } else { BEATS };
    let mut done = Vec::new();
    for beat in beats {
        let (name, body) = configured_template_for(beat, version, t, ilm);
        done.push(install_one(output, &name, &body, t.overwrite).await?);
    }
    Ok(done.join("; "))
}

async fn install_one(
    output: &skiff_config::Node,
    name: &str,
    body: &Value,
    overwrite: bool,
) -> anyhow::Result<String> {
    let shared = crate::prepare(output).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut last = anyhow::anyhow!("no hosts");
    for host in &shared.hosts {
        let url = format!("{}/_index_template/{name}", host.base);
        let exists = match shared
            .http
            .head(&url)
            .headers(shared.headers.clone())
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(e) => {
                last = anyhow::anyhow!("{}", skiff_tls::explain(&e, &host.name));
                continue;
            }
        };
        if exists && !overwrite {
            return Ok(format!(
                "index template `{name}` already exists on {}",
                host.base
            ));
        }
        let r = shared
            .http
            .put(&url)
            .headers(shared.headers.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", skiff_tls::explain(&e, &host.name)))?;
        let status = r.status();
        let text = crate::client::read_capped(r, 1 << 20)
            .await
            .unwrap_or_default();
        if status.is_success() {
            return Ok(format!(
                "index template `{name}` installed on {}",
                host.base
            ));
        }
        return Err(anyhow::anyhow!(
            "installing index template `{name}` on {} failed ({}): {}; the user needs the `manage_index_templates` privilege",
            host.base,
            status.as_u16(),
            crate::client::error_text(&text)
        ));
    }
    Err(last)
}

/// The output's setup step ([`crate::PLUGIN`]'s `setup`): reads `setup.template.*` and
/// `setup.ilm.*` and installs the template. The topology runs it once at start with a time
/// limit and only logs its outcome: events are sent whether or not it worked.
pub fn setup(
    output: &skiff_config::Node,
    ctx: &skiff_pipeline::SetupContext,
) -> skiff_pipeline::SetupFuture {
    let output = output.clone();
    let version = ctx.build.agent.version.clone();
    let section = ctx.setup.clone();
    Box::pin(async move {
        let settings = |key: &str| section.get(key).cloned();
        let t: TemplateSettings = match settings("template") {
            Some(n) => n.deserialize().map_err(|e| {
                skiff_pipeline::Failure::new(skiff_pipeline::FailureKind::Other, e.to_string())
            })?,
            None => TemplateSettings::default(),
        };
        let ilm: IlmSettings = match settings("ilm") {
            Some(n) => n.deserialize().map_err(|e| {
                skiff_pipeline::Failure::new(skiff_pipeline::FailureKind::Other, e.to_string())
            })?,
            None => IlmSettings::default(),
        };
        install_template(&output, &version, &t, &ilm)
            .await
            .map_err(skiff_pipeline::Failure::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_beat_has_its_template() {
        let (name, body) = configured_template_for(
            "packetbeat",
            "8.15.0",
            &TemplateSettings::default(),
            &IlmSettings::default(),
        );
        assert_eq!(name, "packetbeat-8.15.0");
        assert_eq!(body["index_patterns"], json!(["packetbeat-8.15.0"]));
        assert_eq!(
            body["template"]["mappings"]["_meta"]["beat"],
            json!("packetbeat")
        );
        assert_eq!(BEATS, ["filebeat", "packetbeat", "metricbeat"]);
    }

    #[test]
    fn beats_setup_keys_shape_the_template() {
        let node = skiff_config::parse_str(
            "enabled: true\nname: custom\npattern: \"custom-*\"\noverwrite: false\nsettings:\n  index.number_of_shards: 3\n",
            None,
        )
        .unwrap();
        let t: TemplateSettings = node.deserialize().unwrap();
        let node = skiff_config::parse_str("enabled: true\npolicy_name: keep-30d\n", None).unwrap();
        let ilm: IlmSettings = node.deserialize().unwrap();
        let (name, body) = configured_template("8.15.0", &t, &ilm);
        assert_eq!(name, "custom");
        assert_eq!(body["index_patterns"], json!(["custom-*"]));
        let idx = &body["template"]["settings"]["index"];
        assert_eq!(idx["number_of_shards"], json!(3));
        assert_eq!(idx["refresh_interval"], json!("5s"));
        assert_eq!(idx["lifecycle"]["name"], json!("keep-30d"));
        assert!(
            skiff_config::parse_str("nmae: x\n", None)
                .unwrap()
                .deserialize::<TemplateSettings>()
                .is_err()
        );
    }
}
