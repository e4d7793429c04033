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
