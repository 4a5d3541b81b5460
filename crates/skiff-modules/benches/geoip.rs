//! What the geoip steps cost: the nginx access pipeline on one core with GeoIP databases
//! (written here by MaxMind's writer, tests/support/geoip-test-db.pl, as in the tests) against
//! the same pipeline without databases (the steps do nothing), in the same run:
//! `cargo bench -p skiff-modules --bench geoip`. Numbers go to docs/performance.md.
//!
//! The test databases are small (a few networks), so a lookup walks a short tree; with
//! GeoLite2-City (millions of nodes, a deeper tree) a lookup takes a few more node reads.

mod common;

use skiff_modules::geoip;
use skiff_modules::processor::FilesetProcessor;

/// Public addresses of the databases, private ones, and an X-Forwarded-For list.
const LINES: &[&str] = &[
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/7.50\"",
    "10.0.0.2, 10.0.0.1, 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] \"GET /ocelot HTTP/1.1\" 200 571 \"-\" \"Mozilla/5.0\"",
    "192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] \"GET /a HTTP/1.1\" 206 7648063 \"-\" \"Mozilla/5.0\"",
    "2a02:cf40:10ff:f00f:0000:0000:0:8000 - - [09/Jun/2020:12:10:39 -0700] \"GET /b HTTP/1.1\" 404 12 \"-\" \"-\"",
];

fn main() {
    let (mb, bytes) = common::bench_bytes();
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    geoip::set_dirs(vec![empty.path().to_path_buf()]);
    let without = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let dbs = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/geoip-test-db.pl");
    let made = std::process::Command::new("perl")
        .arg(script)
        .arg(dbs.path())
        .status()
        .unwrap_or_else(|e| panic!("perl: {e}"));
    assert!(
        made.success(),
        "libmaxmind-db-writer-perl missing? (scripts/ensure-test-deps)"
    );
    geoip::set_dirs(vec![dbs.path().to_path_buf()]);
    let with = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = common::throughput(LINES, bytes, Some(&without));
    let enriched = common::throughput(LINES, bytes, Some(&with));
    println!(
        "nginx access, {mb} MiB: without GeoIP databases {base:.1} MB/s, with them {enriched:.1} MB/s ({:.3} of the baseline)",
        enriched / base
    );
}
