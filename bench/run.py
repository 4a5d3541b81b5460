#!/usr/bin/env python3
"""Runs skiff on one benchmark configuration and prints one JSON line of results.

    bench/run.py --config bench/configs/stdin-discard.yml --input /tmp/lines.log [--one-core]

The input file is fed on stdin (stdin configs) or named by ${BENCH_INPUT} in the config (file
configs). The run ends when skiff exits (stdin at EOF) or, for inputs that never end, when
/stats shows every line acknowledged (the config must enable http on ${BENCH_HTTP_PORT}).
Reported: wall seconds, MB/s and events/s of input, CPU seconds (user+system), peak RSS.
With --one-core skiff is pinned to CPU 0 with max_procs 1.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(port):
    """The /stats document, or None while skiff is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as r:
            return json.load(r)
    except Exception:
        return None


def acked(port):
    s = stats(port)
    return -1 if s is None else s["libbeat"]["output"]["events"]["acked"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--input", required=True, help="the log file to ship")
    ap.add_argument("--binary", default="target/release/skiff")
    ap.add_argument("--one-core", action="store_true")
    ap.add_argument("--label", default=None)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    size = os.path.getsize(a.input)
    with open(a.input, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    work = tempfile.mkdtemp(prefix="skiff-bench-")
    port = free_port()
    env = dict(os.environ, BENCH_INPUT=os.path.abspath(a.input), BENCH_OUT=work, BENCH_HTTP_PORT=str(port))
    cmd = [a.binary, "-c", a.config, "-e", "--path.data", os.path.join(work, "data"), "-E", "logging.level=warning"]
    if a.one_core:
        cmd = ["taskset", "-c", "0"] + cmd + ["-E", "max_procs=1"]
    uses_stdin = "stdin" in open(a.config).read()
    stdin = open(a.input, "rb") if uses_stdin else subprocess.DEVNULL
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=stdin, env=env)
    done_at = None
    while True:
        if proc.poll() is not None:
            done_at = done_at or time.monotonic()
            break
        if not uses_stdin and acked(port) >= lines:
            done_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
        if time.monotonic() - start > a.timeout:
            proc.kill()
            print(json.dumps({"error": "timeout", "config": a.config}))
            sys.exit(1)
        time.sleep(0.05)
    status = proc.returncode
    # The child is reaped: its CPU time and peak RSS are in this process's children usage.
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = done_at - start
    result = {
        "label": a.label or os.path.basename(a.config).removesuffix(".yml"),
        "input_bytes": size,
        "events": lines,
        "wall_s": round(wall, 3),
        "mb_per_s": round(size / wall / 1e6, 1),
        "events_per_s": round(lines / wall),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        "exit": status,
    }
    out_dir = os.path.join(work, "out")
    if os.path.isdir(out_dir):
        result["output_bytes"] = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
