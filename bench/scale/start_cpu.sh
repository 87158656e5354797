#!/bin/bash
# Start-up CPU of `jpki serve` on an idle store (issue #14: the pre-signer's walk and the
# metrics' audit-trail count at start): CPU seconds of the process at 1, 2, 3, 5, 8, 12, 20 s
# after its start, and a perf profile (dwarf call graphs) of the first SECS seconds to
# attribute them (`perf report -i OUT/perf.data --children --sort sym --stdio -g none | grep
# -E 'presign_pass$|warm_up$'`). Its log (JPKI_LOG, default info) is in OUT/serve.log.
# Run from anywhere, in a private network namespace:
#   unshare -n bash bench/scale/start_cpu.sh BIN DATA OUT [SECS]
#   (env: PRESIGN=200 presign_per_second, PERF=0 no profile, JPKI_LOG)
set -eu
BIN=$1; DATA=$2; OUT=$3; SECS=${4:-20}
ip link set lo up
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
mkdir -p "$OUT"
printf '[listen]\nhttp = "127.0.0.1:8090"\n[ocsp]\npresign_per_second = %s\n' "${PRESIGN:-200}" > "$OUT/serve.toml"
JPKI_LOG=${JPKI_LOG:-info} $BIN --data "$DATA" serve --config "$OUT/serve.toml" 2> "$OUT/serve.log" > /dev/null & PID=$!
T0=$(date +%s.%N)
if [ "${PERF:-1}" = 1 ]; then
  perf record -q -F 199 --call-graph dwarf,8192 -p $PID -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
  PP=$!
fi
for t in 1 2 3 5 8 12 20 30 45 60; do
  [ "$t" -gt "$SECS" ] && [ "$t" -gt "${WATCH:-20}" ] && break
  while [ "$(echo "$(date +%s.%N) - $T0 < $t" | bc)" = 1 ]; do sleep 0.05; done
  echo "t=${t}s cpu=$(awk '{printf "%.2f", ($14+$15)/100}' /proc/$PID/stat)s"
done | tee "$OUT/cpu.txt"
[ "${PERF:-1}" = 1 ] && wait $PP || true
kill $PID; wait $PID 2>/dev/null || true
