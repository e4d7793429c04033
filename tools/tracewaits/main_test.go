package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime/trace"
	"strconv"
	"sync"
	"testing"
	"time"
)

// blockOn parks on ch: the site the trace should name.
func blockOn(ch chan struct{}) { <-ch }

// TestRun traces goroutines that each wait on a channel, some for 5 ms and
// some for 400 ms (across the trace's generations, which start about once
// a second), and finds each wait whole, under its site, and the goroutines
// started for them under their creator.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	wait := func(d time.Duration) {
		ch := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { blockOn(ch) })
		time.Sleep(d)
		close(ch)
		wg.Wait()
	}
	for range 20 {
		wait(5 * time.Millisecond)
	}
	var long sync.WaitGroup
	for range 10 {
		long.Go(func() { longWait() })
	}
	long.Wait()
	trace.Stop()
	f.Close()

	var out bytes.Buffer
	if err := run(path, "github.com/tictac/tictac/tools/tracewaits", 10, &out); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(out.String())
		}
	}()
	check := func(site string, n int, min time.Duration) { // site: a regexp
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + site + ` +Waiting->Runnable +n=` + strconv.Itoa(n) + ` p50=([0-9.]+)ms .* total=([0-9.]+m?s)$`)
		m := re.FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("no line with %d waits at %s", n, site)
			return
		}
		if p50, _ := strconv.ParseFloat(m[1], 64); time.Duration(p50*float64(time.Millisecond)) < min {
			t.Errorf("%s: wait p50 %sms, want at least %v", site, m[1], min)
		}
	}
	// The wrapper goroutine's name depends on inlining: TestRun.func1.1 or so.
	check(`tracewaits\.blockOn<tracewaits\.TestRun\.\S+`, 20, 5*time.Millisecond)
	check(`tracewaits\.blockOn<tracewaits\.longWait`, 10*4, 400*time.Millisecond)
	if regexp.MustCompile(`(?m)^tracewaits\.blockOn\S* Waiting->Waiting`).MatchString(out.String()) {
		t.Error("a wait split by the trace's generations")
	}
	if !regexp.MustCompile(`(?m)^new:tracewaits\.TestRun\.func1 +Runnable->Running +n=20 `).MatchString(out.String()) {
		t.Error("no line for the 20 goroutines started by wait")
	}
	if err := run(filepath.Join(t.TempDir(), "missing"), "x", 1, &out); err == nil {
		t.Error("a missing file: got no error")
	}
}

// longWait blocks four times for 400 ms each.
func longWait() {
	for range 4 {
		ch := make(chan struct{})
		time.AfterFunc(400*time.Millisecond, func() { close(ch) })
		blockOn(ch)
	}
}
