#!/usr/bin/env bash
# bench-compare.sh OLD [NEW]: the same load against two builds of tictac, one
# replica with the embedded store, runs alternating OLD, NEW, OLD, NEW...,
# then the median of each figure per build. Figures on a shared machine move
# by a third from one run to the next; the median of alternating runs is how
# BENCHMARKS.md states a change's before and after.
#
#   scripts/bench-compare.sh 9aa2736          # that commit against the working tree
#   scripts/bench-compare.sh v1 v2            # two revisions
#
# Env: PLAYERS (1000), THINK (200ms), DURATION (10s), RAMP (3s), both in whole
# seconds, REPEAT (3 runs per build), DURABILITY (soft, or hard: fsync), and FLAGS
# (more tictac flags for both; OLD_FLAGS and NEW_FLAGS for one build only, so
# that `scripts/bench-compare.sh HEAD HEAD` with NEW_FLAGS compares a flag;
# OLD_PLAY_FLAGS and NEW_PLAY_FLAGS likewise add `bench play` flags to one
# build's runs). With hard, disk_p99 is the
# disk's own fsync p99 in the same run (one 4 KiB write and fsync every 20 ms
# beside the server's data, `bench play -fsync-probe`): the fsync latency
# target is that plus 1 ms; sync_p99 is the log's own fdatasync p99 (from
# tictac_store_log_sync_seconds, interpolated within its bucket). stalls is
# H/W from the report's stalls line: the moves at the p99 and over were sent
# in W of the run's 50 ms stretches, and the worst H of those hold half of
# them (a small H: the p99 came from a few stalls). Everything
# listens on 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: scripts/bench-compare.sh OLD [NEW]" >&2
	exit 2
fi
players=${PLAYERS:-1000} think=${THINK:-200ms} duration=${DURATION:-10s} ramp=${RAMP:-3s}
repeat=${REPEAT:-3} durability=${DURABILITY:-soft}
. scripts/lib.sh

# build REV OUT: the binary of revision REV, or of the working tree for "".
build() {
	if [ -z "$1" ]; then
		scripts/build.sh "$2" >/dev/null
		return
	fi
	git worktree add -q --detach "$work/src-$(basename "$2")" "$1"
	(cd "$work/src-$(basename "$2")" && scripts/build.sh "$2" >/dev/null)
	git worktree remove --force "$work/src-$(basename "$2")"
}
build "$1" "$work/old"
build "${2:-}" "$work/new"
echo "old = $1${OLD_FLAGS:+ $OLD_FLAGS}${OLD_PLAY_FLAGS:+ (play $OLD_PLAY_FLAGS)}, new = ${2:-working tree}${NEW_FLAGS:+ $NEW_FLAGS}${NEW_PLAY_FLAGS:+ (play $NEW_PLAY_FLAGS)}; $players players, think $think, $duration after $ramp, $durability, $repeat runs each"
# The load generator is NEW's: an older one may not know -fsync-probe.
probes=false
if [ "$durability" != soft ] && "$work/new" bench play -h 2>&1 | grep -q -- -fsync-probe; then probes=true; fi

# ms converts a duration as the load generator prints it (971µs, 1.2ms, 2s) to ms.
ms() { awk -v d="$1" 'BEGIN { u = d; sub(/^[0-9.]+/, "", u); v = d + 0; if (u == "µs") v /= 1000; else if (u == "s") v *= 1000; printf "%.3g", v }'; }

results=$work/results
printf "%-4s %9s %9s %9s %9s %9s %7s %9s %9s %9s\n" build p50_ms p99_ms p99.9_ms moves/s cpu_core steal% sync_p99 disk_p99 stalls | tee "$results"
for i in $(seq "$repeat"); do
	for b in old new; do
		p=$(port)
		"$work/$b" -addr 127.0.0.1:"$p" -data "$work/d-$b-$i" -durability "$durability" -max-conns-per-ip 0 \
			-log-level warn ${FLAGS:-} $(if [ "$b" = old ]; then echo "${OLD_FLAGS:-}"; else echo "${NEW_FLAGS:-}"; fi) \
			>"$work/s-$b-$i.log" 2>&1 &
		pid=$!; pids+=($pid)
		wait_tcp "$p"
		play=()
		if $probes; then play=(-fsync-probe "$work/d-$b-$i"); fi
		if [ "$b" = old ]; then play+=(${OLD_PLAY_FLAGS:-}); else play+=(${NEW_PLAY_FLAGS:-}); fi
		t0=$(ticks "$pid"); scrape "$p" "$work/m0"
		out=$("$work/new" bench play -url ws://127.0.0.1:"$p"/live -players "$players" -think "$think" \
			-duration "$duration" -ramp "$ramp" -quiet "${play[@]}")
		t1=$(ticks "$pid"); scrape "$p" "$work/m1"
		sync=$(estimate "$work/m0" "$work/m1" tictac_store_log_sync_seconds 0.99)
		kill "$pid"; wait "$pid" 2>/dev/null || true
		read -r _ _ p50 _ p99 p999 _ < <(grep -E '^ *opponent +[0-9]' <<<"$out")
		# "the worst H hold half" of the tail's moves, "sent in W" stretches: H/W.
		stalls=$(sed -n 's/.*sent in \([0-9]*\) of .*the worst \([0-9]*\) hold half.*/\2\/\1/p' <<<"$out")
		rate=$(awk '/^moves\/s/ { print $2 }' <<<"$out")
		disk=$(awk '$1 == "disk" && $2 == "probe" { print $6 }' <<<"$out")
		steal=$(sed -n 's/.*steal \([0-9.]*\)%.*/\1/p' <<<"$out")
		cpu=$(awk -v t=$((t1 - t0)) -v d="${duration%s}" -v r="${ramp%s}" 'BEGIN { printf "%.2f", t / 100 / (d + r) }')
		grep -q '^anomalies 0' <<<"$out" || { echo "$b: anomalies" >&2; grep -A5 '^anomalies' <<<"$out" >&2; }
		printf "%-4s %9s %9s %9s %9s %9s %7s %9s %9s %9s\n" "$b" "$(ms "$p50")" "$(ms "$p99")" "$(ms "$p999")" "$rate" "$cpu" "${steal:--}" "$sync" "$(if [ -n "$disk" ]; then ms "$disk"; else echo -; fi)" "${stalls:--}" | tee -a "$results"
	done
done
echo "medians:"
for b in old new; do
	awk -v b="$b" '$1 == b { for (i = 2; i <= 9; i++) v[i, ++n[i]] = $i }
		END {
			printf "%-4s", b
			for (i = 2; i <= 9; i++) {
				m = n[i]
				if (v[i, 1] == "-") { printf " %9s", "-"; continue }
				for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (v[i, y] + 0 < v[i, x] + 0) { t = v[i, x]; v[i, x] = v[i, y]; v[i, y] = t }
				printf " %9s", (m % 2) ? v[i, (m + 1) / 2] : (v[i, m / 2] + v[i, m / 2 + 1]) / 2
			}
			printf " %9s\n", "-"
		}' "$results"
done
