package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// errProbeResync is a probe call that only read the stored version again,
// after a failed one: counted as failed, not timed.
var errProbeResync = errors.New("rethinkdb probe: resynchronised after an error")

// Where RethinkProbe keeps its documents: apart from tictac's own.
const (
	probeDB    = "tictac_probe"
	probeTable = "probe"
)

// RethinkProbe connects to the RethinkDB server at addr (host:port, on
// loopback unless allowRemote) and returns a probe for PlayConfig.Probe: one
// guarded single-document update, the shape of the query each move makes (an
// update that applies only if the version is the one expected), of a
// document of its own in database tictac_probe, table probe, both created
// if missing. Read against the players' latencies, it says how long the
// server itself took to answer one such query under the same load. done
// deletes the document and disconnects.
func RethinkProbe(ctx context.Context, addr string, allowRemote bool) (probe func(context.Context) error, done func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("rethinkdb probe: address %q: %w", addr, err)
	}
	if !allowRemote && !isLoopback(host) {
		return nil, nil, fmt.Errorf("rethinkdb probe %s: %w", addr, ErrNotLoopback)
	}
	sess, err := r.Connect(r.ConnectOpts{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("rethinkdb probe %s: %w", addr, err)
	}
	for _, q := range []r.Term{r.DBCreate(probeDB), r.DB(probeDB).TableCreate(probeTable)} {
		if _, err := q.RunWrite(sess, r.RunOpts{Context: ctx}); err != nil && !strings.Contains(err.Error(), "already exists") {
			sess.Close()
			return nil, nil, fmt.Errorf("rethinkdb probe %s: create %s.%s: %w", addr, probeDB, probeTable, err)
		}
	}
	var b [8]byte
	rand.Read(b[:])
	id := "probe-" + hex.EncodeToString(b[:])
	doc := r.DB(probeDB).Table(probeTable).Get(id)
	if _, err := r.DB(probeDB).Table(probeTable).Insert(map[string]any{"id": id, "version": 0}).RunWrite(sess, r.RunOpts{Context: ctx}); err != nil {
		sess.Close()
		return nil, nil, fmt.Errorf("rethinkdb probe %s: insert: %w", addr, err)
	}
	version, stale := 0, false
	probe = func(ctx context.Context) error {
		if stale {
			// The last call failed, maybe after the update landed: learn
			// the stored version first, untimed.
			if err := doc.Field("version").ReadOne(&version, sess, r.RunOpts{Context: ctx}); err != nil {
				return fmt.Errorf("rethinkdb probe: read version: %w", err)
			}
			stale = false
			return errProbeResync
		}
		w, err := doc.Update(func(d r.Term) any {
			return r.Branch(d.Field("version").Eq(version), map[string]any{"version": version + 1, "at": time.Now().UnixMilli()}, map[string]any{})
		}).RunWrite(sess, r.RunOpts{Context: ctx})
		if err == nil && w.Replaced != 1 {
			err = errors.New("rethinkdb probe: update refused")
		}
		if err != nil {
			stale = true
			return err
		}
		version++
		return nil
	}
	done = func() {
		doc.Delete().RunWrite(sess) // best effort: the table holds only probes
		sess.Close()
	}
	return probe, done, nil
}

// fsyncProbeSize is what each FsyncProbe call writes: the issue's "one 4 KiB
// fsync".
const fsyncProbeSize = 4 << 10

// FsyncProbe returns a probe for PlayConfig.Probe that times the disk's own
// fsync: each call writes 4 KiB at the start of a file of its own in dir (an
// existing directory, say the server's -data, so that both share the disk)
// and fsyncs it. Read against the players' latencies with a server that
// syncs each move, it says what one durable write costs on that disk under
// the same load. done closes and removes the file.
func FsyncProbe(dir string) (probe func(context.Context) error, done func(), err error) {
	f, err := os.CreateTemp(dir, ".tictac-fsync-probe-*")
	if err != nil {
		return nil, nil, fmt.Errorf("fsync probe: %w", err)
	}
	block := make([]byte, fsyncProbeSize)
	// The first write allocates the block and sets the file's size: done
	// here, untimed, so that every call times the same work.
	_, err = f.Write(block)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, fmt.Errorf("fsync probe: %w", err)
	}
	var n uint64
	probe = func(context.Context) error {
		n++
		binary.LittleEndian.PutUint64(block, n) // each write changes the block
		if _, err := f.WriteAt(block, 0); err != nil {
			return fmt.Errorf("fsync probe: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync probe: %w", err)
		}
		return nil
	}
	done = func() {
		f.Close()
		os.Remove(f.Name())
	}
	return probe, done, nil
}
