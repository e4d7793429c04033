# lib.sh: what the bench scripts share. Sourced, not run: it makes a work
# directory, kills the processes listed in pids and removes the directory on
# exit, and defines port, wait_tcp and ticks.
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# port prints a free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_tcp waits until something listens on 127.0.0.1:$1, or fails after 10 s.
wait_tcp() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing on $1" >&2; exit 1; }
# ticks prints the user + system CPU of process $1 so far, in 1/100 s.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# scrape saves the Prometheus metrics of the server on 127.0.0.1:$1 to file $2.
scrape() { curl -sf "http://127.0.0.1:$1/metrics" >"$2" || : >"$2"; }
# quantile prints where quantile $4 of histogram $3 lies, in ms, over what
# it gained from scrape $1 to scrape $2: the bounds of its bucket, "lo-hi"
# ("-" when it gained nothing). Prometheus histograms only know buckets:
# tictac's latency buckets grow by about 1.9 times, the Go scheduler's by 11.
quantile() { hist_quantile range "$@"; }
# estimate prints the same quantile as one figure in ms, interpolated
# linearly within its bucket as Prometheus's histogram_quantile does.
estimate() { hist_quantile estimate "$@"; }
hist_quantile() {
	awk -v how="$1" -v m="$4" -v q="$5" '
		FNR == 1 { f++ }
		index($0, m "_bucket{") == 1 {
			le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le)
			if (f == 1) a[le] = $NF; else { b[le] = $NF; order[++n] = le }
		}
		END {
			total = b[order[n]] - a[order[n]]
			if (total <= 0) { print "-"; exit }
			below = 0
			for (i = 1; i <= n; i++) {
				c = b[order[i]] - a[order[i]]
				if (c >= q * total) {
					lo = i > 1 ? order[i-1] : 0
					if (order[i] == "+Inf") printf ">%.3g\n", lo * 1000
					else if (how == "range") printf "%.3g-%.3g\n", lo * 1000, order[i] * 1000
					else printf "%.3g\n", (lo + (order[i] - lo) * (q * total - below) / (c - below)) * 1000
					exit
				}
				below = c
			}
		}' "$2" "$3"
}
