#!/usr/bin/env bash
# bench-trace.sh [tictac flags...]: where a move's time goes between
# goroutines. One replica with the embedded store under 1,000 players; a 5 s
# execution trace from the middle of the run (/debug/pprof/trace), read by
# tools/tracewaits: for each place goroutines block, how long they stayed
# blocked and then how long they waited for a core once runnable. A move
# crosses several of those hand-offs (the reader woken by the network, the
# store's committer, the mover woken by its acknowledgement, the sockets'
# writers started by the delivery); on a busy machine each is a queue.
#
#   scripts/bench-trace.sh                      # fsync, think 1s
#   THINK=200ms scripts/bench-trace.sh -durability soft
#
# Env: PLAYERS (1000), THINK (1s), TRACE=file keeps the trace, TICTAC=path
# runs that binary (say, an older build to compare) as the server. The load
# generator also times the disk's own fsync (-fsync-probe). Everything
# listens on 127.0.0.1 only and stops by itself.
set -euo pipefail
case ${TRACE:-} in "" | /*) ;; *) TRACE=$PWD/$TRACE ;; esac
cd "$(dirname "$0")/.."
players=${PLAYERS:-1000} think=${THINK:-1s}
. scripts/lib.sh

scripts/build.sh "$work/tictac" >/dev/null # the load generator
server=${TICTAC:-$work/tictac}
(cd tools/tracewaits && go build -o "$work/tracewaits" .)
p=$(port) a=$(port)
"$server" -addr 127.0.0.1:"$p" -admin-addr 127.0.0.1:"$a" -pprof -data "$work/d" \
	-max-conns-per-ip 0 -log-level warn "$@" >"$work/server.log" 2>&1 &
pids+=($!)
wait_tcp "$p"
wait_tcp "$a"
"$work/tictac" bench play -url ws://127.0.0.1:"$p"/live -players "$players" -think "$think" \
	-duration 15s -ramp 3s -quiet -fsync-probe "$work/d" >"$work/play.txt" 2>&1 &
play=$!
pids+=($play)
sleep 8
curl -sf -o "$work/trace.out" "http://127.0.0.1:$a/debug/pprof/trace?seconds=5"
wait "$play" || { cat "$work/play.txt"; exit 1; }
cat "$work/play.txt"
[ -z "${TRACE:-}" ] || cp "$work/trace.out" "$TRACE"
"$work/tracewaits" "$work/trace.out"
