#!/usr/bin/env bash
# The nginx access fileset's cost (issue 11): SIZE of nginx access log (combined format, some
# lines behind proxies and with a virtual host, as in Filebeat's fixtures) through skiff into
# discard, on one core, with the fileset's pipeline (configs/stdin-nginx-discard.yml) and
# without parsing (configs/stdin-discard.yml), ROUNDS times interleaved on the same input.
# Prints one JSON line per run, then the MB/s of each and the median ratio parsed / unparsed.
# Usage: [SKIFF_BIN=path] bench/nginx_module.sh [SIZE] [ROUNDS]   (default 1GiB, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1GiB}
rounds=${2:-3}
bin=${SKIFF_BIN:-target/release/skiff}
[ -n "${SKIFF_BIN:-}" ] || cargo build --release -p skiff >/dev/null
work=$(mktemp -d /tmp/skiff-nginxbench.XXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$size" > "$work/access.log" <<'PY'
# Reproducible nginx access lines (fixed seed): addresses, users, times, methods, paths,
# statuses, sizes, referrers and agents varied; one line in ten behind proxies
# (X-Forwarded-For list), one in ten with a virtual host in front.
import random, sys
units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
arg = sys.argv[1]
size = next((int(arg[:-3]) * m for u, m in units.items() if arg.endswith(u)), None) or int(arg)
rng = random.Random(11)
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "curl/8.4.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36", "-"]
paths = ["/", "/index.html", "/api/v1/items?id=", "/static/app.js", "/img/logo.png", "/login"]
out, written = [], 0
while written < size:
    ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    r = rng.random()
    if r < 0.1:
        ip = f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}, 172.16.0.1, {ip}"
    host = "www.example.com " if 0.1 <= r < 0.2 else ""
    user = rng.choice(["-", "-", "-", "alice"])
    t = f"{rng.randint(10, 28):02d}/Nov/2026:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0100"
    path = rng.choice(paths) + (str(rng.randint(1, 99999)) if rng.random() < 0.3 else "")
    line = (f'{host}{ip} - {user} [{t}] "{rng.choice(["GET", "GET", "POST", "HEAD"])} {path} HTTP/1.1" '
            f'{rng.choice([200, 200, 200, 304, 404, 500])} {rng.randint(0, 90000)} '
            f'"{rng.choice(["-", "https://example.com/"])}" "{rng.choice(agents)}"\n')
    out.append(line)
    written += len(line)
    if len(out) >= 10000:
        sys.stdout.write("".join(out))
        out = []
sys.stdout.write("".join(out))
PY
# A parsed run of 1 GiB takes minutes: the per-run limit of run.py (600 s) is raised.
run() { python3 bench/run.py --one-core --timeout 3600 --binary "$bin" "$@" | tee -a "$work/results.ndjson"; }
for _ in $(seq "$rounds"); do
    run --config bench/configs/stdin-discard.yml --input "$work/access.log"
    run --config bench/configs/stdin-nginx-discard.yml --input "$work/access.log"
done
python3 - "$work/results.ndjson" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
raw = [r["mb_per_s"] for r in rows if r["label"] == "stdin-discard"]
parsed = [r["mb_per_s"] for r in rows if r["label"] == "stdin-nginx-discard"]
ratios = [p / b for b, p in zip(raw, parsed)]
print("without parsing MB/s:", raw)
print("nginx access fileset MB/s:", parsed)
print("parsed / unparsed per round:", [round(r, 3) for r in ratios])
print(f"median parsed / unparsed: {statistics.median(ratios):.3f}; median MB/s parsed {statistics.median(parsed):.1f}, unparsed {statistics.median(raw):.1f}")
print(f"load average during the runs: {open('/proc/loadavg').read().split()[:3]}")
PY
