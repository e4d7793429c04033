package main

// Tests of the deployment files (scripts/build.sh, Dockerfile, .dockerignore,
// compose.yaml, deploy/k8s) against the binary itself, with no Docker engine
// or cluster: every environment variable they set is one tictac reads, the
// ports, paths and names agree, and the probes answer on a real server. Each
// check is a function returning problems, and TestDeployChecksFail feeds it
// broken copies of the files to show that it can fail.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// problems collects what is wrong with a file, for one error per problem.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func reportProblems(t *testing.T, file string, ps problems) {
	t.Helper()
	for _, p := range ps {
		t.Errorf("%s: %s", file, p)
	}
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// envNames returns the environment variables tictac reads, recorded from the
// getenv its flag parsing calls: the names a deployment file may set.
func envNames(t testing.TB) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	names := map[string]bool{}
	getenv := func(k string) string {
		mu.Lock()
		defer mu.Unlock()
		names[k] = true
		return ""
	}
	if err := run(context.Background(), []string{"-h"}, getenv, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("tictac -h: got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"ADDR", "DATA_DIR", "REDIS_URL", "RETHINKDB_ADDR", "SHUTDOWN_TIMEOUT"} {
		if !names[want] {
			t.Fatalf("tictac no longer reads %s; these tests rely on it (it reads %v)", want, sortedKeys(names))
		}
	}
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// configFrom parses tictac's configuration from env alone, as the binary
// would in that container.
func configFrom(env map[string]string) (config, error) {
	return parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
}

func checkEnvNames(ps *problems, where string, env map[string]string, known map[string]bool) {
	for _, k := range sortedKeys(env) {
		if !known[k] {
			ps.addf("%s sets %s, which tictac does not read (it reads %s)", where, k, strings.Join(sortedKeys(known), ", "))
		}
	}
}

// trusts reports whether every one of addrs is in one of the prefixes.
func trusts(prefixes []netip.Prefix, addrs ...string) bool {
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		if !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return false
		}
	}
	return true
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// goMinor returns the Go version of go.mod's go line as major.minor.
func goMinor(t testing.TB) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return m[1]
}

// Build script.

// buildScriptProblems runs the build script at script with a stub go that
// records how it was called, and checks the command line against the one
// the Dockerfile and the tests rely on.
func buildScriptProblems(t *testing.T, script string) problems {
	t.Helper()
	var ps problems
	st, err := os.Stat(script)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		ps.addf("not executable (chmod +x): the Dockerfile and the tests run it directly")
	}
	src := readFile(t, script)
	if !strings.HasPrefix(src, "#!/bin/sh\n") {
		ps.addf("does not start with #!/bin/sh")
	}
	if !regexp.MustCompile(`(?m)^set -eu$`).MatchString(src) {
		ps.addf("lacks set -eu")
	}
	if out, err := exec.Command("/bin/sh", "-n", script).CombinedOutput(); err != nil {
		ps.addf("sh -n: %v %s", err, out)
	}
	root, err := filepath.Abs(filepath.Join(filepath.Dir(script), ".."))
	if err != nil {
		t.Fatal(err)
	}
	stub := t.TempDir()
	record := filepath.Join(stub, "record")
	goStub := "#!/bin/sh\n{ echo \"CGO_ENABLED=${CGO_ENABLED:-unset}\"; echo \"PWD=$PWD\"; for a in \"$@\"; do echo \"ARG=$a\"; done; } >" + record + "\n"
	if err := os.WriteFile(filepath.Join(stub, "go"), []byte(goStub), 0o755); err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir()
	gitDir := ""
	if p, err := exec.LookPath("git"); err == nil {
		gitDir = filepath.Dir(p)
	}
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, version string
		args                []string
	}{
		// Called from elsewhere with a relative OUT: the build runs at the
		// module root and writes where the caller meant.
		{"with VERSION", stub + ":" + os.Getenv("PATH"), "v9.9.9", []string{"out/tictac", "v9.9.9"}},
		// No git at all (a Docker build context): version dev.
		{"without git", stub, "dev", []string{"out/tictac"}},
	}
	if gitDir != "" {
		want := "dev"
		if out, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
			want = strings.TrimSpace(string(out))
		}
		tests = append(tests, struct {
			name, path, version string
			args                []string
		}{"git describe", stub + ":" + gitDir, want, []string{"out/tictac"}})
	}
	for _, tt := range tests {
		os.Remove(record)
		cmd := exec.Command("/bin/sh", append([]string{abs}, tt.args...)...)
		cmd.Dir = cwd
		cmd.Env = []string{"PATH=" + tt.path, "HOME=" + os.Getenv("HOME")}
		if out, err := cmd.CombinedOutput(); err != nil {
			ps.addf("%s: %v: %s", tt.name, err, out)
			continue
		}
		b, err := os.ReadFile(record)
		if err != nil {
			ps.addf("%s: go was not run", tt.name)
			continue
		}
		var args []string
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if a, ok := strings.CutPrefix(line, "ARG="); ok {
				args = append(args, a)
			} else if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		want := []string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + tt.version, "-o", filepath.Join(cwd, "out/tictac"), "."}
		// The work tree may turn dirty between our git describe and the
		// script's (others edit while tests run).
		undirty := func(args []string) []string {
			return slices.Collect(func(yield func(string) bool) {
				for _, a := range args {
					if !yield(strings.TrimSuffix(a, "-dirty")) {
						return
					}
				}
			})
		}
		if !slices.Equal(undirty(args), undirty(want)) {
			ps.addf("%s: ran go %q, want go %q", tt.name, args, want)
		}
		if env["CGO_ENABLED"] != "0" {
			ps.addf("%s: CGO_ENABLED=%s, want 0 (distroless static has no libc)", tt.name, env["CGO_ENABLED"])
		}
		if env["PWD"] != root {
			ps.addf("%s: built in %s, want the module root %s", tt.name, env["PWD"], root)
		}
	}
	return ps
}

func TestDockerBuildScript(t *testing.T) {
	t.Parallel()
	reportProblems(t, "scripts/build.sh", buildScriptProblems(t, "scripts/build.sh"))
}

// TestDockerBuildStatic builds the real binary with scripts/build.sh: it is
// stamped with the version, static (it must run on distroless/static) and
// stripped. With a warm build cache this is a link, about a second.
func TestDockerBuildStatic(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "tictac")
	if out, err := exec.Command("scripts/build.sh", bin, "deploy-test").CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if got, want := strings.TrimSpace(string(out)), "tictac deploy-test"; err != nil || got != want {
		t.Errorf("%s version: got %q, %v; want %q", bin, got, err, want)
	}
	if runtime.GOOS != "linux" {
		return
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (it has an ELF interpreter); distroless/static cannot run it")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags -s was not applied")
	}
	if st, err := os.Stat(bin); err == nil {
		t.Logf("static binary: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
	}
}

// Dockerfile.

type dockerInstr struct{ cmd, args string }

type dockerStage struct {
	image, name string
	instrs      []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining
// continued lines and dropping comments.
func parseDockerfile(src string) []dockerStage {
	var lines []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(l)
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var stages []dockerStage
	for _, l := range lines {
		cmd, args, _ := strings.Cut(l, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		if cmd == "FROM" {
			f := withoutFlags(strings.Fields(args))
			s := dockerStage{}
			if len(f) > 0 {
				s.image = f[0]
			}
			if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, dockerInstr{cmd, args})
		}
	}
	return stages
}

func withoutFlags(words []string) []string {
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		words = words[1:]
	}
	return words
}

// flagValue returns the value of --name=value among words.
func flagValue(words []string, name string) string {
	for _, w := range words {
		if v, ok := strings.CutPrefix(w, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// dockerEnv parses ENV k=v k=v (or the old ENV k v).
func dockerEnv(args string, into map[string]string) {
	f := strings.Fields(args)
	if len(f) > 0 && !strings.Contains(f[0], "=") {
		into[f[0]] = strings.Trim(strings.Join(f[1:], " "), `"`)
		return
	}
	for _, kv := range f {
		k, v, _ := strings.Cut(kv, "=")
		into[k] = strings.Trim(v, `"`)
	}
}

// uidOf returns the user id of a USER or --chown value, "65532" for nonroot.
func uidOf(user string) string {
	uid, _, _ := strings.Cut(user, ":")
	if uid == "nonroot" {
		return "65532"
	}
	return uid
}

var goBuild = regexp.MustCompile(`\bgo\s+build\b`)

// image is what the Dockerfile's final stage gives the container.
type image struct {
	env    map[string]string
	expose []string
	user   string
}

// dockerfileProblems checks a Dockerfile: one build command (scripts/build.sh)
// in a Go builder matching go.mod, a distroless or scratch final stage as a
// non-root user, and ports, volume and environment that tictac agrees with.
func dockerfileProblems(src, goVersion string, known map[string]bool) (problems, image) {
	var ps problems
	img := image{env: map[string]string{}}
	stages := parseDockerfile(src)
	if len(stages) < 2 {
		ps.addf("want a multi-stage build (builder, then final image); got %d stage(s)", len(stages))
		return ps, img
	}
	builder := -1
	for i, s := range stages[:len(stages)-1] {
		if strings.HasPrefix(s.image, "golang:") {
			builder = i
			if tag := strings.TrimPrefix(s.image, "golang:"); tag != goVersion && !strings.HasPrefix(tag, goVersion+"-") && !strings.HasPrefix(tag, goVersion+".") {
				ps.addf("builder image %s does not match go.mod's go %s", s.image, goVersion)
			}
		}
	}
	if builder < 0 {
		ps.addf("no builder stage FROM golang:%s", goVersion)
		return ps, img
	}

	// The build: exactly one RUN of scripts/build.sh, never go build itself,
	// with the module download cached in its own layer before the sources.
	var out string
	builds := 0
	for si, s := range stages {
		args := map[string]bool{}
		var order []string
		for _, in := range s.instrs {
			switch in.cmd {
			case "ARG":
				name, _, _ := strings.Cut(in.args, "=")
				args[name] = true
			case "COPY":
				order = append(order, "COPY "+strings.Join(withoutFlags(strings.Fields(in.args)), " "))
			case "RUN":
				words := withoutFlags(strings.Fields(in.args))
				cmdline := strings.Join(words, " ")
				order = append(order, "RUN "+cmdline)
				if goBuild.MatchString(cmdline) {
					ps.addf("RUN %s: build with scripts/build.sh, the command the tests use, not go build", cmdline)
				}
				for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
					words = words[1:]
				}
				if len(words) == 0 || strings.TrimPrefix(words[0], "./") != "scripts/build.sh" {
					continue
				}
				builds++
				if si != builder {
					ps.addf("scripts/build.sh runs outside the golang builder stage")
				}
				if len(words) != 3 {
					ps.addf("RUN %s: want scripts/build.sh OUT \"$VERSION\"", cmdline)
					continue
				}
				out = words[1]
				if v := strings.Trim(words[2], `"`); v != "$VERSION" && v != "${VERSION}" || !args["VERSION"] {
					ps.addf("RUN %s: the version must be the build argument VERSION (ARG VERSION before it)", cmdline)
				}
			}
		}
		if si == builder {
			want := []string{"COPY go.mod go.sum ./", "RUN go mod download", "COPY . ."}
			at := 0
			for _, o := range order {
				if at < len(want) && o == want[at] {
					at++
				}
			}
			if at < len(want) {
				ps.addf("the builder should run %q in that order, so that modules are cached apart from the sources", want)
			}
		}
	}
	if builds != 1 {
		ps.addf("want exactly one RUN scripts/build.sh, got %d", builds)
	}

	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") && final.image != "scratch" {
		ps.addf("final image %s: want gcr.io/distroless/static (or scratch): a static binary needs nothing else", final.image)
	}
	if strings.HasSuffix(final.image, ":nonroot") {
		img.user = "65532"
	}
	var entry []string
	binDest := ""
	copies := map[string]string{} // destination -> owner uid
	volumeAt, copyAt := map[string]int{}, map[string]int{}
	for i, in := range final.instrs {
		switch in.cmd {
		case "USER":
			img.user = uidOf(in.args)
		case "ENV":
			dockerEnv(in.args, img.env)
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				img.expose = append(img.expose, strings.TrimSuffix(p, "/tcp"))
			}
		case "VOLUME":
			var vols []string
			if json.Unmarshal([]byte(in.args), &vols) != nil {
				vols = strings.Fields(in.args)
			}
			for _, v := range vols {
				volumeAt[path.Clean(v)] = i
			}
		case "COPY":
			f := strings.Fields(in.args)
			words := withoutFlags(f)
			if len(words) < 2 {
				continue
			}
			dest := path.Clean(words[len(words)-1])
			copies[dest] = uidOf(flagValue(f, "chown"))
			copyAt[dest] = i
			if flagValue(f, "from") != "" && out != "" && words[0] == out {
				binDest = dest
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entry); err != nil {
				ps.addf("ENTRYPOINT %s: use the exec form [\"/tictac\"]: there is no shell to run the other", in.args)
			}
		case "HEALTHCHECK":
			if strings.ToUpper(strings.TrimSpace(in.args)) != "NONE" {
				ps.addf("HEALTHCHECK %s cannot run: the final image has no shell or client", in.args)
			}
		}
	}
	if img.user == "" || img.user == "0" || img.user == "root" {
		ps.addf("the final image runs as root (user %q): use distroless :nonroot or USER 65532", img.user)
	}
	if binDest == "" {
		ps.addf("the final stage does not COPY --from the builder the binary scripts/build.sh made (%s)", out)
	} else if len(entry) == 0 || entry[0] != binDest {
		ps.addf("ENTRYPOINT %q does not run the binary copied to %s", entry, binDest)
	}

	checkEnvNames(&ps, "ENV", img.env, known)
	cfg, err := configFrom(img.env)
	if err != nil {
		ps.addf("tictac refuses the image's ENV: %v", err)
		return ps, img
	}
	def, _ := configFrom(nil)
	want := portOf(cfg.addr)
	if !slices.Equal(img.expose, []string{want}) {
		ps.addf("EXPOSE %v, but tictac listens on port %s (-addr %s)", img.expose, want, cfg.addr)
	}
	if portOf(def.addr) != want {
		ps.addf("the image moves the listen port from the default %s to %s", def.addr, cfg.addr)
	}
	data := path.Clean(cfg.dataDir)
	if _, ok := volumeAt[data]; !ok {
		ps.addf("no VOLUME %s, the data directory (DATA_DIR %s)", data, cfg.dataDir)
	}
	if owner, ok := copies[data]; !ok || owner != img.user {
		ps.addf("%s is not owned by the user %s (COPY --chown=%s:%s an empty directory there): a new volume takes the image's ownership, and tictac could not write it", data, img.user, img.user, img.user)
	} else if volumeAt[data] < copyAt[data] {
		ps.addf("VOLUME %s comes before the COPY into it, which Docker then discards", data)
	}
	return ps, img
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	ps, _ := dockerfileProblems(readFile(t, "Dockerfile"), goMinor(t), envNames(t))
	reportProblems(t, "Dockerfile", ps)
}

// .dockerignore.

// ignoreRule is one .dockerignore line as a regular expression on the
// slash-separated path from the context root.
type ignoreRule struct {
	re      *regexp.Regexp
	exclude bool // a "!" line brings files back
}

func parseDockerignore(src string) []ignoreRule {
	var rules []ignoreRule
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{exclude: true}
		if l, ok := strings.CutPrefix(line, "!"); ok {
			r.exclude, line = false, l
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case line[i] == '*':
				re.WriteString("[^/]*")
			case line[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			}
		}
		re.WriteString("$")
		r.re = regexp.MustCompile(re.String())
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether Docker leaves name (slash-separated) out of the
// build context: the last rule matching it or one of its parent directories
// decides.
func ignored(rules []ignoreRule, name string) bool {
	parts := strings.Split(name, "/")
	out := false
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		for _, r := range rules {
			if r.re.MatchString(prefix) {
				out = r.exclude
			}
		}
	}
	return out
}

// dockerignoreProblems checks that what must stay out of the build context
// does, and that everything the build reads (Go sources, go.mod, go.sum, the
// embedded client, the build script) is sent.
func dockerignoreProblems(t *testing.T, src string) problems {
	t.Helper()
	var ps problems
	rules := parseDockerignore(src)
	for _, name := range []string{".git/HEAD", "data/tictac.db", "artifacts/screenshots/a.png", "testdata/bin/tictac", "tools/reqlite/node_modules/reqlite/package.json", "node_modules/x/package.json"} {
		if !ignored(rules, name) {
			ps.addf("%s is sent to the Docker daemon; leave it out", name)
		}
	}
	var needed []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := filepath.ToSlash(p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "artifacts", "testdata", "data":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); p != "." && err == nil {
				return filepath.SkipDir // a module of its own (tools/tracewaits): not in the binary
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, "static/") {
			needed = append(needed, name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	needed = append(needed, "go.mod", "go.sum", "scripts/build.sh")
	for _, name := range needed {
		if ignored(rules, name) {
			ps.addf("%s is left out of the build context, but the build needs it", name)
		}
	}
	return ps
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	reportProblems(t, ".dockerignore", dockerignoreProblems(t, readFile(t, ".dockerignore")))
}

// compose.yaml.

// stringMap is a compose mapping that may also be written as a list of
// KEY=VALUE (environment) or of names (depends_on, condition then empty).
type stringMap map[string]string

func (m *stringMap) UnmarshalYAML(n *yaml.Node) error {
	*m = stringMap{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*m)[k] = v
		}
		return nil
	}
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	for k, v := range raw {
		if v.Kind == yaml.MappingNode { // depends_on: {svc: {condition: ...}}
			var dep struct {
				Condition string `yaml:"condition"`
			}
			if err := v.Decode(&dep); err != nil {
				return err
			}
			(*m)[k] = dep.Condition
			continue
		}
		(*m)[k] = v.Value
	}
	return nil
}

type composeService struct {
	Image           string    `yaml:"image"`
	Build           any       `yaml:"build"`
	Environment     stringMap `yaml:"environment"`
	DependsOn       stringMap `yaml:"depends_on"`
	Restart         string    `yaml:"restart"`
	Ports           []any     `yaml:"ports"`
	Volumes         []any     `yaml:"volumes"`
	StopGracePeriod string    `yaml:"stop_grace_period"`
	Healthcheck     *struct {
		Test    any  `yaml:"test"`
		Disable bool `yaml:"disable"`
	} `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

var (
	nginxUpstream = regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9_.-]+):(\d+)\b`)
	nginxListen   = regexp.MustCompile(`(?m)^\s*listen\s+(\d+)\s*;`)
	nginxReadTime = regexp.MustCompile(`(?m)^\s*proxy_read_timeout\s+(\d+)s?\s*;`)
)

// composeProblems checks compose.yaml against deploy/nginx.conf, the image
// and the binary: the services NGINX proxies to exist on the port tictac
// listens on, each replica has what scale-out needs under names tictac
// reads, and everything restarts and starts in order.
func composeProblems(src []byte, nginxConf string, img image, known map[string]bool) problems {
	var ps problems
	var c composeFile
	if err := yaml.Unmarshal(src, &c); err != nil {
		ps.addf("%v", err)
		return ps
	}
	for _, name := range []string{"nginx", "tictac1", "tictac2", "tictac3", "redis", "rethinkdb"} {
		if _, ok := c.Services[name]; !ok {
			ps.addf("no service %s", name)
		}
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if s.Restart != "unless-stopped" && s.Restart != "always" {
			ps.addf("%s: restart %q, want unless-stopped: tictac exits on start-up errors and relies on being restarted", name, s.Restart)
		}
		if s.Image != "" && s.Build == nil && strings.Contains(strings.Split(s.Image, ":")[0], "/") {
			ps.addf("%s: image %s is not an official (library) image", name, s.Image)
		}
		for dep, cond := range s.DependsOn {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				ps.addf("%s depends on %s, which is not a service", name, dep)
			case cond == "service_healthy" && (d.Healthcheck == nil || d.Healthcheck.Disable):
				ps.addf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
	}
	for _, name := range []string{"redis", "rethinkdb"} {
		if s, ok := c.Services[name]; ok && (s.Healthcheck == nil || s.Healthcheck.Disable || s.Healthcheck.Test == nil) {
			ps.addf("%s has no health check: the replicas wait for it to be healthy", name)
		}
	}

	// The replicas are the services NGINX proxies to.
	upstreams := map[string]string{}
	for _, m := range nginxUpstream.FindAllStringSubmatch(nginxConf, -1) {
		upstreams[m[1]] = m[2]
	}
	if len(upstreams) == 0 {
		ps.addf("deploy/nginx.conf has no upstream servers")
	}
	replicas := map[string]string{} // REPLICA -> service
	for _, name := range sortedKeys(upstreams) {
		s, ok := c.Services[name]
		if !ok {
			ps.addf("deploy/nginx.conf proxies to %s, which is not a compose service", name)
			continue
		}
		if s.Build == nil {
			ps.addf("%s: no build: . (the replicas run this repository's Dockerfile)", name)
		}
		checkEnvNames(&ps, name+" environment", s.Environment, known)
		for _, k := range []string{"REDIS_URL", "RETHINKDB_ADDR"} {
			if s.Environment[k] == "" {
				ps.addf("%s: no %s: replicas need Redis and RethinkDB to share games", name, k)
			}
		}
		env := map[string]string{}
		for k, v := range img.env {
			env[k] = v
		}
		for k, v := range s.Environment {
			env[k] = v
		}
		cfg, err := configFrom(env)
		if err != nil {
			ps.addf("%s: tictac refuses its environment: %v", name, err)
			continue
		}
		if p := portOf(cfg.addr); p != upstreams[name] {
			ps.addf("%s listens on port %s, but deploy/nginx.conf proxies to %s:%s", name, p, name, upstreams[name])
		}
		if cfg.replica == "" {
			ps.addf("%s: no REPLICA", name)
		} else if other, dup := replicas[cfg.replica]; dup {
			ps.addf("%s and %s are both REPLICA %s", other, name, cfg.replica)
		}
		replicas[cfg.replica] = name
		if u, err := url.Parse(cfg.redisURL); err != nil || c.Services[u.Hostname()].Image == "" || u.Port() != "6379" {
			ps.addf("%s: REDIS_URL %s is not the redis service on port 6379", name, cfg.redisURL)
		}
		for _, a := range strings.Split(cfg.rethinkAddrs, ",") {
			host, port, err := net.SplitHostPort(strings.TrimSpace(a))
			if _, ok := c.Services[host]; err != nil || !ok || port != "28015" {
				ps.addf("%s: RETHINKDB_ADDR %s is not a compose service on the driver port 28015", name, a)
			}
		}
		for _, dep := range []string{"redis", "rethinkdb"} {
			if s.DependsOn[dep] != "service_healthy" {
				ps.addf("%s: depends_on %s should wait for service_healthy (tictac does not retry at start-up)", name, dep)
			}
		}
		// Players reach the replicas through NGINX on compose's network.
		if cfg.maxConnsPerIP > 0 && !trusts(cfg.trustedProxies, "172.18.0.2", "192.168.16.2") {
			ps.addf("%s: TRUSTED_PROXIES %v does not cover compose's networks: every player would count as NGINX's address against MAX_CONNS_PER_IP", name, cfg.trustedProxies)
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d <= cfg.shutdownTimeout {
			ps.addf("%s: stop_grace_period %q should be longer than SHUTDOWN_TIMEOUT %s, or Docker kills it mid-drain (default 10s)", name, s.StopGracePeriod, cfg.shutdownTimeout)
		}
		if nginx, ok := c.Services["nginx"]; ok {
			if _, ok := nginx.DependsOn[name]; !ok {
				ps.addf("nginx does not depend on %s: NGINX resolves its upstreams when it starts", name)
			}
		}
	}

	// NGINX runs deploy/nginx.conf and publishes the game on localhost:8080.
	if nginx, ok := c.Services["nginx"]; ok {
		mounted := false
		for _, v := range nginx.Volumes {
			src, dst, _ := strings.Cut(fmt.Sprint(v), ":")
			dst, _, _ = strings.Cut(dst, ":")
			if path.Clean(src) == "deploy/nginx.conf" && dst == "/etc/nginx/nginx.conf" {
				mounted = true
			}
		}
		if !mounted {
			ps.addf("nginx does not mount ./deploy/nginx.conf at /etc/nginx/nginx.conf")
		}
		listen := ""
		if m := nginxListen.FindStringSubmatch(nginxConf); m != nil {
			listen = m[1]
		}
		published := false
		for _, p := range nginx.Ports {
			if fmt.Sprint(p) == "8080:"+listen {
				published = true
			}
		}
		if !published {
			ps.addf("nginx ports %v do not publish 8080 to NGINX's listen port %s", nginx.Ports, listen)
		}
	}
	return ps
}

func TestCompose(t *testing.T) {
	t.Parallel()
	known := envNames(t)
	_, img := dockerfileProblems(readFile(t, "Dockerfile"), goMinor(t), known)
	reportProblems(t, "compose.yaml", composeProblems([]byte(readFile(t, "compose.yaml")), readFile(t, "deploy/nginx.conf"), img, known))
}

// deploy/k8s.

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type ref struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional bool   `yaml:"optional"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef    *ref `yaml:"secretKeyRef"`
			ConfigMapKeyRef *ref `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *ref `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	Resources       struct{ Requests, Limits map[string]string }
	SecurityContext securityContext `yaml:"securityContext"`
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data      map[string]string `yaml:"data"`
	Resources []string          `yaml:"resources"`
	Images    []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
	Spec yaml.Node `yaml:"spec"`
	file string
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds *int            `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               securityContext `yaml:"securityContext"`
			Containers                    []container     `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable   any           `yaml:"minAvailable"`
	MaxUnavailable any           `yaml:"maxUnavailable"`
	Selector       labelSelector `yaml:"selector"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	Metrics     []struct {
		Resource *struct {
			Name   string `yaml:"name"`
			Target struct {
				AverageUtilization int `yaml:"averageUtilization"`
			} `yaml:"target"`
		} `yaml:"resource"`
	} `yaml:"metrics"`
}

type ingressSpec struct {
	Rules []struct {
		HTTP struct {
			Paths []struct {
				Path    string `yaml:"path"`
				Backend struct {
					Service struct {
						Name string `yaml:"name"`
						Port struct {
							Name   string `yaml:"name"`
							Number int    `yaml:"number"`
						} `yaml:"port"`
					} `yaml:"service"`
				} `yaml:"backend"`
			} `yaml:"paths"`
		} `yaml:"http"`
	} `yaml:"rules"`
}

// k8sFiles reads deploy/k8s/*.yaml, by base name.
func k8sFiles(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("deploy/k8s/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no deploy/k8s/*.yaml: %v", err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		files[filepath.Base(n)] = []byte(readFile(t, n))
	}
	return files
}

// k8sDeployment is what the live probe check needs of the manifests.
type k8sDeployment struct {
	container   container
	annotations map[string]string
	cfg         config
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// k8sProblems checks the manifests: each parses and has no namespace, and
// together they agree with each other, with the image and with tictac.
func k8sProblems(files map[string][]byte, nginxConf string, img image, known map[string]bool) (problems, k8sDeployment) {
	var ps problems
	var dep k8sDeployment
	byKind := map[string][]k8sObject{}
	for _, name := range sortedKeys(files) {
		d := yaml.NewDecoder(bytes.NewReader(files[name]))
		for {
			var o k8sObject
			err := d.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ps.addf("%s: %v", name, err)
				break
			}
			o.file = name
			if o.APIVersion == "" || o.Kind == "" || o.Kind != "Kustomization" && o.Metadata.Name == "" {
				ps.addf("%s: an object without apiVersion, kind or metadata.name", name)
			}
			if o.Metadata.Namespace != "" {
				ps.addf("%s: %s %s has namespace %s; the manifests go into any namespace", name, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	one := func(kind, apiVersion string, spec any) *k8sObject {
		objs := byKind[kind]
		if len(objs) != 1 {
			ps.addf("want one %s, got %d", kind, len(objs))
			return nil
		}
		o := &objs[0]
		if o.APIVersion != apiVersion {
			ps.addf("%s: %s is %s, want %s", o.file, kind, o.APIVersion, apiVersion)
		}
		if spec != nil {
			if err := o.Spec.Decode(spec); err != nil {
				ps.addf("%s: %s spec: %v", o.file, kind, err)
			}
		}
		return o
	}

	var kustomizeImages []string
	kustomizeFile := ""
	if k := one("Kustomization", "kustomize.config.k8s.io/v1beta1", nil); k != nil {
		var want []string
		for _, name := range sortedKeys(files) {
			if name != k.file {
				want = append(want, name)
			}
		}
		got := slices.Sorted(slices.Values(k.Resources))
		if !slices.Equal(got, want) {
			ps.addf("%s lists %v, want every manifest: %v", k.file, got, want)
		}
		for _, im := range k.Images {
			kustomizeImages = append(kustomizeImages, im.Name)
		}
		kustomizeFile = k.file
	}

	configMaps := map[string]map[string]string{}
	for _, o := range byKind["ConfigMap"] {
		configMaps[o.Metadata.Name] = o.Data
		checkEnvNames(&ps, o.file+": ConfigMap "+o.Metadata.Name, o.Data, known)
	}

	var ds deploymentSpec
	d := one("Deployment", "apps/v1", &ds)
	if d == nil || len(ds.Template.Spec.Containers) != 1 {
		ps.addf("want a Deployment with one container")
		return ps, dep
	}
	c := ds.Template.Spec.Containers[0]
	dep.container = c
	if kustomizeFile != "" && !slices.Contains(kustomizeImages, c.Image) {
		ps.addf("%s: images %v do not set the container's image %s", kustomizeFile, kustomizeImages, c.Image)
	}
	dep.annotations = ds.Template.Metadata.Annotations
	if !selects(ds.Selector.MatchLabels, ds.Template.Metadata.Labels) {
		ps.addf("%s: the Deployment's selector %v does not select its pods %v", d.file, ds.Selector.MatchLabels, ds.Template.Metadata.Labels)
	}
	podLabels := ds.Template.Metadata.Labels

	// The environment: the image's, then ConfigMaps, then env (k8s order).
	env := map[string]string{}
	for k, v := range img.env {
		env[k] = v
	}
	source := map[string]string{}
	set := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		data, ok := configMaps[ef.ConfigMapRef.Name]
		if !ok {
			ps.addf("%s: envFrom ConfigMap %s is not in deploy/k8s", d.file, ef.ConfigMapRef.Name)
		}
		for k, v := range data {
			env[k], source[k] = v, "ConfigMap"
		}
	}
	for _, e := range c.Env {
		set[e.Name] = ""
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name], source[e.Name] = e.Value, "value"
		case vf.FieldRef != nil:
			env[e.Name], source[e.Name] = "pod-"+vf.FieldRef.FieldPath, "fieldRef "+vf.FieldRef.FieldPath
		case vf.SecretKeyRef != nil:
			env[e.Name], source[e.Name] = "secret", "Secret"
			if !vf.SecretKeyRef.Optional {
				ps.addf("%s: %s from Secret %s is not optional: without the Secret no pod starts", d.file, e.Name, vf.SecretKeyRef.Name)
			}
		case vf.ConfigMapKeyRef != nil:
			env[e.Name], source[e.Name] = configMaps[vf.ConfigMapKeyRef.Name][vf.ConfigMapKeyRef.Key], "ConfigMap"
		}
	}
	checkEnvNames(&ps, d.file+": env", set, known)
	for name, want := range map[string]string{"REDIS_URL": "ConfigMap", "RETHINKDB_ADDR": "ConfigMap", "RETHINKDB_PASSWORD": "Secret", "REPLICA": "fieldRef metadata.name", "SHUTDOWN_TIMEOUT": "value"} {
		if source[name] != want {
			ps.addf("%s: %s comes from %q, want %s", d.file, name, source[name], want)
		}
	}
	cfg, err := configFrom(env)
	if err != nil {
		ps.addf("%s: tictac refuses the pods' environment: %v", d.file, err)
		return ps, dep
	}
	dep.cfg = cfg

	// Players arrive through the ingress controller's pods.
	if cfg.maxConnsPerIP > 0 && !trusts(cfg.trustedProxies, "10.244.0.5") {
		ps.addf("%s: TRUSTED_PROXIES %v trusts no pod network: every player would count as the ingress controller's address against MAX_CONNS_PER_IP", d.file, cfg.trustedProxies)
	}

	// Ports: http is where tictac listens; the admin listener, if any, too.
	ports := map[string]string{} // name -> port
	for _, p := range c.Ports {
		ports[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	if got, want := ports["http"], portOf(cfg.addr); got != want {
		ps.addf("%s: container port http is %q, but tictac listens on %s (ADDR %s)", d.file, got, want, cfg.addr)
	}
	metricsPort := portOf(cfg.addr)
	if cfg.adminAddr != "" {
		metricsPort = portOf(cfg.adminAddr)
		if !slices.Contains(sortedValues(ports), metricsPort) {
			ps.addf("%s: no container port for the admin listener %s", d.file, cfg.adminAddr)
		}
	}
	a := ds.Template.Metadata.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != metricsPort || a["prometheus.io/path"] == "" {
		ps.addf("%s: Prometheus annotations %v: want scrape \"true\", port %s (where /metrics is served), a path", d.file, a, metricsPort)
	}

	// Probes, and a drain that fits in the grace period.
	for _, pr := range []struct {
		name string
		p    *probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			ps.addf("%s: no HTTP %s", d.file, pr.name)
			continue
		}
		port := fmt.Sprint(pr.p.HTTPGet.Port)
		if n, ok := ports[port]; ok {
			port = n
		}
		if port != portOf(cfg.addr) && (cfg.adminAddr == "" || port != portOf(cfg.adminAddr)) {
			ps.addf("%s: %s probes port %v, where tictac does not listen", d.file, pr.name, pr.p.HTTPGet.Port)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
		if c.LivenessProbe.HTTPGet.Path == c.ReadinessProbe.HTTPGet.Path {
			ps.addf("%s: the livenessProbe checks readiness (%s): a Redis or RethinkDB outage would restart every pod", d.file, c.LivenessProbe.HTTPGet.Path)
		}
		period := c.ReadinessProbe.PeriodSeconds
		if period == 0 {
			period = 10 // Kubernetes' default
		}
		if cfg.drainDelay < time.Duration(period)*time.Second {
			ps.addf("%s: DRAIN_DELAY %s is shorter than the readiness period (%ds): the pod stops taking players before every load balancer has seen it leave", d.file, cfg.drainDelay, period)
		}
	}
	if g := ds.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= cfg.shutdownTimeout+cfg.drainDelay {
		ps.addf("%s: terminationGracePeriodSeconds must exceed SHUTDOWN_TIMEOUT %s (and DRAIN_DELAY %s), or the kubelet kills pods mid-drain", d.file, cfg.shutdownTimeout, cfg.drainDelay)
	}

	// Security and resources.
	pod, ctr := ds.Template.Spec.SecurityContext, c.SecurityContext
	if !(ctr.RunAsNonRoot != nil && *ctr.RunAsNonRoot || pod.RunAsNonRoot != nil && *pod.RunAsNonRoot) {
		ps.addf("%s: runAsNonRoot is not set", d.file)
	}
	for _, u := range []*int{pod.RunAsUser, ctr.RunAsUser} {
		if u != nil && strconv.Itoa(*u) != img.user {
			ps.addf("%s: runAsUser %d is not the image's user %s", d.file, *u, img.user)
		}
	}
	if ctr.ReadOnlyRootFilesystem == nil || !*ctr.ReadOnlyRootFilesystem {
		ps.addf("%s: readOnlyRootFilesystem is not true", d.file)
	}
	if ctr.AllowPrivilegeEscalation == nil || *ctr.AllowPrivilegeEscalation {
		ps.addf("%s: allowPrivilegeEscalation is not false", d.file)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			ps.addf("%s: resources need requests and limits of %s (the HPA scales on CPU requests)", d.file, r)
		}
	}

	// Service, PDB, HPA and Ingress point at the Deployment and each other.
	var ss serviceSpec
	if s := one("Service", "v1", &ss); s != nil {
		if !selects(ss.Selector, podLabels) {
			ps.addf("%s: the Service selects %v, not the pods %v", s.file, ss.Selector, podLabels)
		}
		if len(ss.Ports) != 1 || fmt.Sprint(ss.Ports[0].TargetPort) != "http" || ss.Ports[0].Port != 80 {
			ps.addf("%s: want one port 80 with targetPort http (the container port's name), got %+v", s.file, ss.Ports)
		}
		var is ingressSpec
		if i := one("Ingress", "networking.k8s.io/v1", &is); i != nil {
			for _, r := range is.Rules {
				for _, p := range r.HTTP.Paths {
					b := p.Backend.Service
					if b.Name != s.Metadata.Name || len(ss.Ports) == 0 || b.Port.Name != ss.Ports[0].Name && b.Port.Number != ss.Ports[0].Port {
						ps.addf("%s: Ingress path %s goes to %s port %+v, not to the Service %s", i.file, p.Path, b.Name, b.Port, s.Metadata.Name)
					}
				}
			}
			var ann struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
			}
			yaml.Unmarshal(files[i.file], &ann)
			floor := 0
			for _, m := range nginxReadTime.FindAllStringSubmatch(nginxConf, -1) {
				n, _ := strconv.Atoi(m[1])
				floor = max(floor, n)
			}
			for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
				v, err := strconv.Atoi(ann.Metadata.Annotations["nginx.ingress.kubernetes.io/"+k])
				if err != nil || v < floor || v < 3600 {
					ps.addf("%s: nginx.ingress.kubernetes.io/%s %q: want at least 3600 (and deploy/nginx.conf's %ds) for quiet game sockets", i.file, k, ann.Metadata.Annotations["nginx.ingress.kubernetes.io/"+k], floor)
				}
			}
		}
	}
	var pdb pdbSpec
	minAvailable := 0
	if p := one("PodDisruptionBudget", "policy/v1", &pdb); p != nil {
		if !selects(pdb.Selector.MatchLabels, podLabels) {
			ps.addf("%s: the PodDisruptionBudget selects %v, not the pods %v", p.file, pdb.Selector.MatchLabels, podLabels)
		}
		if (pdb.MinAvailable == nil) == (pdb.MaxUnavailable == nil) {
			ps.addf("%s: set one of minAvailable and maxUnavailable", p.file)
		}
		if n, ok := pdb.MinAvailable.(int); ok {
			minAvailable = n
		}
	}
	var hpa hpaSpec
	if h := one("HorizontalPodAutoscaler", "autoscaling/v2", &hpa); h != nil {
		if r := hpa.ScaleTargetRef; r.APIVersion != "apps/v1" || r.Kind != "Deployment" || r.Name != d.Metadata.Name {
			ps.addf("%s: scaleTargetRef %+v is not the Deployment %s", h.file, r, d.Metadata.Name)
		}
		if hpa.MinReplicas < 3 || hpa.MaxReplicas < hpa.MinReplicas {
			ps.addf("%s: replicas %d..%d, want at least 3 (one drained, two serving)", h.file, hpa.MinReplicas, hpa.MaxReplicas)
		}
		if hpa.MinReplicas <= minAvailable {
			ps.addf("%s: minReplicas %d with the PDB's minAvailable %d blocks every node drain", h.file, hpa.MinReplicas, minAvailable)
		}
		if len(hpa.Metrics) != 1 || hpa.Metrics[0].Resource == nil || hpa.Metrics[0].Resource.Name != "cpu" || hpa.Metrics[0].Resource.Target.AverageUtilization == 0 {
			ps.addf("%s: want one CPU utilization metric", h.file)
		}
		if ds.Replicas != nil {
			ps.addf("%s: spec.replicas is set while an HPA scales the Deployment: every apply would reset the count", d.file)
		}
	}
	return ps, dep
}

func sortedValues(m map[string]string) []string {
	var vs []string
	for _, k := range sortedKeys(m) {
		vs = append(vs, m[k])
	}
	return vs
}

// probeProblems starts the real server as the Deployment configures its
// listeners and GETs every probe and the metrics path on the port it names.
func probeProblems(t *testing.T, dep k8sDeployment) problems {
	t.Helper()
	var ps problems
	var args []string
	admin := ""
	if dep.cfg.adminAddr != "" {
		admin = freeAddr(t)
		args = append(args, "-admin-addr", admin)
	}
	a := start(t, t.TempDir(), args...)
	ports := map[string]string{}
	for _, p := range dep.container.Ports {
		ports[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	base := func(port string) string {
		if n, ok := ports[port]; ok {
			port = n
		}
		switch {
		case port == portOf(dep.cfg.addr):
			return a.base
		case admin != "" && port == portOf(dep.cfg.adminAddr):
			return "http://" + admin
		}
		return ""
	}
	get := func(what, port, p string) {
		b := base(port)
		if b == "" {
			ps.addf("%s: port %s is no tictac listener", what, port)
			return
		}
		resp, err := http.Get(b + p)
		if err != nil {
			ps.addf("%s: GET %s: %v", what, p, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			ps.addf("%s: GET %s on port %s: %s, want 200 OK", what, p, port, resp.Status)
		}
	}
	for _, pr := range []struct {
		name string
		p    *probe
	}{{"readinessProbe", dep.container.ReadinessProbe}, {"livenessProbe", dep.container.LivenessProbe}} {
		if pr.p != nil && pr.p.HTTPGet != nil {
			get(pr.name, fmt.Sprint(pr.p.HTTPGet.Port), pr.p.HTTPGet.Path)
		}
	}
	if p := dep.annotations["prometheus.io/path"]; p != "" {
		get("prometheus.io/path", dep.annotations["prometheus.io/port"], p)
	}
	a.stop()
	return ps
}

func TestK8sManifests(t *testing.T) {
	t.Parallel()
	known := envNames(t)
	_, img := dockerfileProblems(readFile(t, "Dockerfile"), goMinor(t), known)
	ps, dep := k8sProblems(k8sFiles(t), readFile(t, "deploy/nginx.conf"), img, known)
	reportProblems(t, "deploy/k8s", ps)
	if dep.container.Name == "" || t.Failed() {
		return
	}
	reportProblems(t, "deploy/k8s (live)", probeProblems(t, dep))
}

// TestDeployChecksFail breaks each file the way a slip would, and expects
// the checks above to say so: a check that cannot fail checks nothing.
func TestDeployChecksFail(t *testing.T) {
	t.Parallel()
	known := envNames(t)
	goVersion := goMinor(t)
	dockerfile := readFile(t, "Dockerfile")
	compose := readFile(t, "compose.yaml")
	nginxConf := readFile(t, "deploy/nginx.conf")
	dockerignore := readFile(t, ".dockerignore")
	_, img := dockerfileProblems(dockerfile, goVersion, known)
	k8s := k8sFiles(t)

	// mutate replaces old (which must be in src) with new.
	mutate := func(t *testing.T, src, old, new string) string {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("the mutation no longer applies: %q is not in the file", old)
		}
		return strings.Replace(src, old, new, 1)
	}
	expect := func(t *testing.T, ps problems, want string) {
		t.Helper()
		for _, p := range ps {
			if strings.Contains(p, want) {
				return
			}
		}
		t.Errorf("got problems %q, want one mentioning %q", ps, want)
	}

	dockerCases := []struct{ name, old, new, want string }{
		{"go build", "scripts/build.sh /out/tictac", "go build -o /out/tictac . # ", "not go build"},
		{"old Go", "golang:1.26-bookworm", "golang:1.21-bookworm", "go.mod"},
		{"debian", "gcr.io/distroless/static-debian12:nonroot", "debian:12", "distroless"},
		{"root", "USER 65532:65532", "USER root", "root"},
		{"expose", "EXPOSE 8080", "EXPOSE 80", "EXPOSE"},
		{"volume", "VOLUME /data", "VOLUME /var/lib/tictac", "VOLUME /data"},
		{"env typo", "ENV DATA_DIR=/data", "ENV DATADIR=/data", "DATADIR"},
		{"shell entrypoint", `ENTRYPOINT ["/tictac"]`, "ENTRYPOINT /tictac", "exec form"},
		{"root volume", "--chown=65532:65532 ", "", "not owned"},
		{"healthcheck", `ENTRYPOINT ["/tictac"]`, "HEALTHCHECK CMD wget -q localhost:8080/healthz\nENTRYPOINT [\"/tictac\"]", "HEALTHCHECK"},
		{"no module cache", "RUN go mod download\n", "", "modules are cached"},
	}
	for _, tt := range dockerCases {
		t.Run("Dockerfile/"+tt.name, func(t *testing.T) {
			ps, _ := dockerfileProblems(mutate(t, dockerfile, tt.old, tt.new), goVersion, known)
			expect(t, ps, tt.want)
		})
	}

	composeCases := []struct{ name, old, new, want string }{
		{"env typo", "  REDIS_URL: redis://redis:6379", "  REDIS_ULR: redis://redis:6379", "REDIS_ULR"},
		{"same replica", "REPLICA: tictac3", "REPLICA: tictac2", "both REPLICA"},
		{"renamed replica", "\n  tictac3:\n    <<: *tictac", "\n  tictac4:\n    <<: *tictac", "tictac3"},
		{"no healthy wait", "condition: service_healthy", "condition: service_started", "service_healthy"},
		{"no health check", `test: ["CMD", "redis-cli", "ping"]`, "disable: true", "health check"},
		{"short grace", "stop_grace_period: 15s", "stop_grace_period: 5s", "stop_grace_period"},
		{"no restart", "image: nginx:stable\n    restart: unless-stopped", "image: nginx:stable", "restart"},
		{"wrong rethinkdb", "RETHINKDB_ADDR: rethinkdb:28015", "RETHINKDB_ADDR: rethink:28015", "RETHINKDB_ADDR"},
		{"bad duration", "DRAIN_DELAY: 2s", "DRAIN_DELAY: 2 seconds", "refuses"},
		{"nginx conf", "./deploy/nginx.conf:", "./nginx.conf:", "mount"},
		{"untrusted nginx", "TRUSTED_PROXIES: 172.16.0.0/12,192.168.0.0/16,10.0.0.0/8", "TRUSTED_PROXIES: 127.0.0.0/8", "TRUSTED_PROXIES"},
		{"port", `"8080:8080"`, `"8080:80"`, "publish"},
	}
	for _, tt := range composeCases {
		t.Run("compose/"+tt.name, func(t *testing.T) {
			expect(t, composeProblems([]byte(mutate(t, compose, tt.old, tt.new)), nginxConf, img, known), tt.want)
		})
	}
	t.Run("compose/nginx upstream", func(t *testing.T) {
		conf := mutate(t, nginxConf, "server tictac3:8080", "server tictac4:8080")
		expect(t, composeProblems([]byte(compose), conf, img, known), "tictac4")
	})
	t.Run("compose/nginx port", func(t *testing.T) {
		conf := mutate(t, nginxConf, "server tictac2:8080", "server tictac2:8081")
		expect(t, composeProblems([]byte(compose), conf, img, known), "8081")
	})

	k8sCases := []struct{ file, name, old, new, want string }{
		{"deployment.yaml", "container port", "containerPort: 8080", "containerPort: 8081", "container port http"},
		{"deployment.yaml", "grace", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds"},
		{"deployment.yaml", "env typo", "name: SHUTDOWN_TIMEOUT", "name: SHUTDOWN_TIMOUT", "SHUTDOWN_TIMOUT"},
		{"deployment.yaml", "replica", "fieldPath: metadata.name", "fieldPath: metadata.namespace", "REPLICA"},
		{"deployment.yaml", "password required", "optional: true", "optional: false", "not optional"},
		{"deployment.yaml", "writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"deployment.yaml", "root", "runAsNonRoot: true\n        runAsUser: 65532", "runAsNonRoot: false\n        runAsUser: 0", "runAsUser 0"},
		{"deployment.yaml", "liveness on readiness", "path: /healthz", "path: /readyz", "livenessProbe checks readiness"},
		{"deployment.yaml", "short drain", "value: 5s", "value: 1s", "DRAIN_DELAY"},
		{"deployment.yaml", "long drain", "value: 5s", "value: 10s", "less than -shutdown-timeout"},
		{"deployment.yaml", "replicas", "spec:\n  # No replicas", "spec:\n  replicas: 3\n  # No replicas", "spec.replicas"},
		{"deployment.yaml", "scrape port", `prometheus.io/port: "9090"`, `prometheus.io/port: "8080"`, "Prometheus"},
		{"deployment.yaml", "probe port", "port: http\n            periodSeconds: 10", "port: 8081\n            periodSeconds: 10", "does not listen"},
		{"deployment.yaml", "no cpu", "cpu: 100m", "", "requests and limits of cpu"},
		{"configmap.yaml", "key typo", "RETHINKDB_DB: tictac", "RETHINK_DB: tictac", "RETHINK_DB"},
		{"configmap.yaml", "untrusted ingress", "TRUSTED_PROXIES: 10.0.0.0/8,", "TRUSTED_PROXIES: 127.0.0.0/8,", "TRUSTED_PROXIES"},
		{"configmap.yaml", "bad value", "LOG_FORMAT: json", "LOG_FORMAT: json\n  GRACE: soon", "refuses"},
		{"service.yaml", "target", "targetPort: http", "targetPort: web", "targetPort http"},
		{"service.yaml", "selector", "    app.kubernetes.io/name: tictac\n  ports", "    app: tictac\n  ports", "Service selects"},
		{"pdb.yaml", "selector", "      app.kubernetes.io/name: tictac", "      app: tictac", "PodDisruptionBudget selects"},
		{"pdb.yaml", "min", "maxUnavailable: 1", "minAvailable: 3", "blocks every node drain"},
		{"hpa.yaml", "target", "    name: tictac\n  minReplicas", "    name: tic\n  minReplicas", "scaleTargetRef"},
		{"ingress.yaml", "backend", "                name: tictac", "                name: tictac-web", "not to the Service"},
		{"ingress.yaml", "timeout", `proxy-read-timeout: "3600"`, `proxy-read-timeout: "60"`, "proxy-read-timeout"},
		{"ingress.yaml", "namespace", "  name: tictac\n", "  name: tictac\n  namespace: games\n", "namespace games"},
		{"kustomization.yaml", "forgotten", "  - ingress.yaml\n", "", "every manifest"},
		{"kustomization.yaml", "image", "  - name: tictac\n", "  - name: tic-tac\n", "images"},
	}
	for _, tt := range k8sCases {
		t.Run("k8s/"+tt.file+"/"+tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range k8s {
				files[k] = v
			}
			files[tt.file] = []byte(mutate(t, string(k8s[tt.file]), tt.old, tt.new))
			ps, _ := k8sProblems(files, nginxConf, img, known)
			expect(t, ps, tt.want)
		})
	}
	t.Run("k8s/probe path", func(t *testing.T) {
		files := map[string][]byte{}
		for k, v := range k8s {
			files[k] = v
		}
		files["deployment.yaml"] = []byte(mutate(t, string(k8s["deployment.yaml"]), "path: /readyz", "path: /ready"))
		_, dep := k8sProblems(files, nginxConf, img, known)
		expect(t, probeProblems(t, dep), "GET /ready on port")
	})

	ignoreCases := []struct{ name, old, new, want string }{
		{"git sent", ".git\n", "", ".git/HEAD"},
		{"client left out", "tools\n", "tools\nstatic\n", "static/"},
		{"sources left out", "tools\n", "tools\n*.go\n", "main.go"},
	}
	for _, tt := range ignoreCases {
		t.Run(".dockerignore/"+tt.name, func(t *testing.T) {
			expect(t, dockerignoreProblems(t, mutate(t, dockerignore, tt.old, tt.new)), tt.want)
		})
	}

	scriptCases := []struct{ name, old, new, want string }{
		{"cgo", "CGO_ENABLED=0 exec go", "exec go", "CGO_ENABLED"},
		{"trimpath", "-trimpath ", "", "ran go"},
		{"version", "|| version=dev", "|| version=unknown", "without git"},
		{"set -eu", "set -eu\n", "", "set -eu"},
	}
	src := readFile(t, "scripts/build.sh")
	for _, tt := range scriptCases {
		t.Run("build.sh/"+tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "scripts")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, "build.sh")
			if err := os.WriteFile(script, []byte(mutate(t, src, tt.old, tt.new)), 0o755); err != nil {
				t.Fatal(err)
			}
			expect(t, buildScriptProblems(t, script), tt.want)
		})
	}
}
