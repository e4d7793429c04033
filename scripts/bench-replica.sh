#!/usr/bin/env bash
# bench-replica.sh: one replica with the embedded store under 1,000 players,
# against the floor relay, in one sitting: for each think time, the relay,
# tictac -durability soft and tictac with fsync (the default) run one after
# the other, each on a fresh data directory.
#
#   scripts/bench-replica.sh [think times...]   default: 1s 200ms 0
#
# Env: PLAYERS (1000), DURATION (20s), RAMP (3s). Everything listens on
# 127.0.0.1 only and stops by itself; each run prints the load generator's
# summary and the server's CPU over the run.
set -euo pipefail
cd "$(dirname "$0")/.."
players=${PLAYERS:-1000} duration=${DURATION:-20s} ramp=${RAMP:-3s}
thinks=("$@")
[ ${#thinks[@]} -gt 0 ] || thinks=(1s 200ms 0)
. scripts/lib.sh

scripts/build.sh "$work/tictac"
n=0
for think in "${thinks[@]}"; do
	for server in relay soft fsync; do
		n=$((n + 1))
		p=$(port)
		case $server in
		relay) "$work/tictac" bench relay -addr 127.0.0.1:"$p" >"$work/s$n.log" 2>&1 & ;;
		soft) "$work/tictac" -addr 127.0.0.1:"$p" -data "$work/d$n" -durability soft -max-conns-per-ip 0 -log-level warn >"$work/s$n.log" 2>&1 & ;;
		fsync) "$work/tictac" -addr 127.0.0.1:"$p" -data "$work/d$n" -max-conns-per-ip 0 -log-level warn >"$work/s$n.log" 2>&1 & ;;
		esac
		pid=$!; pids+=($pid)
		wait_tcp "$p"
		echo "== $server, think $think"
		t0=$(ticks "$pid")
		"$work/tictac" bench play -url ws://127.0.0.1:"$p"/live -players "$players" -think "$think" \
			-duration "$duration" -ramp "$ramp" -quiet
		t1=$(ticks "$pid")
		awk -v t=$((t1 - t0)) -v d="${duration%s}" -v r="${ramp%s}" 'BEGIN { printf "server CPU %.2f core (over the ramp and the run)\n", t / 100 / (d + r) }'
		kill "$pid"; wait "$pid" 2>/dev/null || true
	done
done
