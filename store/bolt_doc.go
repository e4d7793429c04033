package store

import (
	"encoding/json"
	"strconv"
	"time"
)

// encodeGame returns the JSON of toDoc(g, queue), byte for byte what
// json.Marshal writes, without reflection: the embedded store writes it once
// per move. Strings that JSON would escape and times it would refuse go
// through json.Marshal.
func encodeGame(g *Game, queue uint64) ([]byte, error) {
	if b, ok := appendGame(make([]byte, 0, 256+96*len(g.History)), g, queue); ok {
		return b, nil
	}
	return json.Marshal(toDoc(g, queue))
}

func appendGame(b []byte, g *Game, queue uint64) ([]byte, bool) {
	ok := true
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, key...)
		b, ok = appendPlain(b, v, ok)
	}
	tm := func(key string, t time.Time, omitZero bool) {
		if omitZero && t.IsZero() {
			return
		}
		b = append(b, key...)
		b, ok = appendTime(b, t, ok)
	}
	str(`{"id":`, g.ID, false)
	str(`,"status":`, g.Status.String(), false)
	str(`,"playerX":`, g.PlayerX, false)
	str(`,"playerO":`, g.PlayerO, true)
	b = append(b, `,"moves":[`...)
	for i, m := range g.History {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"x":`...)
		b = strconv.AppendInt(b, int64(m.X), 10)
		b = append(b, `,"y":`...)
		b = strconv.AppendInt(b, int64(m.Y), 10)
		str(`,"team":`, m.Team.String(), false)
		tm(`,"at":`, m.At, false)
		str(`,"id":`, m.ID, true)
		b = append(b, '}')
	}
	b = append(b, ']')
	str(`,"winner":`, g.Winner.String(), true)
	tm(`,"created":`, g.Created, false)
	tm(`,"started":`, g.Started, true)
	tm(`,"ended":`, g.Ended, true)
	if queue != 0 {
		b = append(b, `,"queue":`...)
		b = strconv.AppendUint(b, queue, 10)
	}
	str(`,"mode":`, g.Mode.String(), true)
	str(`,"level":`, g.Level, true)
	str(`,"invite":`, g.Invite, true)
	str(`,"reason":`, g.Reason, true)
	b = append(b, `,"away":[`...)
	b = strconv.AppendInt(b, g.Away[0], 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, g.Away[1], 10)
	b = append(b, `],"rematch":[`...)
	b = strconv.AppendBool(b, g.Rematch[0])
	b = append(b, ',')
	b = strconv.AppendBool(b, g.Rematch[1])
	b = append(b, ']')
	str(`,"next":`, g.Next, true)
	b = append(b, `,"spectators":`...)
	b = strconv.AppendInt(b, int64(g.Spectators), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, g.Version, 10)
	b = append(b, '}')
	return b, ok
}

// appendPlain quotes s if JSON would write it unescaped; otherwise it
// reports !ok.
func appendPlain(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), ok
}

// appendTime writes t as time.Time.MarshalJSON does, or reports !ok for the
// times it refuses.
func appendTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}
