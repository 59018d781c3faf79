// Package htmlbody makes HTML message bodies safe to store and to show.
//
// Guarantees, for any input:
//
//   - The output of Sanitize and Render contains only an allowlist of HTML
//     elements (text formatting, lists, tables, links and images) and, on
//     them, only an allowlist of attributes whose values are checked. There
//     is no script, style, svg, math, form, frame, object, media, meta, base
//     or link element, no event handler, id, class (except on the markers
//     Render adds itself), srcset or background attribute, and no comment.
//   - Links point only to http, https or mailto URLs; images only to http,
//     https, cid or base64 data:image/{png,jpeg,gif,webp} URLs.
//   - Inline styles keep only allowlisted properties whose values match strict
//     patterns, so nothing with url(, expression(, @import or a CSS escape
//     survives.
//   - Render loads nothing from the network unless the caller allows remote
//     content, and every link shows its real target.
//
// Sanitizing is done twice: first by bluemonday's allowlist policy, then by a
// strict check of the parsed tree that also serializes it into well-formed
// HTML. The sanitizer is one of two layers: the body is shown in a sandboxed
// frame whose document comes from FrameDocument and whose response carries
// FrameCSP, which forbids scripts, forms and loads other than images.
package htmlbody

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// attrRule checks one attribute value. A nil re accepts any value; kind
// selects a URL check instead.
type attrRule struct {
	re   *regexp.Regexp
	kind urlKind
}

type urlKind int

const (
	notURL urlKind = iota
	linkURL
	imageURL
)

var (
	alignRe   = regexp.MustCompile(`(?i)^(left|right|center|justify)$`)
	imgAlign  = regexp.MustCompile(`(?i)^(left|right|top|middle|bottom)$`)
	valignRe  = regexp.MustCompile(`(?i)^(top|middle|bottom|baseline)$`)
	dirRe     = regexp.MustCompile(`(?i)^(ltr|rtl|auto)$`)
	langRe    = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)
	integerRe = regexp.MustCompile(`^[0-9]{1,4}$`)
	sizeRe    = regexp.MustCompile(`^[0-9]{1,5}%?$`)
	fontSize  = regexp.MustCompile(`^[+-]?[1-7]$`)
	colorAttr = regexp.MustCompile(`(?i)^(#[0-9a-f]{3}|#[0-9a-f]{6}|[a-z]{3,24})$`)
	faceAttr  = regexp.MustCompile(`^[\p{L}\p{N} ,_-]{1,200}$`)
)

// globalAttrs are allowed on every allowed element.
var globalAttrs = map[string]attrRule{
	"dir":  {re: dirRe},
	"lang": {re: langRe},
}

// elementAttrs is the element allowlist and, per element, its attributes
// besides globalAttrs and style.
var elementAttrs = map[string]map[string]attrRule{
	"p":          {"align": {re: alignRe}},
	"br":         {},
	"div":        {"align": {re: alignRe}},
	"span":       {},
	"b":          {},
	"strong":     {},
	"i":          {},
	"em":         {},
	"u":          {},
	"s":          {},
	"strike":     {},
	"sub":        {},
	"sup":        {},
	"small":      {},
	"h1":         {"align": {re: alignRe}},
	"h2":         {"align": {re: alignRe}},
	"h3":         {"align": {re: alignRe}},
	"h4":         {"align": {re: alignRe}},
	"h5":         {"align": {re: alignRe}},
	"h6":         {"align": {re: alignRe}},
	"ul":         {},
	"ol":         {},
	"li":         {},
	"blockquote": {},
	"pre":        {},
	"code":       {},
	"hr":         {},
	"table": {
		"align": {re: alignRe}, "width": {re: sizeRe}, "border": {re: integerRe},
		"cellpadding": {re: integerRe}, "cellspacing": {re: integerRe}, "bgcolor": {re: colorAttr},
	},
	"thead":   {},
	"tbody":   {},
	"tfoot":   {},
	"tr":      {"align": {re: alignRe}, "valign": {re: valignRe}, "bgcolor": {re: colorAttr}},
	"th":      cellAttrs(),
	"td":      cellAttrs(),
	"caption": {"align": {re: alignRe}},
	"a":       {"href": {kind: linkURL}},
	"img": {
		"src": {kind: imageURL}, "alt": {}, "width": {re: sizeRe}, "height": {re: sizeRe},
		"align": {re: imgAlign},
	},
	"font": {"color": {re: colorAttr}, "face": {re: faceAttr}, "size": {re: fontSize}},
}

func cellAttrs() map[string]attrRule {
	return map[string]attrRule{
		"colspan": {re: integerRe}, "rowspan": {re: integerRe}, "align": {re: alignRe},
		"valign": {re: valignRe}, "width": {re: sizeRe}, "height": {re: sizeRe},
		"bgcolor": {re: colorAttr},
	}
}

// requiredAttr names elements that mean nothing without one attribute.
var requiredAttr = map[string]string{"a": "href", "img": "src", "font": ""}

// dropWithContent are elements removed together with everything inside them.
// Other elements outside the allowlist are removed but keep their text.
var dropWithContent = []string{
	"script", "style", "title", "noscript", "template", "iframe", "frame", "frameset",
	"object", "applet", "noembed", "noframes", "nostyle",
}

var dropWithContentSet = func() map[string]bool {
	m := make(map[string]bool, len(dropWithContent))
	for _, e := range dropWithContent {
		m[e] = true
	}
	return m
}()

var (
	policy     = newPolicy()
	textPolicy = bluemonday.StrictPolicy().AddSpaceWhenStrippingTag(true).SkipElementsContent(dropWithContent...)
)

func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.RequireParseableURLs(true)
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	p.AllowURLSchemeWithCustomPolicy("data", func(u *url.URL) bool {
		return u.RawQuery == "" && u.Fragment == "" && validDataImage(u.Opaque)
	})
	p.SkipElementsContent(dropWithContent...)
	for name, rule := range globalAttrs {
		p.AllowAttrs(name).Matching(rule.re).Globally()
	}
	for el, attrs := range elementAttrs {
		p.AllowElements(el)
		for name, rule := range attrs {
			if rule.re != nil {
				p.AllowAttrs(name).Matching(rule.re).OnElements(el)
			} else {
				p.AllowAttrs(name).OnElements(el)
			}
		}
	}
	for prop, ok := range styleProps {
		p.AllowStyles(prop).MatchingHandler(ok).Globally()
	}
	return p
}

// Sanitize is the storing policy: what a message body may contain at all.
// Applied when a message is saved (compose, SMTP intake).
//
// The result is stable: sanitizing it again gives it back. Markup that the
// HTML parser rearranges (a list item fostered out of a table into another
// list item, say) is parsed and serialized until it no longer changes, so
// what is stored is exactly the tree a browser will build from it.
func Sanitize(body string) string {
	out := renderNodes(sanitizeNodes(body))
	for range 4 {
		root, err := parseClean(out)
		if err != nil {
			break
		}
		again := renderNodes(root)
		if again == out {
			break
		}
		out = again
	}
	return out
}

// sanitizeNodes runs both layers and returns the fragment's top-level nodes
// under a body element.
func sanitizeNodes(body string) *html.Node {
	body = strings.ToValidUTF8(body, "\uFFFD")
	root, err := parseClean(policy.Sanitize(body))
	if err != nil {
		// The parser refuses elements nested more than 512 deep. Such a
		// body is shown as its text alone.
		text := html.UnescapeString(textPolicy.Sanitize(body))
		root = newRoot()
		root.AppendChild(&html.Node{Type: html.TextNode, Data: strings.Join(strings.Fields(text), " ")})
	}
	return root
}

func newRoot() *html.Node {
	return &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
}

// parseClean parses a fragment as the content of a body element and applies
// the allowlist to the tree.
func parseClean(fragment string) (*html.Node, error) {
	root := newRoot()
	nodes, err := html.ParseFragment(strings.NewReader(fragment), root)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		root.AppendChild(n)
	}
	cleanChildren(root)
	return root, nil
}

// cleanChildren enforces the allowlist on the parsed tree, independently of
// bluemonday.
func cleanChildren(parent *html.Node) {
	for c := parent.FirstChild; c != nil; {
		next := c.NextSibling
		switch c.Type {
		case html.TextNode:
		case html.ElementNode:
			attrs, allowed := elementAttrs[c.Data]
			switch {
			case c.Namespace != "" || dropWithContentSet[c.Data]:
				parent.RemoveChild(c)
			case !allowed:
				next = unwrap(c)
			default:
				c.Attr = cleanAttrs(c.Data, c.Attr, attrs)
				if req, ok := requiredAttr[c.Data]; ok && !hasAttr(c, req) {
					if c.Data == "img" {
						parent.RemoveChild(c)
						break
					}
					next = unwrap(c)
					break
				}
				cleanChildren(c)
			}
		default:
			parent.RemoveChild(c)
		}
		c = next
	}
}

// unwrap replaces n by its children and returns the first of them (or n's
// next sibling), so the caller's loop goes on to check them.
func unwrap(n *html.Node) *html.Node {
	parent := n.Parent
	first := n.FirstChild
	for c := n.FirstChild; c != nil; c = n.FirstChild {
		n.RemoveChild(c)
		parent.InsertBefore(c, n)
	}
	next := n.NextSibling
	parent.RemoveChild(n)
	if first != nil {
		return first
	}
	return next
}

// hasAttr reports whether n has attribute key; an empty key asks whether n
// has any attribute.
func hasAttr(n *html.Node, key string) bool {
	if key == "" {
		return len(n.Attr) > 0
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func cleanAttrs(el string, in []html.Attribute, allowed map[string]attrRule) []html.Attribute {
	out := in[:0]
	seen := make(map[string]bool, len(in))
	for _, a := range in {
		if a.Namespace != "" || seen[a.Key] {
			continue
		}
		v, ok := cleanAttr(el, a.Key, a.Val, allowed)
		if !ok {
			continue
		}
		seen[a.Key] = true
		out = append(out, html.Attribute{Key: a.Key, Val: v})
	}
	return out
}

func cleanAttr(el, key, val string, allowed map[string]attrRule) (string, bool) {
	if key == "style" {
		v := cleanStyle(val)
		return v, v != ""
	}
	rule, ok := allowed[key]
	if !ok {
		rule, ok = globalAttrs[key]
	}
	if !ok {
		return "", false
	}
	switch rule.kind {
	case linkURL:
		return checkLink(val)
	case imageURL:
		return checkImage(val)
	}
	if rule.re != nil && !rule.re.MatchString(val) {
		return "", false
	}
	return val, true
}

func renderNodes(root *html.Node) string {
	var b bytes.Buffer
	for c := root.FirstChild; c != nil; c = c.NextSibling {
		if err := html.Render(&b, c); err != nil {
			// Only a void element with children fails; the cleaner never
			// builds one.
			return ""
		}
	}
	return b.String()
}
