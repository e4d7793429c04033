// Command tracewaits reads a Go execution trace (from /debug/pprof/trace)
// and prints, for each place where goroutines block, how long they stayed
// blocked and then how long they waited for a core once runnable: the
// hand-offs on a request's path, which a CPU profile does not show.
//
//	curl -o trace.out 'http://127.0.0.1:8081/debug/pprof/trace?seconds=5'
//	go run ./tools/tracewaits trace.out
//
// A goroutine is keyed by the first two frames of this module's code in its
// stack when it blocked (or, for a new goroutine, its creator's first
// frame, "new:..."); "X->Runnable" is how long it stayed blocked, then
// "Runnable->Running" how long it waited for a core once woken
// ("Preempted->Running" once preempted). Lines with fewer than -min samples
// are left out.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	minSamples := flag.Int("min", 50, "leave out lines with fewer samples")
	module := flag.String("module", "github.com/tictac/tictac", "whose frames name a site")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tracewaits [-min N] [-module path] trace.out")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *module, *minSamples, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tracewaits:", err)
		os.Exit(1)
	}
}

// goroutine is where a goroutine last blocked and since when.
type goroutine struct {
	since trace.Time
	site  string
	phase string
}

func run(path, module string, minSamples int, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return err
	}
	gs := map[trace.GoID]*goroutine{}
	waits := map[string][]time.Duration{}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		from, to := st.Goroutine()
		if from == to {
			// A new generation of the trace (about one a second) states
			// each goroutine's state again: the wait goes on.
			continue
		}
		id := st.Resource.Goroutine()
		if to == trace.GoNotExist {
			delete(gs, id)
			continue
		}
		g := gs[id]
		if g == nil {
			g = &goroutine{}
			gs[id] = g
		}
		switch {
		case from == trace.GoNotExist && to == trace.GoRunnable:
			// The stack is the creator's.
			g.site, g.phase = "new:"+site(ev.Stack(), module, 1), "Runnable"
		case from == trace.GoRunning:
			// The stack is the goroutine's own: where it blocks, or where
			// it was preempted (Preempted->Running, apart from the woken).
			g.site, g.phase = site(ev.Stack(), module, 2), to.String()
			if to == trace.GoRunnable {
				g.phase = "Preempted"
			}
		case g.site != "":
			k := g.site + " " + g.phase + "->" + to.String()
			waits[k] = append(waits[k], time.Duration(ev.Time()-g.since))
			if to == trace.GoRunnable {
				g.phase = "Runnable"
			}
		}
		g.since = ev.Time()
	}
	keys := make([]string, 0, len(waits))
	for k, d := range waits {
		if len(d) >= minSamples {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%-80s %s\n", k, summary(waits[k]))
	}
	return nil
}

// site names a stack by its first n frames of module's code.
func site(s trace.Stack, module string, n int) string {
	var names []string
	for fr := range s.Frames() {
		if len(names) < n && strings.HasPrefix(fr.Func, module) {
			names = append(names, fr.Func[strings.LastIndex(fr.Func, "/")+1:])
		}
	}
	if len(names) == 0 {
		return "?"
	}
	return strings.Join(names, "<")
}

func summary(d []time.Duration) string {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(float64(len(d)-1)*p)].Round(time.Microsecond) }
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v p99.9=%v max=%v total=%v",
		len(d), q(.5), q(.9), q(.99), q(.999), d[len(d)-1].Round(time.Microsecond), sum.Round(time.Millisecond))
}
