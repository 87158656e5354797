#!/bin/bash
# OCSP over a benchmark store (issue #14): requests spread uniformly at random over every
# certificate vs one hot serial, beside `openssl ocsp -multi 2` answering from an index of
# the same authentication certificates; start-up to first answer and RSS, first start
# (pre-signing every answer) and after a restart (served from the durable answer store).
# Run from the workspace root, as root, in a private network namespace:
#   cargo build --release -p jpki
#   target/release/jpki bench populate --data DIR --certificates N
#   unshare -n bash bench/scale/ocsp.sh DIR [SECONDS] [ROUNDS]
set -eu
DATA=$1; T=${2:-10}; R=${3:-3}
ip link set lo up
BIN=$PWD/target/release/jpki
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d)
PIDS=(); OSSL=
cleanup() { [ -n "$OSSL" ] && kill -9 $(pgrep -P "$OSSL") "$OSSL" 2>/dev/null; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT; trap 'exit 1' INT TERM
echo "## machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
# EXPORT=DIR: reuse (or fill, if empty) an export of the store kept between runs (`jpki bench
# export` reads the store once: ~3.5 min at 10^6). The store must not have changed since.
E=${EXPORT:-$W}
if [ ! -s "$E/all.reqs" ]; then
  $BIN bench export --data "$DATA" --out "$E"
  $BIN --data "$DATA" root --hierarchy auth > "$E/auth-root.pem"
  $BIN --data "$DATA" root --hierarchy signing > "$E/signing-root.pem"
  for h in auth signing; do
    openssl ocsp -issuer "$E/$h-root.pem" -serial 0x1 -no_nonce -reqout "$E/$h-tpl.der" >/dev/null 2>&1
  done
  python3 bench/scale/requests.py "$E/auth.reqs" "$E/auth-tpl.der" "$E/auth.serials"
  python3 bench/scale/requests.py "$E/all.reqs" "$E/auth-tpl.der" "$E/auth.serials" "$E/signing-tpl.der" "$E/signing.serials"
fi
[ "$E" = "$W" ] || cp "$E"/auth-root.pem "$E"/signing-root.pem "$E"/index.txt "$E"/index.txt.attr "$E"/auth.serials "$E"/signing.serials "$W"/
ALL=$E/all.reqs; AUTH=$E/auth.reqs
# MEMORY_ANSWERS: the memory front (serve's default 65536 answers when unset). The answer
# store's slot file has no cache of its own (the OS page cache).
printf '[listen]\nhttp = "127.0.0.1:8090"\n[ocsp]\npresign_per_second = %s\nmemory_answers = %s\n' \
  "${PRESIGN:-1000000}" "${MEMORY_ANSWERS:-65536}" > "$W/serve.toml"
echo "## serve.toml: $(tr '\n' ' ' < "$W/serve.toml")"
FIRST=$(python3 -c "import sys,struct;d=open('$ALL','rb').read();n=struct.unpack('>H',d[:2])[0];open('$W/first.der','wb').write(d[2:2+n])")
rss() { grep VmRSS /proc/$1/status | awk '{print $2/1024 " MiB"}'; }
metric() { curl -s http://127.0.0.1:8090/metrics | awk -v m="$1" '$1==m {print $2}'; }
start() { # start jpki serve, time to the first OCSP answer
  local t0; t0=$(date +%s.%N)
  $BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!; PIDS+=($SERVE)
  until curl -s -f -o /dev/null --data-binary @"$W/first.der" -H 'Content-Type: application/ocsp-request' http://127.0.0.1:8090/ocsp; do sleep 0.05; done
  echo "serve start-up to first OCSP answer: $(echo "$(date +%s.%N) - $t0" | bc) s; RSS $(rss $SERVE)"
}
run() { # name url reqs hot close
  echo "## $1"
  env REQS="$3" HOT="$4" CLOSE="$5" wrk -t1 -c32 -d${T}s --latency -s bench/scale/multi.lua "$2" > "$W/run.out"
  grep -E "Requests/sec|  99%|  50%|Non-2xx|Socket errors" "$W/run.out"
  # wrk prints these lines only when something failed: a run with a failed answer is void.
  if grep -qE "Non-2xx|Socket errors" "$W/run.out"; then echo "!! $1: failed answers or socket errors (see above): run void"; fi
  # "name without the round [i]|requests/s|p99" for the medians at the end
  echo "${1% \[*}|$(awk '/Requests\/sec/ {print $2}' "$W/run.out")|$(awk '$1=="99%" {print $2}' "$W/run.out")" >> "$W/results"
}
medians() { # per kind of run: median requests/s and median p99 over the rounds
  python3 - "$W/results" <<'PY'
import sys, statistics as st
def ms(v):
    for u, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(u): return float(v[:-len(u)]) * f
    return float(v)
runs = {}
for line in open(sys.argv[1]):
    name, rps, p99 = line.rstrip("\n").split("|")
    runs.setdefault(name, []).append((float(rps), ms(p99)))
print("## medians over the rounds")
for name, v in runs.items():
    print(f"{name}: {st.median(r for r, _ in v):,.0f}/s, p99 {st.median(p for _, p in v):.2f} ms ({len(v)} rounds: {', '.join(f'{r:,.0f}' for r, _ in v)})")
PY
}
N=$(cat "$W/auth.serials" "$W/signing.serials" | wc -l)
if [ "${SKIP_FIRST:-0}" != 1 ]; then # SKIP_FIRST=1: the answer store is already filled
echo "## first start (pre-signer fills the answer store at up to ${PRESIGN:-1000000}/s)"
start
t0=$(date +%s.%N); c0=$(awk '{print $14+$15}' /proc/$SERVE/stat)
# Every certificate's answer stored: pre-signed, or signed live for the start-up probe (and
# stored then, so the pre-signer skips it): N signatures in all.
until [ "$(metric ocsp_signatures_total)" -ge "$N" ] 2>/dev/null; do sleep 1; done
dt=$(echo "$(date +%s.%N) - $t0" | bc); c1=$(awk '{print $14+$15}' /proc/$SERVE/stat)
echo "full pre-signing pass: $N answers in $dt s ($(echo "$N / $dt" | bc)/s), CPU $(echo "($c1 - $c0) / 100" | bc) s = $(echo "100 * ($c1 - $c0) / 100 / $dt / $(nproc)" | bc) % of the machine; RSS $(rss $SERVE); answer store $(du -sm "$DATA/ocsp-answers" | cut -f1) MB"
kill $SERVE; wait $SERVE 2>/dev/null || true
fi
echo "## restart"
start
for i in $(seq 1 $R); do
  run "ours: uniform over all $N serials, keep-alive [$i]" http://127.0.0.1:8090/ocsp "$ALL" 0 0
  run "ours: one hot serial, keep-alive [$i]" http://127.0.0.1:8090/ocsp "$ALL" 1 0
  run "ours: uniform over auth serials, new connection per request [$i]" http://127.0.0.1:8090/ocsp "$AUTH" 0 1
done
# One snapshot of /metrics (the pre-signer may be signing thousands a second meanwhile).
M=$(curl -s http://127.0.0.1:8090/metrics)
m() { awk -v m="$1" '$1==m {print $2}' <<< "$M"; }
SIGS=$(m ocsp_signatures_total); HITS=$(m ocsp_stored_hits_total); PRE=$(m ocsp_presigned_total)
echo "RSS after the runs: $(rss $SERVE); signatures since restart: $SIGS ($PRE by the pre-signer); stored hits: $HITS"
# Stored answers live ocsp.next_update_minutes (60 by default): a SKIP_FIRST run made after they
# ran out measures live signing, not the store. More than 1 answer signed live (not by the
# pre-signer) per 1,000 stored hits voids it.
if [ $((SIGS - PRE)) -gt $((HITS / 1000)) ]; then
  echo "!! $((SIGS - PRE)) answers were signed live during the runs (stored answers missing or expired): the figures are not of the answer store; run without SKIP_FIRST"
fi
# The peer signs with the same delegated auth OCSP signer (its key decrypted into the
# private temporary directory, removed at exit).
OSIGNER_CERT="$DATA/certs/auth-ocsp.pem"; OSIGNER_KEY="$W/auth-ocsp.key"
(umask 077; openssl pkcs8 -in "$DATA/keys/auth-ocsp.key" -passin env:JPKI_PASSPHRASE -out "$OSIGNER_KEY")
for i in $(seq 1 $R); do
  PORT=$((8100 + i))
  openssl ocsp -index "$W/index.txt" -CA "$W/auth-root.pem" -rsigner "$OSIGNER_CERT" -rkey "$OSIGNER_KEY" \
    -port $PORT -multi 2 -ignore_err -nmin 60 > /dev/null 2> "$W/openssl.log" & OSSL=$!
  t0=$(date +%s.%N)
  until curl -s -f -o /dev/null --data-binary @"$W/first.der" http://127.0.0.1:$PORT/; do sleep 0.1; done
  echo "openssl ocsp up (index of $(wc -l < "$W/index.txt") loaded) after $(echo "$(date +%s.%N) - $t0" | bc) s"
  run "openssl ocsp -multi 2: uniform over auth serials, new connection per request [$i]" http://127.0.0.1:$PORT/ "$AUTH" 0 1
  kill -9 $(pgrep -P "$OSSL") "$OSSL" 2>/dev/null || true; wait "$OSSL" 2>/dev/null || true; OSSL=
done
kill $SERVE; wait $SERVE 2>/dev/null || true
# The machine's HTTP ceiling in the same run: bare hyper (same server settings) answering every
# request with a fixed 1.5 KB body, no OCSP at all (`cargo build --release -p ocsp-responder
# --example bench_server`; skipped when not built). What no responder on these 2 cores can pass,
# with and without a new connection per request.
CEIL=$PWD/target/release/examples/bench_server
if [ -x "$CEIL" ]; then
  $CEIL ceiling 127.0.0.1:8095 > /dev/null 2>&1 & CPID=$!; PIDS+=($CPID)
  until curl -s -f -o /dev/null --data-binary @"$W/first.der" http://127.0.0.1:8095/; do sleep 0.05; done
  for i in $(seq 1 $R); do
    run "ceiling (bare hyper, fixed body): keep-alive [$i]" http://127.0.0.1:8095/ "$AUTH" 0 0
    run "ceiling (bare hyper, fixed body): new connection per request [$i]" http://127.0.0.1:8095/ "$AUTH" 0 1
  done
  kill $CPID; wait $CPID 2>/dev/null || true
fi
medians
echo "disk: store $(du -sb "$DATA" --exclude ocsp-answers | cut -f1) bytes, answers $(du -sb "$DATA/ocsp-answers" | cut -f1) bytes for $N certificates"
