package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// RethinkDB returns the address (host:port) of a server that speaks the
// RethinkDB protocol. If RETHINKDB_ADDR is set it is returned as is: a real
// RethinkDB, shared, so tests must isolate themselves by database name.
// Otherwise it starts reqlite (tools/reqlite/launch.js) on a free loopback
// port; it keeps everything in memory and stops when the test ends.
func RethinkDB(tb testing.TB) (addr string) {
	tb.Helper()
	if addr := os.Getenv("RETHINKDB_ADDR"); addr != "" {
		return addr
	}
	node := Need(tb, "node", "apt-get install -y nodejs npm")
	dir := filepath.Join(Root(tb), "tools", "reqlite")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "reqlite")); err != nil {
		msg := "reqlite not installed: run ./test.sh (npm ci --prefix tools/reqlite)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	port := FreePort(tb)
	p := Start(tb, node, filepath.Join(dir, "launch.js"), "--port", strconv.Itoa(port))
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	p.WaitTCP(tb, addr)
	return addr
}
