#!/usr/bin/env bash
# The disk queue against the memory queue, in one go: file -> memory queue -> discard and
# file -> disk queue -> discard, ROUNDS times interleaved (mem, disk, mem, disk, ...) on the same
# input, pinned to one core. Prints one JSON line per run, then per pair the events/s ratio and
# the CPU-seconds ratio (memory / disk), and their medians.
# Usage: [SKIFF_BIN=path] bench/disk_ratio.sh [SIZE] [ROUNDS]   (default 1GiB, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1GiB}
rounds=${2:-5}
# SKIFF_BIN: a binary built already (skips the build).
bin=${SKIFF_BIN:-target/release/skiff}
[ -n "${SKIFF_BIN:-}" ] || cargo build --release -p skiff >/dev/null
work=$(mktemp -d /tmp/skiff-diskratio.XXXX)
trap 'rm -rf "$work"' EXIT
python3 bench/gen.py --size "$size" --line 256 > "$work/lines.log"
run() { python3 bench/run.py --one-core --binary "$bin" "$@" | tee -a "$work/results.ndjson"; }
for _ in $(seq "$rounds"); do
    run --config bench/configs/file-discard.yml --input "$work/lines.log"
    run --config bench/configs/file-disk-discard.yml --input "$work/lines.log"
done
python3 - "$work/results.ndjson" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mem = [r["events_per_s"] for r in rows if r["label"] == "file-discard"]
disk = [r["events_per_s"] for r in rows if r["label"] == "file-disk-discard"]
ratios = [d / m for m, d in zip(mem, disk)]
# CPU seconds for the same input: the ratio that does not depend on how much of the core other
# processes take (on a busy machine wall time measures the share skiff got, not its cost).
mem_cpu = [r["cpu_s"] for r in rows if r["label"] == "file-discard"]
disk_cpu = [r["cpu_s"] for r in rows if r["label"] == "file-disk-discard"]
cpu_ratios = [m / d for m, d in zip(mem_cpu, disk_cpu)]
print("memory events/s:", mem, " CPU s:", mem_cpu)
print("disk events/s:  ", disk, " CPU s:", disk_cpu)
print("disk / memory events/s per round:", [round(r, 2) for r in ratios])
print(f"median disk / memory events/s: {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
print("memory / disk CPU s per round:", [round(r, 2) for r in cpu_ratios])
print(f"median memory / disk CPU s: {statistics.median(cpu_ratios):.2f} (min {min(cpu_ratios):.2f}, max {max(cpu_ratios):.2f})")
print(f"load average during the runs: {open('/proc/loadavg').read().split()[:3]}")
PY
