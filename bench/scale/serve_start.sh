#!/bin/bash
# `jpki serve` on a large store (issue #14): start-up to the first OCSP answer and RSS, the
# first CRL publication pass (in the background since the server listens first) until
# /readyz says ready, then ROUNDS single revocations, each timed from the acknowledged
# `jpki revoke` (through the admin socket) to its partition's new CRL being served.
# `[crl] batch_delay_seconds = 0` so that the figure is the publication, not the batching
# wait. Run from the workspace root, in a private network namespace:
#   unshare -n bash bench/scale/serve_start.sh DIR [ROUNDS]
set -eu
DATA=$1; R=${2:-3}
ip link set lo up
BIN=$PWD/target/release/jpki
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d); SERVE=
trap '[ -n "$SERVE" ] && kill $SERVE 2>/dev/null; rm -rf "$W"' EXIT INT TERM
echo "## machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); store: $(du -sm "$DATA" | cut -f1) MB"
printf '[listen]\nhttp = "127.0.0.1:8090"\n[crl]\nbatch_delay_seconds = 0\n' > "$W/serve.toml"
$BIN --data "$DATA" root --hierarchy auth > "$W/auth-root.pem"
openssl ocsp -issuer "$W/auth-root.pem" -serial 0x2 -no_nonce -reqout "$W/first.der" >/dev/null 2>&1
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
rss() { grep VmRSS /proc/$1/status | awk '{print $2/1024 " MiB"}'; }
t0=$(now)
$BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
until curl -s -f -o /dev/null --data-binary @"$W/first.der" -H 'Content-Type: application/ocsp-request' http://127.0.0.1:8090/ocsp; do sleep 0.05; done
echo "start-up to first OCSP answer: $(since "$t0") s; RSS $(rss $SERVE)"
curl -s http://127.0.0.1:8090/readyz | head -c 300; echo
until curl -s -f -o /dev/null http://127.0.0.1:8090/readyz; do sleep 0.2; done
echo "start-up to ready (first CRL pass over): $(since "$t0") s; RSS $(rss $SERVE)"
grep "published at start" "$W/serve.log" || true
for i in $(seq 1 "$R"); do
  LINE=$($BIN --data "$DATA" cert list --kind auth --status good --limit 1 --json | python3 -c '
import json,sys
c=json.load(sys.stdin)["certificates"][0]; p=c["partition"]
print(c["serial"], p["prefecture"] + "/" + p["municipality"])')
  SERIAL=${LINE%% *}; PART=${LINE#* }
  URL="http://127.0.0.1:8090/crl/auth/$PART.crl"
  curl -s -f -o "$W/before.crl" "$URL"
  N0=$(openssl crl -inform DER -in "$W/before.crl" -noout -crlnumber)
  t1=$(now)
  $BIN --data "$DATA" revoke --serial "$SERIAL" --hierarchy auth --reason keyCompromise > /dev/null
  t2=$(now)
  while :; do
    curl -s -f -o "$W/after.crl" "$URL"
    [ "$(openssl crl -inform DER -in "$W/after.crl" -noout -crlnumber)" != "$N0" ] && break
    sleep 0.005
  done
  echo "one revocation [$i] ($PART): acknowledged in $(echo "$t2 - $t1" | bc) s (CLI through the admin socket), new CRL served $(since "$t2") s after the acknowledgement"
done
kill $SERVE; wait $SERVE 2>/dev/null || true; SERVE=
