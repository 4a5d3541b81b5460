#!/usr/bin/env python3
"""syslog over TCP and UDP into output.discard: events/s on one core, and UDP drops under
overload.

    cargo build --release -p skiff
    bench/syslog_net.py [--events 2000000] [--udp-events 1000000] [--rounds 3]

skiff runs pinned to CPU 0 (`max_procs: 1`); the sender (this script's child, Python) runs on
CPU 1. Messages are RFC 3164 lines of ~120 bytes as rsyslog forwards them, `format: rfc3164`.

* TCP: the sender writes all messages over one connection (pre-built buffer, newline framing)
  as fast as skiff reads; the time is from the first byte to the moment /stats shows every
  event acknowledged by the discard output. TCP loses nothing, so events/s is skiff's rate.
* UDP: the sender sends datagrams as fast as one Python core can (faster than skiff parses
  them, so this is overload); reported: sent, received by skiff, delivered, dropped by skiff
  (`pipeline_full`), dropped by the kernel (`kernel_drops`), and skiff's received events/s.
  sent == received + kernel drops when the counts are complete.
Prints one JSON line per run, then the median of each kind. A baseline of the same run:
`tcp_to_udp_rate` = TCP events/s / UDP received events/s.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import stats  # noqa: E402  (the /stats reader of the other benchmarks)

SENDER = r"""
import socket, sys, time
proto, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def line(i):
    return (b"<134>Dec  6 10:%02d:%02d web-%03d nginx[%d]: 10.0.%d.%d - - \"GET /api/v1/items/%d HTTP/1.1\" 200 %d"
            % (i // 60 % 60, i % 60, i % 100, 1000 + i % 5000, i % 256, i // 256 % 256, i, i % 9000))
start = time.monotonic()
if proto == "tcp":
    s = socket.create_connection(("127.0.0.1", port))
    chunk = 20000
    for at in range(0, n, chunk):
        s.sendall(b"\n".join(line(i) for i in range(at, min(n, at + chunk))) + b"\n")
    s.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msgs = [line(i) for i in range(min(n, 100000))]
    addr = ("127.0.0.1", port)
    for i in range(n):
        s.sendto(msgs[i % len(msgs)], addr)
print(time.monotonic() - start)
"""


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(d, path, default=0):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def run(binary, proto, n):
    work = tempfile.mkdtemp(prefix="skiff-syslog-bench-")
    http_port = free_port()
    port = free_port(socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    cfg = os.path.join(work, "skiff.yml")
    with open(cfg, "w") as f:
        f.write(f"""inputs:
  - type: syslog
    id: bench
    format: rfc3164
    timezone: UTC
    protocol.{proto}:
      host: "127.0.0.1:{port}"
{"      read_buffer: 8MiB" if proto == "udp" else ""}
queue.mem:
  events: 8192
  flush.timeout: 0s
output.discard:
  bulk_max_size: 2048
http: {{enabled: true, port: {http_port}}}
logging.metrics.enabled: false
""")
    cmd = ["taskset", "-c", "0", binary, "-c", cfg, "-e", "--path.data", os.path.join(work, "data"),
           "-E", "logging.level=warning", "-E", "max_procs=1"]
    proc = subprocess.Popen(cmd)
    try:
        while stats(http_port) is None:
            if proc.poll() is not None:
                sys.exit("skiff exited at start")
            time.sleep(0.05)
        time.sleep(0.3)
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        sender = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", SENDER, proto, str(port), str(n)],
                                  stdout=subprocess.PIPE, text=True)
        last, last_change = -1, time.monotonic()
        while True:
            s = stats(http_port) or {}
            acked = get(s, "libbeat.output.events.acked")
            if proto == "tcp" and acked >= n:
                break
            if acked != last:
                last, last_change = acked, time.monotonic()
            # UDP: done once the sender finished and nothing moved for a second.
            if proto == "udp" and sender.poll() is not None and time.monotonic() - last_change > 1.5:
                break
            if time.monotonic() - start > 600:
                sys.exit(f"timeout: {acked} of {n} acknowledged")
            time.sleep(0.02)
        wall = time.monotonic() - start
        if proto == "udp":
            wall = last_change - start
        cpu = cpu_seconds(proc.pid) - cpu0
        send_s = float(sender.communicate()[0].strip() or 0)
        s = stats(http_port) or {}
        received = get(s, "skiff.input.events")
        out = {"proto": proto, "sent": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
               "sender_s": round(send_s, 3), "delivered": get(s, "libbeat.output.events.acked"),
               "received": received, "events_per_s": round(received / wall) if wall else 0}
        if proto == "udp":
            out["dropped_pipeline_full"] = get(s, "skiff.input.net.dropped")
            out["kernel_drops"] = get(s, "skiff.input.udp.kernel_drops")
            out["sent_per_s"] = round(n / send_s) if send_s else 0
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/skiff")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--udp-events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    results = {"tcp": [], "udp": []}
    for _ in range(a.rounds):
        for proto, n in (("tcp", a.events), ("udp", a.udp_events)):
            r = run(a.binary, proto, n)
            print(json.dumps(r), flush=True)
            results[proto].append(r)
    tcp = statistics.median(r["events_per_s"] for r in results["tcp"])
    udp = statistics.median(r["events_per_s"] for r in results["udp"])
    print(json.dumps({"median_tcp_events_per_s": tcp, "median_udp_received_events_per_s": udp,
                      "tcp_to_udp_rate": round(tcp / udp, 2) if udp else None}))


if __name__ == "__main__":
    main()
