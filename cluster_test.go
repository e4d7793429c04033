package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/loadgen"
	"github.com/tictac/tictac/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds tictac once per test process, with the Dockerfile's build.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("testdata", "bin"))
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tictac")
		// The very build the Dockerfile runs.
		out, err := exec.Command("scripts/build.sh", binPath, "test").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("scripts/build.sh: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cluster is the seed's full stack on loopback: Redis, a RethinkDB-protocol
// server, replicas of the real binary, and NGINX in front of them.
type cluster struct {
	redisURL, rethink, db string
	redis                 *testenv.Process
	dbProxy               *testenv.Proxy // between the replicas and the database, when proxied
	checker               *store.Rethink
	replicas              []*replica
	nginx                 string
}

type replica struct {
	name, addr string
	args       []string // its command line, to start it again
	proc       *testenv.Process
}

// start starts the replica's process (again) and waits until it is healthy.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.proc = testenv.Start(t, binary(t), r.args...)
	r.proc.WaitTCP(t, r.addr)
	waitHealthy(t, "http://"+r.addr)
}

func (r *replica) ws() string { return "ws://" + r.addr + "/live" }

// newCluster starts the stack with n replicas; grace is their -grace.
func newCluster(t *testing.T, n int, grace time.Duration) *cluster {
	t.Helper()
	return startCluster(t, clusterOptions{replicas: n, grace: grace})
}

// clusterOptions shape the stack that startCluster starts.
type clusterOptions struct {
	replicas int
	grace    time.Duration // the replicas' -grace
	// proxiedDB: the replicas reach the database through c.dbProxy, which
	// the test can cut.
	proxiedDB bool
	// redisCluster: a Redis Cluster of three masters instead of one
	// server (c.redis is then nil).
	redisCluster bool
}

func startCluster(t *testing.T, opt clusterOptions) *cluster {
	t.Helper()
	bin := binary(t)
	c := &cluster{db: "t" + store.NewID()}
	if opt.redisCluster {
		c.redisURL, _ = testenv.RedisCluster(t, 3, 0)
	} else {
		c.redisURL, c.redis = testenv.Redis(t)
	}
	c.rethink = testenv.RethinkDB(t)
	db := c.rethink
	if opt.proxiedDB {
		c.dbProxy = testenv.StartProxy(t, c.rethink)
		db = c.dbProxy.Addr
	}
	var upstreams []string
	for i := range opt.replicas {
		r := &replica{name: fmt.Sprintf("r%d", i), addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
		r.args = []string{"-addr", r.addr, "-redis", c.redisURL, "-rethinkdb", db,
			"-rethinkdb-db", c.db, "-replica", r.name, "-log-format", "json", "-log-level", "debug", "-grace", opt.grace.String()}
		r.proc = testenv.Start(t, bin, r.args...)
		r.proc.WaitTCP(t, r.addr)
		c.replicas = append(c.replicas, r)
		upstreams = append(upstreams, r.addr)
	}
	for _, r := range c.replicas {
		waitHealthy(t, "http://"+r.addr)
	}
	c.nginx = testenv.Nginx(t, upstreams)
	return c
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// joins reads the replica's log and returns, for each game, the team that
// joined it there.
func (r *replica) joins(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(r.proc.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Msg, Game, Team string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "joined game" {
			out[line.Game] = append(out[line.Game], line.Team)
		}
	}
	return out
}

// TestCluster plays 300 players through NGINX over 3 replicas and checks that
// games span replicas, nothing is malformed, and every replica ends with the
// same stats, equal to what the games table says.
func TestCluster(t *testing.T) {
	// Not parallel: reqlite answers one query at a time, and the zero-error
	// check in playThrough is about correctness, not about a starved machine.
	c := newCluster(t, 3, 300*time.Millisecond) // short: the games left at the end must end
	playThrough(t, c, 300, 6*time.Second)

	// One refused move, for the metrics to count.
	x, o := wstest.Dial(t, "ws://"+c.nginx+"/live"), wstest.Dial(t, "ws://"+c.nginx+"/live")
	wstest.Pair(t, x, o)
	o.Send(wstest.Fill(o.GameID, 0, 0))
	o.ExpectError("not_your_turn")
	x.Move(o, 1, 1)
	x.WS.Close(websocket.StatusNormalClosure, "")
	o.WS.Close(websocket.StatusNormalClosure, "")

	// Every replica converges on the games table's own numbers, once the
	// games the players walked out of are forfeited.
	var want map[string]int64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if want = tableStats(t, c); want["gamesInProgress"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d games still in progress after every player left", want["gamesInProgress"])
		}
	}
	for _, r := range c.replicas {
		awaitStatsAt(t, r.ws(), want)
	}
	// The replicas' metrics add up to the same games and moves.
	var applied, ended, refused float64
	for _, r := range c.replicas {
		m := scrape(t, "http://"+r.addr+"/metrics")
		applied += m[`tictac_moves_total{result="applied"}`]
		refused += m[`tictac_moves_total{result="not_your_turn"}`]
		for _, res := range []string{"x", "o", "draw", "abandoned"} {
			ended += m[`tictac_games_finished_total{result="`+res+`"}`]
		}
	}
	if refused != 1 {
		t.Errorf("metrics count %v moves refused as not_your_turn, want the 1 the test made", refused)
	}
	if int64(applied) != want["totalMoves"] || int64(ended) != want["totalGames"] {
		t.Errorf("metrics say %v moves applied and %v games ended; the games table says %d and %d",
			applied, ended, want["totalMoves"], want["totalGames"])
	}
	checkSubscriptions(t, c)
	// The replicas add their counts every 200ms, and the last games end by
	// forfeit a moment after their players left: give them a few seconds.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := check(t, "-rethinkdb", c.rethink, "-rethinkdb-db", c.db)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tictac check on the cluster's database: %v\n%s", err, out)
		}
	}
}

// scrape reads a Prometheus text exposition into name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// store opens the cluster's database as one more replica would (once; it
// stays open until the test ends).
func (c *cluster) store(t *testing.T) *store.Rethink {
	t.Helper()
	if c.checker != nil {
		return c.checker
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.OpenRethink(ctx, store.RethinkOptions{Addrs: []string{c.rethink}, DB: c.db, Replica: "checker-" + store.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.checker = st
	return st
}

// tableStats computes the stats from the games table, with 1 player online
// (the watcher that reads them).
func tableStats(t *testing.T, c *cluster) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var s store.Stats
	err := c.store(t).Games(ctx, func(g store.Game) bool {
		switch g.Status {
		case game.Waiting:
			return true
		case game.InProgress:
			s[store.GamesInProgress]++
		case game.Finished:
			if g.Winner == game.X {
				s[store.WonByX]++
			} else {
				s[store.WonByO]++
			}
		case game.FinishedDraw:
			s[store.TiedGames]++
		case game.Abandoned:
			s[store.AbandonedGames]++
		}
		s[store.TotalGames]++
		s[store.TotalMoves] += int64(g.Moves)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for i, v := range s {
		out[store.Stat(i).String()] = v
	}
	out["playersOnline"] = 1
	return out
}

// awaitStatsAt connects to one replica and waits until its stats equal want.
func awaitStatsAt(t *testing.T, url string, want map[string]int64) {
	t.Helper()
	w := wstest.Dial(t, url)
	defer w.WS.Close(websocket.StatusNormalClosure, "")
	got := map[string]int64{}
	deadline := time.Now().Add(15 * time.Second)
	for !equal(got, want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %v, want %v", url, got, want)
		}
		time.Sleep(50 * time.Millisecond)
		w.LatestStats(got)
	}
}

// TestClusterOnRedisCluster plays through NGINX over 3 replicas bridged by
// a Redis Cluster of three masters instead of one server: the bus spreads
// the games' channels over the masters (hub's cluster tests check how), and
// players on different replicas still play each other.
func TestClusterOnRedisCluster(t *testing.T) {
	c := startCluster(t, clusterOptions{replicas: 3, grace: 300 * time.Millisecond, redisCluster: true})
	playThrough(t, c, 100, 3*time.Second)
}

// playThrough plays players through c's NGINX for d and checks that they
// played without protocol anomalies or errors, and that games spanned
// replicas.
func playThrough(t *testing.T, c *cluster, players int, d time.Duration) {
	t.Helper()
	rep, err := loadgen.Play(context.Background(), loadgen.PlayConfig{
		URLs: []string{"ws://" + c.nginx + "/live"}, Players: players, Think: 20 * time.Millisecond,
		Duration: d, Ramp: time.Second, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Games < int64(players/3) || rep.Errors != 0 || rep.Timeouts != 0 {
		t.Fatalf("%d games, %d error frames %v, %d timeouts; want games and no errors", rep.Games, rep.Errors, rep.ErrorCodes, rep.Timeouts)
	}
	t.Logf("through nginx: %d games, %d moves", rep.Games, rep.Moves)

	// Games whose two players sat on different replicas.
	where := map[string]map[string]string{} // game -> team -> replica
	for _, r := range c.replicas {
		for g, teams := range r.joins(t) {
			if where[g] == nil {
				where[g] = map[string]string{}
			}
			for _, team := range teams {
				where[g][team] = r.name
			}
		}
	}
	var across, both int
	for _, seats := range where {
		if seats["x"] != "" && seats["o"] != "" {
			both++
			if seats["x"] != seats["o"] {
				across++
			}
		}
	}
	t.Logf("%d games with both players logged, %d across replicas", both, across)
	if both == 0 || across < both/4 {
		t.Errorf("only %d of %d games spanned replicas", across, both)
	}
}

// checkSubscriptions pairs players on chosen replicas and counts the Redis
// subscribers of their game's channel: one per replica with a player in it,
// none once they leave.
func checkSubscriptions(t *testing.T, c *cluster) {
	t.Helper()
	opt, err := rueidis.ParseURL(c.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx := context.Background()
	numsub := func(gameID string) int64 {
		res, err := rc.Do(ctx, rc.B().Arbitrary("PUBSUB", "SHARDNUMSUB").Args("tictac:game:"+gameID).Build()).ToArray()
		if err != nil || len(res) != 2 {
			t.Fatalf("PUBSUB SHARDNUMSUB: %v", err)
		}
		n, _ := res[1].AsInt64()
		return n
	}
	eventually := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tt := range []struct {
		name string
		a, b *replica
		subs int64
	}{
		{"across replicas", c.replicas[0], c.replicas[1], 2},
		{"on one replica", c.replicas[2], c.replicas[2], 1},
	} {
		x, o := wstest.Dial(t, tt.a.ws()), wstest.Dial(t, tt.b.ws())
		wstest.Pair(t, x, o)
		x.Move(o, 1, 1)
		o.Move(x, 0, 0)
		if n := numsub(x.GameID); n != tt.subs {
			t.Errorf("%s: %d subscribers of the game's channel, want %d", tt.name, n, tt.subs)
		}
		x.WS.Close(websocket.StatusNormalClosure, "")
		o.Expect("playerAway")
		o.ExpectStatus("abandoned")
		o.WS.Close(websocket.StatusNormalClosure, "")
		eventually(tt.name+": channel unsubscribed", func() bool { return numsub(x.GameID) == 0 })
	}
	eventually("no game channels left", func() bool {
		chans, err := rc.Do(ctx, rc.B().Arbitrary("PUBSUB", "SHARDCHANNELS").Build()).AsStrSlice()
		return err == nil && len(chans) == 0
	})
}
