#!/bin/bash
# OCSP answers per second: an edge node (`serve --role edge`, PostgreSQL) against the
# one-process server (`serve`, same database), same cached request (no nonce), same run,
# alternating rounds. Run from the workspace root as root (PostgreSQL runs as `postgres`):
#   cargo build --release && bash storage-postgres/bench/edge_ocsp.sh target/release/jpki 5 3
set -eu
BIN=$(realpath "${1:-target/release/jpki}")
T=${2:-5}
ROUNDS=${3:-3}
LUA=$(realpath ocsp-responder/bench/post.lua)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=$(mktemp -d)
chmod 755 "$D"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$D"; }
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
ID=$(J resident add --name "郵便　花子" --birth 1984-05-06 --sex 2 \
  --address "東京都千代田区霞が関２－１－２" --prefecture Tokyo --municipality Chiyoda-ku \
  --card-expiry 2036-01-01 --json | sed 's/.*"id":"\([^"]*\)".*/\1/')
openssl req -new -newkey rsa:2048 -nodes -keyout "$D/k" -subj "/CN=x" -out "$D/csr" 2>/dev/null
J issue --resident "$ID" --kind signing --csr "$D/csr" --json > "$D/cert.json"
python3 -c "import json,sys; print(json.load(open('$D/cert.json'))['pem'])" > "$D/cert.pem"
J root --hierarchy signing > "$D/root.pem"
openssl ocsp -issuer "$D/root.pem" -cert "$D/cert.pem" -no_nonce -reqout "$D/req.der" >/dev/null 2>&1 || true
printf 'bench-edge-pass\n' > "$D/edge.pass"
J edge export --out "$D/edge" --edge-passphrase-file "$D/edge.pass" >/dev/null
port() { sed -n 's|.*CRLs at http://\([0-9.:]*\)/crl/.*|\1|p' "$1" | head -1; }
J serve --http 127.0.0.1:0 2> "$D/all.log" & PIDS+=($!)
"$BIN" --data "$D/edge" --passphrase-file "$D/edge.pass" serve --role edge --http 127.0.0.1:0 \
  2> "$D/edge.log" & PIDS+=($!)
for _ in $(seq 1 300); do [ -n "$(port "$D/all.log")" ] && [ -n "$(port "$D/edge.log")" ] && break; sleep 0.2; done
ALL=$(port "$D/all.log"); EDGE=$(port "$D/edge.log")
echo "one-process server $ALL, edge $EDGE; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for who in all edge; do
    addr=$ALL; [ $who = edge ] && addr=$EDGE
    # warm the cache, then measure
    curl -s -o /dev/null --data-binary @"$D/req.der" -H 'Content-Type: application/ocsp-request' "http://$addr/ocsp"
    rps=$(REQ="$D/req.der" wrk -t2 -c16 -d"${T}s" -s "$LUA" "http://$addr/ocsp" | tee "$D/wrk.$who" \
      | awk '/Requests\/sec/ {print $2}')
    bad=$(grep -o 'non-2xx-or-error: [0-9]*' "$D/wrk.$who")
    echo "round $r $who: $rps answers/s ($bad)"
  done
done
