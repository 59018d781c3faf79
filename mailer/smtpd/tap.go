package smtpd

import "bytes"

// Bare CR and LF, and how go-smtp v0.25.1 reads DATA.
//
// go-smtp's data reader (data.go, taken from net/textproto without its
// CRLF → LF rewrite) ends the data only at CRLF "." CRLF, so "\n.\n",
// "\r.\r", "\n.\r\n" and the other smuggling sequences never end a message
// here: what follows them stays inside the same message. It passes bare CR
// and bare LF through unchanged, so Session.Data checks what it got and
// refuses any bare CR, bare LF or NUL: such a message could be split in two
// by the next server that reads it less strictly (SEC Consult, 2023).
//
// One case that check cannot see: at the start of a line the reader drops a
// "." and then a CR that follows it, even when no LF comes next, so
// "\r\n.\rMAIL FROM:…" reaches Data as "\r\nMAIL FROM:…", its bare CR gone.
// go-smtp has no option for this and reads through TLS where no wrapper of
// the socket sees plaintext. Its Debug writer does: it receives every byte
// read, after TLS and before the data reader, and each connection has its
// own go-smtp Server (see conn). While Data runs, nothing is written, so
// everything the tap sees is the client's data as sent; it runs the same
// state machine as the reader plus the bare CR/LF checks.
//
// The tap sees only bytes read from the socket after Data began. A client
// that sends its message before the 354 reply (against RFC 2920 §3.1) has
// some of it read ahead into go-smtp's buffer; the tap then misses that part
// and its count of the reader's output falls short, and the message is
// refused: no part of an accepted message escapes the raw check.

// scan follows the raw bytes of a DATA phase.
type scan struct {
	on     bool
	state  uint8
	prevCR bool
	done   bool   // saw CRLF.CRLF
	out    int64  // bytes go-smtp's reader emits for what was seen
	bad    string // the first problem: "bare CR", "bare LF", "NUL"
}

// The states of go-smtp's data reader, in its order.
const (
	stBeginLine uint8 = iota
	stDot
	stDotCR
	stCR
	stData
)

func (s *scan) feed(p []byte) {
	for i := 0; i < len(p) && !s.done; {
		if s.state == stData && !s.prevCR {
			// Inside a line: skip to the next CR, LF or NUL at once.
			seg := p[i:]
			j := bytes.IndexByte(seg, '\r')
			if j < 0 {
				j = len(seg)
			}
			if k := bytes.IndexByte(seg[:j], '\n'); k >= 0 {
				j = k
			}
			if k := bytes.IndexByte(seg[:j], 0); k >= 0 {
				j = k
			}
			s.out += int64(j)
			if i += j; i == len(p) {
				return
			}
		}
		c := p[i]
		i++
		switch {
		case s.prevCR && c != '\n':
			s.flag("bare CR")
		case c == '\n' && !s.prevCR:
			s.flag("bare LF")
		case c == 0:
			s.flag("NUL")
		}
		s.prevCR = c == '\r'

		// go-smtp's dataReader.Read, byte for byte.
		switch s.state {
		case stBeginLine:
			if c == '.' {
				s.state = stDot
				continue
			}
			if c == '\r' {
				s.state = stCR
			} else {
				s.state = stData
			}
		case stDot:
			if c == '\r' {
				s.state = stDotCR
				continue
			}
			s.state = stData
		case stDotCR:
			if c == '\n' {
				s.done = true
				continue
			}
			s.state = stData
		case stCR:
			if c == '\n' {
				s.state = stBeginLine
			} else {
				s.state = stData
			}
		case stData:
			if c == '\r' {
				s.state = stCR
			}
		}
		s.out++
	}
}

func (s *scan) flag(problem string) {
	if s.bad == "" {
		s.bad = problem
	}
}

// tap is the per-connection go-smtp Debug writer. Only the connection's
// goroutine writes to it and calls begin and end (DATA runs there; BDAT,
// whose Data runs on another goroutine, does not use the tap).
type tap struct{ s scan }

func (t *tap) Write(p []byte) (int, error) {
	if t.s.on {
		t.s.feed(p)
	}
	return len(p), nil
}

func (t *tap) begin() { t.s = scan{on: true} }

func (t *tap) end() scan {
	s := t.s
	t.s = scan{}
	return s
}

// bareProblem reports a bare CR, a bare LF or a NUL in b, the data as go-smtp
// passed it on.
func bareProblem(b []byte) string {
	crlf := bytes.Count(b, []byte("\r\n"))
	switch {
	case bytes.Count(b, []byte("\r")) != crlf:
		return "bare CR"
	case bytes.Count(b, []byte("\n")) != crlf:
		return "bare LF"
	case bytes.IndexByte(b, 0) >= 0:
		return "NUL"
	}
	return ""
}
