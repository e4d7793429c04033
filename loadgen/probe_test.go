package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/tictac/tictac/internal/testenv"
)

// TestPlayProbe: a play run calls its probe through the measured window
// only, one call at a time, and reports the calls it timed and those that
// failed apart.
func TestPlayProbe(t *testing.T) {
	t.Parallel()
	var calls, inFlight, overlap, early atomic.Int64
	start := time.Now()
	const ramp = 300 * time.Millisecond
	rep, err := Play(t.Context(), PlayConfig{
		URLs: []string{startRelay(t)}, Players: 10, Duration: time.Second, Ramp: ramp, Think: 20 * time.Millisecond,
		ProbeName: "probe", ProbeEvery: 10 * time.Millisecond,
		Probe: func(context.Context) error {
			if time.Since(start) < ramp {
				early.Add(1)
			}
			if inFlight.Add(1) > 1 {
				overlap.Add(1)
			}
			defer inFlight.Add(-1)
			time.Sleep(time.Millisecond)
			if calls.Add(1)%10 == 0 {
				return errors.New("every tenth call fails")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Probe == nil {
		t.Fatal("no probe in the report")
	}
	n := calls.Load()
	if n < 50 || n > 101 {
		t.Errorf("%d probe calls in a 1s window every 10ms, want 50-101", n)
	}
	if got, want := int64(rep.Probe.Count)+rep.ProbeErrors, n; got != want {
		t.Errorf("report: %d timed + %d failed, want %d calls", rep.Probe.Count, rep.ProbeErrors, want)
	}
	if rep.ProbeErrors != n/10 {
		t.Errorf("report: %d failed, want %d", rep.ProbeErrors, n/10)
	}
	if rep.Probe.P50 < time.Millisecond {
		t.Errorf("probe p50 %v, want at least the 1ms each call sleeps", rep.Probe.P50)
	}
	if early.Load() != 0 || overlap.Load() != 0 {
		t.Errorf("%d calls during the ramp, %d overlapping: want none", early.Load(), overlap.Load())
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "\n     probe ") || !strings.Contains(text.String(), "probe errors") {
		t.Errorf("text report lacks the probe's row or its errors:\n%s", text.String())
	}
}

// TestRethinkProbe runs `tictac bench play -rethinkdb-probe` against the
// RethinkDB-protocol server: the probe's updates land, one per call, on a
// document of its own that it deletes at the end.
func TestRethinkProbe(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	var out, errOut bytes.Buffer
	err := Main(t.Context(), []string{"play", "-url", startRelay(t), "-players", "4", "-duration", "1s", "-ramp", "0",
		"-quiet", "-json", "-rethinkdb-probe", addr, "-probe-every", "10ms"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench play: %v\n%s", err, errOut.String())
	}
	var rep struct {
		Probe *struct {
			Count int64   `json:"count"`
			P50   float64 `json:"p50Ms"`
		} `json:"probe"`
		ProbeName   string `json:"probeName"`
		ProbeErrors int64  `json:"probeErrors"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Probe == nil || rep.Probe.Count < 20 || rep.ProbeErrors != 0 || rep.ProbeName != "db probe" {
		t.Fatalf("probe in the report: %+v, %d errors, name %q; want at least 20 timed updates and no errors", rep.Probe, rep.ProbeErrors, rep.ProbeName)
	}
	if rep.Probe.P50 <= 0 {
		t.Errorf("probe p50 %v ms, want above 0", rep.Probe.P50)
	}

	// What it left: the probes' table, without their documents.
	sess, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var left int
	if err := r.DB(probeDB).Table(probeTable).Count().ReadOne(&left, sess); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d probe documents left, want 0", left)
	}

	// A probe's update lands once per call and refuses a stale version.
	probe, done, err := RethinkProbe(t.Context(), addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for range 3 {
		if err := probe(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var docs []map[string]any
	cur, err := r.DB(probeDB).Table(probeTable).Run(sess)
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(&docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0]["version"] != float64(3) {
		t.Fatalf("probe documents %v, want one at version 3", docs)
	}
	if _, err := r.DB(probeDB).Table(probeTable).Get(docs[0]["id"]).Update(map[string]any{"version": 7}).RunWrite(sess); err != nil {
		t.Fatal(err)
	}
	if err := probe(t.Context()); err == nil {
		t.Error("probe after its document moved on: got no error")
	}
	// It learns the stored version again (one call, not timed) and goes on.
	if err := probe(t.Context()); !errors.Is(err, errProbeResync) {
		t.Errorf("the call after a refusal = %v, want errProbeResync", err)
	}
	for range 2 {
		if err := probe(t.Context()); err != nil {
			t.Fatalf("probe after resynchronising: %v", err)
		}
	}
}

func TestRethinkProbeRefusesRemote(t *testing.T) {
	t.Parallel()
	if _, _, err := RethinkProbe(t.Context(), "192.0.2.1:28015", false); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("got %v, want ErrNotLoopback", err)
	}
	if _, _, err := RethinkProbe(t.Context(), "no-port", false); err == nil {
		t.Error("address without a port: got no error")
	}
}

// TestFsyncProbe runs `tictac bench play -fsync-probe`: each call writes
// and syncs 4 KiB of a file of its own, which is gone at the end.
func TestFsyncProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := Main(t.Context(), []string{"play", "-url", startRelay(t), "-players", "4", "-duration", "1s", "-ramp", "0",
		"-quiet", "-fsync-probe", dir, "-probe-every", "10ms"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench play: %v\n%s", err, errOut.String())
	}
	if !regexp.MustCompile(`\n +disk probe +[1-9]`).MatchString(out.String()) || strings.Contains(out.String(), "probe errors") {
		t.Errorf("report lacks the disk probe's row, or has errors:\n%s", out.String())
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("probe left %v in its directory", left)
	}

	probe, done, err := FsyncProbe(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := probe(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("probe files %v, want one", files)
	}
	b, err := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != fsyncProbeSize || binary.LittleEndian.Uint64(b) != 3 {
		t.Errorf("probe file: %d bytes, counter %d; want %d bytes written 3 times", len(b), binary.LittleEndian.Uint64(b), fsyncProbeSize)
	}
	done()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("done left %v", left)
	}
}
