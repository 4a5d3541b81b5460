//! Building a topology's components from the configuration: every input, processor, the queue
//! and the output, looked up by name in the [`Plugins`] table the caller passes in (the
//! binary's registry), so this crate depends on no component crate. Problems from all
//! components are collected, so `skiff test config` lists them in one run.

use std::collections::HashMap;
use std::sync::Arc;

use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_pipeline::dead_letter::DeadLetter;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig};
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    BuildContext, Failure, FailureKind, InputCommon, InputPlugin, OutputPlugin, OutputSet,
    Processor, Queue,
};

use crate::PipelineConfig;
use crate::topology::{InputSpec, OutputSpec, Topology};

/// Builds a `processors` list.
pub type BuildProcessors =
    fn(Option<&Node>, &BuildContext) -> Result<Vec<Arc<dyn Processor>>, ConfigErrors>;

/// The components a topology can be built from: the binary's one table.
#[derive(Clone, Copy)]
pub struct Plugins {
    /// Every input type.
    pub inputs: &'static [&'static InputPlugin],
    /// Every output type.
    pub outputs: &'static [&'static OutputPlugin],
    /// Builds a `processors` list (names resolved in the processors' own table).
    pub processors: BuildProcessors,
}

/// An error for a node, with its path and mark.
pub fn error_at(node: &Node, message: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), message)
}

impl Topology {
    /// Builds every component of `cfg`, or returns every problem found. With `check_only` (for
    /// `skiff test config`) stateful parts are validated but not opened (the disk queue).
    pub fn from_config(
        cfg: &PipelineConfig,
        plugins: &Plugins,
        ctx: &BuildContext,
        check_only: bool,
    ) -> Result<Topology, ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();
        let processors = (plugins.processors)(cfg.processors.as_ref(), ctx).unwrap_or_else(|e| {
            errors.extend(e.0);
            Vec::new()
        });

        let mut inputs = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for (i, item) in cfg.inputs.iter().enumerate() {
            match build_input(i, item, plugins, ctx) {
                Ok(None) => {}
                Ok(Some(b)) => {
                    if let Some(first) = ids.insert(b.id.clone(), item.path.clone()) {
                        errors.push(error_at(
                            item,
                            format!("input id `{}` is already used by {first}: every input needs its own `id` (it keys the input's saved state)", b.id),
                        ));
                    }
                    inputs.push(b);
                }
                Err(e) => {
                    errors.extend(e.0);
                    // Its id still counts: a second input with it is a problem of its own.
                    if let Some(NodeValue::String(id)) = item.get("id").map(|n| &n.value)
                        && let Some(first) = ids.insert(id.clone(), item.path.clone())
                    {
                        errors.push(error_at(
                            item,
                            format!("input id `{id}` is already used by {first}: every input needs its own `id` (it keys the input's saved state)"),
                        ));
                    }
                }
            }
        }

        let queue = build_queue(cfg.queue.as_ref(), ctx, check_only)
            .map_err(|e| errors.extend(e.0))
            .ok();
        let output = build_output(cfg.output.as_ref(), plugins, ctx)
            .map_err(|e| errors.extend(e.0))
            .ok();

        let dead_letter = cfg.dead_letter.enabled.then(|| {
            let dir = cfg
                .dead_letter
                .path
                .clone()
                .unwrap_or_else(|| ctx.paths.data.join("dead_letter"));
            Arc::new(DeadLetter::new(
                &dir,
                cfg.dead_letter.max_size.0,
                &ctx.metrics,
            ))
        });

        match (errors.is_empty(), queue, output) {
            (true, Some((queue, persists)), Some(output)) => {
                let mut b = Topology::builder(ctx.clone())
                    .queue(queue, persists)
                    .processors(processors)
                    .shutdown_timeout(cfg.shutdown_timeout)
                    .supervision(cfg.supervision.clone());
                b.output = Some(output);
                b.dead_letter = dead_letter;
                b.setup = cfg.setup.clone();
                b.inputs = inputs;
                Ok(b.build())
            }
            _ => Err(ConfigErrors(errors)),
        }
    }
}

fn build_output(
    output: Option<&(String, Node)>,
    plugins: &Plugins,
    ctx: &BuildContext,
) -> Result<OutputSpec, ConfigErrors> {
    let Some((name, node)) = output else {
        return Err(ConfigError::new(
            "output",
            skiff_config::Mark::none(),
            "no output is configured: add one, e.g. `output.console: {}` or `output.elasticsearch.hosts: [\"http://localhost:9200\"]`",
        )
        .into());
    };
    let Some(p) = plugins.outputs.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = plugins.outputs.iter().map(|p| p.name).collect();
        return Err(error_at(
            node,
            format!("unknown output `{name}` (skiff has: {})", names.join(", ")),
        )
        .with_suggestion(skiff_config::suggest(name, &names))
        .into());
    };
    let mut node = node.clone();
    node.remove("enabled");
    let set: OutputSet = (p.build)(&node, ctx)?;
    if set.clients.is_empty() {
        return Err(error_at(&node, "the output has no hosts to send to").into());
    }
    Ok(OutputSpec {
        name: name.clone(),
        set,
        setup: p.setup.map(|f| (f, node)),
    })
}

/// Builds one input item (a map with `type`, as in `filebeat.inputs`) for
/// [`Running::add_input`](crate::Running::add_input): `Ok(None)` when it is disabled. `index`
/// names it when it has no `id` (`<type>-<index>`).
pub fn input_from_config(
    index: usize,
    item: &Node,
    plugins: &Plugins,
    ctx: &BuildContext,
) -> Result<Option<InputSpec>, ConfigErrors> {
    build_input(index, item, plugins, ctx)
}

fn build_input(
    index: usize,
    item: &Node,
    plugins: &Plugins,
    ctx: &BuildContext,
) -> Result<Option<InputSpec>, ConfigErrors> {
    if !matches!(item.value, NodeValue::Map(_)) {
        return Err(error_at(item, "an input must be a map with at least `type`").into());
    }
    if !item.is_enabled() {
        return Ok(None);
    }
    let mut rest = item.clone();
    let processors_node = rest.remove("processors");
    let mut common_entries = Vec::new();
    for key in InputCommon::KEYS {
        if let Some(n) = rest.remove(key) {
            common_entries.push(((*key).to_owned(), n));
        }
    }
    let mut common_node = Node::new(NodeValue::Map(common_entries), item.mark.clone());
    common_node.path = item.path.clone();
    let common: InputCommon = common_node.deserialize()?;
    let names: Vec<&str> = plugins.inputs.iter().map(|p| p.name).collect();
    if common.kind.is_empty() {
        return Err(error_at(
            item,
            format!("missing required key `type` (one of: {})", names.join(", ")),
        )
        .into());
    }
    let Some(plugin) = plugins.inputs.iter().find(|p| p.name == common.kind) else {
        let node = item.get("type").unwrap_or(item);
        return Err(error_at(
            node,
            format!(
                "unknown input type `{}` (skiff has: {})",
                common.kind,
                names.join(", ")
            ),
        )
        .with_suggestion(skiff_config::suggest(&common.kind, &names))
        .into());
    };
    let plugin: &'static InputPlugin = plugin;
    let processors = (plugins.processors)(processors_node.as_ref(), ctx)?;
    let id = common
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{index}", common.kind));
    Ok(Some(
        InputSpec::from_plugin(id, plugin, rest, common, ctx)?.processors(processors),
    ))
}

impl InputSpec {
    /// The input `plugin` built from its own settings `node` and the common ones, with its
    /// shared fields from `ctx`; a restart builds it again from the same settings, as at
    /// start. Errors: the settings are invalid.
    pub fn from_plugin(
        id: impl Into<String>,
        plugin: &'static InputPlugin,
        node: Node,
        common: InputCommon,
        ctx: &BuildContext,
    ) -> Result<InputSpec, ConfigErrors> {
        let input = (plugin.build)(&node, &common, ctx)?;
        let shared = Arc::new(ctx.shared_fields(&common, plugin.name, plugin.agent_type));
        let bctx = ctx.clone();
        let rebuild = move || {
            (plugin.build)(&node, &common, &bctx).map_err(|e| {
                Failure::new(
                    FailureKind::Other,
                    format!("cannot build the input again: {e}"),
                )
            })
        };
        Ok(InputSpec::new(id, Arc::new(rebuild))
            .first(input)
            .shared(shared))
    }
}

/// The queue, and whether it keeps its events across a restart (the disk queue).
fn build_queue(
    queue: Option<&(String, Node)>,
    ctx: &BuildContext,
    check_only: bool,
) -> Result<(Arc<dyn Queue>, bool), ConfigErrors> {
    let memory = |cfg: MemoryQueueConfig| -> Arc<dyn Queue> {
        Arc::new(MemoryQueue::new(cfg, &ctx.metrics, &ctx.budget))
    };
    match queue {
        None => Ok((memory(MemoryQueueConfig::default()), false)),
        Some((kind, node)) if kind == "mem" => Ok((memory(node.deserialize()?), false)),
        Some((kind, node)) if kind == "disk" => {
            let cfg: DiskQueueConfig = node.deserialize()?;
            if check_only {
                // Opening recovers and creates files: not for a configuration check.
                return Ok((memory(MemoryQueueConfig::default()), true));
            }
            match DiskQueue::open(cfg, &ctx.paths.data, &ctx.metrics, &ctx.budget) {
                Ok(q) => Ok((Arc::new(q), true)),
                Err(e) => Err(error_at(node, format!("cannot open the disk queue: {e:#}")).into()),
            }
        }
        Some((kind, node)) => Err(error_at(node, format!("unknown queue `{kind}`"))
            .with_suggestion(skiff_config::suggest(kind, &["mem", "disk"]))
            .into()),
    }
}
