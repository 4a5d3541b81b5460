//! Commands that belong to one component: they call into that component's crate.

use std::path::Path;

/// `skiff export template`.
pub fn export_template() -> anyhow::Result<i32> {
    eprintln!("skiff export template: the Elasticsearch output is not built into this binary yet");
    Ok(1)
}

/// `skiff registry list`.
pub fn registry_list(data: &Path, json: bool) -> anyhow::Result<i32> {
    let _ = (data, json);
    eprintln!("skiff registry list: the file input is not built into this binary yet");
    Ok(1)
}
