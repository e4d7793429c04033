package main

import (
	"bytes"
	"context"
	be "encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func check(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"check"}, args...), func(string) string { return "" }, &out, io.Discard)
	return out.String(), err
}

// TestCheck audits a store after real games, then after tampering with it.
func TestCheck(t *testing.T) {
	t.Parallel()
	dir := playedStore(t)
	out, err := check(t, "-data", dir)
	if err != nil || !strings.Contains(out, "4 games") || !strings.Contains(out, "ok: the stats agree") {
		t.Fatalf("check of a sound store: %v\n%s", err, out)
	}

	edit := func(fn func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(filepath.Join(dir, "tictac.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	// A counter that ran ahead of the games.
	edit(func(tx *bolt.Tx) error {
		var v [8]byte
		be.BigEndian.PutUint64(v[:], 22)
		return tx.Bucket([]byte("stats")).Put([]byte("totalMoves"), v[:])
	})
	out, err = check(t, "-data", dir)
	if !errors.Is(err, errCheckFailed) || !strings.Contains(out, "FAIL  totalMoves") {
		t.Fatalf("check after a counter was bumped: %v\n%s", err, out)
	}
	// A game whose history is not legal: O moves twice.
	edit(func(tx *bolt.Tx) error {
		doc := `{"id":"forged","status":"in-progress","playerX":"a","playerO":"b","created":"2026-01-01T00:00:00Z",` +
			`"moves":[{"x":0,"y":0,"team":"x","at":"2026-01-01T00:00:01Z"},{"x":1,"y":1,"team":"o","at":"2026-01-01T00:00:02Z"},{"x":2,"y":2,"team":"o","at":"2026-01-01T00:00:03Z"}],"away":[0,0],"rematch":[false,false]}`
		return tx.Bucket([]byte("games")).Put([]byte("forged"), []byte(doc))
	})
	out, err = check(t, "-data", dir)
	if !errors.Is(err, errCheckFailed) || !strings.Contains(out, "forged") || !strings.Contains(out, "not your turn") {
		t.Fatalf("check of an illegal game: %v\n%s", err, out)
	}
}
