//! Commands that belong to one component: they call into that component's crate.

use std::path::Path;

/// `skiff export template`: the Elasticsearch index template for the fields skiff emits.
pub fn export_template() -> anyhow::Result<i32> {
    let t = skiff_output_elasticsearch::template::index_template(crate::agent::VERSION);
    println!("{}", serde_json::to_string_pretty(&t)?);
    Ok(0)
}

/// `skiff registry list`: every file the file inputs know, with what is shipped.
pub fn registry_list(data: &Path, json: bool) -> anyhow::Result<i32> {
    let files = skiff_input_file::list_registry(data)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&files)?);
        return Ok(0);
    }
    if files.is_empty() {
        println!("no files in the registry under {}", data.display());
        return Ok(0);
    }
    println!(
        "{:<16} {:<9} {:>12} {:>12} {:>8}  PATH",
        "INPUT", "STATE", "SIZE", "ACKED", "SHIPPED"
    );
    for f in &files {
        let state = serde_json::to_value(f.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{:<16} {:<9} {:>12} {:>12} {:>8}  {}",
            f.input_id,
            state,
            f.size,
            f.acked_offset,
            if f.fully_shipped { "yes" } else { "no" },
            f.path
        );
    }
    Ok(0)
}
