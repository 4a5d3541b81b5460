#!/usr/bin/env bash
# The standard benchmark set, one JSON line per run, plus ratios against the baselines of the
# same run. Usage: bench/all.sh [SIZE]   (default 1GiB of 256-byte lines; network outputs get 1/4)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1GiB}
cargo build --release -p skiff >/dev/null
work=$(mktemp -d /tmp/skiff-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 bench/gen.py --size "$size" --line 256 > "$work/lines.log"
head -c $(( $(stat -c %s "$work/lines.log") / 4 )) "$work/lines.log" > "$work/quarter.log"
# Warm-up: on a fresh VM the first write into each page of guest memory costs the host a page
# fault (measured: dd of 3 GiB into the page cache took 9.5 s of sys time the first time, 1.8 s
# the next). Touch that much memory once, so that every run below, and the dd floor, meet the
# same warm memory and the ratios compare software, not the hypervisor.
dd if=/dev/zero of="$work/warm" bs=1M count=4096 status=none && rm -f "$work/warm"
run() { python3 bench/run.py --one-core --binary target/release/skiff "$@" | tee -a "$work/results.ndjson"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run --config bench/configs/stdin-discard.yml --input "$work/lines.log"
run --config bench/configs/stdin-file.yml --input "$work/lines.log"
run --config bench/configs/file-discard.yml --input "$work/lines.log"
run --config bench/configs/file-file.yml --input "$work/lines.log"
run --config bench/configs/file-disk-discard.yml --input "$work/lines.log"

# The floor under file -> file: the kernel writing the same number of bytes into the page cache
# from one core (dd, 1 MiB writes), reported as a run of its own for the ratios below.
python3 - "$work" <<'PY' | tee -a "$work/results.ndjson"
import json, os, resource, subprocess, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(work, "results.ndjson"))]
ff = next(r for r in rows if r["label"] == "file-file")
mib = ff["output_bytes"] >> 20
out = os.path.join(work, "dd.out")
subprocess.run(["taskset", "-c", "0", "dd", "if=/dev/zero", f"of={out}", "bs=1M", f"count={mib}"],
               check=True, stderr=subprocess.DEVNULL)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
os.remove(out)
cpu = ru.ru_utime + ru.ru_stime
print(json.dumps({"label": "dd-page-cache-floor", "output_bytes": mib << 20, "cpu_s": round(cpu, 3),
                  "events_per_s": round(ff["events"] / cpu)}))
PY

export BENCH_ES_PORT=$(free_port)
python3 ../shared/tools/es-standin/es_standin.py --port "$BENCH_ES_PORT" --fast >/dev/null 2>&1 &
sleep 1
run --config bench/configs/file-es.yml --input "$work/quarter.log"

export BENCH_REDIS_PORT=$(free_port)
redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
sleep 0.5
run --config bench/configs/file-redis.yml --input "$work/quarter.log"

if command -v tansu >/dev/null || [ -x ~/.cargo/bin/tansu ]; then
    export BENCH_KAFKA_PORT=$(free_port)
    # A job of this script (exec, not a detached subshell), so the EXIT trap stops it.
    (cd "$work" && PATH=$PATH:~/.cargo/bin exec tansu broker --listener-url tcp://127.0.0.1:$BENCH_KAFKA_PORT \
        --advertised-listener-url tcp://127.0.0.1:$BENCH_KAFKA_PORT --storage-engine memory://tansu/ >/dev/null 2>&1) &
    sleep 2
    PATH=$PATH:~/.cargo/bin tansu topic create bench --partitions 1 --broker tcp://127.0.0.1:$BENCH_KAFKA_PORT >/dev/null 2>&1 || true
    run --config bench/configs/file-kafka.yml --input "$work/quarter.log"
fi

# Watching 10,000 idle files: CPU share and RSS once everything is read.
python3 bench/idle_files.py --files 10000 --measure 30 | tee -a "$work/results.ndjson"

python3 - "$work/results.ndjson" <<'PY'
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
def ratio(a, b):
    if a in rows and b in rows:
        print(f"{a} / {b}: {rows[a]['events_per_s'] / rows[b]['events_per_s']:.2f}")
ratio("file-disk-discard", "file-discard")
ratio("file-file", "file-discard")
ratio("file-file", "dd-page-cache-floor")
ratio("stdin-file", "stdin-discard")
ratio("file-discard", "stdin-discard")
PY
