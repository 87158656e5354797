#!/bin/bash
# `jpki serve` on a large store (issue #14): start-up to the first OCSP answer, the first CRL
# publication pass (in the background since the server listens first) until /readyz says
# ready, resident memory along the way, and single revocations timed from the acknowledged
# `jpki revoke` (through the admin socket) to its partition's new CRL being served.
#
# Memory: for each CA store page cache in CACHE_MIBS (`[store] cache_mib`; 1024 is sled's
# own default, what `jpki serve` had before the setting existed; `none` writes no such line,
# for a build older than the setting, e.g. JPKI_BIN=main's with CACHE_MIBS=none), ROUNDS
# restarts, each:
#   RSS (RssAnon, RssFile) at the first OCSP answer; when ready (the first CRL pass since
#   start is over: every partition on a new store or when due, else only the due ones — the
#   log line `published at start` counts them); after LOAD_RUNS × LOAD_SECONDS of OCSP
#   requests spread uniformly over every certificate (wrk + multi.lua, as ocsp.sh);
#   after one revocation (its CRL re-published); and the peak (VmHWM).
# Rounds alternate the settings; a warm-up start first (not measured) publishes the CRLs and
# pre-signs every answer. Then one table of medians over the rounds. Unattended; nothing but the store's own files
# (the revocations, the CRLs, the answer store) is changed.
# `[crl] batch_delay_seconds = 0` so that the figure is the publication, not the batching wait.
# Run from the workspace root, in a private network namespace:
#   cargo build --release -p jpki
#   unshare -n bash bench/scale/serve_start.sh DIR [ROUNDS]
#   (env: CACHE_MIBS="1024 256", LOAD_SECONDS=8, LOAD_RUNS=3, PRESIGN=200, JPKI_BIN)
set -eu
DATA=$1; R=${2:-3}
CACHE_MIBS=${CACHE_MIBS:-1024 256}; T=${LOAD_SECONDS:-8}; LOADS=${LOAD_RUNS:-3}
ip link set lo up
BIN=${JPKI_BIN:-$PWD/target/release/jpki} # JPKI_BIN: another build, e.g. before a change
export JPKI_PASSPHRASE=${JPKI_PASSPHRASE:-bench-passphrase}
W=$(mktemp -d); SERVE=
trap '[ -n "$SERVE" ] && kill $SERVE 2>/dev/null; rm -rf "$W"' EXIT INT TERM
echo "## binary: $BIN ($(stat -c %y "$BIN" | cut -c1-19))"
echo "## machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg); store: $(du -sm "$DATA" | cut -f1) MB; rounds $R; OCSP load $LOADS × $T s"
python3 bench/scale/export.py "$BIN" "$DATA" "$W"
$BIN --data "$DATA" root --hierarchy auth > "$W/auth-root.pem"
$BIN --data "$DATA" root --hierarchy signing > "$W/signing-root.pem"
for h in auth signing; do
  openssl ocsp -issuer "$W/$h-root.pem" -serial 0x1 -no_nonce -reqout "$W/$h-tpl.der" >/dev/null 2>&1
done
python3 bench/scale/requests.py "$W/all.reqs" "$W/auth-tpl.der" "$W/auth.serials" "$W/signing-tpl.der" "$W/signing.serials"
N=$(cat "$W/auth.serials" "$W/signing.serials" | wc -l)
python3 -c "import struct;d=open('$W/all.reqs','rb').read();n=struct.unpack('>H',d[:2])[0];open('$W/first.der','wb').write(d[2:2+n])"
metric() { curl -s http://127.0.0.1:8090/metrics | awk -v m="$1" '$1==m {print $2}'; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
# "RSS/RssAnon/RssFile" in MiB
mem() { awk '/^(VmRSS|RssAnon|RssFile):/ {v[$1]=$2} END {printf "%.0f/%.0f/%.0f", v["VmRSS:"]/1024, v["RssAnon:"]/1024, v["RssFile:"]/1024}' /proc/$1/status; }
hwm() { awk '/^VmHWM:/ {printf "%.0f", $2/1024}' /proc/$1/status; }
: > "$W/rows"
conf() { # cache_mib ("none": no [store] cache_mib line, for a build without it) presign_per_second
  printf '[listen]\nhttp = "127.0.0.1:8090"\n[crl]\nbatch_delay_seconds = 0\n[ocsp]\npresign_per_second = %s\n' "$2" > "$W/serve.toml"
  [ "$1" = none ] || printf '[store]\ncache_mib = %s\n' "$1" >> "$W/serve.toml"
}
# Warm-up, not measured: the first start of a new store publishes every CRL and pre-signs
# every answer; here at full speed, so that every round below starts from the same state
# (answers stored and fresh for the policy's answer life, CRLs published).
conf "${CACHE_MIBS%% *}" 1000000
t0=$(now)
$BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
until curl -s -f -o /dev/null http://127.0.0.1:8090/readyz; do sleep 0.5; done
last=-1; while :; do sleep 5; s=$(metric ocsp_signatures_total); [ "$s" = "$last" ] && break; last=$s; done
echo "warm-up start: ready and every answer stored after $(since "$t0") s ($last signatures); RSS/anon/file $(mem $SERVE) MiB"
kill $SERVE; wait $SERVE 2>/dev/null || true; SERVE=
for i in $(seq 1 "$R"); do
  for CACHE in $CACHE_MIBS; do
    conf "$CACHE" "${PRESIGN:-200}"
    echo "## [store] cache_mib = $CACHE, round $i"
    t0=$(now)
    $BIN --data "$DATA" serve --config "$W/serve.toml" 2> "$W/serve.log" > /dev/null & SERVE=$!
    until curl -s -f -o /dev/null --data-binary @"$W/first.der" -H 'Content-Type: application/ocsp-request' http://127.0.0.1:8090/ocsp; do sleep 0.05; done
    first=$(since "$t0"); m_first=$(mem $SERVE)
    echo "start-up to first OCSP answer: $first s; RSS/anon/file $m_first MiB"
    until curl -s -f -o /dev/null http://127.0.0.1:8090/readyz; do sleep 0.2; done
    ready=$(since "$t0"); m_ready=$(mem $SERVE)
    echo "start-up to ready (first CRL pass over): $ready s; RSS/anon/file $m_ready MiB"
    grep -o "published at start.*" "$W/serve.log" | head -1 || true
    rps=()
    for j in $(seq 1 "$LOADS"); do
      env REQS="$W/all.reqs" HOT=0 CLOSE=0 wrk -t1 -c32 -d${T}s --latency -s bench/scale/multi.lua http://127.0.0.1:8090/ocsp > "$W/run.out"
      rps+=("$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$W/run.out")")
    done
    m_load=$(mem $SERVE)
    echo "after $LOADS × $T s of OCSP uniform over $N serials (${rps[*]}/s): RSS/anon/file $m_load MiB"
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
    served=$(since "$t2"); acked=$(echo "$t2 - $t1" | bc)
    m_rev=$(mem $SERVE); peak=$(hwm $SERVE)
    echo "one revocation ($PART): acknowledged in $acked s (CLI through the admin socket), new CRL served $served s after; RSS/anon/file $m_rev MiB; peak $peak MiB"
    kill $SERVE; wait $SERVE 2>/dev/null || true; SERVE=
    echo "$CACHE|$first|$m_first|$ready|$m_ready|$m_load|$m_rev|$peak|$(printf '%s\n' "${rps[@]}" | sort -n | sed -n "$(( (LOADS + 1) / 2 ))p")|$served" >> "$W/rows"
  done
done
python3 - "$W/rows" "$N" "$(du -sm "$DATA" | cut -f1)" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("|")
    rows.setdefault(f[0], []).append(f[1:])
def med(vals):
    return st.median(float(v) for v in vals)
def mem(vals):  # "rss/anon/file" → medians of each
    parts = [v.split("/") for v in vals]
    return "/".join(f"{med(p[k] for p in parts):.0f}" for k in range(3))
print(f"## jpki serve memory, {sys.argv[2]} certificates ({sys.argv[3]} MB store), medians of {len(next(iter(rows.values())))} rounds; MiB as RSS/RssAnon/RssFile")
print("| [store] cache_mib | first answer | RSS at first answer | ready | RSS ready | RSS after OCSP load | RSS after a revocation | peak RSS | OCSP uniform /s | revocation → new CRL |")
print("|---|---|---|---|---|---|---|---|---|---|")
for cache, rs in rows.items():
    c = list(zip(*rs))
    print(f"| {cache} | {med(c[0]):.2f} s | {mem(c[1])} | {med(c[2]):.2f} s | {mem(c[3])} | {mem(c[4])} | {mem(c[5])} | {med(c[6]):.0f} | {med(c[7]):,.0f} | {med(c[8]):.3f} s |")
PY
