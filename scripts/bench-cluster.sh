#!/usr/bin/env bash
# bench-cluster.sh: the seed's full stack on loopback under load. Starts
# redis-server, reqlite (the RethinkDB stand-in), 3 tictac replicas and NGINX
# running deploy/nginx.conf, plays `tictac bench play` through NGINX, prints
# where the move time goes (from each replica's /metrics), and stops it all.
#
#   scripts/bench-cluster.sh [bench play flags...]   e.g. -players 1000 -think 1s -duration 20s
#
# Needs what ./test.sh installs. Everything listens on 127.0.0.1 only.
# TICTAC=path runs that binary (say, an older build to compare) instead of
# building the working tree. REQLITE_SLOW_MS=N lists at the end the reqlite
# queries that ran N ms or more, by kind: what the moves queued behind.
# REQLITE_NODE_FLAGS are given to node before launch.js (e.g.
# --max-semi-space-size=N: a larger young generation, fewer scavenges).
# REDIS_CLUSTER=1 bridges the replicas through a Redis Cluster of three
# masters (redis-cli --cluster create) instead of one redis-server.
# TRACE=file takes a 5 s execution trace of replica r1 from TRACE_AT seconds
# (8) into the run (keep ramp + duration above TRACE_AT + 5), keeps it there
# and prints tools/tracewaits' reading of it: where a move waits between
# goroutines (see scripts/bench-trace.sh).
set -euo pipefail
case ${TRACE:-} in "" | /*) ;; *) TRACE=$PWD/$TRACE ;; esac
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
. scripts/lib.sh

if [ -n "${TICTAC:-}" ]; then cp "$TICTAC" "$work/tictac"; else scripts/build.sh "$work/tictac"; fi
if [ -n "${REDIS_CLUSTER:-}" ]; then
	nodes=()
	for i in 1 2 3; do
		p=$(port); mkdir -p "$work/redis$i"
		redis-server --port "$p" --cluster-port "$(port)" --cluster-enabled yes --cluster-config-file "$work/redis$i/nodes.conf" \
			--bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis$i" >"$work/redis$i.log" 2>&1 & pids+=($!)
		nodes+=("127.0.0.1:$p")
	done
	for n in "${nodes[@]}"; do wait_tcp "${n#*:}"; done
	redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$work/redis-create.log"
	for n in "${nodes[@]}"; do
		until redis-cli -u "redis://$n" cluster info | grep -q cluster_state:ok; do sleep 0.05; done
	done
	redis_url="redis://${nodes[0]}?addr=${nodes[1]}&addr=${nodes[2]}"
else
	rport=$(port); redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 & pids+=($!)
	wait_tcp "$rport"
	redis_url="redis://127.0.0.1:$rport"
fi
# shellcheck disable=SC2086 # REQLITE_NODE_FLAGS: several flags for node
qport=$(port); REQLITE_SLOW_MS=${REQLITE_SLOW_MS:-} node ${REQLITE_NODE_FLAGS:-} tools/reqlite/launch.js --port "$qport" >"$work/reqlite.log" 2>&1 & pids+=($!)
qpid=$!
wait_tcp "$qport"

upstreams=""
replicas=()
metrics=() # where each replica serves /metrics
admin=()
if [ -n "${TRACE:-}" ]; then
	(cd tools/tracewaits && go build -o "$work/tracewaits" .)
	aport=$(port)
fi
for i in 1 2 3; do
	p=$(port)
	if [ -n "${TRACE:-}" ] && [ "$i" = 1 ]; then admin=(-admin-addr "127.0.0.1:$aport" -pprof); else admin=(); fi
	"$work/tictac" -addr "127.0.0.1:$p" -redis "$redis_url" -rethinkdb "127.0.0.1:$qport" \
		-replica "r$i" -log-level warn "${admin[@]}" >"$work/r$i.log" 2>&1 & pids+=($!)
	replicas+=("$p")
	if [ ${#admin[@]} -gt 0 ]; then metrics+=("$aport"); else metrics+=("$p"); fi
	upstreams+="        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;\n"
	wait_tcp "$p"
done

nport=$(port)
mkdir -p "$work/nginx"
# deploy/nginx.conf with its upstream servers and listen port filled in.
awk -v ups="$upstreams" -v listen="127.0.0.1:$nport" -v tmp="$work/nginx" '
	/^ *server tictac[0-9]+:8080/ { if (!done) { printf "%s", ups; done = 1 }; next }
	/^ *listen 8080;/ { sub(/8080/, listen) }
	/^http \{/ { print; print "    client_body_temp_path " tmp "/b; proxy_temp_path " tmp "/p; fastcgi_temp_path " tmp "/f; uwsgi_temp_path " tmp "/u; scgi_temp_path " tmp "/s;"; next }
	{ print }' deploy/nginx.conf >"$work/nginx.conf"
user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
nginx -p "$work/nginx" -c "$work/nginx.conf" -e stderr -g "daemon off; pid $work/nginx.pid; $user" >"$work/nginx.log" 2>&1 & pids+=($!)
wait_tcp "$nport"

echo "stack: redis $redis_url, reqlite :$qport, replicas :${replicas[*]}, nginx :$nport" >&2
q0=$(ticks "$qpid"); t0=$(date +%s.%N)
if [ -n "${TRACE:-}" ]; then
	(sleep "${TRACE_AT:-8}"; curl -sf -o "$TRACE" "http://127.0.0.1:$aport/debug/pprof/trace?seconds=5") & tracer=$!
	pids+=($tracer)
fi
# -rethinkdb-probe: reqlite's own answer to one move-shaped query, timed
# through the same window, under the same load.
"$work/tictac" bench play -url "ws://127.0.0.1:$nport/live" -rethinkdb-probe "127.0.0.1:$qport" "$@"
q1=$(ticks "$qpid"); t1=$(date +%s.%N)
if [ -n "${TRACE:-}" ]; then
	echo
	if wait "$tracer"; then
		echo "replica r1's goroutines, from the trace in $TRACE:"
		"$work/tracewaits" "$TRACE"
	else
		echo "no trace of replica r1 (a run shorter than TRACE_AT + 5 s?)"
	fi
fi
# reqlite runs one query at a time on one thread: near 100% of a core, it is
# the bottleneck, and moves queue behind it.
awk -v q="$((q1 - q0))" -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" \
	'BEGIN { printf "reqlite: %.1f s of CPU in %.1f s (%.0f%% of one core)\n", q / hz, t1 - t0, 100 * q / hz / (t1 - t0) }'

# Where the time went: sums and counts of each histogram over the replicas.
echo
echo "time per move, summed over the 3 replicas (from /metrics):"
for p in "${metrics[@]}"; do curl -sf "http://127.0.0.1:$p/metrics"; done | awk '
	/^tictac_(move|bus_publish|socket_write)_seconds_(sum|count)/ || /^tictac_store_seconds_(sum|count)\{op="move"\}/ {
		split($1, a, "_seconds_"); kind = substr(a[2], 1, 3); v[a[1] "_" kind] += $2
	}
	/^tictac_store_game_reads_total / { reads += $2 }
	END {
		n = v["tictac_move_cou"]; if (n == 0) { print "no moves"; exit }
		m = v["tictac_move_sum"] / n
		s = v["tictac_store_sum"] / v["tictac_store_cou"]
		b = v["tictac_bus_publish_sum"] / v["tictac_bus_publish_cou"]
		w = v["tictac_socket_write_sum"] / v["tictac_socket_write_cou"]
		printf "  moves applied          %d\n", n
		printf "  receive -> published   %.3f ms mean\n", m * 1000
		printf "  store (Move)           %.3f ms mean (%.0f%% of it)\n", s * 1000, 100 * s / m
		printf "  games read             %d (%.2f a move; joins and resumes read theirs)\n", reads, reads / n
		printf "  bus publish            %.3f ms mean (%.0f%% of it)\n", b * 1000, 100 * b / m
		printf "  socket write (each)    %.3f ms mean\n", w * 1000
	}'

# With REQLITE_SLOW_MS=N, the queries that ran N ms or longer in reqlite
# (tools/reqlite/launch.js logs them), by the start of their term.
if [ -n "${REQLITE_SLOW_MS:-}" ]; then
	echo
	echo "reqlite queries of ${REQLITE_SLOW_MS} ms or more, by kind (count, total ms, max ms):"
	awk '/^slow query / {
		ms = $3; kind = substr($0, index($0, ": ") + 2)
		gsub(/"[a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9]+"/, "ID", kind) # ids, not table names
		gsub(/\[2,\[[0-9]+(,[0-9]+)*\]\]/, "[2,[V]]", kind) # the variables of a function
		gsub(/\[10,\[[0-9]+\]\]/, "[10,[V]]", kind) # and their uses
		gsub(/"probe-[0-9a-f]+"/, "ID", kind)
		gsub(/\[\[14,\["tictac"\]\],/, "", kind)
		kind = substr(kind, 1, 60)
		n[kind]++; sum[kind] += ms; if (ms > mx[kind]) mx[kind] = ms; all += ms; count++
	}
	END {
		for (k in n) printf "  %6d %9.1f %7.1f  %s\n", n[k], sum[k], mx[k], k
		printf "  %6d %9.1f %7s  (all of them)\n", count, all, "-"
	}' "$work/reqlite.log" | sort -k2 -nr | head -16
fi
