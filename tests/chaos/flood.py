#!/usr/bin/env python3
"""Flood campaign against a running `jpki serve`: idle connections from many loopback
addresses, then a well-behaved client's success rate and latency, and the server's RSS."""
import socket, subprocess, sys, time, resource, statistics
host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n_addr, per_addr = int(sys.argv[4]), int(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) // 1024
def good(n):
    ok, lat = 0, []
    for _ in range(n):
        t = time.monotonic()
        r = subprocess.run(["curl", "-sf", "-m", "5", "-o", "/dev/null", f"http://{host}:{port}/healthz"])
        lat.append((time.monotonic() - t) * 1000)
        ok += r.returncode == 0
    lat.sort()
    return ok, lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
print("rss before", rss(), "MiB")
b = good(100); print("baseline: %d/100 ok, p50 %.1f ms, p99 %.1f ms" % b)
socks, refused = [], 0
t0 = time.monotonic()
for a in range(n_addr):
    src = f"127.0.1.{a + 1}"
    for _ in range(per_addr):
        s = socket.socket()
        try:
            s.bind((src, 0)); s.connect((host, port)); socks.append(s)
        except OSError:
            refused += 1; s.close()
print("opened %d idle connections from %d addresses (%d failed to connect) in %.1f s" % (len(socks), n_addr, refused, time.monotonic() - t0))
time.sleep(1)
def still_open():
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1): n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n
print("held open by the server at this moment: %d" % still_open())
d = good(200); print("during the flood: %d/200 ok, p50 %.1f ms, p99 %.1f ms; rss %d MiB" % (d + (rss(),)))
# Which are still open after the idle time?
time.sleep(float(sys.argv[6]) + 3)
open_ = 0
for s in socks:
    s.setblocking(False)
    try:
        data = s.recv(1)
        if data: open_ += 1
    except BlockingIOError:
        open_ += 1
    except OSError:
        pass
print("after the idle time: %d of %d still open" % (open_, len(socks)))
for s in socks: s.close()
time.sleep(2)
a = good(100); print("after: %d/100 ok, p50 %.1f ms, p99 %.1f ms; rss %d MiB" % (a + (rss(),)))
