package testenv

import (
	"fmt"
	"strconv"
	"testing"
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
