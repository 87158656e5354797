#!/bin/bash
# Profile of jpki serve under the OCSP uniform (HOT=0) or hot (HOT=1) load (issue #14): serve
# in a private network namespace, wrk for 25 s, perf record -g on serve for 8 s after 14 s
# (warm-up). Run from the workspace root, as root, on a store whose answers are pre-signed:
#   unshare -n bash bench/scale/ocsp-profile.sh DATA [HOT]
# then: perf report -i $W/perf.data --no-children --sort symbol -g none
set -eu
DATA=$1; HOT=${2:-0}
ip link set lo up
BIN=$PWD/target/release/jpki
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=${W:-$(mktemp -d)}
if [ ! -s "$W/all.reqs" ]; then # W=DIR with an earlier all.reqs of this store: reused
  $BIN bench export --data "$DATA" --out "$W" > /dev/null
  $BIN --data "$DATA" root --hierarchy auth > "$W/auth-root.pem"
  $BIN --data "$DATA" root --hierarchy signing > "$W/signing-root.pem"
  for h in auth signing; do openssl ocsp -issuer "$W/$h-root.pem" -serial 0x1 -no_nonce -reqout "$W/$h-tpl.der" >/dev/null 2>&1; done
  python3 bench/scale/requests.py "$W/all.reqs" "$W/auth-tpl.der" "$W/auth.serials" "$W/signing-tpl.der" "$W/signing.serials"
fi
printf "[listen]\nhttp = \"127.0.0.1:8090\"\n" > "$W/serve.toml"
$BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
trap "kill $SERVE" EXIT
until curl -s -o /dev/null http://127.0.0.1:8090/metrics; do sleep 0.2; done
sleep 2
env REQS="$W/all.reqs" HOT=$HOT CLOSE=0 wrk -t1 -c32 -d5s -s bench/scale/multi.lua http://127.0.0.1:8090/ocsp | grep Requests/sec
env REQS="$W/all.reqs" HOT=$HOT CLOSE=0 wrk -t1 -c32 -d25s -s bench/scale/multi.lua http://127.0.0.1:8090/ocsp > $W/wrk.out & WRK=$!
sleep 14
perf record -F 999 -g -p $SERVE -o $W/perf.data -- sleep 8 2> /dev/null
wait $WRK # (a bare `wait` would wait for serve too, which never ends)
grep Requests/sec $W/wrk.out; echo "profile: $W/perf.data"
