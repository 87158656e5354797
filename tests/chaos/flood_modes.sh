#!/bin/sh
# Every flood mode of tests/chaos/flood.py against a live `jpki serve` (issue #19), one fresh
# server per mode: idle, slowloris, h2-preface, h2-pings, then descriptor exhaustion — a server
# started under a 1,024-descriptor limit (prlimit) flooded with idle connections beyond its
# descriptors while `jpki resident add` runs through the admin socket every 3 s. Prints each
# mode's lines and JSON summary; RELIABILITY.md has the figures.
#
#   tests/chaos/flood_modes.sh [JPKI_BIN] [N_ADDR] [PER_ADDR]     (default target/release/jpki 40 100)
#   IDLE=20 (the servers' limits.idle_seconds), SETTLE=15 (seconds after the flood before the
#   memory is read again), MODES="idle slowloris h2-preface h2-pings fd"
set -eu
BIN=${1:-target/release/jpki}
N=${2:-40}
PER=${3:-100}
IDLE=${IDLE:-20}
SETTLE=${SETTLE:-15}
MODES=${MODES:-idle slowloris h2-preface h2-pings fd}
HERE=$(dirname "$0")
export JPKI_PASSPHRASE=flood-campaign-passphrase
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
"$BIN" init --data "$dir/d" >/dev/null
printf '[limits]\nidle_seconds = %s\n' "$IDLE" >"$dir/c.toml"

# start [PREFIX...]: a server on 127.0.0.1:0; sets pid and port.
start() {
    : >"$dir/log"
    "$@" "$BIN" serve --data "$dir/d" --http 127.0.0.1:0 --config "$dir/c.toml" 2>"$dir/log" &
    pid=$!
    until grep -q "running;" "$dir/log"; do
        kill -0 "$pid" || { cat "$dir/log"; exit 1; }
        sleep 0.2
    done
    port=$(sed -n 's|.*CRLs at http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$dir/log")
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
}

for mode in $MODES; do
    echo "== $mode"
    if [ "$mode" = fd ]; then
        start prlimit --nofile=1024:1024 --
        admin="'$BIN' --data '$dir/d' resident add --name '試験　太郎' --birth 1980-01-01 --sex 1 \
--address '東京都千代田区霞が関２－１－２' --prefecture Tokyo --municipality Chiyoda-ku \
--card-expiry 2036-01-01 --allow-duplicate 'flood campaign: same test resident' --json"
        python3 "$HERE/flood.py" 127.0.0.1 "$port" "$pid" 8 250 "$IDLE" --mode idle \
            --hold $((IDLE + 5)) --settle "$SETTLE" --admin "$admin"
    else
        start
        python3 "$HERE/flood.py" 127.0.0.1 "$port" "$pid" "$N" "$PER" "$IDLE" --mode "$mode" \
            --hold $((IDLE + 5)) --settle "$SETTLE"
    fi
    stop
done
