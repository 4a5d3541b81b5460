#!/usr/bin/env python3
"""Counts the registry's fsyncs under a steady load: what `registry.flush` costs.

    cargo build --release -p skiff
    bench/registry_fsyncs.py [--flush 100ms] [--files 10] [--rate 20000] [--seconds 20]

A writer appends `--rate` lines a second, spread over `--files` files, for `--seconds`; skiff
ships them (filestream -> memory queue -> discard) with `registry.flush` set to `--flush`, under
`strace -f --seccomp-bpf -e trace=fsync,fdatasync` (the registry appends end in fdatasync, its
compactions in fsync; the discard output and the memory queue do neither). Prints one JSON line:
fsyncs a second over the loaded window, the `registrar.writes.success` counter, and the lines
shipped. Needs strace.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from run import free_port, stats


def writer(paths, rate, seconds, stop):
    """Appends `rate` lines a second round-robin over `paths`, in 10 ms ticks."""
    files = [open(p, "ab", buffering=0) for p in paths]
    per_tick = max(1, rate // 100)
    start = time.monotonic()
    n = 0
    tick = 0
    while not stop.is_set() and time.monotonic() - start < seconds:
        for _ in range(per_tick):
            files[n % len(files)].write(b"registry fsync bench line %010d %s\n" % (n, b"x" * 64))
            n += 1
        tick += 1
        delay = start + tick * 0.01 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for f in files:
        f.close()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/skiff")
    ap.add_argument("--flush", default="100ms", help="registry.flush")
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--rate", type=int, default=20000, help="lines a second, all files together")
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace is needed")

    work = tempfile.mkdtemp(prefix="skiff-fsync-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    paths = [os.path.join(logs, f"app{i:03}.log") for i in range(a.files)]
    for p in paths:
        open(p, "wb").close()
    port = free_port()
    cfg = os.path.join(work, "skiff.yml")
    with open(cfg, "w") as f:
        f.write(
            f"""inputs:
  - type: filestream
    id: fsync-bench
    paths: ["{logs}/*.log"]
    registry.flush: {a.flush}
queue.mem: {{events: 8192, flush.timeout: 5ms}}
output.discard: {{}}
http: {{enabled: true, port: {port}}}
logging.metrics.enabled: false
"""
        )
    trace = os.path.join(work, "strace.txt")
    cmd = ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=fsync,fdatasync", "-o", trace,
           a.binary, "-c", cfg, "-e", "--path.data", os.path.join(work, "data"),
           "-E", "logging.level=warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while stats(port) is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit("skiff did not start")
            time.sleep(0.05)
        # Let the start-up commits pass, then load.
        time.sleep(1)
        stop = threading.Event()
        result = {}
        t0 = time.time()
        th = threading.Thread(target=lambda: result.update(lines=writer(paths, a.rate, a.seconds, stop)))
        th.start()
        th.join()
        t1 = time.time()
        # Wait for the output to catch up (30 s at most).
        deadline = time.monotonic() + 30
        s = stats(port)
        while time.monotonic() < deadline:
            s = stats(port)
            if s and s["libbeat"]["output"]["events"]["acked"] >= result["lines"]:
                break
            time.sleep(0.1)
        acked = s["libbeat"]["output"]["events"]["acked"] if s else -1
        writes = s.get("registrar", {}).get("writes", {}).get("success", -1) if s else -1
    finally:
        # strace detaches on SIGTERM and leaves skiff running: stop skiff itself.
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            children = []
        for c in children:
            os.kill(c, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for c in children:
                os.kill(c, signal.SIGKILL)
            proc.kill()
    in_window = 0
    total = 0
    with open(trace) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or not (parts[2].startswith("fsync(") or parts[2].startswith("fdatasync(")):
                continue
            total += 1
            if t0 <= float(parts[1]) <= t1:
                in_window += 1
    print(json.dumps({
        "flush": a.flush,
        "files": a.files,
        "lines_per_s": a.rate,
        "seconds": round(t1 - t0, 1),
        "lines": result.get("lines"),
        "acked": acked,
        "fsyncs_per_s_under_load": round(in_window / (t1 - t0), 1),
        "fsyncs_total": total,
        "registrar_writes": writes,
    }))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
