package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/tictac/tictac/store"
)

// errCheckFailed is what `tictac check` returns when the store is inconsistent.
var errCheckFailed = errors.New("check failed")

// auditable is what `tictac check` reads from a store.
type auditable interface {
	Games(ctx context.Context, fn func(store.Game) bool) error
	Stats(ctx context.Context) (store.Stats, error)
}

// runCheck is `tictac check [flags]`: it opens the store the same flags name
// and verifies that every stored game is a legal sequence of moves and that
// the stats counters equal what the games say. It prints a report and fails
// if anything is off. The embedded store's file must not be in use.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer st.Close()
	a, ok := st.(auditable)
	if !ok {
		return errors.New("check: this store cannot be audited")
	}
	return audit(ctx, a, stdout)
}

// audit compares the stats with the games and writes what it found to w.
func audit(ctx context.Context, a auditable, w io.Writer) error {
	var want store.Stats
	games := 0
	// Loading a game replays its moves with the rules, so an illegal history
	// fails here, naming the game and the move.
	err := a.Games(ctx, func(g store.Game) bool {
		games++
		d := store.Expected(&g)
		for i, v := range d {
			want[i] += v
		}
		return true
	})
	if err != nil {
		fmt.Fprintf(w, "FAIL  a stored game is not a legal game: %v\n", err)
		return errCheckFailed
	}
	got, err := a.Stats(ctx)
	if err != nil {
		return fmt.Errorf("check: read stats: %w", err)
	}
	fmt.Fprintf(w, "%d games, every one a legal sequence of moves\n", games)
	bad := 0
	for i := range store.NumStats {
		s := store.Stat(i)
		if s == store.PlayersOnline {
			continue // a gauge of connected players, not a fact about games
		}
		status := "ok  "
		if got[s] != want[s] {
			status, bad = "FAIL", bad+1
		}
		fmt.Fprintf(w, "%s  %-16s stats %-8d games say %d\n", status, s, got[s], want[s])
	}
	if bad > 0 {
		return errCheckFailed
	}
	fmt.Fprintln(w, "ok: the stats agree with the games")
	return nil
}
