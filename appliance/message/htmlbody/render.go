package htmlbody

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/net/idna"
)

// Rendered is a body ready for the reading frame.
type Rendered struct {
	HTML string
	// BlockedRemote counts remote images (and other remote loads) withheld.
	BlockedRemote int
	// Links counts the links in the body.
	Links int
}

// Classes of the markers Render adds. User content never has a class
// attribute, so only these can match the frame's stylesheet.
const (
	classBlocked  = "sealpost-blocked"
	classLinkHost = "sealpost-linkhost"
)

// Render re-sanitizes a stored body (the policy may have tightened since it
// was stored) and prepares it for the reading frame:
//
//   - Remote (http and https) images are removed unless allowRemote, and
//     counted in BlockedRemote; each leaves a small "[image blocked]" marker,
//     except tracking pixels (at most 2×2), which leave nothing. Allowed remote
//     images get referrerpolicy="no-referrer".
//   - Every link opens in a new window without opener, referrer or follow
//     (target="_blank" rel="noopener noreferrer nofollow"), has its real
//     target as its title, and when its visible text is not that target's
//     URL or host, is followed by a small marker showing the real host, as
//     in "Click here (evil.example)".
//   - cid: images are kept for the caller to map to the message's inline
//     parts; base64 data: images are kept.
func Render(sanitized string, allowRemote bool) Rendered {
	root := sanitizeNodes(sanitized)
	var r Rendered
	prepare(root, allowRemote, &r)
	r.HTML = renderNodes(root)
	return r
}

func prepare(parent *html.Node, allowRemote bool, r *Rendered) {
	for c := parent.FirstChild; c != nil; {
		next := c.NextSibling
		if c.Type == html.ElementNode {
			switch c.Data {
			case "img":
				if src := attr(c, "src"); isRemote(src) {
					if allowRemote {
						setAttr(c, "referrerpolicy", "no-referrer")
						break
					}
					r.BlockedRemote++
					if !isPixel(c) {
						parent.InsertBefore(blockedMarker(c), c)
					}
					parent.RemoveChild(c)
				}
			case "a":
				prepare(c, allowRemote, r)
				r.Links++
				prepareLink(c)
			default:
				prepare(c, allowRemote, r)
			}
		}
		c = next
	}
}

func blockedMarker(img *html.Node) *html.Node {
	label := "[image blocked]"
	if alt := strings.Join(strings.Fields(attr(img, "alt")), " "); alt != "" {
		label = "[image blocked: " + printable(truncateRunes(alt, 60)) + "]"
	}
	return markerSpan(classBlocked, label)
}

func markerSpan(class, text string) *html.Node {
	span := &html.Node{
		Type: html.ElementNode, Data: "span", DataAtom: atom.Span,
		Attr: []html.Attribute{{Key: "class", Val: class}, {Key: "dir", Val: "ltr"}},
	}
	span.AppendChild(&html.Node{Type: html.TextNode, Data: text})
	return span
}

func isPixel(img *html.Node) bool {
	w, errW := strconv.Atoi(attr(img, "width"))
	h, errH := strconv.Atoi(attr(img, "height"))
	return errW == nil && errH == nil && w <= 2 && h <= 2
}

func prepareLink(a *html.Node) {
	href := attr(a, "href")
	setAttr(a, "target", "_blank")
	setAttr(a, "rel", "noopener noreferrer nofollow")
	setAttr(a, "title", href)
	u, err := url.Parse(href)
	if err != nil {
		return
	}
	target := linkTarget(u)
	if target == "" || textShowsTarget(nodeText(a), u) {
		return
	}
	if a.Parent != nil {
		a.Parent.InsertBefore(markerSpan(classLinkHost, " ("+target+")"), a.NextSibling)
	}
}

// linkTarget is what the reader must see of a link's destination: the host
// (in ASCII, so look-alike letters show as xn--) or the mail address, with
// control and format characters (such as bidi overrides) made visible.
func linkTarget(u *url.URL) string {
	return printable(rawTarget(u))
}

func rawTarget(u *url.URL) string {
	switch u.Scheme {
	case "mailto":
		addr, _, _ := strings.Cut(u.Opaque, "?")
		if dec, err := url.PathUnescape(addr); err == nil {
			addr = dec
		}
		return addr
	case "http", "https":
		host := asciiHost(u.Hostname())
		if p := u.Port(); p != "" {
			host += ":" + p
		}
		return host
	}
	return ""
}

// printable replaces control and format characters, and invalid UTF-8, by
// U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

func asciiHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		return a
	}
	if a, err := idna.Punycode.ToASCII(h); err == nil {
		return a
	}
	return h
}

// textShowsTarget reports whether a link's visible text already shows its
// real destination: the same mail address, or a URL or host name with the
// same host written in plain ASCII.
func textShowsTarget(text string, u *url.URL) bool {
	text = strings.TrimSpace(text)
	if text == "" || u.User != nil {
		return false
	}
	if u.Scheme == "mailto" {
		text = strings.TrimPrefix(strings.TrimPrefix(text, "mailto:"), "MAILTO:")
		return strings.EqualFold(text, linkTarget(u))
	}
	if strings.ContainsAny(text, " \t\r\n") {
		return false
	}
	candidate := text
	if lower := strings.ToLower(text); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		candidate = "http://" + text
	}
	tu, err := url.Parse(candidate)
	if err != nil || tu.User != nil || tu.Hostname() == "" {
		return false
	}
	shown := strings.TrimSuffix(strings.ToLower(tu.Hostname()), ".")
	for i := 0; i < len(shown); i++ {
		if shown[i] >= utf8.RuneSelf {
			// Non-ASCII letters may imitate another host.
			return false
		}
	}
	return shown == asciiHost(u.Hostname())
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			switch c.Type {
			case html.TextNode:
				b.WriteString(c.Data)
			case html.ElementNode:
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func setAttr(n *html.Node, key, val string) {
	for i := range n.Attr {
		if n.Attr[i].Key == key {
			n.Attr[i].Val = val
			return
		}
	}
	n.Attr = append(n.Attr, html.Attribute{Key: key, Val: val})
}

func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// frameStyle is the reading frame's own stylesheet. Its class selectors
// only match the markers Render adds, and their !important rules win over
// the body's inline styles (which can never be !important), so a body cannot
// hide a marker by shrinking, recolouring or reversing the text around it.
const frameStyle = `html{color-scheme:light}
body{margin:8px;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a1a1a;background:#fff;overflow-wrap:anywhere;word-wrap:break-word}
img{max-width:100%;height:auto}
table{max-width:100%}
pre{white-space:pre-wrap}
pre,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:0.9em}
blockquote{margin:0.5em 0 0.5em 0.25em;padding:0 0 0 0.75em;border-left:3px solid #c8c8c8;color:#444}
a{color:#0b57d0}
.sealpost-linkhost,.sealpost-blocked{display:inline!important;font:12px/1.4 system-ui,sans-serif!important;color:#555!important;background:#fff!important;visibility:visible!important;opacity:1!important;direction:ltr!important;unicode-bidi:isolate!important;text-decoration:none!important;white-space:nowrap!important}
.sealpost-blocked{border:1px dashed #bbb!important;padding:0 0.3em!important}`

// FrameDocument wraps rendered HTML (the HTML of a Rendered, never anything
// else) in a complete document for the reading frame, with the frame's own
// stylesheet in a style element. The frame's CSP must therefore allow
// style-src 'unsafe-inline', as FrameCSP does.
func FrameDocument(rendered string) string {
	var b strings.Builder
	b.Grow(len(rendered) + len(frameStyle) + 200)
	b.WriteString(`<!doctype html>` + "\n" +
		`<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
		`<style>`)
	b.WriteString(frameStyle)
	b.WriteString("</style></head><body>\n")
	b.WriteString(rendered)
	b.WriteString("\n</body></html>\n")
	return b.String()
}

// FrameCSP is the Content-Security-Policy header for the frame response. The
// sandbox never allows scripts or the same origin; links may open popups
// outside the sandbox. Images load from data: URLs only, and from the
// network only when allowRemote.
func FrameCSP(allowRemote bool) string {
	img := "img-src data:"
	if allowRemote {
		img += " https: http:"
	}
	return "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
		"style-src 'unsafe-inline'; " + img +
		"; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
}
