//! The `geoip` step on GeoIP databases that this test writes itself with MaxMind's real
//! database writer (`tests/support/geoip-test-db.pl`, Debian's `libmaxmind-db-writer-perl`;
//! MaxMind's own test databases cannot be fetched here). The records follow the layout of
//! MaxMind's GeoIP2-City and GeoLite2-ASN test databases; the values are the ones Filebeat's
//! expected documents show for those addresses (shared/corpus/filebeat-modules).
//!
//! The folders databases are looked for in are process-wide (one registry, databases opened
//! once), so the tests that change them take `LOCK` and run one at a time.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};
use skiff_modules::{Pipeline, geoip};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Holds `LOCK` and points the registry at new test databases (kept until dropped).
fn with_test_databases() -> (MutexGuard<'static, ()>, tempfile::TempDir) {
    let g = lock();
    let dbs = support::geoip_test_databases();
    geoip::set_dirs(vec![dbs.path().to_path_buf()]);
    (g, dbs)
}

/// The four steps Filebeat's pipelines end with (nginx, apache, system auth, ...).
fn filebeat_steps() -> Value {
    json!([
        {"geoip": {"field": "source.ip", "target_field": "source.geo", "ignore_missing": true}},
        {"geoip": {"database_file": "GeoLite2-ASN.mmdb", "field": "source.ip",
                   "target_field": "source.as", "properties": ["asn", "organization_name"],
                   "ignore_missing": true}},
        {"rename": {"field": "source.as.asn", "target_field": "source.as.number",
                    "ignore_missing": true}},
        {"rename": {"field": "source.as.organization_name",
                    "target_field": "source.as.organization.name", "ignore_missing": true}},
    ])
}

fn run(p: &Pipeline, doc: Value) -> Map<String, Value> {
    let Value::Object(mut d) = doc else {
        panic!("not an object")
    };
    p.run(&mut d);
    d
}

fn compile(steps: &Value) -> Pipeline {
    Pipeline::compile("test", steps).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn city_and_asn_fields_as_elasticsearch_writes_them() {
    let (_g, _dbs) = with_test_databases();
    let p = compile(&filebeat_steps());
    let d = run(&p, json!({"source": {"ip": "81.2.69.143"}}));
    assert_eq!(
        Value::Object(d),
        json!({"source": {
            "ip": "81.2.69.143",
            "geo": {
                "city_name": "Radwell",
                "continent_name": "Europe",
                "country_iso_code": "GB",
                "country_name": "United Kingdom",
                "region_iso_code": "GB-HRT",
                "region_name": "Hertfordshire",
                "location": {"lat": 52.0037, "lon": -0.2014}
            },
            "as": {"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}}
        }})
    );
}

#[test]
fn ipv6_addresses_are_looked_up() {
    let (_g, _dbs) = with_test_databases();
    let p = compile(&filebeat_steps());
    // Written as nginx logs it (the corpus's form, zero groups spelled out).
    let d = run(
        &p,
        json!({"source": {"ip": "2a02:cf40:10ff:f00f:0000:0000:0:8000"}}),
    );
    assert_eq!(d["source"]["geo"]["country_iso_code"], "DK");
    assert_eq!(d["source"]["geo"]["continent_name"], "Europe");
    assert_eq!(
        d["source"]["geo"]["location"],
        json!({"lat": 55.7123, "lon": 12.0564})
    );
    assert_eq!(d["source"]["as"]["number"], 62121);
    assert_eq!(
        d["source"]["as"]["organization"]["name"],
        "Christian Ebsen ApS"
    );
    // No city or region in that record: none written.
    assert!(d["source"]["geo"].get("city_name").is_none());
    assert!(d["source"]["geo"].get("region_name").is_none());
}

#[test]
fn private_and_unknown_addresses_get_nothing() {
    let (_g, _dbs) = with_test_databases();
    let p = compile(&filebeat_steps());
    for ip in [
        "10.0.0.1",
        "192.168.1.20",
        "127.0.0.1",
        "fd00::1",
        "8.8.8.8",
    ] {
        let d = run(&p, json!({"source": {"ip": ip}}));
        assert_eq!(Value::Object(d), json!({"source": {"ip": ip}}), "{ip}");
    }
}

#[test]
fn a_value_that_is_no_address_fails_the_pipeline_as_in_elasticsearch() {
    let (_g, _dbs) = with_test_databases();
    let p = compile(&filebeat_steps());
    let d = run(&p, json!({"source": {"ip": "www.example.com"}}));
    assert_eq!(
        d["error"]["message"],
        "'www.example.com' is not an IP string literal."
    );
    // A missing field with ignore_missing: nothing, no error.
    let d = run(&p, json!({"message": "x"}));
    assert_eq!(Value::Object(d), json!({"message": "x"}));
}

#[test]
fn lists_first_only_and_properties() {
    let (_g, _dbs) = with_test_databases();
    let steps = json!([
        {"geoip": {"field": "ips"}},
        {"geoip": {"field": "ips", "target_field": "all", "first_only": false,
                   "properties": ["country_iso_code", "ip"]}},
    ]);
    let p = compile(&steps);
    let d = run(
        &p,
        json!({"ips": ["10.1.1.1", "89.160.20.156", "175.16.199.1"]}),
    );
    // Default target `geoip`, the first address that has a record.
    assert_eq!(d["geoip"]["city_name"], "Linköping");
    assert_eq!(d["geoip"]["region_iso_code"], "SE-E");
    assert_eq!(
        d["all"],
        json!([
            {"country_iso_code": "SE", "ip": "89.160.20.156"},
            {"country_iso_code": "CN", "ip": "175.16.199.1"}
        ])
    );
    let bad = json!([{"geoip": {"field": "ip", "properties": ["asn"]}}]);
    let err = Pipeline::compile("test", &bad).map(|_| ()).unwrap_err();
    assert!(
        err.to_string().contains("illegal property value [asn]"),
        "{err}"
    );
}

/// Collects what the tracing macros write.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn without_databases_the_step_does_nothing_and_says_so_once() {
    let _g = lock();
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let other = empty.path().join("nothing-here");
    let dirs: Vec<PathBuf> = vec![empty.path().to_path_buf(), other.clone()];
    geoip::set_dirs(dirs);
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let docs = tracing::subscriber::with_default(subscriber, || {
        // Three filesets' pipelines, each compiled twice (as a reload does), many events.
        let mut out = Vec::new();
        for _ in 0..6 {
            let p = compile(&filebeat_steps());
            for _ in 0..100 {
                out.push(run(&p, json!({"source": {"ip": "81.2.69.143"}})));
            }
        }
        out
    });
    for d in docs {
        assert_eq!(Value::Object(d), json!({"source": {"ip": "81.2.69.143"}}));
    }
    let text =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one warning per database: {text}");
    for (line, name) in lines
        .iter()
        .zip(["GeoLite2-City.mmdb", "GeoLite2-ASN.mmdb"])
    {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains(name), "{line}");
        // It names the folders it looked in.
        assert!(line.contains(&empty.path().display().to_string()), "{line}");
        assert!(line.contains(&other.display().to_string()), "{line}");
    }
}

#[test]
fn a_corrupt_database_is_an_error_when_the_pipeline_is_compiled() {
    let _g = lock();
    let dbs = support::geoip_test_databases();
    let city =
        std::fs::read(dbs.path().join("GeoLite2-City.mmdb")).unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not a database", b"this is no MaxMind DB file\n".to_vec()),
        ("empty", Vec::new()),
        // The metadata kept (it is at the end), the search tree cut off.
        ("truncated", city[city.len() / 2..].to_vec()),
        // The search tree overwritten: pointers past the data.
        ("scrambled tree", {
            let mut b = city.clone();
            for x in b.iter_mut().take(city.len() / 3) {
                *x = 0xff;
            }
            b
        }),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("GeoLite2-City.mmdb");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        geoip::set_dirs(vec![dir.path().to_path_buf()]);
        let steps = json!([{"geoip": {"field": "source.ip", "target_field": "source.geo"}}]);
        let err = Pipeline::compile("nginx/access", &steps)
            .map(|_| ())
            .expect_err(what);
        let msg = err.to_string();
        assert!(msg.contains("GeoIP database"), "{what}: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
    }
}
