package smtpd

import (
	"fmt"
	"strings"
	"testing"
)

// The end-of-data sequences from the SMTP smuggling research (SEC Consult,
// December 2023; CVE-2023-51764/51765/51766): a server that takes one of
// them for CRLF.CRLF reads the rest as a second, smuggled message. Here each
// one must get the whole message refused, and nothing accepted.
var smuggling = []struct{ name, seq string }{
	{"LF.LF", "\n.\n"},
	{"LF.CRLF", "\n.\r\n"},
	{"CR.CR", "\r.\r"},
	{"CR.CRLF", "\r.\r\n"},
	{"CRLF.CR", "\r\n.\r"}, // go-smtp drops the ".\r": only the raw tap sees it
	{"CRLF.LF", "\r\n.\n"},
	{"CR.LF", "\r.\n"},
	{"LF.CR", "\n.\r"},
	{"CRLF NUL.CRLF", "\r\n\x00.\r\n"},
	{"CRLF.NUL CRLF", "\r\n.\x00\r\n"},
	{"CRLF.CRCRLF", "\r\n.\r\r\n"},
}

// smuggled is the second message, as an attacker appends it.
const smuggled = "MAIL FROM:<ceo@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" +
	"From: ceo@example.org\r\nSubject: smuggled\r\n\r\nWire the money.\r\n.\r\n"

func TestSmugglingRefused(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, tt := range smuggling {
		for _, port := range []Port{PortRelay, PortSubmission} {
			t.Run(fmt.Sprintf("%s/%s", tt.name, port), func(t *testing.T) {
				var r *raw
				if port == PortRelay {
					r = dialRaw(t, f.relay)
					r.hello()
				} else {
					r = dialRaw(t, f.sub)
					r.login(f.roots) // the tap reads after TLS
				}
				r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
				r.cmd("RCPT TO:<bob@example.org>", 250, "")
				r.cmd("DATA", 354, "")
				r.send("From: " + aliceAddr + "\r\nSubject: first\r\n\r\nfirst" + tt.seq + smuggled)
				r.expect(550, "5.6.0")
				if !r.closed() {
					t.Error("the connection stayed open")
				}
			})
		}
	}
	if got := f.messages(); len(got) != 0 {
		t.Errorf("accepted %d messages, want none; first subject %q", len(got), got[0].msg.Subject)
	}
}

// A proper CRLF.CRLF does end the first message; the appended commands are
// then commands, and their data, sent before the 354, is refused.
func TestSmugglingControl(t *testing.T) {
	t.Parallel()
	f := start(t)
	r := dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send("From: " + aliceAddr + "\r\nSubject: first\r\n\r\nfirst\r\n.\r\n" + smuggled)
	r.expect(250, "Queued as")
	r.expect(250, "") // MAIL
	r.expect(250, "") // RCPT
	r.expect(354, "") // DATA, whose data was already sent
	r.expect(550, "5.5.0 Message refused: data sent before the 354 reply")
	if !r.closed() {
		t.Error("the connection stayed open")
	}
	got := f.messages()
	if len(got) != 1 || got[0].msg.Subject != "first" || strings.Contains(string(got[0].msg.Raw), "smuggled") {
		t.Fatalf("accepted %+v", got)
	}
}
