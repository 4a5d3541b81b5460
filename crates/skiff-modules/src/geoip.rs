//! The `geoip` step: Elasticsearch's geoip processor at the edge, reading MaxMind DB files
//! (GeoLite2/GeoIP2 City, Country and ASN) with the `maxminddb` crate.
//!
//! Databases are looked up by file name (`database_file`, default `GeoLite2-City.mmdb`) in the
//! folders of the `geoip.paths` setting (default: where `geoipupdate` writes,
//! [`DEFAULT_DIRS`]), opened once per process and shared by every fileset's pipeline. A
//! database that is not there makes the step do nothing: the user is told once, when the
//! first pipeline needing it is compiled, not on every event. A file that is there but is no
//! MaxMind DB is an error when the pipeline is compiled (at start), never a panic later.
//!
//! The fields written are the ones Elasticsearch's processor writes (`city_name`,
//! `continent_name`, `country_iso_code`, `country_name`, `region_iso_code`, `region_name`,
//! `location.lat`/`lon`, ...; for ASN databases `asn`, `organization_name`, `network`, `ip`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use maxminddb::{Mmap, Reader, geoip2};
use serde_json::{Map, Value};

/// Where `geoipupdate` writes its databases (Debian's package, then its own default).
pub const DEFAULT_DIRS: &[&str] = &["/usr/share/GeoIP", "/var/lib/GeoIP"];

/// The database Elasticsearch's processor reads when the step names none.
pub const DEFAULT_DATABASE: &str = "GeoLite2-City.mmdb";

const CITY_PROPERTIES: &[&str] = &[
    "ip",
    "continent_code",
    "continent_name",
    "country_iso_code",
    "country_name",
    "region_iso_code",
    "region_name",
    "city_name",
    "timezone",
    "location",
];
const CITY_DEFAULTS: &[&str] = &[
    "continent_name",
    "country_iso_code",
    "country_name",
    "region_iso_code",
    "region_name",
    "city_name",
    "location",
];
const ASN_PROPERTIES: &[&str] = &["ip", "asn", "organization_name", "network"];

/// What can go wrong loading a database.
#[derive(Debug, thiserror::Error)]
pub enum GeoipError {
    /// The file is not a MaxMind DB (or is damaged).
    #[error("GeoIP database {0}: {1}")]
    Corrupt(PathBuf, String),
    /// A database of a kind the step does not read (not City, Country or ASN).
    #[error("GeoIP database {0}: unsupported database type `{1}`")]
    Unsupported(PathBuf, String),
    /// A property the database does not have.
    #[error("geoip: illegal property value [{0}]; valid values for {1} are {2}")]
    Property(String, String, String),
}

/// The process-wide set of databases: the folders to look in, the databases opened so far
/// (one memory map per file, shared by every pipeline) and the names already reported
/// missing.
struct Registry {
    dirs: Vec<PathBuf>,
    open: HashMap<PathBuf, Arc<Database>>,
    reported: HashSet<(Vec<PathBuf>, String)>,
}

impl Registry {
    fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            open: HashMap::new(),
            reported: HashSet::new(),
        }
    }
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Sets the folders databases are looked for in (the `geoip.paths` setting). Called once at
/// start, before the pipelines are compiled; without it, [`DEFAULT_DIRS`].
pub fn set_dirs(dirs: Vec<PathBuf>) {
    let mut g = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    match g.as_mut() {
        Some(r) => r.dirs = dirs,
        None => *g = Some(Registry::new(dirs)),
    }
}

/// Finds and opens `name` (once per process): `Ok(None)` when no folder has it, after
/// warning about it the first time for these folders.
fn database(name: &str) -> Result<Option<Arc<Database>>, GeoipError> {
    let mut g = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let r =
        g.get_or_insert_with(|| Registry::new(DEFAULT_DIRS.iter().map(PathBuf::from).collect()));
    let absolute = Path::new(name).is_absolute();
    let found = if absolute {
        Some(PathBuf::from(name)).filter(|p| p.is_file())
    } else {
        r.dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
    };
    let Some(path) = found else {
        if r.reported.insert((r.dirs.clone(), name.to_string())) {
            let looked: Vec<String> = r.dirs.iter().map(|d| d.display().to_string()).collect();
            let looked = if absolute {
                "its folder".to_string()
            } else {
                looked.join(", ")
            };
            tracing::warn!(
                "GeoIP database {name} not found in {looked}: the geoip steps that need it add \
                 nothing (install it with geoipupdate, or set geoip.paths)"
            );
        }
        return Ok(None);
    };
    if let Some(db) = r.open.get(&path) {
        return Ok(Some(db.clone()));
    }
    let db = Arc::new(Database::open(&path)?);
    r.open.insert(path, db.clone());
    Ok(Some(db))
}

/// The kind of record a database holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// City or Country databases: the geo record.
    City,
    /// ASN databases.
    Asn,
}

/// One opened database.
pub struct Database {
    reader: Reader<Mmap>,
    kind: Kind,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({:?})", self.kind)
    }
}

impl Database {
    /// Opens and checks a database file.
    pub fn open(path: &Path) -> Result<Self, GeoipError> {
        let corrupt =
            |e: maxminddb::MaxMindDbError| GeoipError::Corrupt(path.into(), e.to_string());
        // A memory map, not a copy: GeoLite2-City is about 60 MB and every fileset shares it.
        // SAFETY: the map is undefined behaviour only if the file is changed in place while
        // mapped. geoipupdate (and any sane update) writes a new file and renames it over the
        // old one, which leaves this mapping on the old file; docs/modules.md says to update
        // databases that way.
        #[allow(unsafe_code)]
        let reader = unsafe { Reader::open_mmap(path) }.map_err(corrupt)?;
        // The whole search tree and data section once, at load: a damaged file is an error
        // now, not a failed lookup on some event later.
        reader.verify().map_err(corrupt)?;
        let ty = reader.metadata().database_type.clone();
        let kind = if ty.contains("ASN") {
            Kind::Asn
        } else if ty.contains("City") || ty.contains("Country") {
            Kind::City
        } else {
            return Err(GeoipError::Unsupported(path.into(), ty));
        };
        Ok(Self { reader, kind })
    }

    /// The record of `ip` as the processor writes it (only `properties`), or `None` when the
    /// database has nothing for it (private addresses, unknown networks).
    fn lookup(
        &self,
        ip: IpAddr,
        properties: &[String],
    ) -> Result<Option<Map<String, Value>>, String> {
        let res = self.reader.lookup(ip).map_err(|e| e.to_string())?;
        let mut out = Map::new();
        let wants = |p: &str| properties.iter().any(|q| q == p);
        match self.kind {
            Kind::Asn => {
                let Some(rec) = res.decode::<geoip2::Asn>().map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                if wants("ip") {
                    out.insert("ip".into(), Value::from(ip.to_string()));
                }
                if let Some(n) = rec.autonomous_system_number.filter(|_| wants("asn")) {
                    out.insert("asn".into(), Value::from(n));
                }
                if let Some(o) = rec
                    .autonomous_system_organization
                    .filter(|_| wants("organization_name"))
                {
                    out.insert("organization_name".into(), Value::from(o));
                }
                if wants("network")
                    && let Ok(n) = res.network()
                {
                    out.insert("network".into(), Value::from(n.to_string()));
                }
            }
            Kind::City => {
                let Some(rec) = res.decode::<geoip2::City>().map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                let mut put = |k: &str, v: Option<&str>| {
                    if let Some(v) = v.filter(|_| wants(k)) {
                        out.insert(k.into(), Value::from(v));
                    }
                };
                let ip_text = ip.to_string();
                put("ip", Some(&ip_text));
                put("continent_code", rec.continent.code);
                put("continent_name", rec.continent.names.english);
                put("country_iso_code", rec.country.iso_code);
                put("country_name", rec.country.names.english);
                // Elasticsearch takes the most specific subdivision and prefixes the country.
                if let Some(sub) = rec.subdivisions.last() {
                    let region = rec
                        .country
                        .iso_code
                        .zip(sub.iso_code)
                        .map(|(c, s)| format!("{c}-{s}"));
                    put("region_iso_code", region.as_deref());
                    put("region_name", sub.names.english);
                }
                put("city_name", rec.city.names.english);
                put("timezone", rec.location.time_zone);
                if let (Some(lat), Some(lon), true) = (
                    rec.location.latitude,
                    rec.location.longitude,
                    wants("location"),
                ) {
                    let mut loc = Map::new();
                    loc.insert("lat".into(), Value::from(lat));
                    loc.insert("lon".into(), Value::from(lon));
                    out.insert("location".into(), Value::Object(loc));
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// A compiled `geoip` step.
#[derive(Debug)]
pub struct GeoipStep {
    /// The field holding the address (or a list of addresses).
    pub field: String,
    /// Where the record goes.
    pub target: String,
    /// `None` when the database was not found: the step does nothing.
    db: Option<Arc<Database>>,
    properties: Vec<String>,
    first_only: bool,
}

impl GeoipStep {
    /// Compiles the step: finds and opens the database (once per process), checks the
    /// properties against its kind.
    pub fn new(
        field: String,
        target: String,
        database_file: &str,
        properties: Option<Vec<String>>,
        first_only: bool,
    ) -> Result<Self, GeoipError> {
        let db = database(database_file)?;
        let kind = db
            .as_ref()
            .map(|d| d.kind)
            .unwrap_or(if database_file.contains("ASN") {
                Kind::Asn
            } else {
                Kind::City
            });
        let (valid, defaults) = match kind {
            Kind::City => (CITY_PROPERTIES, CITY_DEFAULTS),
            Kind::Asn => (ASN_PROPERTIES, ASN_PROPERTIES),
        };
        let properties = match properties {
            Some(p) => {
                if let Some(bad) = p.iter().find(|p| !valid.contains(&p.as_str())) {
                    return Err(GeoipError::Property(
                        bad.clone(),
                        database_file.to_string(),
                        valid.join(", "),
                    ));
                }
                p
            }
            None => defaults.iter().map(|s| s.to_string()).collect(),
        };
        Ok(Self {
            field,
            target,
            db,
            properties,
            first_only,
        })
    }

    /// Whether the database was found (else the step does nothing).
    pub fn active(&self) -> bool {
        self.db.is_some()
    }

    /// What to write at the target for the field's value, as Elasticsearch does: for a list,
    /// the first address with a record (`first_only`) or a list of the records.
    pub fn value_for(&self, v: &Value) -> Result<Option<Value>, String> {
        let Some(db) = &self.db else { return Ok(None) };
        let one = |v: &Value| -> Result<Option<Map<String, Value>>, String> {
            let text = match v {
                Value::String(s) => s.as_str(),
                _ => return Err(format!("field [{}] is not a string", self.field)),
            };
            let ip: IpAddr = text
                .parse()
                .map_err(|_| format!("'{text}' is not an IP string literal."))?;
            db.lookup(ip, &self.properties)
        };
        match v {
            Value::Array(items) if self.first_only => {
                for item in items {
                    if let Some(rec) = one(item)? {
                        return Ok(Some(Value::Object(rec)));
                    }
                }
                Ok(None)
            }
            Value::Array(items) => {
                let mut all = Vec::new();
                for item in items {
                    if let Some(rec) = one(item)? {
                        all.push(Value::Object(rec));
                    }
                }
                Ok((!all.is_empty()).then_some(Value::Array(all)))
            }
            v => Ok(one(v)?.map(Value::Object)),
        }
    }
}
