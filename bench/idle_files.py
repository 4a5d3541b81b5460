#!/usr/bin/env python3
"""Cost of watching many idle files: CPU share and RSS once everything is read.

    bench/idle_files.py [--files 10000] [--measure 30] [--binary target/release/skiff] [-E key=value ...]

Creates N small files (one line each) under a temporary directory, runs skiff with a filestream
input on them and the discard output (pinned to one core, max_procs 1), waits until every line
is acknowledged, lets it settle, then samples its CPU time and RSS from /proc over --measure
seconds. Prints one JSON line. Extra -E settings are passed to skiff (e.g. harvester_limit).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from run import free_port, stats


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--measure", type=float, default=30)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--binary", default="target/release/skiff")
    ap.add_argument("-E", action="append", default=[])
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="skiff-idle-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    for i in range(a.files):
        with open(os.path.join(logs, f"f{i:06}.log"), "w") as f:
            f.write(f"file {i} line 0\n")
    port = free_port()
    cfg = os.path.join(work, "skiff.yml")
    with open(cfg, "w") as f:
        f.write(
            "inputs:\n"
            "  - type: filestream\n"
            "    id: idle\n"
            f"    paths: [\"{logs}/*.log\"]\n"
            "output.discard: {}\n"
            f"http: {{enabled: true, port: {port}}}\n"
            "logging.metrics.enabled: false\n"
        )
    cmd = ["taskset", "-c", "0", a.binary, "-c", cfg, "-e", "--path.data", os.path.join(work, "data"),
           "-E", "logging.level=warning", "-E", "max_procs=1"]
    for e in a.E:
        cmd += ["-E", e]
    proc = subprocess.Popen(cmd)
    start = time.monotonic()
    try:
        while True:
            s = stats(port)
            if s and s["libbeat"]["output"]["events"]["acked"] >= a.files:
                break
            if proc.poll() is not None or time.monotonic() - start > 600:
                raise SystemExit("skiff exited or did not read every file in time")
            time.sleep(0.2)
        read_s = time.monotonic() - start
        time.sleep(a.settle)
        t0, c0 = time.monotonic(), cpu_ticks(proc.pid)
        peak = 0
        while time.monotonic() - t0 < a.measure:
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.5)
        t1, c1 = time.monotonic(), cpu_ticks(proc.pid)
        hz = os.sysconf("SC_CLK_TCK")
        print(json.dumps({
            "label": "idle-files",
            "files": a.files,
            "settings": a.E,
            "read_all_s": round(read_s, 2),
            "idle_cpu_percent": round(100 * (c1 - c0) / hz / (t1 - t0), 2),
            "idle_rss_mib": round(peak / 1024, 1),
        }))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
