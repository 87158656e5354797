#!/bin/bash
# OCSP responder benchmark. Run from the workspace root, as root, in a private network
# namespace (openssl ocsp -port binds every interface):
#   cargo build --release -p ocsp-responder --examples
#   unshare -n bash ocsp-responder/bench/run.sh [N_SERIALS] [SECONDS]
set -eu
N=${1:-1000000}
T=${2:-10}
ip link set lo up
BIN=target/release/examples/bench_server
LUA=ocsp-responder/bench/post.lua
D=$(mktemp -d)
PIDS=()
OSSL=
PORT=8082
cleanup() { [ -n "$OSSL" ] && stop_openssl; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$D"; }
trap cleanup EXIT INT TERM

wait_up() { for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done; echo "not up: $1"; exit 1; }

echo "## setup: $N issued serials"
$BIN ocsp "$D" 127.0.0.1:8080 "$N" 2> "$D/ours.log" & PIDS+=($!)
wait_up http://127.0.0.1:8080/healthz
grep -E "serials|revocation|serving" "$D/ours.log"
echo "server RSS after setup: $(grep VmRSS /proc/${PIDS[0]}/status)"
$BIN ceiling 127.0.0.1:8081 2> "$D/ceiling.log" & PIDS+=($!)
wait_up http://127.0.0.1:8081/
start_openssl() { # a fresh responder per run: its workers hang on kept-alive connections
  openssl ocsp -index "$D/index.txt" -CA "$D/signing-root.pem" -rsigner "$D/signing-signer.pem" \
    -rkey "$D/signing-signer.key" -port "$PORT" -multi 2 -ignore_err -nmin 60 \
    > "$D/openssl.out" 2> "$D/openssl.log" &
  OSSL=$!
  local t0; t0=$(date +%s.%N)
  for _ in $(seq 1 600); do
    openssl ocsp -reqin "$D/req-nonce.der" -url "http://127.0.0.1:$PORT" -CAfile "$D/signing-root.pem" \
      >/dev/null 2>&1 && break; sleep 0.2; done
  echo "openssl ocsp up after $(echo "$(date +%s.%N) - $t0" | bc) s (index load)"
}
# the -multi workers are children of $OSSL: end them by parent id, then the parent
stop_openssl() { pkill -9 -P "$OSSL" 2>/dev/null || true; kill -9 "$OSSL" 2>/dev/null || true; wait "$OSSL" 2>/dev/null || true; OSSL=; }
start_openssl
echo "## sanity (openssl verifies both servers' answers)"
for port in 8080 $PORT; do
  openssl ocsp -issuer "$D/signing-root.pem" -cert "$D/good.pem" -url http://127.0.0.1:$port/ocsp \
    -CAfile "$D/signing-root.pem" 2>&1 | grep -E "good.pem|verify" | tr '\n' ' '; echo " (port $port)"
done
SIZE=$(curl -s --data-binary @"$D/req-cached.der" -H 'Content-Type: application/ocsp-request' http://127.0.0.1:8080/ocsp | wc -c)
echo "response size (cached answer): $SIZE bytes"

run() { # name url req [CLOSE=1]
  echo "## $1"
  env REQ="$3" ${4:-CLOSE=0} wrk -t1 -c64 -d${T}s --latency -s $LUA "$2" | grep -E "Requests/sec|Latency  |  50%|  99%|non-2xx|Non-2xx|Socket"
}
ceiling() { run "ceiling: bare hyper, same POST, fixed 1.5 KB body" http://127.0.0.1:8081/ "$D/req-cached.der"; }
# ours and the ceiling alternate, three times each, so that load from elsewhere hits both
for i in 1 2 3; do
  run "ours: cached (no nonce), keep-alive [$i]" http://127.0.0.1:8080/ocsp "$D/req-cached.der"
  ceiling
done
run "ours: live-signed (nonce), keep-alive" http://127.0.0.1:8080/ocsp "$D/req-nonce.der"
run "ours: cached, new connection per request" http://127.0.0.1:8080/ocsp "$D/req-cached.der" CLOSE=1
run "ours: live-signed (nonce), new connection per request" http://127.0.0.1:8080/ocsp "$D/req-nonce.der" CLOSE=1
# a fresh openssl per run, each on its own port (a killed one can leave its port busy)
stop_openssl
PORT=8083; start_openssl
run "openssl ocsp -multi 2: no nonce, new connection per request" http://127.0.0.1:$PORT/ "$D/req-cached.der" CLOSE=1
stop_openssl; PORT=8084; start_openssl
run "openssl ocsp -multi 2: nonce, new connection per request" http://127.0.0.1:$PORT/ "$D/req-nonce.der" CLOSE=1
stop_openssl; PORT=8085; start_openssl
run "openssl ocsp -multi 2: no nonce, keep-alive (its workers hang on kept-alive connections)" http://127.0.0.1:$PORT/ "$D/req-cached.der"
stop_openssl
echo "## server metrics"; curl -s http://127.0.0.1:8080/metrics | grep -E "cause=\"(cache_hit|live_signed|overloaded)\"|status=\"(successful|tryLater)\""
