#!/bin/bash
# Costs that grow with the store (issue #14): `audit verify`, `store compact` and
# `crl publish` (every partition of both hierarchies) on a benchmark store: wall time and
# peak resident memory (GNU time), ROUNDS runs each, in turn. Then one revocation and the
# publication again. Stop `jpki serve` first.
#   bash bench/scale/costs.sh DIR [ROUNDS]
set -eu
DATA=$1; R=${2:-3}
BIN=$PWD/target/release/jpki
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
echo "## machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); store: $(du -sm "$DATA" | cut -f1) MB"
t() { /usr/bin/time -f "$1: %e s wall, %U+%S s CPU, peak RSS %M KiB" "${@:2}" > /dev/null; }
for i in $(seq 1 $R); do
  t "audit verify [$i]" $BIN --data "$DATA" audit verify
  t "crl publish, every partition [$i]" $BIN --data "$DATA" crl publish --out "$W/crl$i"
  t "store compact [$i]" $BIN --data "$DATA" store compact
done
echo "CRLs: $(find "$W/crl1" -name '*.crl' | wc -l) files, $(du -sb "$W/crl1" | cut -f1) bytes"
SERIAL=$($BIN --data "$DATA" cert list --kind auth --status good --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["certificates"][0]["serial"])')
t "one revocation" $BIN --data "$DATA" revoke --serial "$SERIAL" --hierarchy auth --reason keyCompromise
t "crl publish after one revocation" $BIN --data "$DATA" crl publish --out "$W/crl-after"
