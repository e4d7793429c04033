package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	upstreamServer = regexp.MustCompile(`(?m)^(\s*)server tictac\d+:8080([^;]*);\n`)
	listenLine     = regexp.MustCompile(`(?m)^(\s*)listen 8080;`)
)

// Nginx runs deploy/nginx.conf with its upstream servers replaced by
// upstreams (host:port) and its listen port by a free loopback port, and
// returns host:port to reach it. Only paths that need a writable directory
// are added; everything else is the file as shipped.
func Nginx(tb testing.TB, upstreams []string) string {
	tb.Helper()
	bin := Need(tb, "nginx", "apt-get install -y nginx")
	src, err := os.ReadFile(filepath.Join(Root(tb), "deploy", "nginx.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	conf := string(src)
	m := upstreamServer.FindStringSubmatch(conf)
	if m == nil || !listenLine.MatchString(conf) {
		tb.Fatal("deploy/nginx.conf lacks the upstream servers or the listen line the tests fill in")
	}
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "%sserver %s%s;\n", m[1], u, m[2])
	}
	first := true
	conf = upstreamServer.ReplaceAllStringFunc(conf, func(string) string {
		if first {
			first = false
			return servers.String()
		}
		return ""
	})
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	conf = listenLine.ReplaceAllString(conf, "${1}listen "+addr+";")
	dir := tb.TempDir()
	temps := ""
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temps += fmt.Sprintf("    %s_temp_path %s;\n", t, filepath.Join(dir, t))
	}
	conf = strings.Replace(conf, "http {\n", "http {\n"+temps, 1)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	global := "daemon off; pid " + filepath.Join(dir, "nginx.pid") + ";"
	if os.Geteuid() == 0 {
		global += " user root;"
	}
	p := Start(tb, bin, "-p", dir, "-c", path, "-e", "stderr", "-g", global)
	p.WaitTCP(tb, addr)
	return addr
}
