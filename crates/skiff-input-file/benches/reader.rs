//! Line reading throughput: a file of 256-byte lines through the streaming line reader into a
//! no-op sink (decode to `String` included, as the input does), reported in MB/s.
//!
//! `cargo bench -p skiff-input-file --bench reader`. The file is 64 MiB (the page cache holds it,
//! so this measures the reader, not the disk); set `SKIFF_BENCH_MB` for another size.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_input_file::{LineReader, Terminator};

fn make_file(dir: &std::path::Path, mb: usize) -> (std::path::PathBuf, u64) {
    let path = dir.join("bench.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut line = Vec::with_capacity(256);
    let mut total = 0u64;
    let mut i = 0u64;
    while total < (mb as u64) << 20 {
        line.clear();
        write!(
            line,
            "2024-01-01T00:00:00.000Z INFO request {i:010} GET /api/v1/items status=200 "
        )
        .unwrap();
        while line.len() < 255 {
            line.push(b'a' + (line.len() % 26) as u8);
        }
        line.push(b'\n');
        f.write_all(&line).unwrap();
        total += line.len() as u64;
        i += 1;
    }
    f.flush().unwrap();
    (path, total)
}

fn bench(c: &mut Criterion) {
    let mb: usize = std::env::var("SKIFF_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let (path, total) = make_file(dir.path(), mb);
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Bytes(total));
    g.sample_size(10);
    for chunk in [16 << 10, 64 << 10] {
        g.bench_function(format!("256B lines, buffer_size {}KiB", chunk >> 10), |b| {
            b.iter(|| {
                let f = std::fs::File::open(&path).unwrap();
                let mut r = LineReader::new(f, 0, Terminator::auto_utf8(), 10 << 20, chunk);
                let mut n = 0u64;
                let mut bytes = 0usize;
                while let Some(l) = r.next_line().unwrap() {
                    let s = match std::str::from_utf8(l.bytes) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(l.bytes).into_owned(),
                    };
                    bytes += s.len();
                    n += 1;
                }
                std::hint::black_box((n, bytes))
            })
        });
    }
    g.finish();
}

/// Start-up cost of a registry of 100 000 files: `list_registry` reads and parses the file and
/// stats every path (the input itself does not stat at load, so it is faster than this).
fn registry(c: &mut Criterion) {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("registry/filestream");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::from("{\"input\":\"\",\"dev\":0,\"ino\":0,\"created\":1}\n");
    for i in 0..100_000u64 {
        text.push_str(&format!(
            "{{\"input\":\"big\",\"dev\":2049,\"ino\":{i},\"path\":\"/var/log/app/f{i}.log\",\"offset\":{o},\"size\":{o},\"fp_len\":1024,\"fp\":{h},\"phase\":\"closed\",\"changed\":1700000000}}\n",
            o = i * 100,
            h = i * 7919
        ));
    }
    std::fs::write(dir.join("big.ndjson"), text).unwrap();
    let mut g = c.benchmark_group("registry");
    g.sample_size(10);
    g.bench_function("list 100k entries", |b| {
        b.iter(|| skiff_input_file::list_registry(data.path()).unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench, registry);
criterion_main!(benches);
