#!/usr/bin/env python3
"""Generates realistic log lines for skiff's benchmarks, reproducibly (fixed seed).

    bench/gen.py --size 1GiB --line 256 --kind plain > /tmp/lines.log
    bench/gen.py --size 100MiB --kind mixed  > /tmp/mixed.log   # varied sizes, UTF-8, JSON lines

Kinds:
  plain  every line exactly --line bytes (newline included): an access-log-like text padded to size
  mixed  a spread of sizes (40 B .. 4 KiB), ~10 % non-ASCII UTF-8, ~30 % JSON lines
  json   every line a JSON object of about --line bytes
"""
import argparse
import json
import random
import sys

UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_size(text):
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(float(num) * UNITS[t[len(num):]])


PATHS = ["/api/v1/orders", "/api/v1/users/42", "/static/app.js", "/health", "/login", "/search?q=boat"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1", "kube-probe/1.29"]
WORDS_UTF8 = ["héllo", "naïve", "日本語", "Ωmega", "façade", "straße", "🚤"]


def plain(rng, n):
    base = '%d.%d.%d.%d - - [22/Nov/2026:03:13:47 +0000] "GET %s HTTP/1.1" %d %d "-" "%s"' % (
        rng.randrange(256), rng.randrange(256), rng.randrange(256), rng.randrange(256),
        rng.choice(PATHS), rng.choice([200, 200, 200, 404, 500]), rng.randrange(100000), rng.choice(AGENTS))
    body = n - 1
    if len(base) >= body:
        return base[:body]
    pad = " " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(body - len(base) - 1))
    return base + pad


def as_json(rng, n):
    obj = {"level": rng.choice(["info", "warn", "error"]), "msg": "request done", "path": rng.choice(PATHS),
           "status": rng.choice([200, 404, 500]), "took_ms": rng.randrange(1000), "pad": ""}
    s = json.dumps(obj, separators=(",", ":"))
    obj["pad"] = "x" * max(0, n - 1 - len(s))
    return json.dumps(obj, separators=(",", ":"))


def mixed(rng, _n):
    r = rng.random()
    size = int(min(4096, max(40, rng.lognormvariate(5.0, 0.8))))
    if r < 0.3:
        return as_json(rng, size)
    line = plain(rng, size)
    if r < 0.4:
        line += " " + " ".join(rng.choice(WORDS_UTF8) for _ in range(5))
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="100MiB", help="total bytes to write (e.g. 1GiB)")
    ap.add_argument("--line", type=int, default=256, help="line size in bytes, newline included (plain, json)")
    ap.add_argument("--kind", choices=["plain", "mixed", "json"], default="plain")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    total = parse_size(a.size)
    make = {"plain": plain, "mixed": mixed, "json": as_json}[a.kind]
    out = sys.stdout.buffer
    written = 0
    # Lines are generated in a pool and reused: generating 1 GiB line by line in Python would
    # dominate the benchmark's set-up time; 4096 distinct lines defeat any caching in skiff.
    pool = [(make(rng, a.line) + "\n").encode() for _ in range(4096)]
    i = 0
    while written < total:
        line = pool[i % len(pool)]
        i += 1
        out.write(line)
        written += len(line)


if __name__ == "__main__":
    main()
