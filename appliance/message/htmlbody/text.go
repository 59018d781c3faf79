package htmlbody

import (
	"html"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	nethtml "golang.org/x/net/html"
)

// ToText is the readable text of a body, for quoting in replies, the search
// index and policy scanning. It is the text a reader of the sanitized body
// sees: block elements become line breaks, list items get "- " or "1. ",
// quotes get "> ", links become "text <url>" when the text is not the URL,
// images show their alt text in brackets, entities are decoded and
// whitespace is collapsed outside pre.
func ToText(body string) string {
	w := &textWriter{}
	w.walk(sanitizeNodes(body))
	return w.finish()
}

type textWriter struct {
	b     strings.Builder
	nl    int  // newlines at the end of b
	space bool // a space is due before the next text
	pre   int  // depth of pre elements
	lists []int
}

func (w *textWriter) walk(n *nethtml.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		switch c.Type {
		case nethtml.TextNode:
			w.text(c.Data)
		case nethtml.ElementNode:
			w.element(c)
		}
	}
}

func (w *textWriter) element(n *nethtml.Node) {
	switch n.Data {
	case "br":
		w.raw("\n")
	case "p", "h1", "h2", "h3", "h4", "h5", "h6":
		w.block(2)
		w.walk(n)
		w.block(2)
	case "ul", "ol":
		start := -1
		if n.Data == "ol" {
			start = 0
		}
		w.lists = append(w.lists, start)
		w.block(1)
		w.walk(n)
		w.block(1)
		w.lists = w.lists[:len(w.lists)-1]
	case "li":
		w.block(1)
		w.raw(w.itemPrefix())
		w.walk(n)
		w.block(1)
	case "td", "th":
		w.space = true
		w.walk(n)
		w.space = true
	case "pre":
		w.block(1)
		w.pre++
		w.walk(n)
		w.pre--
		w.block(1)
	case "hr":
		w.block(1)
		w.raw("----")
		w.block(1)
	case "blockquote":
		sub := &textWriter{}
		sub.walk(n)
		quoted := sub.finish()
		w.block(1)
		if quoted != "" {
			for line := range strings.SplitSeq(quoted, "\n") {
				if line == "" {
					w.raw(">\n")
				} else {
					w.raw("> " + line + "\n")
				}
			}
		}
		w.block(1)
	case "a":
		start := w.b.Len()
		w.walk(n)
		text := w.b.String()[start:]
		if target, ok := textTarget(attr(n, "href")); ok && !sameTarget(text, target) {
			w.text(" <" + target + ">")
		}
	case "img":
		if alt := strings.TrimSpace(attr(n, "alt")); alt != "" {
			w.text("[" + alt + "]")
		}
	case "div", "table", "thead", "tbody", "tfoot", "tr", "caption":
		w.block(1)
		w.walk(n)
		w.block(1)
	default:
		w.walk(n)
	}
}

func (w *textWriter) itemPrefix() string {
	if len(w.lists) == 0 {
		return "- "
	}
	indent := strings.Repeat("  ", len(w.lists)-1)
	top := &w.lists[len(w.lists)-1]
	if *top < 0 {
		return indent + "- "
	}
	*top++
	return indent + strconv.Itoa(*top) + ". "
}

// text writes character data, collapsing white space outside pre.
func (w *textWriter) text(s string) {
	if w.pre > 0 {
		w.raw(strings.ReplaceAll(s, "\r\n", "\n"))
		return
	}
	for _, r := range s {
		if unicode.IsSpace(r) {
			w.space = true
			continue
		}
		if w.space && w.b.Len() > 0 && w.nl == 0 {
			w.b.WriteByte(' ')
		}
		w.space = false
		w.b.WriteRune(r)
		w.nl = 0
	}
}

// raw writes s as it is.
func (w *textWriter) raw(s string) {
	if s == "" {
		return
	}
	if w.space && w.b.Len() > 0 && w.nl == 0 && s[0] != '\n' {
		w.b.WriteByte(' ')
	}
	w.space = false
	w.b.WriteString(s)
	trimmed := strings.TrimRight(s, "\n")
	if len(trimmed) == 0 {
		w.nl += len(s)
	} else {
		w.nl = len(s) - len(trimmed)
	}
}

// block ends the current line and, for n == 2, leaves a blank line.
func (w *textWriter) block(n int) {
	w.space = false
	if w.b.Len() == 0 {
		return
	}
	for w.nl < n {
		w.b.WriteByte('\n')
		w.nl++
	}
}

var blankLines = regexp.MustCompile(`\n{3,}`)

func (w *textWriter) finish() string {
	lines := strings.Split(w.b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	s := strings.Join(lines, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}

// textTarget is how a link's destination is written in text: the URL, or
// the address of a mailto link.
func textTarget(href string) (string, bool) {
	u, err := url.Parse(href)
	if err != nil {
		return "", false
	}
	if u.Scheme == "mailto" {
		t := linkTarget(u)
		return t, t != ""
	}
	return href, href != ""
}

func sameTarget(text, target string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		for _, p := range []string{"mailto:", "https://", "http://"} {
			s = strings.TrimPrefix(s, p)
		}
		return strings.TrimSuffix(s, "/")
	}
	return norm(text) == norm(target)
}

var (
	paragraphBreak = regexp.MustCompile(`\n[ \t]*\n(?:[ \t]*\n)*`)
	textURL        = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"\\\x00-\x1f\x7f]+`)
)

// FromText turns plain text into safe HTML: text is escaped, blank lines
// separate paragraphs, other line breaks become <br>, runs of spaces are kept
// and http(s) URLs become links. It is used when a plain-text message is
// quoted into an HTML reply.
func FromText(text string) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	text = strings.Map(func(r rune) rune {
		if (r < ' ' && r != '\n' && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(text, "\uFFFD"))
	text = strings.Trim(text, "\n")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	var b strings.Builder
	for i, para := range paragraphBreak.Split(text, -1) {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("<p>")
		for j, line := range strings.Split(para, "\n") {
			if j > 0 {
				b.WriteString("<br>\n")
			}
			writeTextLine(&b, line)
		}
		b.WriteString("</p>")
	}
	return b.String()
}

func writeTextLine(b *strings.Builder, line string) {
	last := 0
	prevSpace := true // a space at the start of a line must not collapse
	for _, m := range textURL.FindAllStringIndex(line, -1) {
		raw := trimURLEnd(line[m[0]:m[1]])
		end := m[0] + len(raw)
		href, ok := checkLink(raw)
		if !ok {
			continue
		}
		writeEscaped(b, line[last:m[0]], &prevSpace)
		b.WriteString(`<a href="`)
		b.WriteString(html.EscapeString(href))
		b.WriteString(`">`)
		writeEscaped(b, raw, &prevSpace)
		b.WriteString(`</a>`)
		last = end
	}
	writeEscaped(b, line[last:], &prevSpace)
}

// trimURLEnd drops punctuation that ends the sentence rather than the URL,
// and a closing parenthesis or bracket without its opening one.
func trimURLEnd(s string) string {
	open := map[byte]int{'(': 0, ')': 0, '[': 0, ']': 0}
	for i := 0; i < len(s); i++ {
		if _, ok := open[s[i]]; ok {
			open[s[i]]++
		}
	}
	for s != "" {
		c := s[len(s)-1]
		switch {
		case strings.IndexByte(".,;:!?'*", c) >= 0:
		case c == ')' && open['('] < open[')'], c == ']' && open['['] < open[']']:
			open[c]--
		default:
			return s
		}
		s = s[:len(s)-1]
	}
	return s
}

// writeEscaped escapes s and keeps runs of spaces: every space after another
// space (or at the start of a line) becomes a no-break space.
func writeEscaped(b *strings.Builder, s string, prevSpace *bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			*prevSpace = false
			continue
		}
		if *prevSpace {
			b.WriteString(html.EscapeString(s[start:i]))
			b.WriteString("&nbsp;")
			start = i + 1
		}
		*prevSpace = true
	}
	b.WriteString(html.EscapeString(s[start:]))
}

// Excerpt is the first n runes of ToText on one line, for previews.
func Excerpt(body string, n int) string {
	one := strings.Join(strings.Fields(ToText(body)), " ")
	return strings.TrimSpace(truncateRunes(one, n))
}
