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
run() { python3 bench/run.py --one-core --binary target/release/skiff "$@" | tee -a "$work/results.ndjson"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run --config bench/configs/stdin-discard.yml --input "$work/lines.log"
run --config bench/configs/stdin-file.yml --input "$work/lines.log"
run --config bench/configs/file-discard.yml --input "$work/lines.log"
run --config bench/configs/file-file.yml --input "$work/lines.log"
run --config bench/configs/file-disk-discard.yml --input "$work/lines.log"

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
    (cd "$work" && PATH=$PATH:~/.cargo/bin tansu broker --listener-url tcp://127.0.0.1:$BENCH_KAFKA_PORT \
        --advertised-listener-url tcp://127.0.0.1:$BENCH_KAFKA_PORT --storage-engine memory://tansu/ >/dev/null 2>&1 &)
    sleep 2
    PATH=$PATH:~/.cargo/bin tansu topic create bench --partitions 1 --broker tcp://127.0.0.1:$BENCH_KAFKA_PORT >/dev/null 2>&1 || true
    run --config bench/configs/file-kafka.yml --input "$work/quarter.log"
fi

python3 - "$work/results.ndjson" <<'PY'
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
def ratio(a, b):
    if a in rows and b in rows:
        print(f"{a} / {b}: {rows[a]['events_per_s'] / rows[b]['events_per_s']:.2f}")
ratio("file-disk-discard", "file-discard")
ratio("file-file", "file-discard")
ratio("stdin-file", "stdin-discard")
ratio("file-discard", "stdin-discard")
PY
