package smtpd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // sets message.CharsetReader: all the charsets x/text knows
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Part is an attachment or an inline part.
type Part struct {
	ContentType string // media type, lower case
	// Charset is the charset Body is in: "utf-8" once a text part has been
	// converted, or the declared one when it is unknown (Body as sent).
	Charset    string
	Filename   string // attachments: the cleaned file name
	Attachment bool   // Content-Disposition attachment, or a named non-text part
	Inline     bool   // Content-Disposition inline
	ContentID  string // without the angle brackets
	Body       []byte // transfer encoding undone; text in a known charset converted to UTF-8
}

// Message is a parsed message.
type Message struct {
	Header    mail.Header
	Subject   string // decoded (RFC 2047); control characters replaced by spaces
	From      []*mail.Address
	MessageID string
	Text      string // the first text/plain part that is not an attachment, as UTF-8
	HTML      string // the first text/html part that is not an attachment, as sent (the integrator sanitizes)
	Parts     []Part // every other leaf part, in order
	Raw       []byte // the whole message as received, for pass-through unchanged
	Size      int64
}

// MalformedError is a message whose MIME structure cannot be trusted. Its
// text is safe to show the client; Unwrap has the parser's cause.
type MalformedError struct {
	Reason string
	Err    error
}

func (e *MalformedError) Error() string { return "malformed MIME: " + e.Reason }
func (e *MalformedError) Unwrap() error { return e.Err }

func malformed(reason string, err error) error { return &MalformedError{Reason: reason, Err: err} }

// The structural limits.
const (
	MaxDepth = 20   // multiparts nested deeper are refused
	MaxParts = 1000 // more parts than this are refused
)

// Reasons, as the client reads them after "malformed MIME: ".
const (
	reasonHeader    = "invalid header syntax"
	reasonUnclosed  = "the multipart boundary is never closed"
	reasonBoundary  = "a multipart part has no boundary"
	reasonStructure = "the multipart structure is invalid"
	reasonDepth     = "parts are nested more than 20 deep"
	reasonParts     = "more than 1000 parts"
	reasonBase64    = "a part's base64 encoding is invalid"
	reasonQP        = "a part's quoted-printable encoding is invalid"
	reasonDecode    = "a part cannot be decoded"
)

// ParseMessage parses a message: header, body, every part decoded. Any
// structural problem (a header line without a colon, a multipart whose
// closing boundary never comes, bad base64 or quoted-printable in a part,
// nesting deeper than MaxDepth, more than MaxParts parts) is an error whose
// text is safe for an SMTP reply. An unknown charset or transfer encoding is
// not an error: that part keeps its bytes.
func ParseMessage(raw []byte) (*Message, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, malformed(reasonHeader, err)
	}
	m := &Message{Header: mail.Header{Header: message.Header{Header: h}}, Raw: raw, Size: int64(len(raw))}
	p := &parser{m: m}
	if err := p.walk(m.Header.Header, br, 0); err != nil {
		return nil, err
	}
	if s, err := m.Header.Text("Subject"); err == nil {
		m.Subject = oneLine(s)
	} else {
		m.Subject = oneLine(m.Header.Get("Subject"))
	}
	m.From, _ = m.Header.AddressList("From") // a sender's odd From is not a reason to refuse
	m.MessageID, _ = m.Header.MessageID()
	return m, nil
}

type parser struct {
	m     *Message
	parts int
	text  bool // Text was chosen
	html  bool
}

// walk visits an entity: a multipart's parts in turn, or a leaf.
func (p *parser) walk(h message.Header, body io.Reader, depth int) error {
	mediaType, params := contentType(h)
	if !strings.HasPrefix(mediaType, "multipart/") {
		return p.leaf(h, mediaType, params, body)
	}
	if depth >= MaxDepth {
		return malformed(reasonDepth, nil)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return malformed(reasonBoundary, nil)
	}
	mr := textproto.NewMultipartReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return framing(err)
		}
		if p.parts++; p.parts > MaxParts {
			return malformed(reasonParts, nil)
		}
		if err := p.walk(message.Header{Header: part.Header}, part, depth+1); err != nil {
			return err
		}
	}
}

// framing classifies an error from the multipart reader.
func framing(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(msg, "NextPart: EOF"):
		return malformed(reasonUnclosed, err)
	case strings.Contains(msg, "malformed MIME header"):
		return malformed(reasonHeader, err)
	}
	return malformed(reasonStructure, err)
}

// contentType is the media type and its parameters (filename and name
// decoded from RFC 2047 and 2231). A missing or unparsable Content-Type is
// text/plain, as RFC 2045 §5.2 says; bad parameters keep the type.
func contentType(h message.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return "text/plain", nil
	}
	return strings.ToLower(t), decodeParams(params)
}

func decodeParams(params map[string]string) map[string]string {
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	for k, v := range params {
		if strings.Contains(v, "=?") {
			if d, err := dec.DecodeHeader(v); err == nil {
				params[k] = d
			}
		}
	}
	return params
}

// leaf reads one part: its raw bytes (where a missing boundary shows),
// then its transfer encoding and charset.
func (p *parser) leaf(h message.Header, mediaType string, params map[string]string, body io.Reader) error {
	encoded, err := io.ReadAll(body)
	if err != nil {
		return framing(err)
	}
	data, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), encoded)
	if err != nil {
		return err
	}
	charset := strings.ToLower(params["charset"])
	isText := strings.HasPrefix(mediaType, "text/")
	if isText && charset != "" && charset != "utf-8" && charset != "us-ascii" && message.CharsetReader != nil {
		if r, err := message.CharsetReader(charset, bytes.NewReader(data)); err == nil {
			converted, err := io.ReadAll(r)
			if err != nil {
				return malformed(reasonDecode, err)
			}
			data, charset = converted, "utf-8"
		}
	}

	disp, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	disp = strings.ToLower(disp)
	dparams = decodeParams(dparams)
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	filename := cleanFilename(name)
	attachment := disp == "attachment" || (filename != "" && !isText)

	switch {
	case mediaType == "text/plain" && !attachment && !p.text:
		p.text, p.m.Text = true, strings.ToValidUTF8(string(data), "\uFFFD")
		return nil
	case mediaType == "text/html" && !attachment && !p.html:
		p.html, p.m.HTML = true, strings.ToValidUTF8(string(data), "\uFFFD")
		return nil
	}
	p.m.Parts = append(p.m.Parts, Part{
		ContentType: mediaType, Charset: charset, Filename: filename,
		Attachment: attachment, Inline: disp == "inline",
		ContentID: strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>"),
		Body:      data,
	})
	return nil
}

// decodeTransfer undoes a Content-Transfer-Encoding. An unknown one leaves
// the bytes as they are.
func decodeTransfer(cte string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := make([]byte, 0, len(b))
		for _, c := range b {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				clean = append(clean, c)
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, malformed(reasonBase64, err)
		}
		return out[:n], nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err != nil {
			return nil, malformed(reasonQP, err)
		}
		return out, nil
	}
	return b, nil
}

// cleanFilename keeps the last path element of a sent file name, without
// control characters, bidirectional overrides (which make "exe.pdf" look
// like "fdp.exe") or leading and trailing dots and spaces, in at most 255
// bytes. A name with nothing left becomes "attachment".
func cleanFilename(name string) string {
	if name == "" {
		return ""
	}
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r < ' ', r == 0x7f, r >= 0x80 && r < 0xa0:
			return -1
		case r == '\u200e', r == '\u200f', r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return -1
		}
		return r
	}, name)
	name = strings.Trim(name, " .")
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" {
		return "attachment"
	}
	return name
}

// oneLine replaces control characters (CR and LF included) with spaces.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}
