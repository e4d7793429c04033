package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrAnomalies is returned by Report.Err, and by Main, when a run saw protocol anomalies.
var ErrAnomalies = errors.New("protocol anomalies")

// Report is what a Play run measured. Counts and latencies cover the
// measured window (after the ramp); errors, timeouts and anomalies cover the
// whole run until its end.
type Report struct {
	// URLs to Duration repeat the run's PlayConfig.
	URLs     []string      `json:"urls"`
	Players  int           `json:"players"`
	Think    time.Duration `json:"-"`
	Jitter   float64       `json:"jitter"`
	Ramp     time.Duration `json:"-"`
	Duration time.Duration `json:"-"`
	// Elapsed is the measured window as run (shorter than Duration when cancelled).
	Elapsed time.Duration `json:"-"`

	// Connected and Waiting are the players connected, and those waiting for
	// an opponent, when the window closed.
	Connected int64 `json:"connected"`
	Waiting   int64 `json:"waiting"`

	// Moves counts confirmed moves, Games finished games (Draws of them
	// drawn), Abandoned games whose player left.
	Moves       int64   `json:"moves"`
	Games       int64   `json:"games"`
	Draws       int64   `json:"draws"`
	Abandoned   int64   `json:"abandoned"`
	MovesPerSec float64 `json:"movesPerSec"`
	GamesPerSec float64 `json:"gamesPerSec"`

	// Errors counts error frames, by code in ErrorCodes.
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"errorCodes,omitempty"`
	// Timeouts counts moves and joins not confirmed within the timeout.
	Timeouts int64 `json:"timeouts"`
	// DialErrors counts failed handshakes, Disconnects sockets lost mid-run;
	// FirstError describes the first of either.
	DialErrors  int64  `json:"dialErrors"`
	Disconnects int64  `json:"disconnects"`
	FirstError  string `json:"firstError,omitempty"`

	// AnomalyCount counts protocol anomalies, by kind in AnomalyKinds; Anomalies
	// keeps the first ones in full.
	AnomalyCount int64                 `json:"anomalyCount"`
	AnomalyKinds map[AnomalyKind]int64 `json:"anomalyKinds,omitempty"`
	Anomalies    []Anomaly             `json:"anomalies,omitempty"`

	// Resume runs only: Resends counts moves sent again for want of an ack,
	// Gaps updateGrids that skipped moves missed while away, Unfinished the
	// games still in progress when the run ended, Cut the players still at
	// it when Finish ran out (stopped rather than done), and Acked the moves
	// the server acknowledged, by game id, in the order acknowledged.
	Resends    int64                  `json:"resends,omitempty"`
	Gaps       int64                  `json:"gaps,omitempty"`
	Unfinished int64                  `json:"unfinished,omitempty"`
	Cut        int64                  `json:"cut,omitempty"`
	Acked      map[string][]AckedMove `json:"-"`
	// Joined counts, by game id, the players told they joined it (joinGame
	// for a game new to them): 2 for every game, unless a reply was lost.
	Joined map[string]int `json:"-"`
	// UnfinishedGames describes the first of the Unfinished: who, where.
	UnfinishedGames []string `json:"unfinishedGames,omitempty"`

	// Mover is the time from sending fillSquare to the mover's own
	// updateGrid; Opponent from that send to the opponent's updateGrid.
	Mover    Latency `json:"mover"`
	Opponent Latency `json:"opponent"`
	// Stalls says whether the opponent latencies at the p99 and above came
	// spread over the run or in a few short stretches (nil when the p99 is
	// under 100µs).
	Stalls *Stalls `json:"stalls,omitempty"`

	// Probe summarises PlayConfig.Probe's calls in the measured window (nil
	// without one); ProbeErrors counts those that failed, whose time is not
	// in it.
	Probe       *Latency `json:"probe,omitempty"`
	ProbeName   string   `json:"probeName,omitempty"`
	ProbeErrors int64    `json:"probeErrors,omitempty"`

	// Machine is how busy the machine and the load generator were in the
	// measured window: read a latency against it.
	Machine Machine `json:"machine"`

	// MoverHist and OpponentHist are the histograms the latencies come from.
	MoverHist    *HistogramSnapshot `json:"moverHist,omitempty"`
	OpponentHist *HistogramSnapshot `json:"opponentHist,omitempty"`
}

// Err returns an error wrapping ErrAnomalies, listing the first anomalies,
// when the run saw any; otherwise nil. Timing never makes it fail.
func (r *Report) Err() error {
	if r.AnomalyCount == 0 {
		return nil
	}
	var b strings.Builder
	for i, a := range r.Anomalies {
		if i == 5 {
			fmt.Fprintf(&b, "\n  ...")
			break
		}
		fmt.Fprintf(&b, "\n  %s", a)
	}
	return fmt.Errorf("%w: %d seen:%s", ErrAnomalies, r.AnomalyCount, b.String())
}

// Latency summarises a latency histogram: how many samples, four quantiles
// (each within about 1%), the exact maximum and the mean.
type Latency struct {
	Count                         uint64
	P50, P90, P99, P999, Max, Avg time.Duration
}

func summarize(s *HistogramSnapshot) Latency {
	return Latency{
		Count: s.N, P50: s.Quantile(0.5), P90: s.Quantile(0.9), P99: s.Quantile(0.99),
		P999: s.Quantile(0.999), Max: s.Max, Avg: s.Mean(),
	}
}

// ms is d in milliseconds, to the microsecond, as the JSON reports say times.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MarshalJSON writes the latencies in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count uint64  `json:"count"`
		P50   float64 `json:"p50Ms"`
		P90   float64 `json:"p90Ms"`
		P99   float64 `json:"p99Ms"`
		P999  float64 `json:"p999Ms"`
		Max   float64 `json:"maxMs"`
		Avg   float64 `json:"avgMs"`
	}{l.Count, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Avg)})
}

// MarshalJSON writes durations as Go duration strings.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		*plain
		Think    string `json:"think"`
		Ramp     string `json:"ramp"`
		Duration string `json:"duration"`
		Elapsed  string `json:"elapsed"`
	}{(*plain)(r), r.Think.String(), r.Ramp.String(), r.Duration.String(), r.Elapsed.Round(time.Millisecond).String()})
}

func (r *run) report(ended time.Duration, waiting, connected int64) *Report {
	elapsed := ended - r.rampEnd
	elapsed = max(min(elapsed, r.end-r.rampEnd), 0)
	mover, opp := r.mover.Snapshot(), r.opponent.Snapshot()
	rep := &Report{
		URLs: r.cfg.URLs, Players: r.cfg.Players, Think: r.cfg.Think, Jitter: r.cfg.Jitter,
		Ramp: r.cfg.Ramp, Duration: r.cfg.Duration, Elapsed: elapsed,
		Connected: connected, Waiting: waiting,
		Moves: r.moves.Load(), Games: r.finished.Load(), Draws: r.draws.Load(), Abandoned: r.abandoned.Load(),
		Errors: r.errorsN.Load(), Timeouts: r.timeouts.Load(),
		DialErrors: r.dialErrors.Load(), Disconnects: r.disconnects.Load(),
		AnomalyCount: r.anomaliesN.Load(),
		Mover:        summarize(mover), Opponent: summarize(opp),
		MoverHist: mover, OpponentHist: opp,
	}
	// The lowest latency of the p99's bucket: every move in it and over is
	// counted, at least 1% of them, where the p99 itself is its top.
	p99Low, _ := opp.Bucket(min(bucketOf(uint64(rep.Opponent.P99/time.Microsecond)), numBuckets-1))
	rep.Stalls = r.sent.stalls(p99Low, elapsed)
	if s := elapsed.Seconds(); s > 0 {
		rep.MovesPerSec = float64(rep.Moves) / s
		rep.GamesPerSec = float64(rep.Games) / s
	}
	if r.cfg.Probe != nil {
		rep.Probe, rep.ProbeName, rep.ProbeErrors = new(summarize(r.probe.Snapshot())), r.cfg.ProbeName, r.probeErrors.Load()
	}
	rep.Resends, rep.Gaps, rep.Unfinished, rep.Cut = r.resends.Load(), r.gaps.Load(), r.unfinished.Load(), r.cut.Load()
	r.ackMu.Lock()
	rep.Acked, rep.UnfinishedGames, rep.Joined = r.acked, r.unfinishedList, r.joined
	r.ackMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.ErrorCodes = maps.Clone(r.codes)
	rep.AnomalyKinds = maps.Clone(r.kinds)
	rep.Anomalies = slices.Clone(r.anomalies)
	rep.FirstError = r.firstErr
	return rep
}

// Title describes the run's parameters in one line.
func (r *Report) Title() string {
	think := "no think"
	if r.Think > 0 {
		think = "think " + r.Think.String()
		if r.Jitter > 0 {
			think += fmt.Sprintf(" ±%.0f%%", r.Jitter*100)
		}
	}
	return fmt.Sprintf("tictac bench play: %d players, %s, %v after %v ramp, %d url(s)",
		r.Players, think, r.Duration, r.Ramp, len(r.URLs))
}

// WriteText writes the summary table.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintln(w, r.Title())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "latency\tcount\tp50\tp90\tp99\tp99.9\tmax\tavg\t\n")
	rows := []struct {
		name string
		l    Latency
	}{{"mover", r.Mover}, {"opponent", r.Opponent}}
	if r.Probe != nil {
		rows = append(rows, struct {
			name string
			l    Latency
		}{r.ProbeName, *r.Probe})
	}
	for _, l := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.name, l.l.Count,
			fmtDur(l.l.P50), fmtDur(l.l.P90), fmtDur(l.l.P99), fmtDur(l.l.P999), fmtDur(l.l.Max), fmtDur(l.l.Avg))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if r.Stalls != nil {
		fmt.Fprintln(w, r.Stalls)
	}
	fmt.Fprintf(w, "moves/s %.1f  games/s %.1f  over %v\n", r.MovesPerSec, r.GamesPerSec, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "moves %d  games %d (draws %d)  abandoned %d  connected %d  waiting %d\n",
		r.Moves, r.Games, r.Draws, r.Abandoned, r.Connected, r.Waiting)
	fmt.Fprintf(w, "errors %d%s  timeouts %d  dial errors %d  disconnects %d\n",
		r.Errors, fmtCounts(r.ErrorCodes), r.Timeouts, r.DialErrors, r.Disconnects)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	if r.ProbeErrors > 0 {
		fmt.Fprintf(w, "%s errors %d\n", r.ProbeName, r.ProbeErrors)
	}
	if r.Acked != nil {
		n := 0
		for _, ms := range r.Acked {
			n += len(ms)
		}
		fmt.Fprintf(w, "acknowledged moves %d in %d games  resends %d  gaps %d  unfinished %d  cut %d\n",
			n, len(r.Acked), r.Resends, r.Gaps, r.Unfinished, r.Cut)
	}
	fmt.Fprintln(w, r.Machine)
	_, err := fmt.Fprintf(w, "anomalies %d%s\n", r.AnomalyCount, fmtCounts(r.AnomalyKinds))
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	if err := jsonEncoder(w).Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func fmtCounts[K ~string](m map[K]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// fmtDur prints a latency with three significant digits in a fitting unit.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// progress prints a progress line every second until ctx is done.
func (r *run) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastMoves int64
	last := r.mover.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		moves, now := r.movesAll.Load(), r.mover.Snapshot()
		// The run's p99 so far, and the last second's, where a stall shows.
		line := fmt.Sprintf("%5.0fs  conn %d  moves/s %d  games %d  err %d  timeouts %d  p99 %s (last 1s %s)",
			r.now().Seconds(), r.connected.Load(), moves-lastMoves, r.finished.Load(),
			r.errorsN.Load(), r.timeouts.Load(), fmtDur(now.Quantile(0.99)), fmtDur(now.Since(last).Quantile(0.99)))
		lastMoves, last = moves, now
		writeProgress(r.cfg.Progress, r.cfg.Terminal, line)
	}
}

func writeProgress(w io.Writer, terminal bool, line string) {
	if terminal {
		fmt.Fprintf(w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(w, line)
	}
}

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc
}
