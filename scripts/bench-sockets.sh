#!/usr/bin/env bash
# bench-sockets.sh: what many open sockets cost one replica. Starts tictac
# (embedded store, -durability soft) and then
#   1. idle:   holds IDLE idle sockets for 30 s and reports server RSS per socket;
#   2. fanout: holds IDLE idle sockets while 1,000 players play (think 1 s)
#      and reports over 10 s the server's CPU, the statsUpdate frames a
#      second and the socket writes a second, from /proc and /metrics.
#
#   scripts/bench-sockets.sh [IDLE] [tictac flags...]   e.g. 14000 -stats-budget 3000
#
# The idle sockets open like the page does: each sends hello and is given a
# session (tictac bench idle -hello). Env: SILENT=1 makes them send nothing
# instead; HIDDEN=1 makes those of the fanout step act like pages in hidden
# tabs (-hidden: they pause their live stats).
#
# Everything listens on 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-14000}
shift || true
. scripts/lib.sh
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1==k{print $2}'; }

scripts/build.sh "$work/tictac"
hello=-hello
[ -z "${SILENT:-}" ] || hello=
serve() {
	pport=$(port); aport=$(port)
	"$work/tictac" -addr 127.0.0.1:"$pport" -admin-addr 127.0.0.1:"$aport" -data "$work/data$1" \
		-durability soft -max-conns-per-ip 0 -log-level warn "${@:2}" >"$work/tictac$1.log" 2>&1 &
	server=$!; pids+=($server)
	wait_tcp "$pport"
}

echo "== idle: $idle sockets held 30 s"
serve 1 "$@"
"$work/tictac" bench idle -url ws://127.0.0.1:"$pport"/live -conns "$idle" -rate 3000 -dial-concurrency 128 $hello \
	-duration 30s -pid "$server" -quiet
kill "$server"; wait "$server" 2>/dev/null || true

echo "== fanout: $idle idle sockets + 1,000 players, think 1 s"
serve 2 "$@"
"$work/tictac" bench idle -url ws://127.0.0.1:"$pport"/live -conns "$idle" -rate 3000 -dial-concurrency 128 $hello ${HIDDEN:+-hidden} \
	-duration 60s -quiet >"$work/idle.out" 2>&1 &
pids+=($!)
sleep 15 # all open
"$work/tictac" bench play -url ws://127.0.0.1:"$pport"/live -players 1000 -think 1s -duration 30s -ramp 2s \
	-quiet >"$work/play.out" 2>&1 &
play=$!; pids+=($play)
sleep 10
t0=$(ticks "$server"); f0=$(metric tictac_stats_frames_total); w0=$(metric tictac_socket_write_seconds_count)
sleep 10
t1=$(ticks "$server"); f1=$(metric tictac_stats_frames_total); w1=$(metric tictac_socket_write_seconds_count)
wait "$play" || true
awk -v t="$(( t1 - t0 ))" -v f0="$f0" -v f1="$f1" -v w0="$w0" -v w1="$w1" 'BEGIN {
	printf "server CPU %.1f%% of one core; statsUpdate frames %.0f/s; socket writes %.0f/s (over 10 s)\n", t/10, (f1-f0)/10, (w1-w0)/10 }'
cat "$work/play.out"
