package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis starts a redis-server on a free loopback port with no persistence and
// returns its URL (redis://127.0.0.1:PORT) and the process.
func Redis(tb testing.TB) (string, *Process) {
	tb.Helper()
	bin := Need(tb, "redis-server", "apt-get install -y redis-server")
	port := FreePort(tb)
	p := Start(tb, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", tb.TempDir(), "--protected-mode", "yes")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p.WaitTCP(tb, addr)
	return "redis://" + addr, p
}

// RedisNode is one master of a cluster started by RedisCluster.
type RedisNode struct {
	Addr string // host:port
	Proc *Process
}

// RedisCluster starts a Redis Cluster of n masters, each with replicas
// replicas, on free loopback ports, its slots split evenly by redis-cli
// --cluster create, and returns a URL that names every node
// (redis://a?addr=b&addr=c) with the nodes, once every node reports the
// cluster ok. A master that fails is replaced by one of its replicas within
// a few seconds (node timeout 2 s).
func RedisCluster(tb testing.TB, n, replicas int) (string, []RedisNode) {
	tb.Helper()
	bin := Need(tb, "redis-server", "apt-get install -y redis-server")
	cli := Need(tb, "redis-cli", "apt-get install -y redis-tools")
	var (
		nodes []RedisNode
		addrs []string
	)
	for range n * (1 + replicas) {
		port, bus := FreePort(tb), FreePort(tb)
		dir := tb.TempDir()
		p := Start(tb, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "yes", "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000",
			"--cluster-replica-validity-factor", "0") // a replica always takes over from a dead master
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		nodes = append(nodes, RedisNode{Addr: addr, Proc: p})
		addrs = append(addrs, addr)
	}
	for _, nd := range nodes {
		nd.Proc.WaitTCP(tb, nd.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for {
			out, err := exec.Command(cli, "-u", "redis://"+nd.Addr, "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redis cluster node %s not ok after 20s: %v\n%s", nd.Addr, err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	url := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		if i == 0 {
			url += "?addr=" + a
		} else {
			url += "&addr=" + a
		}
	}
	return url, nodes
}
