package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want request
		code string
	}{
		{`{"action":"ping"}`, request{action: actionPing}, ""},
		{`{"action":"joinGame"}`, request{action: actionJoin, mode: "quick"}, ""},
		{`{"action":"joinGame","data":null}`, request{action: actionJoin, mode: "quick"}, ""},
		{`{"action":"joinGame","data":{}}`, request{action: actionJoin, mode: "quick"}, ""},
		{`{"action":"joinGame","data":{"mode":"friend"}}`, request{action: actionJoin, mode: "friend"}, ""},
		{`{"action":"joinGame","data":{"invite":"abc"}}`, request{action: actionJoin, mode: "invite", invite: "abc"}, ""},
		{`{"action":"joinGame","data":{"mode":"bot","level":"hard"}}`, request{action: actionJoin, mode: "bot", level: game.Hard}, ""},
		{`{"action":"joinGame","data":{"mode":"bot","level":"godlike"}}`, request{}, "bad_data"},
		{`{"action":"joinGame","data":{"mode":"bot","invite":"x"}}`, request{}, "bad_data"},
		{`{"action":"joinGame","data":{"gameId":"g1"}}`, request{action: actionJoin, mode: "attach", gameID: "g1"}, ""},
		{`{"action":"hello","data":{"token":"t"}}`, request{action: actionHello, token: "t"}, ""},
		{`{"action":"hello","data":{}}`, request{action: actionHello}, ""},
		{`{"action":"hello","data":{"token":5}}`, request{}, "bad_data"},
		{`{"action":"fillSquare","data":{"gameId":"g","moveId":"m1","coords":{"x":0,"y":0}}}`, request{action: actionFill, gameID: "g", moveID: "m1"}, ""},
		{`{"action":"rematch","data":{"gameId":"g"}}`, request{action: actionRematch, gameID: "g"}, ""},
		{`{"action":"spectate","data":{"gameId":"g"}}`, request{action: actionSpectate, gameID: "g"}, ""},
		{`{"action":"leaveGame","data":{"gameId":"g"}}`, request{action: actionLeave, gameID: "g"}, ""},
		{`{"action":"sync","data":{"gameId":"g"}}`, request{action: actionSync, gameID: "g"}, ""},
		{`{"action":"spectate","data":{}}`, request{}, "bad_data"},
		{`{"action":"listGames"}`, request{action: actionList}, ""},
		{`{"action":"unlistGames"}`, request{action: actionUnlist}, ""},
		{`{"action":"pauseStats"}`, request{action: actionPauseStats}, ""},
		{`{"action":"resumeStats","data":null}`, request{action: actionResumeStats}, ""},
		{`{"action":"fillSquare","data":{"gameId":"g","team":"x","coords":{"x":2,"y":1}}}`, request{action: actionFill, gameID: "g", x: 2, y: 1}, ""},
		{`{"action":"joinGame","data":{"mode":"x"}}`, request{}, "bad_data"},
		{`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":2}}}`, request{}, "bad_data"},
		{`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":2,"y":"1"}}}`, request{}, "bad_data"},
		{`{"action":"fillSquare","data":{"gameId":"` + strings.Repeat("g", maxID+1) + `","coords":{"x":2,"y":1}}}`, request{}, "bad_data"},
		{`{"action":"fillSquare","data":{"gameId":"` + strings.Repeat("g", maxID) + `","coords":{"x":2,"y":1}}}`, request{action: actionFill, gameID: strings.Repeat("g", maxID), x: 2, y: 1}, ""},
		{`{"action":"fly"}`, request{}, "unknown_action"},
		{`{}`, request{}, "bad_json"},
		{`{"action":["ping"]}`, request{}, "bad_json"},
		{`"ping"`, request{}, "bad_json"},
		{``, request{}, "bad_json"},
	}
	for _, tt := range tests {
		got, err := decode([]byte(tt.in))
		var ce *clientError
		switch {
		case tt.code == "" && err != nil:
			t.Errorf("decode(%s) = %v", tt.in, err)
		case tt.code != "" && (!errors.As(err, &ce) || ce.Code != tt.code):
			t.Errorf("decode(%s) error = %v, want %s", tt.in, err, tt.code)
		case got != tt.want:
			t.Errorf("decode(%s) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// FuzzDecode checks that any frame decodes to a request or to a client error,
// never a panic or another kind of error, and that the one-pass read of moves
// agrees with the general decoder.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"action":"ping"}`, `{"action":"joinGame","data":null}`,
		`{"action":"fillSquare","data":{"gameId":"abc","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"abc","coords":{"x":1e9,"y":-2}}}`,
		`{"action":"joinGame","data":{"a":[{}]}}`, `[`, `{"action":null}`,
		` { "data" : { "coords" : { "y" : 0 , "x" : 10 } , "moveId" : "m" , "gameId" : "g" } , "action" : "fillSquare" } `,
		`{"action":"fillSquare","data":{"gameId":"a\u0062","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2,"x":0}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":01,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":2,"y":1},"moveId":"m-1"}}`,
		"{\"action\":\"fillSquare\",\"data\":{\"gameId\":\"g\x7f\",\"coords\":{\"x\":2,\"y\":1}}}",
		`{"action":"pauseStats"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decode(data)
		if want, wantErr := decodeAny(data); req != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("decode(%q) = %+v, %v; the general decoder says %+v, %v", data, req, err, want, wantErr)
		}
		if err != nil {
			var ce *clientError
			if !errors.As(err, &ce) || ce.Code == "" || ce.Message == "" {
				t.Fatalf("decode(%q) = %v, not a client error", data, err)
			}
			return
		}
		if req.action < actionPing || req.action > actionResumeStats {
			t.Fatalf("decode(%q) = %+v with no action", data, req)
		}
		if !json.Valid(data) {
			t.Fatalf("decode accepted invalid JSON %q", data)
		}
	})
}

// The frames clients send take decodeFill's one pass (a regression there
// would cost CPU, not correctness), and frames it does not read exactly as
// encoding/json would go the general way.
func TestDecodeFill(t *testing.T) {
	t.Parallel()
	fast := []string{
		// tictac bench play, the page (static/moves.js), bench play -resume.
		`{"action":"fillSquare","data":{"gameId":"abcdefghijkl","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g1","coords":{"x":0,"y":2},"moveId":"m-1"}}`,
		`{"action":"fillSquare","data":{"gameId":"g1","coords":{"x":2,"y":0},"moveId":"m-2"}}`,
		"\t{ \"data\" :{\"moveId\":\"\",\"coords\":{ \"y\":1,\"x\":9999 },\"gameId\":\"\"},\"action\":\"fillSquare\"}\n",
	}
	for _, in := range fast {
		got, ok := decodeFill([]byte(in))
		want, err := decodeAny([]byte(in))
		if !ok || err != nil || got != want {
			t.Errorf("decodeFill(%s) = %+v, %v; want %+v from the general path (err %v)", in, got, ok, want, err)
		}
	}
	slow := []string{
		`{"action":"fillSquare","data":{"gameId":"a\u0062","coords":{"x":1,"y":2}}}`, // an escape
		`{"action":"fillSquare","data":{"gameId":"é","coords":{"x":1,"y":2}}}`,       // not ASCII
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2},"team":"x"}}`,
		`{"Action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2,"y":1}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"x":0,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","gameId":"h","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2},"coords":{"x":0,"y":0}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1.0,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1e0,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":-1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":01,"y":2}}}`, // not JSON
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":10000,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2}}} x`,
		`{"action":"fillSquare","data":{"gameId":null,"coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1,"y":2},"moveId":"` + strings.Repeat("m", maxID+1) + `"}}`,
		`{"action":"fillSquare","data":{"gameId":"` + strings.Repeat("g", maxID+1) + `","coords":{"x":1,"y":2}}}`,
		`{"action":"fillSquare","data":{"gameId":"g","coords":{"x":1}}}`,
		`{"action":"fillSquare"}`,
		`{"action":"ping"}`,
	}
	for _, in := range slow {
		if got, ok := decodeFill([]byte(in)); ok {
			t.Errorf("decodeFill(%s) = %+v; want the general path", in, got)
		}
		got, err := decode([]byte(in))
		want, wantErr := decodeAny([]byte(in))
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("decode(%s) = %+v, %v; the general path says %+v, %v", in, got, err, want, wantErr)
		}
	}
}

func BenchmarkDecodeFill(b *testing.B) {
	msg := []byte(`{"action":"fillSquare","data":{"gameId":"abcdefghijkl","coords":{"x":1,"y":2}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A game line that does not parse is dropped with a warning: the store is
// not told, and nothing panics.
func TestLearnMalformed(t *testing.T) {
	g := benchGame()
	g.Version = 4
	good := busMessage(&g, store.EncodeGame(&g), frameGrid(&g))
	good = good[bytes.LastIndexByte(good, '\n')+1:]
	l := &decoding{}
	h := New(l, NewMemoryBus(), Options{Logger: slog.New(slog.DiscardHandler)})
	for _, line := range []string{
		`{"action":"storedGame","version":`,
		`{"action":"storedGame","version":}`,
		`{"action":"storedGame","version":,"data":}`,
		`{"action":"storedGame","version":x,"data":{}}`,
		`{"action":"storedGame","version":4,"data"}`,
		`{"action":"storedGame","version":4,"data":{"id":"x"`,
	} {
		l.calls = 0
		h.learn(g.ID, []byte(line))
		if l.calls != 0 {
			t.Errorf("%s: the store was told", line)
		}
	}
	for _, line := range []string{
		`{"action":"storedGame","version":4,"data":}`,
		`{"action":"storedGame","version":4,"data":{"id":"x"}}`,
		strings.Replace(string(good), `"version":4,`, `"version":5,`, 1), // not the game's version
	} {
		l.calls, l.err = 0, nil
		h.learn(g.ID, []byte(line))
		if l.calls == 1 && l.err == nil {
			t.Errorf("%s: decoded without an error", line)
		}
	}
	l.calls, l.err = 0, nil
	h.learn(g.ID, good)
	if l.calls != 1 || l.err != nil {
		t.Errorf("the good line: told %d times, %v", l.calls, l.err)
	}
}
