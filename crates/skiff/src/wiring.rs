//! Building the pipeline from the configuration: every input, processor, the queue and the
//! output, looked up by name in the [registry](crate::registry). Problems from all components
//! are collected, so `skiff test config` lists them in one run.

use std::collections::HashMap;
use std::sync::Arc;

use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::Map;
use skiff_pipeline::dead_letter::DeadLetter;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig};
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, Input, InputCommon, OutputSet, Processor, Queue};

use crate::registry;
use crate::settings::{Parts, error_at};

/// One built input, ready to run.
pub struct BuiltInput {
    /// Its id.
    pub id: String,
    /// Its runtime.
    pub input: Box<dyn Input>,
    /// Its events' shared fields.
    pub shared: Arc<Map>,
    /// Its own processors.
    pub processors: Vec<Arc<dyn Processor>>,
}

/// Everything built.
pub struct Built {
    /// The inputs.
    pub inputs: Vec<BuiltInput>,
    /// The global processors.
    pub processors: Vec<Arc<dyn Processor>>,
    /// The queue.
    pub queue: Arc<dyn Queue>,
    /// The output's name and clients.
    pub output: (String, OutputSet),
    /// The dead-letter file, if enabled.
    pub dead_letter: Option<Arc<DeadLetter>>,
}

/// Builds everything, or returns every problem found. With `check_only` (for
/// `skiff test config`), stateful parts are validated but not opened (the disk queue).
pub fn build(parts: &Parts, ctx: &BuildContext, check_only: bool) -> Result<Built, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let absorb = |r: Result<(), ConfigErrors>, errors: &mut Vec<ConfigError>| {
        if let Err(e) = r {
            errors.extend(e.0);
        }
    };

    let processors = match build_processors(parts.processors.as_ref(), ctx) {
        Ok(p) => p,
        Err(e) => {
            absorb(Err(e), &mut errors);
            Vec::new()
        }
    };

    let mut inputs = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for (i, item) in parts.inputs.iter().enumerate() {
        match build_input(i, item, ctx) {
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
            Err(e) => absorb(Err(e), &mut errors),
        }
    }

    let queue = match build_queue(parts.queue.as_ref(), ctx, check_only) {
        Ok(q) => Some(q),
        Err(e) => {
            absorb(Err(e), &mut errors);
            None
        }
    };

    let output = match &parts.output {
        None => {
            errors.push(ConfigError::new(
                "output",
                skiff_config::Mark::none(),
                "no output is configured: add one, e.g. `output.console: {}` or `output.elasticsearch.hosts: [\"http://localhost:9200\"]`",
            ));
            None
        }
        Some((name, node)) => match registry::OUTPUTS.iter().find(|p| p.name == name) {
            None => {
                let names: Vec<&str> = registry::OUTPUTS.iter().map(|p| p.name).collect();
                errors.push(
                    error_at(
                        node,
                        format!("unknown output `{name}` (skiff has: {})", names.join(", ")),
                    )
                    .with_suggestion(skiff_config::suggest(name, &names)),
                );
                None
            }
            Some(p) => {
                let mut node = node.clone();
                node.remove("enabled");
                match (p.build)(&node, ctx) {
                    Ok(set) if set.clients.is_empty() => {
                        errors.push(error_at(&node, "the output has no hosts to send to"));
                        None
                    }
                    Ok(set) => Some((name.clone(), set)),
                    Err(e) => {
                        absorb(Err(e), &mut errors);
                        None
                    }
                }
            }
        },
    };

    let dead_letter = parts.settings.dead_letter.enabled.then(|| {
        let dir = parts
            .settings
            .dead_letter
            .path
            .clone()
            .unwrap_or_else(|| ctx.paths.data.join("dead_letter"));
        Arc::new(DeadLetter::new(
            &dir,
            parts.settings.dead_letter.max_size.0,
            &ctx.metrics,
        ))
    });

    match (errors.is_empty(), queue, output) {
        (true, Some(queue), Some(output)) => Ok(Built {
            inputs,
            processors,
            queue,
            output,
            dead_letter,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn build_input(
    index: usize,
    item: &Node,
    ctx: &BuildContext,
) -> Result<Option<BuiltInput>, ConfigErrors> {
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
    let names: Vec<&str> = registry::INPUTS.iter().map(|p| p.name).collect();
    if common.kind.is_empty() {
        return Err(error_at(
            item,
            format!("missing required key `type` (one of: {})", names.join(", ")),
        )
        .into());
    }
    let Some(plugin) = registry::INPUTS.iter().find(|p| p.name == common.kind) else {
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
    let input = (plugin.build)(&rest, &common, ctx)?;
    let processors = build_processors(processors_node.as_ref(), ctx)?;
    let id = common
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{index}", common.kind));
    let shared = Arc::new(ctx.shared_fields(&common, plugin.name, plugin.agent_type));
    Ok(Some(BuiltInput {
        id,
        input,
        shared,
        processors,
    }))
}

/// Builds a `processors` list (names are looked up in the registry's processor table; Beats
/// processors skiff does not support yet are named as such, not as unknown).
pub fn build_processors(
    list: Option<&Node>,
    ctx: &BuildContext,
) -> Result<Vec<Arc<dyn Processor>>, ConfigErrors> {
    skiff_processors::build_list(list, ctx)
}

fn build_queue(
    queue: Option<&(String, Node)>,
    ctx: &BuildContext,
    check_only: bool,
) -> Result<Arc<dyn Queue>, ConfigErrors> {
    match queue {
        None => Ok(Arc::new(MemoryQueue::new(
            MemoryQueueConfig::default(),
            &ctx.metrics,
            &ctx.budget,
        ))),
        Some((kind, node)) if kind == "mem" => {
            let cfg: MemoryQueueConfig = node.deserialize()?;
            Ok(Arc::new(MemoryQueue::new(cfg, &ctx.metrics, &ctx.budget)))
        }
        Some((kind, node)) if kind == "disk" => {
            let cfg: DiskQueueConfig = node.deserialize()?;
            if check_only {
                // Opening recovers and creates files: not for a configuration check.
                return Ok(Arc::new(MemoryQueue::new(
                    MemoryQueueConfig::default(),
                    &ctx.metrics,
                    &ctx.budget,
                )));
            }
            match DiskQueue::open(cfg, &ctx.paths.data, &ctx.metrics, &ctx.budget) {
                Ok(q) => Ok(Arc::new(q)),
                Err(e) => Err(error_at(node, format!("cannot open the disk queue: {e:#}")).into()),
            }
        }
        Some((kind, node)) => Err(error_at(node, format!("unknown queue `{kind}`"))
            .with_suggestion(skiff_config::suggest(kind, &["mem", "disk"]))
            .into()),
    }
}
