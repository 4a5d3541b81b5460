//! The top level of the configuration: which sections exist, and the agent-wide settings.
//!
//! The file is split into the parts that are built by components (inputs, processors, the
//! output, the queue) and the agent-wide settings, which are one strict struct: an unknown
//! top-level key is an error with a suggestion, like everywhere else.

use std::path::PathBuf;

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Duration, Node, NodeValue};
use skiff_event::Map;
use skiff_pipeline::dead_letter::DeadLetterConfig;

/// The configuration used when no `-c` file is given: tail the system's logs to the console.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

/// Agent-wide settings (everything but inputs, processors, queue and output).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `name`: `agent.name` (default: the host name).
    #[serde(default)]
    pub name: Option<String>,
    /// `tags`: added to every event.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `fields`: added to every event under `fields` (or the root).
    #[serde(default)]
    pub fields: Map,
    /// `fields_under_root` (default false).
    #[serde(default)]
    pub fields_under_root: bool,
    /// `shutdown_timeout`: how long to wait at shutdown for in-flight events to be
    /// acknowledged (default 0s: do not wait; they are sent again after a restart).
    #[serde(default)]
    pub shutdown_timeout: Option<Duration>,
    /// `max_procs`: worker threads (default: the number of CPUs).
    #[serde(default)]
    pub max_procs: Option<usize>,
    /// `http.*`: the monitoring endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// `logging.*`.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// `path.*`.
    #[serde(default)]
    pub path: PathConfig,
    /// `dead_letter.*`: where permanently rejected events go.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// `monitoring.*`: Beats' internal monitoring, shipping `/stats` to a monitoring cluster
    /// (docs/metrics-modules.md).
    #[serde(default)]
    pub monitoring: Option<skiff_input_metrics::monitoring::MonitoringConfig>,
    /// `supervision.*`: how failed inputs are restarted and when skiff gives up.
    #[serde(default)]
    pub supervision: skiff_topology::SupervisionConfig,
    /// `geoip.*`: where the modules' `geoip` steps find their databases.
    #[serde(default)]
    pub geoip: GeoipConfig,
}

/// `geoip.*` (skiff's own): the MaxMind DB files of the Filebeat modules' `geoip` steps
/// (docs/modules.md, "GeoIP").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// `paths`: the folders a database (`GeoLite2-City.mmdb`, `GeoLite2-ASN.mmdb`) is looked
    /// for in, in order; relative ones are under `path.config`. Default: where geoipupdate
    /// writes, `/usr/share/GeoIP` and `/var/lib/GeoIP`.
    #[serde(default = "default_geoip_paths")]
    pub paths: Vec<PathBuf>,
}

impl Default for GeoipConfig {
    fn default() -> Self {
        Self {
            paths: default_geoip_paths(),
        }
    }
}

fn default_geoip_paths() -> Vec<PathBuf> {
    skiff_modules::geoip::DEFAULT_DIRS
        .iter()
        .map(PathBuf::from)
        .collect()
}

/// `http.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http.enabled` (default false, as in Beats).
    #[serde(default)]
    pub enabled: bool,
    /// `http.host` (default 127.0.0.1).
    #[serde(default = "default_http_host")]
    pub host: String,
    /// `http.port` (default 5066).
    #[serde(default = "default_http_port")]
    pub port: u16,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: false,
            host: default_http_host(),
            port: default_http_port(),
        }
    }
}

fn default_http_host() -> String {
    "127.0.0.1".into()
}
fn default_http_port() -> u16 {
    5066
}

/// `logging.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `level`: error, warning, info (default), debug.
    #[serde(default = "default_level")]
    pub level: String,
    /// `selectors`: components to log at debug level (`*` = all).
    #[serde(default)]
    pub selectors: Vec<String>,
    /// `to_stderr` (default false; `-e` sets it).
    #[serde(default)]
    pub to_stderr: bool,
    /// `to_files` (default true): write logs under `path.logs`.
    #[serde(default = "yes")]
    pub to_files: bool,
    /// `json` (default false; log files are always JSON lines, as in Beats 8).
    #[serde(default)]
    pub json: bool,
    /// `files.*`.
    #[serde(default)]
    pub files: LogFilesConfig,
    /// `metrics.*`: the periodic "Non-zero metrics" log line.
    #[serde(default)]
    pub metrics: LogMetricsConfig,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_level(),
            selectors: Vec::new(),
            to_stderr: false,
            to_files: true,
            json: false,
            files: LogFilesConfig::default(),
            metrics: LogMetricsConfig::default(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn yes() -> bool {
    true
}

/// `logging.files.*`.
#[derive(Debug, Deserialize)]
// Some keys are accepted only so that existing filebeat.yml files load.
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct LogFilesConfig {
    /// `path` (default `path.logs`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `name` (default `skiff`).
    #[serde(default = "default_log_name")]
    pub name: String,
    /// `keepfiles` (default 7).
    #[serde(default = "default_keepfiles")]
    pub keepfiles: usize,
    /// `rotateeverybytes`: accepted for compatibility; skiff rotates log files daily.
    #[serde(default)]
    pub rotateeverybytes: Option<skiff_config::ByteSize>,
    /// `permissions`: accepted for compatibility (files are created 0600).
    #[serde(default)]
    pub permissions: Option<serde_json::Value>,
    /// `interval`: accepted for compatibility (rotation is daily).
    #[serde(default)]
    pub interval: Option<Duration>,
}

impl Default for LogFilesConfig {
    fn default() -> Self {
        LogFilesConfig {
            path: None,
            name: default_log_name(),
            keepfiles: default_keepfiles(),
            rotateeverybytes: None,
            permissions: None,
            interval: None,
        }
    }
}

fn default_log_name() -> String {
    "skiff".into()
}
fn default_keepfiles() -> usize {
    7
}

/// `logging.metrics.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogMetricsConfig {
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `period` (default 30s).
    #[serde(default = "default_period")]
    pub period: Duration,
}

impl Default for LogMetricsConfig {
    fn default() -> Self {
        LogMetricsConfig {
            enabled: true,
            period: default_period(),
        }
    }
}

fn default_period() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}

/// `path.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// `path.home` (default: the current directory).
    #[serde(default)]
    pub home: Option<PathBuf>,
    /// `path.config` (default `path.home`).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// `path.data` (default `path.home/data`).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// `path.logs` (default `path.home/logs`).
    #[serde(default)]
    pub logs: Option<PathBuf>,
}

/// `filebeat.*` keys skiff understands besides `inputs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilebeatSection {
    #[serde(default)]
    shutdown_timeout: Option<Duration>,
    #[serde(default)]
    registry: Option<FilebeatRegistry>,
    #[serde(default)]
    config: Option<FilebeatConfigFiles>,
    #[serde(default)]
    modules: Option<serde_json::Value>,
    #[serde(default)]
    autodiscover: Option<serde_json::Value>,
}

/// `filebeat.config.*`: configuration files loaded from a folder.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilebeatConfigFiles {
    /// `inputs`: input files (see [`InputFiles`]).
    #[serde(default)]
    inputs: Option<InputFiles>,
    /// `modules`: module files (`path`, a glob of `modules.d/*.yml`; see docs/modules.md).
    #[serde(default)]
    modules: Option<serde_json::Value>,
}

/// `filebeat.config.inputs.*`: inputs read from files matching `path`, each file a list of
/// inputs, optionally re-read every `reload.period` (inputs added, changed and removed while
/// running).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFiles {
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `path`: a glob; relative to `path.config` (required).
    pub path: String,
    /// `reload.*`.
    #[serde(default)]
    pub reload: ReloadConfig,
}

/// `filebeat.config.inputs.reload.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// `enabled` (default false: the files are read once, at start).
    #[serde(default)]
    pub enabled: bool,
    /// `period` (default 10s): how often the files are checked for changes.
    #[serde(default = "default_reload_period")]
    pub period: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            enabled: false,
            period: default_reload_period(),
        }
    }
}

fn default_reload_period() -> Duration {
    Duration(std::time::Duration::from_secs(10))
}

/// `filebeat.registry.*`: Filebeat's registry settings. Only `flush` means something to skiff
/// (each file input keeps its own registry under `path.data/registry`); the others are accepted
/// so that a Filebeat configuration loads, and ignored with a warning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilebeatRegistry {
    /// `flush`: the default `registry.flush` of every `filestream` and `log` input.
    #[serde(default)]
    flush: Option<Duration>,
    #[serde(default)]
    path: Option<serde_json::Value>,
    #[serde(default)]
    file_permissions: Option<serde_json::Value>,
    #[serde(default)]
    migrate_file: Option<serde_json::Value>,
}

/// Gives every file input without its own `registry.flush` the one of `filebeat.registry.flush`
/// (`flush`, the node as written, so that its errors point at the right line).
fn default_registry_flush(inputs: &mut [Node], flush: &Node) {
    for input in inputs {
        let is_file = matches!(
            input.get("type").map(|n| &n.value),
            Some(NodeValue::String(t)) if t == "filestream" || t == "log"
        );
        if is_file
            && matches!(input.value, NodeValue::Map(_))
            && input.get("registry.flush").is_none()
        {
            let mark = flush.mark.clone();
            input.insert("registry.flush", flush.clone(), &mark);
        }
    }
}

/// `setup.*`: index template and ILM settings for the Elasticsearch output. Kibana and
/// dashboards settings are accepted and ignored (skiff loads no dashboards).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    /// `setup.template.*`: validated here so `skiff test config` reports its problems; the
    /// output's setup step reads the section itself.
    #[allow(dead_code)]
    #[serde(default)]
    pub template: Option<skiff_output_elasticsearch::template::TemplateSettings>,
    /// `setup.ilm.*` (validated here, like `template`).
    #[allow(dead_code)]
    #[serde(default)]
    pub ilm: Option<skiff_output_elasticsearch::template::IlmSettings>,
    /// `setup.kibana.*` (ignored).
    #[serde(default)]
    pub kibana: Option<serde_json::Value>,
    /// `setup.dashboards.*` (ignored).
    #[serde(default)]
    pub dashboards: Option<serde_json::Value>,
}

/// The configuration, split by who builds what.
#[derive(Debug)]
pub struct Parts {
    /// Agent-wide settings.
    pub settings: Settings,
    /// The input items (`filebeat.inputs`, `skiff.inputs` or `inputs`).
    pub inputs: Vec<Node>,
    /// The global `processors` list.
    pub processors: Option<Node>,
    /// The one enabled output: its name and settings.
    pub output: Option<(String, Node)>,
    /// `queue.mem` or `queue.disk` (name and settings), if configured.
    pub queue: Option<(String, Node)>,
    /// `setup.*`, validated here and handed as is to the output's setup step.
    pub setup: Option<Node>,
    /// Warnings to log once logging is up (deprecated or ignored keys).
    pub warnings: Vec<String>,
    /// `filebeat.config.inputs`, when enabled: input files, maybe reloaded while running.
    pub input_files: Option<InputFiles>,
    /// `metricbeat.config.modules` with `reload.enabled`: module files read and reloaded
    /// while running (their blocks are not in `inputs`).
    pub metric_files: Option<skiff_input_metrics::section::ModuleFiles>,
    /// `filebeat.config.modules` with `reload.enabled`: the `modules.d/` files, read while
    /// running (their inputs are not in `inputs`; the reloader starts them).
    pub module_files: Option<InputFiles>,
    /// `skiff.strict` (or `--strict`): keys Filebeat would ignore are errors.
    pub strict: bool,
    /// What the user wrote instead of inputs that skiff cannot run, for the "nothing to run"
    /// message.
    pub unsupported_sources: Vec<(String, skiff_config::Mark)>,
    /// `filebeat.autodiscover`, when it has an enabled provider (checked; docs/autodiscover.md).
    pub autodiscover: Option<Node>,
}

/// Whether `root` (loaded, not split) asks for strict loading: `skiff.strict: true`.
pub fn strict_in(root: &Node) -> bool {
    matches!(
        root.get("skiff.strict").map(|n| &n.value),
        Some(NodeValue::Bool(true))
    ) || matches!(root.get("skiff.strict").map(|n| &n.value), Some(NodeValue::String(s)) if s == "true")
}

/// Filebeat settings that take `auto` where skiff takes a boolean, and what `auto` means for
/// skiff. `setup.ilm.enabled: auto`: ILM where Elasticsearch supports it, which every version
/// skiff talks to does.
const AUTO_VALUES: &[(&str, bool)] = &[("setup.ilm.enabled", true)];

/// Replaces `auto` by its meaning at the keys of [`AUTO_VALUES`].
fn resolve_auto(root: &mut Node) {
    for (key, meaning) in AUTO_VALUES {
        if let Some(n) = root.get_mut(key)
            && matches!(&n.value, NodeValue::String(s) if s.eq_ignore_ascii_case("auto"))
        {
            n.value = NodeValue::Bool(*meaning);
        }
    }
}

/// Splits the loaded tree and validates the agent-wide part. Collects every problem.
pub fn split(root: Node) -> Result<Parts, ConfigErrors> {
    let (parts, errors) = split_all(root);
    if errors.is_empty() {
        Ok(parts)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`split`], but returns the parts even when there are problems, so that the rest of the
/// configuration (inputs, output) can be checked too and every problem reported in one run.
pub fn split_all(mut root: Node) -> (Parts, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let strict = strict_in(&root);
    let mut input_files = None;
    let mut metric_files = None;
    let mut module_files = None;
    let unsupported_sources = Vec::new();
    let mut autodiscover = None;
    resolve_auto(&mut root);
    let mut inputs = Vec::new();

    let mut take_inputs = |node: Option<Node>, errors: &mut Vec<ConfigError>| {
        let Some(node) = node else { return };
        match node.value {
            NodeValue::Seq(items) => inputs.extend(items),
            // One input written as a map, not a list of one: go-ucfg reads it as a list.
            NodeValue::Map(_) => inputs.push(node),
            NodeValue::Null => {}
            _ => errors.push(ConfigError::new(
                &node.path,
                node.mark.clone(),
                "expected a list of inputs (`- type: filestream ...`)",
            )),
        }
    };
    take_inputs(root.remove("inputs"), &mut errors);
    if let Some(mut skiff) = root.remove("skiff") {
        take_inputs(skiff.remove("inputs"), &mut errors);
        skiff.remove("strict");
        for (k, n) in skiff.entries() {
            let e = ConfigError::new(
                &n.path,
                n.mark.clone(),
                format!("unknown key `{k}` is ignored"),
            )
            .with_suggestion(skiff_config::suggest(k, &["inputs", "strict"]));
            if let Err(e) = skiff_config::diag::tolerate(e) {
                errors.push(e);
            }
        }
    }
    let mut fb_shutdown = None;
    let mut fb_flush = None;
    if let Some(mut fb) = root.remove("filebeat") {
        take_inputs(fb.remove("inputs"), &mut errors);
        match fb.deserialize::<FilebeatSection>() {
            Ok(sec) => {
                fb_shutdown = sec.shutdown_timeout;
                if let Some(reg) = &sec.registry {
                    if reg.flush.is_some() {
                        fb_flush = fb.get("registry.flush").cloned();
                    }
                    if reg.path.is_some()
                        || reg.file_permissions.is_some()
                        || reg.migrate_file.is_some()
                    {
                        warnings.push("filebeat.registry.path, .file_permissions and .migrate_file are ignored: skiff keeps its registry under path.data/registry".into());
                    }
                }
                let config = sec.config.unwrap_or_default();
                // With `reload.enabled`, modules.d/ is read by the reloader, at start and
                // while running; without, once here.
                module_files = config
                    .modules
                    .as_ref()
                    .and_then(|m| serde_json::from_value::<InputFiles>(m.clone()).ok())
                    .filter(|m| m.enabled && m.reload.enabled);
                let files_now = config.modules.as_ref().filter(|_| module_files.is_none());
                match crate::modules::inputs(sec.modules.as_ref(), files_now) {
                    Ok(made) => inputs.extend(made),
                    Err(e) => errors.push(ConfigError::new("filebeat.modules", fb.mark.clone(), e)),
                }
                if let Some(n) = fb
                    .get("autodiscover")
                    .filter(|_| sec.autodiscover.is_some())
                {
                    // Checked here so that `skiff test config` reports its problems located;
                    // `run` reads it again to start the providers.
                    match skiff_autodiscover::config::parse(n) {
                        Ok(cfg) if !cfg.providers.is_empty() => autodiscover = Some(n.clone()),
                        Ok(_) => {}
                        Err(e) => errors.extend(e.0),
                    }
                }
                input_files = config.inputs.filter(|i| i.enabled);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(flush) = &fb_flush {
        default_registry_flush(&mut inputs, flush);
    }
    // Packetbeat's section is one input (`type: packet`) beside the file inputs.
    let pb_shutdown = root.get("packetbeat.shutdown_timeout").cloned();
    if let Some(item) = root
        .remove("packetbeat")
        .and_then(skiff_input_packet::section_input)
    {
        inputs.push(item);
    }
    // `metricbeat.*`: each module block becomes a `type: metrics` input.
    if let Some(mb) = root.remove("metricbeat") {
        match skiff_input_metrics::section::inputs_from_section(mb) {
            Ok(s) => {
                inputs.extend(s.inputs);
                warnings.extend(s.warnings);
                metric_files = s.module_files;
            }
            Err(e) => errors.extend(e.0),
        }
    }
    let processors = root.remove("processors");
    let mut setup = root.remove("setup");
    match setup.as_ref().map(|n| n.deserialize::<SetupConfig>()) {
        None => {}
        Some(Ok(s)) if s.kibana.is_some() || s.dashboards.is_some() => warnings.push(
            "setup.kibana.* and setup.dashboards.* are ignored: skiff loads no dashboards".into(),
        ),
        Some(Ok(_)) => {}
        Some(Err(e)) => errors.push(e),
    }

    // `cloud.id`/`cloud.auth`: the Elasticsearch output's hosts and credentials, as Filebeat.
    match crate::cloud_id::apply(&mut root) {
        Ok(Some(kibana)) => {
            let text = Node::new(NodeValue::String(kibana), skiff_config::Mark::none());
            let setup = setup.get_or_insert_with(Node::empty_map);
            setup.insert("kibana.host", text, &skiff_config::Mark::none());
            setup.fix_paths("setup");
        }
        Ok(None) => {}
        Err(e) => errors.push(e),
    }

    let mut output = None;
    if let Some(out) = root.remove("output") {
        let enabled: Vec<&(String, Node)> = out
            .entries()
            .iter()
            .filter(|(_, n)| n.is_enabled())
            .collect();
        match enabled.as_slice() {
            [] => {}
            [one] => output = Some((*one).clone()),
            many => {
                let names: Vec<String> = many.iter().map(|(k, _)| format!("output.{k}")).collect();
                errors.push(ConfigError::new(
                    "output",
                    out.mark.clone(),
                    format!("{} outputs are enabled ({}); skiff sends to exactly one: remove the others or set `enabled: false` on them", many.len(), names.join(", ")),
                ));
            }
        }
    }

    let mut queue = None;
    if let Some(q) = root.remove("queue") {
        let kinds: Vec<&(String, Node)> = q.entries().iter().collect();
        match kinds.as_slice() {
            [] => {}
            [one] => queue = Some((*one).clone()),
            many => {
                let names: Vec<String> = many.iter().map(|(k, _)| format!("queue.{k}")).collect();
                errors.push(ConfigError::new(
                    "queue",
                    q.mark.clone(),
                    format!(
                        "only one queue can be configured, found {}",
                        names.join(" and ")
                    ),
                ));
            }
        }
    }

    let mut settings = match root.deserialize::<Settings>() {
        Ok(s) => s,
        Err(e) => {
            errors.push(e);
            Settings::default()
        }
    };
    if settings.shutdown_timeout.is_none() {
        settings.shutdown_timeout =
            fb_shutdown.or_else(|| pb_shutdown.and_then(|n| n.deserialize::<Duration>().ok()));
    }
    if let Some(m) = &settings.monitoring {
        let n = root.get("monitoring").cloned().unwrap_or_default();
        if let Err(e) = m.validate(&n) {
            errors.extend(e.0);
        }
    }
    let parts = Parts {
        settings,
        inputs,
        processors,
        output,
        queue,
        setup,
        warnings,
        input_files,
        metric_files,
        module_files,
        strict,
        unsupported_sources,
        autodiscover,
    };
    (parts, errors)
}

impl Parts {
    /// Filebeat refuses to start with nothing to run; so does skiff: an error that says what to
    /// add. An enabled `filebeat.config.inputs` counts (its files may be empty at start).
    pub fn nothing_to_run(&self) -> Option<ConfigError> {
        if self.input_files.is_some()
            || self.autodiscover.is_some()
            || self.module_files.is_some()
            || self.metric_files.is_some()
            || self.inputs.iter().any(Node::is_enabled)
        {
            return None;
        }
        let mut message = String::from(
            "nothing to run: no input is enabled. Add one under `filebeat.inputs`, e.g. \
             `- {type: filestream, id: app, paths: [/var/log/app/*.log]}`, or load input files \
             with `filebeat.config.inputs.path: ${path.config}/inputs.d/*.yml`, or discover \
             containers with `filebeat.autodiscover.providers: [{type: docker, hints.enabled: true}]`",
        );
        let (path, mark) = match self.unsupported_sources.first() {
            Some((key, mark)) => {
                message.push_str(&format!(
                    " ({key} is not supported yet by skiff and runs nothing)"
                ));
                (key.clone(), mark.clone())
            }
            None => (String::new(), skiff_config::Mark::none()),
        };
        Some(ConfigError::new(path, mark, message))
    }
}

/// Resolves `path.*` the Beats way: command-line flags win over the file; `data` and `logs`
/// default to folders under `home`.
pub fn resolve_paths(cfg: &PathConfig, cli: &crate::cli::Global) -> skiff_pipeline::Paths {
    let home = cli
        .path_home
        .clone()
        .or_else(|| cfg.home.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let under = |p: Option<PathBuf>, name: &str| p.unwrap_or_else(|| home.join(name));
    skiff_pipeline::Paths {
        config: cli
            .path_config
            .clone()
            .or_else(|| cfg.config.clone())
            .unwrap_or_else(|| home.clone()),
        data: under(cli.path_data.clone().or_else(|| cfg.data.clone()), "data"),
        logs: under(cli.path_logs.clone().or_else(|| cfg.logs.clone()), "logs"),
        home,
    }
}

/// Dotted keys and their values.
type KeyValues = Vec<(String, Node)>;

/// `path.*` as Filebeat defines them whatever the file says, so `${path.config}` always
/// resolves: defaults relative to `path.home` (below the files), and `--path.*` flags (above the
/// files and `-E`).
fn path_settings(cli: &crate::cli::Global) -> (KeyValues, KeyValues) {
    let text = |s: String| Node::new(NodeValue::String(s), skiff_config::Mark::none());
    let defaults = vec![
        ("path.home".to_string(), text(".".into())),
        ("path.config".to_string(), text("${path.home}".into())),
        ("path.data".to_string(), text("${path.home}/data".into())),
        ("path.logs".to_string(), text("${path.home}/logs".into())),
    ];
    let flag = |s: &Option<PathBuf>| s.as_ref().map(|p| p.display().to_string());
    let forced = [
        ("path.home", flag(&cli.path_home)),
        ("path.config", flag(&cli.path_config)),
        ("path.data", flag(&cli.path_data)),
        ("path.logs", flag(&cli.path_logs)),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        let mut n = text(v?);
        n.mark = skiff_config::Mark {
            file: Some(std::sync::Arc::from(format!("--{k}"))),
            line: 0,
            column: 0,
        };
        Some((k.to_string(), n))
    })
    .collect();
    (defaults, forced)
}

/// Loads the configuration files (or the default), `-E` overrides and `${VAR}` references
/// (from the keystore, then the environment).
pub fn load(cli: &crate::cli::Global) -> Result<Node, ConfigErrors> {
    let opts = load_options(cli);
    let secrets = crate::keystore::Lookup::for_config(cli, &opts)?;
    let mut root = skiff_config::load(&opts, &|k| secrets.get(k))?;
    if let Some(file) = &cli.pcap_file {
        // -I replaces the embedded default's log inputs when no -c file is given.
        skiff_input_packet::config::apply_replay(
            &mut root,
            file,
            cli.top_speed,
            cli.loops,
            cli.config.is_empty(),
        );
    }
    if let Some(list) = &cli.modules {
        crate::modules::add_flag(&mut root, list);
    }
    modules_path_under_config(&mut root);
    // `${path.data}` and friends in values refer to the final paths.
    root.fix_paths("");
    Ok(root)
}

/// A relative `filebeat.config.modules.path` (`modules.d/*.yml`) is under `path.config`, as in
/// Filebeat and as `filebeat.config.inputs.path` is read (reload.rs), not under the directory
/// skiff happens to be started from.
fn modules_path_under_config(root: &mut Node) {
    let Some(NodeValue::String(dir)) = root.get("path.config").map(|n| n.value.clone()) else {
        return;
    };
    if let Some(n) = root.get_mut("filebeat.config.modules.path")
        && let NodeValue::String(p) = &mut n.value
        && std::path::Path::new(p.as_str()).is_relative()
    {
        *p = std::path::Path::new(&dir).join(&*p).display().to_string();
    }
}

/// What [`load`] reads: the `-c` files (relative ones under `--path.config`), `-E` overrides.
pub fn load_options(cli: &crate::cli::Global) -> skiff_config::LoadOptions {
    let mut files = cli.config.clone();
    if let Some(dir) = &cli.path_config {
        for f in &mut files {
            if f.is_relative() && !f.exists() {
                *f = dir.join(&*f);
            }
        }
    }
    let (defaults, forced) = path_settings(cli);
    skiff_config::LoadOptions {
        files,
        overrides: cli.overrides.clone(),
        default_yaml: DEFAULT_CONFIG,
        strict_perms: false,
        defaults,
        forced,
    }
}

impl Parts {
    /// What the topology is built from.
    pub fn pipeline(&self) -> skiff_topology::PipelineConfig {
        let s = &self.settings;
        skiff_topology::PipelineConfig {
            inputs: self.inputs.clone(),
            processors: self.processors.clone(),
            output: self.output.clone(),
            queue: self.queue.clone(),
            setup: self.setup.clone(),
            shutdown_timeout: s
                .shutdown_timeout
                .map_or(std::time::Duration::ZERO, |d| d.0),
            dead_letter: s.dead_letter.clone(),
            supervision: s.supervision.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(yaml: &str) -> Result<Parts, ConfigErrors> {
        let mut root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        skiff_config::expand_env(&mut root, &|_| None).unwrap();
        split(root)
    }

    #[test]
    fn the_default_config_is_valid() {
        let p = parts(DEFAULT_CONFIG).unwrap();
        assert!(!p.inputs.is_empty());
        assert_eq!(p.output.unwrap().0, "console");
    }

    #[test]
    fn filebeat_inputs_and_settings_load() {
        let p = parts(
            "filebeat.inputs:\n- type: filestream\n  id: a\n  paths: [/x]\nfilebeat.shutdown_timeout: 5s\nname: n\nhttp.enabled: true\noutput.console.pretty: true\n",
        )
        .unwrap();
        assert_eq!(p.inputs.len(), 1);
        assert_eq!(p.settings.shutdown_timeout.unwrap().0.as_secs(), 5);
        assert!(p.settings.http.enabled);
    }

    #[test]
    fn filebeat_registry_flush_is_the_default_of_file_inputs() {
        let p = parts(
            "filebeat.registry.flush: 250ms\nfilebeat.registry.path: /var/lib/x\ninputs:\n- {type: filestream, id: a, paths: [/x]}\n- {type: log, paths: [/y], registry.flush: 1s}\n- {type: stdin}\noutput.console: {}\n",
        )
        .unwrap();
        let flush = |i: usize| p.inputs[i].get("registry.flush").map(|n| n.value.clone());
        assert_eq!(flush(0), Some(NodeValue::String("250ms".into())));
        assert_eq!(flush(1), Some(NodeValue::String("1s".into())));
        assert_eq!(flush(2), None);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("filebeat.registry.path"))
        );
        // A misspelt registry key is an error, like everywhere else.
        let e = parts("filebeat.registry.flsh: 1s\noutput.console: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flsh"), "{e}");
    }

    #[test]
    fn the_packetbeat_section_is_one_more_input() {
        let p = parts(
            "filebeat.inputs:\n- {type: stdin}\npacketbeat.protocols: [{type: http}]\npacketbeat.shutdown_timeout: 3s\noutput.console: {}\n",
        )
        .unwrap();
        assert_eq!(p.inputs.len(), 2);
        let kind = p.inputs[1].get("type").map(|n| n.value.clone());
        assert_eq!(kind, Some(NodeValue::String("packet".into())));
        assert_eq!(p.settings.shutdown_timeout.unwrap().0.as_secs(), 3);
    }

    #[test]
    fn two_outputs_and_unknown_top_level_keys_are_errors() {
        let e =
            parts("output.console: {}\noutput.file.path: /tmp\nloging.level: debug\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("2 outputs are enabled (output.console, output.file)"),
            "{text}"
        );
        let e = parts("output.console: {}\nloging.level: debug\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loging") && e.contains("logging"), "{e}");
        assert!(e.contains("t.yml:2"), "{e}");
        // A disabled second output is fine.
        assert!(parts("output.console: {}\noutput.file: {enabled: false}\n").is_ok());
    }

    #[test]
    fn cloud_id_makes_the_elasticsearch_output() {
        let p = parts("filebeat.inputs: [{type: stdin}]\ncloud.id: \"staging:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==\"\ncloud.auth: \"elastic:pw\"\n").unwrap();
        let (name, out) = p.output.unwrap();
        assert_eq!(name, "elasticsearch");
        assert_eq!(
            out.get("hosts.0").unwrap().value,
            NodeValue::String(
                "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443".into()
            )
        );
        assert_eq!(
            out.get("hosts.0").unwrap().path,
            "output.elasticsearch.hosts.0"
        );
        assert_eq!(
            out.get("password").unwrap().value,
            NodeValue::String("pw".into())
        );
        assert!(p.setup.unwrap().get("kibana.host").is_some());
        let e = parts("cloud.id: nope\noutput.console: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.yml:1") && e.contains("invalid cloud id"),
            "{e}"
        );
    }
}
