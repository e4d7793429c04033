#!/usr/bin/env bash
# bench-replica.sh: one replica with the embedded store under 1,000 players,
# against the floor relay, in one sitting: for each think time, the relay,
# tictac -durability soft and tictac with fsync (the default) run one after
# the other, each on a fresh data directory.
#
#   scripts/bench-replica.sh [think times...]   default: 1s 200ms 0
#
# Env: PLAYERS (1000), DURATION (20s), RAMP (3s), both in whole seconds;
# PLOTS=dir keeps each run's JSON report there and draws, for each think
# time, the three runs' opponent latency tails in one SVG (think-1s.svg...).
# Everything listens on 127.0.0.1 only and stops by itself. Each run prints
# the load generator's summary (with the machine's busy and steal time), the
# server's CPU over the run and, for tictac, from its own metrics over the
# measured window: a move's time inside the server (read to published), the
# log's fdatasync (fsync runs only) and how long its goroutines waited for a
# core. Fsync runs also time the disk's own fsync in the same run (a "disk
# probe" row: one 4 KiB write and fsync every 20 ms beside the server's data,
# `bench play -fsync-probe`), which the fsync latency target is read against.
set -euo pipefail
cd "$(dirname "$0")/.."
players=${PLAYERS:-1000} duration=${DURATION:-20s} ramp=${RAMP:-3s}
thinks=("$@")
[ ${#thinks[@]} -gt 0 ] || thinks=(1s 200ms 0)
. scripts/lib.sh

scripts/build.sh "$work/tictac"
[ -z "${PLOTS:-}" ] || mkdir -p "$PLOTS"
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
		if [ "$server" != relay ]; then
			(sleep "${ramp%s}"; scrape "$p" "$work/m0") & scrapes=($!)
			(sleep "$(awk -v r="${ramp%s}" -v d="${duration%s}" 'BEGIN { print r + d - 0.3 }')"; scrape "$p" "$work/m1") & scrapes+=($!)
		fi
		play=()
		[ -z "${PLOTS:-}" ] || play+=(-report "$PLOTS/think-$think-$server.json")
		[ "$server" != fsync ] || play+=(-fsync-probe "$work/d$n")
		"$work/tictac" bench play -url ws://127.0.0.1:"$p"/live -players "$players" -think "$think" \
			-duration "$duration" -ramp "$ramp" -quiet "${play[@]}"
		t1=$(ticks "$pid")
		awk -v t=$((t1 - t0)) -v d="${duration%s}" -v r="${ramp%s}" 'BEGIN { printf "server CPU %.2f core (over the ramp and the run)\n", t / 100 / (d + r) }'
		if [ "$server" != relay ]; then
			wait "${scrapes[@]}"
			q() { quantile "$work/m0" "$work/m1" "$1" "$2"; }
			echo "server, ms: move p50 $(q tictac_move_seconds 0.5) p99 $(q tictac_move_seconds 0.99)" \
				" log fsync p50 $(q tictac_store_log_sync_seconds 0.5) p99 $(q tictac_store_log_sync_seconds 0.99)" \
				" sched wait p99 $(q go_sched_latencies_seconds 0.99)"
		fi
		kill "$pid"; wait "$pid" 2>/dev/null || true
	done
	if [ -n "${PLOTS:-}" ]; then
		"$work/tictac" bench plot -o "$PLOTS/think-$think.svg" \
			-title "opponent latency, $players players, think $think, one replica ($(date -u +%F))" \
			relay="$PLOTS/think-$think-relay.json" soft="$PLOTS/think-$think-soft.json" fsync="$PLOTS/think-$think-fsync.json"
		echo "plot: $PLOTS/think-$think.svg"
	fi
done
