package mailer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Limits on what ParseDSN reads: a bounce comes from anyone who can reach
// the bounce address, so memory stays bounded whatever it holds.
const (
	maxDSNBytes       = 10 << 20 // the whole message
	maxDSNHeaderBytes = 1 << 20  // its header
	maxStatusBytes    = 64 << 10 // the delivery-status part, decoded
	maxDSNRecipients  = 1000     // recipient blocks in it
)

// ErrDSNTooLarge means a bounce passed one of ParseDSN's limits.
var ErrDSNTooLarge = errors.New("delivery status notification too large")

// Actions a DSN reports for a recipient (RFC 3464 section 2.3.3).
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
	ActionExpanded  = "expanded"
)

// DSN is a delivery status notification (RFC 3464): what one MTA reports
// about the delivery of one message to its recipients.
type DSN struct {
	ReportingMTA       string    // the MTA that wrote the report, without its "dns;" type
	ArrivalDate        time.Time // UTC; zero if absent or unreadable
	OriginalEnvelopeID string
	Recipients         []DSNRecipient // at least one
}

// DSNRecipient is one per-recipient block of a DSN. Addresses and MTA names
// are given without their type ("rfc822;", "dns;") and comments.
type DSNRecipient struct {
	FinalRecipient    string
	OriginalRecipient string
	Action            string // one of the Action constants
	Status            string // RFC 3463 code, "5.1.1"
	RemoteMTA         string
	DiagnosticCode    string    // as written, its type included: "smtp; 550 5.1.1 ..."
	LastAttemptDate   time.Time // UTC; zero if absent or unreadable
	WillRetryUntil    time.Time // UTC; zero if absent or unreadable
}

// ParseDSN reads a bounce: an RFC 5322 message whose top-level type is
// multipart/report with report-type delivery-status (or
// global-delivery-status), holding a message/delivery-status part (or its
// RFC 6533 form message/global-delivery-status, or text/delivery-status as
// some software labels it). Only that part is read; the explanation and
// the returned message are skipped unread. Field names are
// case-insensitive, folded lines are unfolded and comments are dropped
// (except from Diagnostic-Code, which is free text).
//
// Every block needs Final-Recipient, a known Action and a valid Status; a
// date that cannot be read is left zero rather than losing the bounce.
// Errors say what is wrong without quoting the message.
func ParseDSN(r io.Reader) (*DSN, error) {
	in := &cappedReader{r: r, left: maxDSNBytes}
	d, err := parseDSN(in)
	if in.over {
		return nil, fmt.Errorf("%w: the message is larger than %d MiB", ErrDSNTooLarge, maxDSNBytes>>20)
	}
	if err != nil {
		return nil, err
	}
	// Read to the end, so that a message over the limit is refused even when
	// its report came first.
	if _, err := io.Copy(io.Discard, in); in.over {
		return nil, fmt.Errorf("%w: the message is larger than %d MiB", ErrDSNTooLarge, maxDSNBytes>>20)
	} else if err != nil {
		return nil, fmt.Errorf("read the message: %w", err)
	}
	return d, nil
}

func parseDSN(r io.Reader) (*DSN, error) {
	e, err := message.ReadWithOptions(r, &message.ReadOptions{MaxHeaderBytes: maxDSNHeaderBytes})
	if err != nil {
		// go-message's text quotes the offending line: keep it out.
		if strings.Contains(err.Error(), "header exceeds maximum size") {
			return nil, fmt.Errorf("%w: the message header is larger than %d MiB", ErrDSNTooLarge, maxDSNHeaderBytes>>20)
		}
		return nil, errors.New("not a delivery status notification: the message header is malformed")
	}
	if e.Header.Get("Content-Type") == "" {
		return nil, errors.New("not a delivery status notification: the message has no Content-Type")
	}
	typ, params, err := e.Header.ContentType()
	if err != nil {
		return nil, errors.New("not a delivery status notification: its Content-Type is malformed")
	}
	if typ != "multipart/report" {
		// A parsed media type is a token: safe to show, once cut short.
		return nil, fmt.Errorf("not a delivery status notification: Content-Type is %s", cut(typ, 64))
	}
	switch rt := strings.ToLower(params["report-type"]); rt {
	case "delivery-status", "global-delivery-status":
	case "":
		return nil, errors.New("not a delivery status notification: multipart/report has no report-type")
	default:
		return nil, fmt.Errorf("not a delivery status notification: report-type is %s, not delivery-status", quoteShort(rt))
	}
	if params["boundary"] == "" {
		return nil, errors.New("not a delivery status notification: multipart/report has no boundary")
	}

	mr := e.MultipartReader()
	var d *DSN
	for n := 1; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownEncoding(err) && !message.IsUnknownCharset(err) {
			if d != nil {
				// The report is read; a returned message cut short after it
				// (some MTAs truncate it) does not lose the bounce.
				break
			}
			return nil, fmt.Errorf("multipart/report: part %d is malformed", n)
		}
		ptyp, _, _ := p.Header.ContentType()
		switch ptyp {
		case "message/delivery-status", "message/global-delivery-status", "text/delivery-status":
		default:
			continue // the next NextPart skips its body
		}
		if d != nil {
			return nil, fmt.Errorf("multipart/report: part %d is a second delivery-status part", n)
		}
		if message.IsUnknownEncoding(err) {
			return nil, errors.New("delivery-status part: unknown Content-Transfer-Encoding")
		}
		// An unknown charset leaves the bytes as they are: the fields are
		// ASCII (or UTF-8 in the global form) anyway.
		body, err := io.ReadAll(io.LimitReader(p.Body, maxStatusBytes+1))
		if err != nil {
			return nil, errors.New("delivery-status part: cannot be read (bad encoding or cut short)")
		}
		if len(body) > maxStatusBytes {
			return nil, fmt.Errorf("%w: the delivery-status part is larger than %d KiB", ErrDSNTooLarge, maxStatusBytes>>10)
		}
		if d, err = parseStatus(body); err != nil {
			return nil, fmt.Errorf("delivery-status part: %w", err)
		}
	}
	if d == nil {
		return nil, errors.New("not a delivery status notification: multipart/report has no message/delivery-status part")
	}
	return d, nil
}

// parseStatus reads the fields of a delivery-status part: a group of
// per-message fields, then one group per recipient, groups separated by
// blank lines.
func parseStatus(body []byte) (*DSN, error) {
	groups := splitGroups(body)
	if len(groups) == 0 {
		return nil, errors.New("it is empty")
	}
	msgFields, err := readGroup(groups[0])
	if err != nil {
		return nil, fmt.Errorf("per-message fields: %w", err)
	}
	d := &DSN{
		ReportingMTA:       mtaName(msgFields.Get("Reporting-MTA")),
		ArrivalDate:        parseDate(msgFields.Get("Arrival-Date")),
		OriginalEnvelopeID: strings.TrimSpace(msgFields.Get("Original-Envelope-Id")),
	}
	blocks := groups[1:]
	// Some software writes everything in one group; read it as both.
	if msgFields.Has("Final-Recipient") || msgFields.Has("Action") {
		blocks = groups
	}
	if len(blocks) == 0 {
		return nil, errors.New("it has no recipient blocks")
	}
	if len(blocks) > maxDSNRecipients {
		return nil, fmt.Errorf("%w: more than %d recipient blocks", ErrDSNTooLarge, maxDSNRecipients)
	}
	d.Recipients = make([]DSNRecipient, 0, len(blocks))
	for i, g := range blocks {
		rcpt, err := readRecipient(g)
		if err != nil {
			return nil, fmt.Errorf("recipient block %d %w", i+1, err)
		}
		d.Recipients = append(d.Recipients, rcpt)
	}
	return d, nil
}

// splitGroups cuts the part at blank (or white-space only) lines and drops
// empty groups.
func splitGroups(body []byte) [][]byte {
	var groups [][]byte
	var cur []byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i+1], body[i+1:]
		} else {
			body = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if len(cur) > 0 {
				groups = append(groups, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, line...)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

func readGroup(g []byte) (textproto.Header, error) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(g)))
	if err != nil {
		// go-message's text quotes the line: keep it out.
		return h, errors.New("has a line that is not a \"Name: value\" field")
	}
	return h, nil
}

// readRecipient reads one per-recipient block. Its errors complete
// "recipient block N ...".
func readRecipient(g []byte) (DSNRecipient, error) {
	h, err := readGroup(g)
	if err != nil {
		return DSNRecipient{}, err
	}
	for _, name := range []string{"Final-Recipient", "Action", "Status"} {
		if n := len(h.Values(name)); n > 1 {
			return DSNRecipient{}, fmt.Errorf("has %d %s fields", n, name)
		}
	}
	r := DSNRecipient{
		FinalRecipient:    address(h.Get("Final-Recipient")),
		OriginalRecipient: address(h.Get("Original-Recipient")),
		Action:            strings.ToLower(strings.TrimSpace(stripComments(h.Get("Action")))),
		RemoteMTA:         mtaName(h.Get("Remote-MTA")),
		DiagnosticCode:    strings.TrimSpace(h.Get("Diagnostic-Code")),
		LastAttemptDate:   parseDate(h.Get("Last-Attempt-Date")),
		WillRetryUntil:    parseDate(h.Get("Will-Retry-Until")),
	}
	switch r.Action {
	case ActionFailed, ActionDelayed, ActionDelivered, ActionRelayed, ActionExpanded:
	case "":
		return r, errors.New("has no Action")
	default:
		return r, fmt.Errorf("has Action %s, not failed, delayed, delivered, relayed or expanded", quoteShort(r.Action))
	}
	status := strings.Fields(stripComments(h.Get("Status")))
	if len(status) == 0 {
		return r, errors.New("has no Status")
	}
	if !validStatus(status[0]) {
		return r, fmt.Errorf("has Status %s, not an RFC 3463 code like 5.1.1", quoteShort(status[0]))
	}
	r.Status = status[0]
	if r.FinalRecipient == "" {
		return r, errors.New("has no Final-Recipient")
	}
	return r, nil
}

// validStatus reports whether s is class.subject.detail (RFC 3463): class
// 2, 4 or 5, then one to three digits twice.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// address is the address of a typed address field ("rfc822; <a@b>" is
// "a@b"); a value without a type is taken whole.
func address(v string) string {
	v = strings.TrimSpace(stripComments(v))
	if _, rest, ok := strings.Cut(v, ";"); ok {
		v = strings.TrimSpace(rest)
	}
	if len(v) >= 2 && v[0] == '<' && v[len(v)-1] == '>' {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	return v
}

// mtaName is the name in an MTA field ("dns; mx.example.test." is
// "mx.example.test").
func mtaName(v string) string {
	v = address(v)
	if f := strings.Fields(v); len(f) > 0 {
		v = f[0]
	}
	return strings.TrimSuffix(v, ".")
}

func parseDate(v string) time.Time {
	v = strings.TrimSpace(stripComments(v))
	if v == "" {
		return time.Time{}
	}
	t, err := netmail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// stripComments removes RFC 5322 comments (nested parentheses) outside
// quoted strings, honouring backslash escapes. An unclosed comment runs to
// the end.
func stripComments(s string) string {
	if !strings.ContainsRune(s, '(') {
		return s
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (depth > 0 || quoted):
			if depth == 0 {
				b.WriteByte(c)
				if i+1 < len(s) {
					b.WriteByte(s[i+1])
				}
			}
			i++
		case depth > 0:
			switch c {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					b.WriteByte(' ')
				}
			}
		case c == '"':
			quoted = !quoted
			b.WriteByte(c)
		case c == '(' && !quoted:
			depth = 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// quoteShort quotes a value for an error message, cut to 64 bytes.
func quoteShort(s string) string { return fmt.Sprintf("%q", cut(s, 64)) }

// cut shortens s to at most n bytes, on a UTF-8 boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// NotificationIDFromAddress returns the notification id in a VERP envelope
// sender as Envelope.ReturnPath builds it: "bounces+ID@domain", the prefix
// in any case, the id non-empty and of lower-case letters and digits only.
// Surrounding angle brackets are allowed.
func NotificationIDFromAddress(addr string) (id string, ok bool) {
	addr = strings.TrimSpace(addr)
	if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
		addr = addr[1 : len(addr)-1]
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return "", false
	}
	local := addr[:at]
	const prefix = "bounces+"
	if len(local) <= len(prefix) || !strings.EqualFold(local[:len(prefix)], prefix) {
		return "", false
	}
	id = local[len(prefix):]
	if len(id) > 64 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return "", false
		}
	}
	return id, true
}

// cappedReader reads at most left bytes of r and notes when r holds more.
type cappedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.over {
		return 0, ErrDSNTooLarge
	}
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.over = true
			return 0, ErrDSNTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
