#!/usr/bin/env python3
"""Flood campaign against a running `jpki serve` (issue #19; RELIABILITY.md has the figures).

    flood.py HOST PORT SERVE_PID N_ADDR PER_ADDR IDLE_SECONDS [--mode MODE] [--hold SECONDS]
             [--settle SECONDS] [--admin COMMAND]

N_ADDR x PER_ADDR connections from 127.0.1.1, 127.0.1.2, ... (under the per-address cap), of
one kind (--mode):

  idle       connect and send nothing
  slowloris  start a request and send one more header byte every 2 s
  h2-preface send the HTTP/2 preface and an empty SETTINGS frame, then nothing
  h2-pings   the same, then answer every PING and SETTINGS as a live HTTP/2 client does,
             without ever opening a stream

While the flood is opened and then held (--hold seconds, default IDLE + 5) a well-behaved client on 127.0.0.1
asks /healthz in a loop, one new connection per request; its success rate and latency
percentiles are printed with the server's resident memory (VmRSS) before, during, at the end
of the hold, and after the flood is gone (--settle seconds later, default 15). The last line
is a JSON summary. With --admin, COMMAND (a shell command: a `jpki` state change through the
admin socket) runs every 3 s during the hold; its successes and slowest run are reported. The bar: >= 99 % success and p99 < 50 ms during the flood, memory back
within 20 % of its level before.
"""
import argparse, http.client, json, resource, selectors, socket, struct, subprocess, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("host"); ap.add_argument("port", type=int); ap.add_argument("pid", type=int)
ap.add_argument("n_addr", type=int); ap.add_argument("per_addr", type=int)
ap.add_argument("idle", type=float)
ap.add_argument("--mode", default="idle", choices=["idle", "slowloris", "h2-preface", "h2-pings"])
ap.add_argument("--hold", type=float)
ap.add_argument("--settle", type=float, default=15)
ap.add_argument("--admin")
args = ap.parse_args()
hold = args.hold if args.hold is not None else args.idle + 5
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def rss():
    for l in open(f"/proc/{args.pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) / 1024
    return -1

class Client(threading.Thread):
    """The well-behaved client: /healthz over a new connection each time, until stopped."""
    def __init__(self, n=None):
        super().__init__(daemon=True)
        self.n, self.stop, self.ok, self.lat, self.errors = n, threading.Event(), 0, [], {}
    def run(self):
        while not self.stop.is_set() and (self.n is None or len(self.lat) < self.n):
            t = time.monotonic()
            try:
                c = http.client.HTTPConnection(args.host, args.port, timeout=5)
                c.request("GET", "/healthz")
                r = c.getresponse(); r.read(); c.close()
                self.ok += r.status == 200
            except OSError as e:
                k = type(e).__name__
                self.errors[k] = self.errors.get(k, 0) + 1
            self.lat.append((time.monotonic() - t) * 1000)
            time.sleep(0.01)
    def summary(self):
        lat = sorted(self.lat) or [0]
        pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]
        return {"asked": len(self.lat), "ok": self.ok,
                "success": round(100.0 * self.ok / max(1, len(self.lat)), 2),
                "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2), "errors": self.errors}

class Admin(threading.Thread):
    """--admin: the command every 3 s while the flood is held."""
    def __init__(self, cmd):
        super().__init__(daemon=True)
        self.cmd, self.stop, self.runs, self.ok, self.slowest = cmd, threading.Event(), 0, 0, 0.0
    def run(self):
        while not self.stop.wait(3):
            t = time.monotonic()
            r = subprocess.run(self.cmd, shell=True, capture_output=True, timeout=60)
            self.slowest = max(self.slowest, (time.monotonic() - t) * 1000)
            self.runs += 1; self.ok += r.returncode == 0
    def summary(self):
        return {"runs": self.runs, "ok": self.ok, "slowest_ms": round(self.slowest, 1)}

def measured(n):
    c = Client(n); c.start(); c.join(); return c.summary()

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
def frame(kind, flags, payload=b"", stream=0):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

out = {"mode": args.mode, "connections": args.n_addr * args.per_addr}
out["rss_before_mib"] = round(rss(), 1)
out["before"] = measured(100)
print("rss before %.1f MiB; well-behaved client alone: %s" % (out["rss_before_mib"], out["before"]), flush=True)

# The well-behaved client (and --admin) run from the first flood connection on.
client = Client(); client.start()
admin = Admin(args.admin) if args.admin else None
if admin:
    admin.start()
socks, failed = [], 0
t0 = time.monotonic()
for a in range(args.n_addr):
    for _ in range(args.per_addr):
        s = socket.socket()
        try:
            s.bind((f"127.0.1.{a + 1}", 0)); s.connect((args.host, args.port))
            if args.mode == "slowloris":
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-")
            elif args.mode.startswith("h2"):
                s.sendall(PREFACE + frame(4, 0))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            failed += 1; s.close()
print("opened %d %s connections from %d addresses (%d failed) in %.1f s"
      % (len(socks), args.mode, args.n_addr, failed, time.monotonic() - t0), flush=True)

sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
closed, pings, end, dribble = set(), 0, time.monotonic() + hold, time.monotonic()
peak = rss()
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(s); closed.add(s); continue
        if args.mode == "h2-pings":
            at = 0
            while at + 9 <= len(data):
                n = int.from_bytes(data[at:at + 3], "big"); kind, flags = data[at + 3], data[at + 4]
                payload = data[at + 9:at + 9 + n]
                try:
                    if kind == 6 and not flags & 1:
                        s.send(frame(6, 1, payload)); pings += 1
                    elif kind == 4 and not flags & 1:
                        s.send(frame(4, 1))
                except OSError:
                    pass
                at += 9 + n
    if args.mode == "slowloris" and time.monotonic() - dribble >= 2:
        dribble = time.monotonic()
        for s in socks:
            if s not in closed:
                try: s.send(b"a")
                except OSError: pass
    peak = max(peak, rss())
client.stop.set(); client.join()
out["during"] = client.summary()
if admin:
    admin.stop.set(); admin.join()
    out["admin"] = admin.summary()
    print("admin socket during the flood: %s" % out["admin"], flush=True)
out["rss_peak_mib"] = round(peak, 1)
out["closed_by_server"] = len(closed)
out["pings_answered"] = pings
print("during the flood (%.0f s): %s; %d of %d flood connections closed by the server; %d pings answered; rss peak %.1f MiB"
      % (hold, out["during"], len(closed), len(socks), pings, peak), flush=True)
for s in socks:
    s.close()
time.sleep(args.settle)
out["rss_after_mib"] = round(rss(), 1)
out["after"] = measured(100)
out["rss_returned"] = out["rss_after_mib"] <= 1.2 * out["rss_before_mib"]
print("after the flood (+%.0f s): %s; rss %.1f MiB (before %.1f)"
      % (args.settle, out["after"], out["rss_after_mib"], out["rss_before_mib"]), flush=True)
print(json.dumps(out))
