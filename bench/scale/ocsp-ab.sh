#!/bin/bash
# OCSP uniform ÷ hot ratio of several jpki builds on one pre-signed store, alternated so that
# each build meets the same minutes of a noisy machine (issue #14). Each round starts each
# build's `jpki serve`, warms it (5 s uniform), then measures uniform over every serial and
# one hot serial (T s each, wrk -t1 -c32, bench/scale/multi.lua), and stops it.
# Run from the workspace root, as root, in a private network namespace, on a store whose
# answers are pre-signed (a first run of bench/scale/ocsp.sh) and its export:
#   unshare -n bash bench/scale/ocsp-ab.sh DATA EXPORT_DIR SECONDS ROUNDS BIN...
set -eu
DATA=$1; E=$2; T=$3; R=$4; shift 4
ip link set lo up
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d); SERVE=
cleanup() { [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT; trap 'exit 1' INT TERM
printf '[listen]\nhttp = "127.0.0.1:8090"\n[ocsp]\nmemory_answers = %s\n' "${MEMORY_ANSWERS:-65536}" > "$W/serve.toml"
echo "## machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); serve.toml: $(tr '\n' ' ' < "$W/serve.toml")"
rps() { env REQS="$E/all.reqs" HOT="$1" CLOSE=0 wrk -t1 -c32 -d"$2"s --latency -s bench/scale/multi.lua http://127.0.0.1:8090/ocsp > "$W/run.out"
  if grep -qE "Non-2xx|Socket errors" "$W/run.out"; then echo "!! failed answers or socket errors: run void" >&2; cat "$W/run.out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$W/run.out"; }
cpu() { awk '{print $14+$15}' /proc/$SERVE/stat; } # serve's CPU so far, in clock ticks
# µs of serve's CPU per request: robust to a busy machine, unlike the rates (which are what
# the goal states; compare those only on a quiet machine).
per() { echo "$1 $2 $3 $4" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($2-$1)/hz*1e6/($3*$4)}'; }
for r in $(seq 1 "$R"); do
  for b in "$@"; do
    "$b" --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
    until curl -s -o /dev/null http://127.0.0.1:8090/metrics; do sleep 0.05; done
    rps 0 5 > /dev/null
    c0=$(cpu); u=$(rps 0 "$T"); c1=$(cpu); h=$(rps 1 "$T"); c2=$(cpu)
    cu=$(per "$c0" "$c1" "$u" "$T"); ch=$(per "$c1" "$c2" "$h" "$T")
    kill "$SERVE"; wait "$SERVE" 2>/dev/null || true; SERVE=
    echo "$b|$u|$h|$cu|$ch" | tee -a "$W/results" | awk -F'|' '{printf "round '"$r"' %s: uniform %.0f/s hot %.0f/s ratio %.3f; serve CPU per request uniform %s us hot %s us; load %s\n", $1, $2, $3, $2/$3, $4, $5, "'"$(cut -d' ' -f1 /proc/loadavg)"'"}'
  done
done
python3 - "$W/results" <<'PY'
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    b, u, h, cu, ch = line.strip().split("|")
    runs.setdefault(b, []).append((float(u), float(h), float(cu), float(ch)))
print("## medians")
for b, v in runs.items():
    print(f"{b}: uniform {st.median(x[0] for x in v):,.0f}/s, hot {st.median(x[1] for x in v):,.0f}/s, "
          f"ratio median {st.median(x[0] / x[1] for x in v):.3f} (rounds {', '.join(f'{x[0] / x[1]:.3f}' for x in v)}); "
          f"serve CPU per request median: uniform {st.median(x[2] for x in v):.2f} us, hot {st.median(x[3] for x in v):.2f} us")
PY
