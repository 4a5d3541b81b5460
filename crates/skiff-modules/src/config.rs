//! From module configuration to inputs: `filebeat.modules`, the `modules.d/` folder
//! (`filebeat.config.modules`), `--modules`, and `skiff modules list|enable|disable`.
//!
//! Decisions (written in docs/modules.md): a fileset runs unless its `enabled` is `false`
//! (as in Filebeat 7 and for `--modules nginx`), but for the few filesets that are off by
//! default (nginx `ingress_controller`, which reads the same files as `access`); a module whose `enabled` is `false` runs
//! nothing; the input made for a fileset is a `filestream` input with id
//! `module-<module>-<fileset>`, the fileset's default paths for this OS unless `var.paths`
//! is given, the fileset's parsers (multiline), the user's `input:` settings on top, and the
//! `module_pipeline` processor first in its `processors`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::{Error, MODULES};

/// The OS key of the default paths (`linux`, `darwin`, `windows`).
pub fn this_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "windows",
        _ => "linux",
    }
}

/// Turns module entries (each `{module: nginx, access: {...}, ...}`) into input
/// configurations, for the OS `os`.
pub fn expand(entries: &[Value], os: &str) -> Result<Vec<Value>, Error> {
    let mut inputs = Vec::new();
    for entry in entries {
        let Value::Object(e) = entry else {
            return Err(Error::Config(format!(
                "a module entry is a map like `module: nginx`, found {entry}"
            )));
        };
        let name = e
            .get("module")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Config("a module entry needs `module: NAME`".into()))?;
        let module = MODULES.iter().find(|m| m.name == name).ok_or_else(|| {
            Error::Unknown(format!(
                "unknown module `{name}`; skiff has {}",
                crate::module_names().join(", ")
            ))
        })?;
        if e.get("enabled").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        for key in e.keys() {
            if let Some((_, fs, why)) = crate::NOT_IMPLEMENTED
                .iter()
                .find(|(m, f, _)| *m == name && f == key)
            {
                not_implemented(name, fs, why, e.get(key))?;
                continue;
            }
            if key != "module" && key != "enabled" && !module.filesets.iter().any(|(f, _)| f == key)
            {
                let names: Vec<&str> = module.filesets.iter().map(|(f, _)| *f).collect();
                return Err(Error::Unknown(format!(
                    "module `{name}` has no fileset `{key}`; it has {}",
                    names.join(", ")
                )));
            }
        }
        for (fs, _) in module.filesets {
            let user = match e.get(*fs) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    return Err(Error::Config(format!(
                        "`{name}.{fs}` is a map, found {other}"
                    )));
                }
            };
            let enabled = match user.get("enabled").and_then(Value::as_bool) {
                Some(on) => on,
                None => crate::fileset(name, fs)?.enabled,
            };
            if !enabled {
                continue;
            }
            inputs.push(fileset_input(name, fs, &user, os)?);
        }
    }
    Ok(inputs)
}

/// A fileset of Filebeat's that skiff lacks ([`crate::NOT_IMPLEMENTED`]): nothing when it is
/// disabled, else a warning that it reads nothing (an error in strict mode).
fn not_implemented(
    module: &str,
    fs: &str,
    why: &str,
    settings: Option<&Value>,
) -> Result<(), Error> {
    if settings
        .and_then(|s| s.get("enabled"))
        .and_then(Value::as_bool)
        == Some(false)
    {
        return Ok(());
    }
    let warning = skiff_config::ConfigError::new(
        format!("{module}.{fs}"),
        skiff_config::Mark::none(),
        format!(
            "the {module} module's `{fs}` fileset is not supported by skiff yet ({why}): it reads nothing; set `{fs}.enabled: false` to say so"
        ),
    );
    skiff_config::diag::tolerate(warning).map_err(|e| Error::Config(e.to_string()))
}

fn fileset_input(
    module: &str,
    fs: &str,
    user: &Map<String, Value>,
    os: &str,
) -> Result<Value, Error> {
    let def = crate::fileset(module, fs)?;
    let var = |k: &str| {
        user.get(&format!("var.{k}"))
            .or_else(|| user.get("var").and_then(|v| v.get(k)))
    };
    let paths = match var("paths") {
        Some(p) => p.clone(),
        None => def.paths.get(os).cloned().unwrap_or_else(|| json!([])),
    };
    if paths.as_array().is_none_or(Vec::is_empty) {
        return Err(Error::Config(format!(
            "{module}.{fs}: no default paths on {os}; set var.paths"
        )));
    }
    let mut input = Map::new();
    input.insert("type".into(), json!("filestream"));
    input.insert("id".into(), json!(format!("module-{module}-{fs}")));
    input.insert("paths".into(), paths);
    for (k, v) in &def.input {
        input.insert(k.clone(), v.clone());
    }
    let mut processors = vec![json!({"module_pipeline": {"module": module, "fileset": fs}})];
    if let Some(Value::Object(over)) = user.get("input") {
        for (k, v) in over {
            if k == "processors" {
                processors.extend(v.as_array().cloned().unwrap_or_default());
            } else {
                input.insert(k.clone(), v.clone());
            }
        }
    }
    input.insert("processors".into(), Value::Array(processors));
    Ok(Value::Object(input))
}

/// `--modules a,b`: each named module with all its filesets.
pub fn from_flag(list: &str) -> Vec<Value> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|m| json!({"module": m}))
        .collect()
}

/// One file of `modules.d/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// The module name (file name without `.yml` / `.yml.disabled`).
    pub name: String,
    /// Whether it is `<name>.yml` (enabled) rather than `<name>.yml.disabled`.
    pub enabled: bool,
}

/// The files of a `modules.d/` folder, sorted by name.
pub fn list_dir(dir: &Path) -> Result<Vec<ModuleFile>, Error> {
    let io = |e| Error::Io(dir.display().to_string(), e);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let file = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(name) = file.strip_suffix(".yml.disabled") {
            out.push(ModuleFile {
                name: name.into(),
                enabled: false,
            });
        } else if let Some(name) = file.strip_suffix(".yml") {
            out.push(ModuleFile {
                name: name.into(),
                enabled: true,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Enables (`<name>.yml.disabled` -> `<name>.yml`) or disables a module of `modules.d/`.
/// Returns false when it already was.
pub fn set_enabled(dir: &Path, name: &str, enabled: bool) -> Result<bool, Error> {
    let on = dir.join(format!("{name}.yml"));
    let off = dir.join(format!("{name}.yml.disabled"));
    let (from, to): (PathBuf, PathBuf) = if enabled { (off, on) } else { (on, off) };
    if to.exists() {
        return Ok(false);
    }
    if !from.exists() {
        return Err(Error::Unknown(format!(
            "module `{name}` not found in {}",
            dir.display()
        )));
    }
    std::fs::rename(&from, &to).map_err(|e| Error::Io(from.display().to_string(), e))?;
    Ok(true)
}

/// The module entries of the enabled files of `modules.d/` (each file is a list of entries).
pub fn load_dir(dir: &Path) -> Result<Vec<Value>, Error> {
    let mut entries = Vec::new();
    for f in list_dir(dir)?.into_iter().filter(|f| f.enabled) {
        let path = dir.join(format!("{}.yml", f.name));
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::Io(path.display().to_string(), e))?;
        let node = skiff_config::parse_list_str(&text, Some(&path.display().to_string()))
            .map_err(|e| Error::Config(e.to_string()))?;
        match node.to_json() {
            Value::Array(items) => entries.extend(items),
            Value::Null => {}
            one @ Value::Object(_) => entries.push(one),
            other => {
                return Err(Error::Config(format!(
                    "{}: a list of modules, found {other}",
                    path.display()
                )));
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesets_become_filestream_inputs_with_defaults_and_overrides() {
        let entries = vec![
            json!({"module": "nginx", "access": {"var.paths": ["/tmp/a.log"]}, "error": {"enabled": false}}),
        ];
        let inputs = expand(&entries, "linux").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0]["paths"], json!(["/tmp/a.log"]));
        assert_eq!(
            inputs[0]["processors"][0]["module_pipeline"]["fileset"],
            "access"
        );
        let all = expand(&from_flag("nginx"), "linux").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["paths"], json!(["/var/log/nginx/error.log*"]));
        assert!(all[1]["parsers"][0]["multiline"].is_object());
        // ingress_controller reads access.log too: it runs only when enabled.
        let ingress = expand(
            &[json!({"module": "nginx", "access": {"enabled": false}, "error": {"enabled": false}, "ingress_controller": {"enabled": true}})],
            "linux",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0]["id"], "module-nginx-ingress_controller");
        assert!(expand(&[json!({"module": "nginx", "acces": {}})], "linux").is_err());
        assert!(expand(&[json!({"module": "nope"})], "linux").is_err());
    }

    #[test]
    fn filesets_skiff_lacks_load_and_say_so_unless_disabled() {
        let with = |slowlog: Value| {
            [json!({"module": "redis", "log": {"var.paths": ["/tmp/r.log"]}, "slowlog": slowlog})]
        };
        let (made, diag) =
            skiff_config::collect(false, || expand(&with(json!({"enabled": false})), "linux"));
        assert_eq!(made.unwrap_or_else(|e| panic!("{e}")).len(), 1);
        assert!(diag.warnings.is_empty(), "{:?}", diag.warnings);
        // Filebeat's own modules.d/redis.yml enables it.
        let on = with(json!({"enabled": true, "var.hosts": ["localhost:6379"]}));
        let (made, diag) = skiff_config::collect(false, || expand(&on, "linux"));
        assert_eq!(made.unwrap_or_else(|e| panic!("{e}")).len(), 1);
        assert_eq!(diag.warnings.len(), 1);
        assert!(
            diag.warnings[0]
                .to_string()
                .contains("`slowlog` fileset is not supported by skiff yet"),
            "{}",
            diag.warnings[0]
        );
        let (made, _) = skiff_config::collect(true, || expand(&on, "linux"));
        assert!(made.is_err(), "strict: an error");
    }

    #[test]
    fn modules_d_enable_disable_and_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("nginx.yml.disabled"), "- module: nginx\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            load_dir(dir.path())
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        assert!(set_enabled(dir.path(), "nginx", true).unwrap_or_else(|e| panic!("{e}")));
        assert!(!set_enabled(dir.path(), "nginx", true).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            list_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")),
            vec![ModuleFile {
                name: "nginx".into(),
                enabled: true
            }]
        );
        assert_eq!(
            load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")),
            vec![json!({"module": "nginx"})]
        );
        assert!(set_enabled(dir.path(), "apache", true).is_err());
    }
}
