#!/bin/bash
# OCSP answers per second (issue #13): an edge node (`serve --role edge`, PostgreSQL) against
# the one-process server (`serve`, same database) and against `openssl ocsp -multi 2`
# answering from an index of the same certificates with the same delegated OCSP signer; same
# run, alternating rounds. Requests (no nonce, so jpki answers from its cache; openssl signs
# every answer) are spread uniformly over N signing certificates.
#   keep-alive:      jpki one-process, jpki edge
#   new connection:  jpki one-process, jpki edge, openssl (its responder cannot keep a
#                    connection alive: bench/scale/multi.lua)
# Run from the workspace root as root (PostgreSQL runs as `postgres`), in a private network
# namespace (`openssl ocsp -multi` was seen spinning at 100 % CPU outside one):
#   cargo build --release
#   unshare -n bash storage-postgres/bench/edge_ocsp.sh target/release/jpki [SECONDS] [ROUNDS] [N]
set -eu
BIN=$(realpath "${1:-target/release/jpki}")
T=${2:-5}
ROUNDS=${3:-3}
N=${4:-20}
ip link set lo up
ROOT=$PWD
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=$(mktemp -d)
chmod 755 "$D"
PIDS=(); OSSL=
cleanup() {
  [ -n "$OSSL" ] && kill -9 $(pgrep -P "$OSSL") "$OSSL" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$D"
}
trap cleanup EXIT INT TERM
mkdir "$D/pg" "$D/s" && chown postgres "$D/pg" "$D/s"
runuser -u postgres -- "$PGBIN/initdb" -D "$D/pg/data" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$PGBIN/postgres" -D "$D/pg/data" -k "$D/s" -c listen_addresses= \
  2> "$D/pg.log" & PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$D/s/.s.PGSQL.5432" ] && break; sleep 0.2; done
URL="postgresql://postgres@$(printf %s "$D/s" | sed 's|/|%2F|g')/postgres"
export JPKI_PASSPHRASE=bench-ca-pass
J() { "$BIN" --data "$D/ca" "$@"; }
J init --store "$URL" >/dev/null
for i in $(seq 1 "$N"); do
  openssl req -new -newkey rsa:2048 -nodes -keyout "$D/k" -subj "/CN=x" -out "$D/csr" 2>/dev/null
  ID=$(J resident add --name "郵便　花子" --birth "1984-05-$(printf %02d $(( (i - 1) % 28 + 1 )))" \
    --sex 2 --address "東京都千代田区霞が関２－１－$i" --prefecture Tokyo --municipality Chiyoda-ku \
    --card-expiry 2036-01-01 --json | sed 's/.*"id":"\([^"]*\)".*/\1/')
  J issue --resident "$ID" --kind signing --csr "$D/csr" --json > /dev/null
done
J root --hierarchy signing > "$D/root.pem"
# Serials for the requests, and openssl's index of the same certificates (all good).
J cert list --kind signing --json --limit 10000 | python3 -c "
import json, sys, datetime
certs = json.load(sys.stdin)['certificates']
stamp = lambda s: datetime.datetime.fromisoformat(s.replace('Z', '+00:00')).strftime('%y%m%d%H%M%SZ')
open('$D/serials', 'w').write(''.join(c['serial'] + '\n' for c in certs))
open('$D/index.txt', 'w').write(''.join(f\"V\t{stamp(c['not_after'])}\t\t{c['serial']}\tunknown\t/CN={c['serial']}\n\" for c in certs))
open('$D/index.txt.attr', 'w').write('unique_subject = no\n')
print(len(certs), 'certificates', file=sys.stderr)"
openssl ocsp -issuer "$D/root.pem" -serial 0x1 -no_nonce -reqout "$D/tpl.der" >/dev/null 2>&1
python3 "$ROOT/bench/scale/requests.py" "$D/reqs" "$D/tpl.der" "$D/serials"
# openssl signs with the same delegated signing-hierarchy OCSP signer (key decrypted into the
# private temporary directory, removed at exit).
(umask 077; openssl pkcs8 -in "$D/ca/keys/signing-ocsp.key" -passin env:JPKI_PASSPHRASE -out "$D/ocsp.key")
printf 'bench-edge-pass\n' > "$D/edge.pass"
J edge export --out "$D/edge" --edge-passphrase-file "$D/edge.pass" >/dev/null
"$BIN" --data "$D/ca" serve --http 127.0.0.1:8091 2> "$D/all.log" & PIDS+=($!)
"$BIN" --data "$D/edge" --passphrase-file "$D/edge.pass" serve --role edge --http 127.0.0.1:8092 \
  2> "$D/edge.log" & PIDS+=($!)
FIRST=$(python3 -c "import struct;d=open('$D/reqs','rb').read();n=struct.unpack('>H',d[:2])[0];open('$D/first.der','wb').write(d[2:2+n])")
for port in 8091 8092; do
  until curl -s -f -o /dev/null --data-binary @"$D/first.der" -H 'Content-Type: application/ocsp-request' http://127.0.0.1:$port/ocsp; do sleep 0.1; done
done
echo "## $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg); $N certificates, ${T}s per measurement"
run() { # name url close
  local out
  out=$(env REQS="$D/reqs" HOT=0 CLOSE="$3" wrk -t1 -c32 -d"${T}s" --latency -s "$ROOT/bench/scale/multi.lua" "$2")
  printf '%s: %s answers/s, p99 %s (%s)\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<< "$out")" \
    "$(awk '$1 == "99%" {print $2}' <<< "$out")" "$(grep -o 'non-2xx-or-error: [0-9]*' <<< "$out")"
}
# Warm both caches over every serial.
env REQS="$D/reqs" HOT=0 CLOSE=0 wrk -t1 -c8 -d1s -s "$ROOT/bench/scale/multi.lua" http://127.0.0.1:8091/ocsp > /dev/null
env REQS="$D/reqs" HOT=0 CLOSE=0 wrk -t1 -c8 -d1s -s "$ROOT/bench/scale/multi.lua" http://127.0.0.1:8092/ocsp > /dev/null
for r in $(seq 1 "$ROUNDS"); do
  echo "## round $r (load $(cut -d' ' -f1 /proc/loadavg))"
  run "one-process, keep-alive" http://127.0.0.1:8091/ocsp 0
  run "edge,        keep-alive" http://127.0.0.1:8092/ocsp 0
  run "one-process, new connection" http://127.0.0.1:8091/ocsp 1
  run "edge,        new connection" http://127.0.0.1:8092/ocsp 1
  openssl ocsp -index "$D/index.txt" -CA "$D/root.pem" -rsigner "$D/ca/certs/signing-ocsp.pem" \
    -rkey "$D/ocsp.key" -port 8093 -multi 2 -ignore_err -nmin 60 > /dev/null 2> "$D/openssl.log" & OSSL=$!
  until curl -s -f -o /dev/null --data-binary @"$D/first.der" http://127.0.0.1:8093/; do sleep 0.1; done
  if [ "$r" = 1 ]; then # every answer says good, from each of the three
    S1=0x$(head -1 "$D/serials")
    for u in http://127.0.0.1:8091/ocsp http://127.0.0.1:8092/ocsp http://127.0.0.1:8093/; do
      echo "$u: $(openssl ocsp -issuer "$D/root.pem" -serial "$S1" -no_nonce -url "$u" -CAfile "$D/root.pem" 2>&1 | grep -E "^0x|verify" | tr '\n' ' ')"
    done
  fi
  run "openssl -multi 2, new connection" http://127.0.0.1:8093/ 1
  kill -9 $(pgrep -P "$OSSL") "$OSSL" 2>/dev/null || true; wait "$OSSL" 2>/dev/null || true; OSSL=
done
