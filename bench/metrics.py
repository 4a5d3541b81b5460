#!/usr/bin/env python3
"""CPU and memory of skiff's metrics modules (issue 14), one JSON line per case.

    cargo build --release -p skiff
    bench/metrics.py [--seconds 60] [--targets 1000]

Cases, each a fresh skiff (target/release/skiff) shipping to output.discard, measured over
--seconds after a warm-up of one period (start-up jitter, the first fetch):

- baseline: skiff with one system/uptime module at 10 s (an agent that does almost nothing);
- prometheus: the prometheus collector scraping --targets targets at period 10 s. The targets
  are served by this script: one asyncio server listening on --targets loopback ports, each
  answering /metrics with the corpus page etcd-3.3.10-partial.plain (71 samples, the size of a
  small exporter). The server's own CPU is reported beside skiff's;
- system: the system module with all its metricsets at 10 s (process with top 5 + 5);
- sql (unless --no-sql): the mysql module (status, galera_status) against the MariaDB of this
  machine (root@127.0.0.1:3306) and the postgresql module (activity, database, bgwriter)
  against its PostgreSQL (postgres@127.0.0.1:5432, trust), at 10 s: a connection per fetch.

Reported per case: CPU share of one core (user+system over the measured wall time), CPU ms per
period, RSS at the end and peak RSS (VmHWM), events per second from /stats, and the ratios
against the baseline of the same run.
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "..", "shared", "corpus", "metricbeat-modules", "prometheus",
                    "collector", "etcd-3.3.10-partial.plain")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mem_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def stats(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as r:
            return json.load(r)
    except Exception:
        return None


def published(port):
    s = stats(port)
    if s is None:
        return 0
    return s.get("libbeat", {}).get("pipeline", {}).get("events", {}).get("published", 0)


class Targets:
    """--targets Prometheus endpoints on loopback ports, in a thread of their own."""

    def __init__(self, n):
        with open(PAGE, "rb") as f:
            body = f.read()
        self.response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.ports = []
        self.served = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(n, ready), daemon=True).start()
        ready.wait()

    async def _handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(self.response)
                self.served += 1
                await writer.drain()
        except Exception:
            pass
        writer.close()

    def _run(self, n, ready):
        asyncio.set_event_loop(self.loop)
        for _ in range(n):
            server = self.loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.ports.append(server.sockets[0].getsockname()[1])
        ready.set()
        self.loop.run_forever()


def run_case(binary, name, modules_yaml, seconds, period, extra_pid=None):
    work = tempfile.mkdtemp(prefix="skiff-metrics-bench-")
    http = free_port()
    cfg = os.path.join(work, "skiff.yml")
    with open(cfg, "w") as f:
        f.write(f"metricbeat.max_start_delay: {period}s\nmetricbeat.modules:\n{modules_yaml}"
                f"output.discard: {{}}\nhttp: {{enabled: true, port: {http}}}\n"
                f"logging.level: warning\n")
    p = subprocess.Popen([binary, "-c", cfg, "--path.home", work, "-e"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(period + 2)  # start-up jitter spreads the first fetches over one period
        c0, e0, t0 = cpu_seconds(p.pid), published(http), time.monotonic()
        x0 = cpu_seconds(extra_pid) if extra_pid else 0
        time.sleep(seconds)
        c1, e1, t1 = cpu_seconds(p.pid), published(http), time.monotonic()
        x1 = cpu_seconds(extra_pid) if extra_pid else 0
        rss, hwm = mem_kib(p.pid, "VmRSS"), mem_kib(p.pid, "VmHWM")
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    wall = t1 - t0
    out = {
        "case": name,
        "seconds": round(wall, 1),
        "cpu_pct_of_core": round(100 * (c1 - c0) / wall, 3),
        "cpu_ms_per_period": round(1000 * (c1 - c0) / (wall / period), 1),
        "rss_mib": round(rss / 1024, 1),
        "peak_rss_mib": round(hwm / 1024, 1),
        "events_per_s": round((e1 - e0) / wall, 1),
    }
    if extra_pid:
        out["target_server_cpu_pct_of_core"] = round(100 * (x1 - x0) / wall, 3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "skiff"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--no-sql", action="store_true", help="skip the mysql/postgresql case")
    a = ap.parse_args()
    period = 10

    results = [run_case(a.binary, "baseline", "  - {module: system, metricsets: [uptime], period: 10s}\n",
                        a.seconds, period)]

    targets = Targets(a.targets)
    hosts = ", ".join(f"'127.0.0.1:{p}'" for p in targets.ports)
    prom = f"  - module: prometheus\n    period: 10s\n    hosts: [{hosts}]\n"
    r = run_case(a.binary, f"prometheus-{a.targets}-targets", prom, a.seconds, period, extra_pid=os.getpid())
    r["scrapes_served_total"] = targets.served
    results.append(r)

    system = ("  - module: system\n    period: 10s\n    metricsets: [cpu, load, memory, network, process,"
              " process_summary, filesystem, fsstat, diskio, uptime, socket_summary]\n"
              "    process.include_top_n: {by_cpu: 5, by_memory: 5}\n")
    results.append(run_case(a.binary, "system-all-metricsets", system, a.seconds, period))

    if not a.no_sql:
        sql = ("  - module: mysql\n    period: 10s\n    metricsets: [status, galera_status]\n"
               "    hosts: ['root@tcp(127.0.0.1:3306)/']\n"
               "  - module: postgresql\n    period: 10s\n    metricsets: [activity, database, bgwriter]\n"
               "    hosts: ['postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable']\n")
        results.append(run_case(a.binary, "mysql-postgresql", sql, a.seconds, period))

    base = results[0]
    for r in results:
        if r is not base:
            r["cpu_vs_baseline"] = round(r["cpu_pct_of_core"] / max(base["cpu_pct_of_core"], 1e-3), 1)
            r["rss_vs_baseline"] = round(r["rss_mib"] / max(base["rss_mib"], 1e-3), 2)
        print(json.dumps(r))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
