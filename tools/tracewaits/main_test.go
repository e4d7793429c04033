package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime/trace"
	"strconv"
	"testing"
	"time"
)

// blockOn parks on ch: the site the trace should name.
func blockOn(ch chan struct{}) { <-ch }

// TestRun traces goroutines that each wait about 5 ms on a channel, and
// finds them under their site with that wait.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		ch, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			blockOn(ch)
		}()
		time.Sleep(5 * time.Millisecond)
		close(ch)
		<-done
	}
	trace.Stop()
	f.Close()

	var out bytes.Buffer
	if err := run(path, "github.com/tictac/tictac/tools/tracewaits", 20, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^tracewaits\.blockOn<tracewaits\.TestRun\.func1 +Waiting->Runnable +n=20 p50=([0-9.]+)ms`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no line for the 20 waits in blockOn:\n%s", out.String())
	}
	if p50, _ := strconv.ParseFloat(m[1], 64); p50 < 5 {
		t.Errorf("blockOn's wait p50 %vms, want at least the 5ms slept", p50)
	}
	if err := run(filepath.Join(t.TempDir(), "missing"), "x", 1, &out); err == nil {
		t.Error("a missing file: got no error")
	}
}
