#!/bin/bash
# CRLs with 10^6 revoked entries (issue #14): every CRL partition published by `jpki crl
# publish --out` (CLI wall, and the pass alone as the CLI prints it), RUNS times alternating
# between two binaries on the same store; then, for each binary, `jpki serve` on the store and
# ROUNDS single revocations, each timed from the acknowledged `jpki revoke` (admin socket) to
# its partition's new CRL being served (`[crl] batch_delay_seconds = 0`, so the figure is the
# publication, not the batching wait). Measurement part after bench/scale/serve_start.sh.
# Run from the workspace root, in a private network namespace:
#   unshare -n bash bench/scale/crl_revoked.sh DIR BEFORE_BIN AFTER_BIN [RUNS] [ROUNDS]
# The store: jpki bench populate --data DIR --certificates 1100000 --revoked-fraction 0.92
#   --municipalities 1741   (≥ 10^6 revoked entries, and good certificates left to revoke)
set -eu
DATA=$1; BEFORE=$2; AFTER=$3; RUNS=${4:-3}; R=${5:-3}
ip link set lo up
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d); SERVE=
trap '[ -n "$SERVE" ] && kill $SERVE 2>/dev/null; rm -rf "$W"' EXIT INT TERM
echo "## machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); store: $(du -sm "$DATA" | cut -f1) MB"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

echo "## all CRL partitions: jpki --data DIR crl publish --out OUT (same OUT, files replaced)"
for run in $(seq 1 "$RUNS"); do
  for name in before after; do
    BIN=$BEFORE; [ $name = after ] && BIN=$AFTER
    /usr/bin/time -f "%e %U %S" -o "$W/time" $BIN --data "$DATA" crl publish --out "$W/out" > "$W/said"
    read -r wall user sys < "$W/time"
    echo "$name run $run: $(cat "$W/said") — CLI ${wall} s wall, $(echo "$user + $sys" | bc) s CPU; load $(cut -d' ' -f1 /proc/loadavg)"
  done
done

printf '[listen]\nhttp = "127.0.0.1:8090"\n[crl]\nbatch_delay_seconds = 0\n' > "$W/serve.toml"
for name in before after; do
  BIN=$BEFORE; [ $name = after ] && BIN=$AFTER
  t0=$(now)
  $BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
  until curl -s -f -o /dev/null http://127.0.0.1:8090/readyz; do sleep 0.2; done
  echo "$name: serve ready (first CRL pass over) after $(since "$t0") s"
  for i in $(seq 1 "$R"); do
    LINE=$($BIN --data "$DATA" cert list --kind auth --status good --limit 1 --json | python3 -c '
import json,sys
c=json.load(sys.stdin)["certificates"][0]; p=c["partition"]
print(c["serial"], p["prefecture"] + "/" + p["municipality"])')
    SERIAL=${LINE%% *}; PART=${LINE#* }
    URL="http://127.0.0.1:8090/crl/auth/$PART.crl"
    curl -s -f -o "$W/before.crl" "$URL"
    E0=$(openssl crl -inform DER -in "$W/before.crl" -noout -text | grep -c "Serial Number:" || true)
    # polls in-process (no process start per look): the moment the served CRL changes
    rm -f "$W/changed"
    python3 - "$URL" "$W/before.crl" "$W/changed" <<'PY' &
import sys, time, urllib.request
url, before, out = sys.argv[1:]
old = open(before, "rb").read()
end = time.time() + 60
while time.time() < end:
    try:
        body = urllib.request.urlopen(url, timeout=5).read()
    except Exception:
        body = old
    if body != old:
        open(out, "w").write(repr(time.time()))
        break
    time.sleep(0.002)
PY
    POLL=$!
    t1=$(now)
    $BIN --data "$DATA" revoke --serial "$SERIAL" --hierarchy auth --reason keyCompromise > /dev/null
    t2=$(now)
    wait $POLL
    t3=$(cat "$W/changed")
    curl -s -f -o "$W/after.crl" "$URL"
    E1=$(openssl crl -inform DER -in "$W/after.crl" -noout -text | grep -c "Serial Number:" || true)
    HEX=$(echo "$SERIAL" | tr a-f A-F)   # `cert list` prints serials in hex
    LISTED=no; openssl crl -inform DER -in "$W/after.crl" -noout -text | tr -d ' ' | grep -qi "SerialNumber:0*$HEX\$" && LISTED=yes
    echo "$name revocation [$i] ($PART, $E0 -> $E1 entries, serial listed: $LISTED): acknowledged in $(echo "$t2 - $t1" | bc) s; new CRL served $(echo "$t3 - $t2" | bc) s after the acknowledgement ($(echo "$t3 - $t1" | bc) s after the revoke command started)"
  done
  kill $SERVE; wait $SERVE 2>/dev/null || true; SERVE=
done
