package hub

// decodeFill reads a move, the frame nearly every client sends:
//
//	{"action":"fillSquare","data":{"gameId":"...","coords":{"x":1,"y":2},"moveId":"..."}}
//
// with its keys in any order and any whitespace between tokens, in one pass
// and without reflection: decoding moves with encoding/json was a tenth of a
// busy replica's CPU. It reports false for anything it does not read exactly
// as encoding/json would: escapes or non-ASCII bytes in strings, a key it
// does not know or one given twice, a number that is not a small
// non-negative integer, null, anything after the object. decode then takes
// the general path, which FuzzDecode checks it agrees with.
func decodeFill(b []byte) (request, bool) {
	s := scanner{b: b}
	r := request{action: actionFill}
	var action, data bool
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "action":
			v, ok := s.str()
			action = ok && !action && string(v) == "fillSquare"
			return action
		case "data":
			data = !data && s.fillData(&r)
			return data
		}
		return false
	})
	s.space()
	return r, ok && action && data && s.i == len(s.b)
}

// fillData reads fillSquare's data object into r.
func (s *scanner) fillData(r *request) bool {
	var game, move, coords bool
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "gameId":
			v, ok := s.str()
			if !ok || game || len(v) > maxID {
				return false
			}
			r.gameID, game = string(v), true
		case "moveId":
			v, ok := s.str()
			if !ok || move || len(v) > maxID {
				return false
			}
			r.moveID, move = string(v), true
		case "coords":
			coords = !coords && s.coords(r)
			return coords
		default:
			return false
		}
		return true
	}) && game && coords
}

// coords reads {"x": n, "y": n} into r.
func (s *scanner) coords(r *request) bool {
	var x, y bool
	return s.object(func(key []byte) bool {
		n, ok := s.num()
		switch {
		case !ok:
			return false
		case string(key) == "x" && !x:
			r.x, x = n, true
		case string(key) == "y" && !y:
			r.y, y = n, true
		default:
			return false
		}
		return true
	}) && x && y
}

// object reads an object, calling member with each member's key once the
// scanner is at its value; member reads the value and reports whether it
// takes it. object reports false if a member was not taken or the object is
// not well-formed.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.open() {
		return false
	}
	for more := !s.close(); more; {
		key, ok := s.key()
		if !ok || !member(key) {
			return false
		}
		if more, ok = s.next(); !ok {
			return false
		}
	}
	return true
}

// scanner reads the few JSON tokens decodeFill needs from b, from i on.
type scanner struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte reads c, after any whitespace.
func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) open() bool { return s.byte('{') }

// close reads the '}' of an object that has no members.
func (s *scanner) close() bool { return s.byte('}') }

// next reads what follows a member: ',' (more follow) or '}' (the end).
func (s *scanner) next() (more, ok bool) {
	if s.byte(',') {
		return true, true
	}
	return false, s.byte('}')
}

// key reads a member's name and its ':'.
func (s *scanner) key() ([]byte, bool) {
	k, ok := s.str()
	return k, ok && s.byte(':')
}

// str reads a string of ASCII from space to DEL with no escapes (which
// encoding/json keeps as they are), and returns its bytes, which alias b.
func (s *scanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// num reads a non-negative integer of at most four digits, written as JSON
// writes it (no leading zeros). A fraction or an exponent after it is left
// unread, so the caller's next token fails.
func (s *scanner) num() (int, bool) {
	s.space()
	start, n := s.i, 0
	for ; s.i < len(s.b) && s.i-start < 5 && '0' <= s.b[s.i] && s.b[s.i] <= '9'; s.i++ {
		n = n*10 + int(s.b[s.i]-'0')
	}
	digits := s.i - start
	return n, digits > 0 && digits <= 4 && (digits == 1 || s.b[start] != '0')
}
