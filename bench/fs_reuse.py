#!/usr/bin/env python3
"""What the disk queue's segment reuse saves the kernel, without skiff: writes 1.3 GB (what the
disk queue writes for 1 GiB of 256-byte lines) in WRITE-byte chunks, each followed by fdatasync,
into SEG-MiB segment files, either deleting each finished file and creating the next ("fresh",
the disk queue before session 8) or renaming the previous finished file into the next and
writing over it ("recycle", what it does now). Prints the process's user and system seconds.

    for m in fresh recycle fresh recycle; do python3 bench/fs_reuse.py $m; done
    [SEG=100] [WRITE=655360] [DIR=/tmp/fs-reuse]  (run it on the file system the queue uses)
"""
import os
import resource
import shutil
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "fresh"
assert mode in ("fresh", "recycle"), "mode: fresh or recycle"
total = 1300 << 20
chunk = int(os.environ.get("WRITE", 655360))
seg = int(os.environ.get("SEG", 100)) << 20
d = os.environ.get("DIR", "/var/tmp/fs-reuse")
os.makedirs(d, exist_ok=True)
buf = os.urandom(chunk)
r0 = resource.getrusage(resource.RUSAGE_SELF)
written, n, prev, spare = 0, 0, None, None
while written < total:
    path = f"{d}/{n}.seg"
    if mode == "recycle" and spare:
        os.rename(spare, path)
        fd = os.open(path, os.O_WRONLY)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    s = 0
    while s < seg and written < total:
        os.write(fd, buf)
        s += chunk
        written += chunk
        os.fdatasync(fd)
    os.close(fd)
    if prev:
        if mode == "recycle":
            spare = prev
        else:
            os.unlink(prev)
    prev, n = path, n + 1
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"{mode}: user {r1.ru_utime - r0.ru_utime:.2f} s, sys {r1.ru_stime - r0.ru_stime:.2f} s")
shutil.rmtree(d, ignore_errors=True)
