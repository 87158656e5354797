#!/bin/sh
# The evidence benchmark (BENCHMARKS.md): makes a time-stamped, later revoked signature and
# its evidence file with a throwaway jpki data directory and `jpki serve --tsa`, then runs
# `jpki bench evidence` (jpki in process, one jpki process per check, and openssl cms -verify
# + openssl ts -verify per check, alternating, same run).
#   tsa/bench/evidence.sh [JPKI_BINARY] [COUNT] [ROUNDS]
set -eu
JPKI=${1:-target/debug/jpki}
COUNT=${2:-200}
ROUNDS=${3:-5}
D=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$D"' EXIT
export JPKI_PASSPHRASE=bench-passphrase
J() { "$JPKI" --data "$D/data" "$@"; }
J init >/dev/null
ID=$(J resident add --name "山田　花子" --birth 1985-04-12 --sex 2 \
    --address "東京都千代田区霞が関二丁目１番２号" --prefecture Tokyo --municipality Chiyoda-ku \
    --card-expiry 2035-04-12 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
J token new --out "$D/card.token" --sign-pin SIGN1234 --auth-pin 1234 >/dev/null
J token csr --token "$D/card.token" --kind signing --pin SIGN1234 --out "$D/s.csr" >/dev/null
J issue --resident "$ID" --kind signing --csr "$D/s.csr" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pem"], end="")' > "$D/s.pem"
J token import-cert --token "$D/card.token" --cert "$D/s.pem" >/dev/null
J root --hierarchy signing > "$D/root.pem"
"$JPKI" --data "$D/data" serve --http 127.0.0.1:0 --tsa 127.0.0.1:0 2> "$D/serve.log" &
SERVER=$!
n=0; while ! grep -q "running;" "$D/serve.log" 2>/dev/null; do sleep 0.2; n=$((n+1)); [ $n -lt 150 ] || { cat "$D/serve.log"; exit 1; }; done
BASE=$(sed -n 's|^jpki serve: CRLs at \(http://[^/]*\)/crl/.*|\1|p' "$D/serve.log")
TSA=$(sed -n 's|^jpki serve: time-stamping authority (RFC 3161) at ||p' "$D/serve.log")
printf '<申告書><所得>5000000</所得></申告書>' > "$D/return.xml"
J token sign --token "$D/card.token" --pin SIGN1234 --in "$D/return.xml" --out "$D/return.p7s" --timestamp "$TSA" >/dev/null
sleep 1.1
J resident move --id "$ID" --address "神奈川県横浜市中区日本大通１" >/dev/null
J verify --trust "$D/root.pem" --sig "$D/return.p7s" --content "$D/return.xml" \
    --ocsp "$BASE/ocsp" --at timestamp --tsa-root "$D/data/certs/tsa-root.pem" \
    --evidence-out "$D/return.evidence" >/dev/null
kill $SERVER; wait $SERVER 2>/dev/null || true
J bench evidence --evidence "$D/return.evidence" --sig "$D/return.p7s" --content "$D/return.xml" \
    --trust "$D/root.pem" --tsa-root "$D/data/certs/tsa-root.pem" --count "$COUNT" --rounds "$ROUNDS"
