// Package testenv starts the real services the tests run against (redis-server,
// nginx, a RethinkDB-protocol server) on loopback, with free ports and temp dirs.
package testenv

import (
	"bytes"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Need returns the path of program, or ends the test: it fails when CI=true
// (a missing dependency is a broken CI machine) and skips otherwise, naming
// the command that installs it (./test.sh installs everything).
func Need(tb testing.TB, program, install string) string {
	tb.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found: run ./test.sh, which installs it (%s)", program, install)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago. It is
// drawn below the kernel's ephemeral range (32768-60999 on Linux), where
// ":0" listeners and the source ports of outgoing connections come from, so
// that the many connections a test makes cannot take it before the service
// it is meant for listens on it. Ports are handed out once per process.
func FreePort(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		port := 20000 + portRand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	tb.Fatal("no free port in 20000-31999")
	return 0
}

var (
	portMu     sync.Mutex
	portsGiven = map[int]bool{}
	portRand   = mrand.New(mrand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
)

// Root returns the repository root (the directory of go.mod).
func Root(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate testenv source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Process is a service started for a test.
type Process struct {
	Cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error
}

// Start runs the command in the background, kills it when the test ends, and
// logs its output if the test failed.
func Start(tb testing.TB, name string, args ...string) *Process {
	tb.Helper()
	p := &Process{Cmd: exec.Command(name, args...), output: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.output, p.output
	// Its own process group, so that Stop also ends the children it forks
	// (nginx's workers), which would otherwise hold its output open.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.Cmd.WaitDelay = 5 * time.Second
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("%s output:\n%s", filepath.Base(name), p.Output())
		}
	})
	return p
}

// Stop kills the process and its children and waits for it.
func (p *Process) Stop() { p.Signal(syscall.SIGKILL) }

// Signal sends sig to the process and its children. For SIGKILL it also waits
// for the process to end.
func (p *Process) Signal(sig syscall.Signal) {
	if p.Exited() && sig != syscall.SIGKILL {
		return
	}
	syscall.Kill(-p.Cmd.Process.Pid, sig)
	if sig == syscall.SIGKILL {
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.output.String() }

// WaitTCP waits until addr accepts connections, failing the test after 20s or
// as soon as p exits.
func (p *Process) WaitTCP(tb testing.TB, addr string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p.Exited() {
			tb.Fatalf("%s exited before listening on %s: %v\n%s", p.Cmd.Path, addr, p.err, p.Output())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not listening on %s after 20s\n%s", p.Cmd.Path, addr, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Restart stops the process and starts the same command again (same port,
// same directory), waiting until addr accepts connections.
func (p *Process) Restart(tb testing.TB, addr string) *Process {
	tb.Helper()
	p.Stop()
	n := Start(tb, p.Cmd.Path, p.Cmd.Args[1:]...)
	n.WaitTCP(tb, addr)
	return n
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }
