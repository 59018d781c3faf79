package smtpd

import (
	"strings"
	"testing"
)

// The tap must agree with go-smtp's reader on where the data ends and how
// many bytes it passes on, however the stream is cut into reads.
func TestScanAgreesWithReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		out  int64
		bad  string
		done bool
	}{
		{"Subject: a\r\n\r\nbody\r\n.\r\n", 20, "", true},
		{"..x\r\n.\r\nMAIL FROM:<x>\r\n", 4, "", true},
		{".\r\n", 0, "", true},
		{"a\r\n.\rb\r\n.\r\n", 6, "bare CR", true},
		{"a\n.\n", 4, "bare LF", false},
		{"a\r\n\x00.\r\n", 7, "NUL", false},
		{"a\r\r\n.\r\nz\r\n.\r\n", 10, "bare CR", true},
		{strings.Repeat("x", 5000) + "\r\n.\r\n", 5002, "", true},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 2, 3, 7, 4096} {
			var s scan
			for b := []byte(tt.in); len(b) > 0; {
				n := min(size, len(b))
				s.feed(b[:n])
				b = b[n:]
			}
			if s.out != tt.out || s.bad != tt.bad || s.done != tt.done {
				t.Errorf("%q in reads of %d: out %d bad %q done %v, want %d %q %v", tt.in, size, s.out, s.bad, s.done, tt.out, tt.bad, tt.done)
			}
		}
	}
}

func TestBareProblem(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a\r\nb\r\n": "", "": "", "a\nb": "bare LF", "a\rb": "bare CR", "a\r": "bare CR",
		"\n\r": "bare CR", "a\x00\r\n": "NUL", "\r\r\n": "bare CR",
	} {
		if got := bareProblem([]byte(in)); got != want {
			t.Errorf("bareProblem(%q) = %q, want %q", in, got, want)
		}
	}
}
