package htmlbody

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The checker below is written independently of the package's tables, from
// the storing policy as specified, so a mistake in those tables shows.

var testElements = set("p", "br", "div", "span", "b", "strong", "i", "em", "u", "s", "strike",
	"sub", "sup", "small", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
	"pre", "code", "hr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "a",
	"img", "font")

var testAttrs = set("dir", "lang", "style", "align", "valign", "width", "height", "border",
	"cellpadding", "cellspacing", "bgcolor", "colspan", "rowspan", "href", "src", "alt", "color",
	"face", "size")

// Attributes only Render adds.
var testRenderAttrs = set("target", "rel", "title", "referrerpolicy", "class")

var testStyleProps = set("color", "background-color", "background", "text-align", "font-weight",
	"font-style", "text-decoration", "font-size", "font-family", "line-height", "margin",
	"margin-top", "margin-right", "margin-bottom", "margin-left", "padding", "padding-top",
	"padding-right", "padding-bottom", "padding-left", "border", "border-top", "border-right",
	"border-bottom", "border-left", "border-collapse", "width", "height", "vertical-align",
	"white-space")

var testDataImage = regexp.MustCompile(`^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+=*$`)

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

type outputKind int

const (
	stored         outputKind = iota // Sanitize: remote images may stay
	renderedLocal                    // Render(…, false): nothing remote at all
	renderedRemote                   // Render(…, true): remote images only
)

// violations parses out as the reading frame would and lists every breach
// of the invariants. With noRemote, the corpus's host "remote" may appear
// only as the source of an image that kind permits.
func violations(out string, kind outputKind, noRemote bool) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	lower := strings.ToLower(out)
	for _, s := range []string{"<script", "<style", "<svg", "<math", "<iframe", "<object", "<embed",
		"<form", "<base", "<meta", "<link", "<!--", "\x00"} {
		if strings.Contains(lower, s) {
			bad("output contains %q", s)
		}
	}
	ctx := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(strings.NewReader(out), ctx)
	if err != nil {
		return append(v, "parse: "+err.Error())
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.CommentNode, html.DoctypeNode:
			bad("node type %v", n.Type)
		case html.ElementNode:
			checkElement(n, kind, noRemote, bad)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	return v
}

func checkElement(n *html.Node, kind outputKind, noRemote bool, bad func(string, ...any)) {
	if n.Namespace != "" || !testElements[n.Data] {
		bad("element %s:%s outside the allowlist", n.Namespace, n.Data)
	}
	for _, a := range n.Attr {
		key, val := strings.ToLower(a.Key), strings.ToLower(a.Val)
		switch {
		case a.Namespace != "":
			bad("namespaced attribute %s:%s", a.Namespace, a.Key)
		case strings.HasPrefix(key, "on"):
			bad("event handler %s", a.Key)
		case testAttrs[key]:
		case kind != stored && testRenderAttrs[key]:
		default:
			bad("attribute %s on %s outside the allowlist", a.Key, n.Data)
		}
		compact := strings.Map(func(r rune) rune {
			if r <= ' ' || r == 0x7f {
				return -1
			}
			return r
		}, val)
		for _, s := range []string{"javascript:", "vbscript:", "url(", "expression(", "@import",
			"\\", "data:text", "data:image/svg"} {
			if strings.Contains(compact, s) {
				bad("attribute %s=%q contains %q", a.Key, a.Val, s)
			}
		}
		remoteOK := kind == stored || kind == renderedRemote
		if noRemote && strings.Contains(val, "remote") && !(remoteOK && n.Data == "img" && key == "src") {
			bad("remote host in %s=%q on %s", a.Key, a.Val, n.Data)
		}
		switch key {
		case "href":
			if n.Data != "a" || !hasAnyPrefix(val, "http://", "https://", "mailto:") {
				bad("href %q on %s", a.Val, n.Data)
			}
		case "src":
			switch {
			case n.Data != "img":
				bad("src on %s", n.Data)
			case hasAnyPrefix(val, "http://", "https://"):
				if kind == renderedLocal {
					bad("remote image %q kept", a.Val)
				}
			case strings.HasPrefix(val, "cid:"), testDataImage.MatchString(a.Val):
			default:
				bad("src %q", a.Val)
			}
		case "style":
			checkStyle(a.Val, bad)
		case "class":
			if n.Data != "span" || !strings.HasPrefix(a.Val, "sealpost-") {
				bad("class %q on %s", a.Val, n.Data)
			}
		case "target":
			if a.Val != "_blank" {
				bad("target %q", a.Val)
			}
		}
	}
	if n.Data == "a" {
		rel := attrOf(n, "rel")
		if kind != stored && (attrOf(n, "target") != "_blank" || !strings.Contains(rel, "noopener") ||
			!strings.Contains(rel, "noreferrer")) {
			bad("link without target=_blank rel=noopener noreferrer: %v", n.Attr)
		}
	}
}

func checkStyle(style string, bad func(string, ...any)) {
	lower := strings.ToLower(style)
	for _, s := range []string{"url", "expression", "\\", "@", "behavior", "binding", "/*",
		"image", "position", "display", "{", "}", "<", ">", "!"} {
		if strings.Contains(lower, s) {
			bad("style %q contains %q", style, s)
		}
	}
	for _, decl := range strings.Split(lower, ";") {
		prop, _, ok := strings.Cut(decl, ":")
		prop = strings.TrimSpace(prop)
		if !ok || !testStyleProps[prop] {
			bad("style declaration %q", decl)
		}
	}
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

const (
	pngData = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	svgData = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIG9ubG9hZD0nYWxlcnQoMSknLz4="
)

func TestCorpus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		// Text that must appear in Sanitize's and Render's output, in
		// Render's only, and not in Render's.
		want, wantRender, notRender []string
		blocked                     int  // BlockedRemote without allowRemote
		remoteKept                  bool // the remote image stays with allowRemote
	}{
		{name: "script", in: `<script>alert(1)</script>hello`, want: []string{"hello"}, notRender: []string{"alert"}},
		{name: "script upper with src", in: `<SCRIPT SRC=http://remote/x.js></SCRIPT>after`, want: []string{"after"}},
		{name: "script split", in: `<scr<script>ipt>alert(1)</script>`, want: []string{"ipt&gt;alert(1)"}},
		{name: "script dotless i", in: `<scrİpt>alert(1)</scrİpt>`},
		{name: "img onerror", in: `<img src=x onerror=alert(1)>`, notRender: []string{"<img"}},
		{name: "img onerror with cid", in: `<img src="cid:a" onerror="alert(1)">`, want: []string{`src="cid:a"`}},
		{name: "body onload", in: `<body onload=alert(1)>text</body>`, want: []string{"text"}},
		{name: "svg script", in: `<svg><script>alert(1)</script></svg>`, notRender: []string{"alert"}},
		{name: "svg use data href", in: `<svg><use href="` + svgData + `#x"></use></svg>`},
		{name: "svg animate onbegin", in: `<svg><animate onbegin=alert(1) attributeName=x dur=1s>`},
		{name: "svg xlink href", in: `<svg><a xlink:href="javascript:alert(1)"><text x=20 y=20>XSS</text></a></svg>`, want: []string{"XSS"}},
		{name: "svg style breakout", in: `<svg><style><img src=x onerror=alert(1)></style></svg>`, notRender: []string{"<img"}},
		{name: "math mutation", in: `<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`, notRender: []string{"<img"}},
		{name: "math href", in: `<math href="javascript:alert(1)">CLICK</math>`, want: []string{"CLICK"}},
		{name: "style import", in: `<style>@import url(http://remote/x.css);</style>text`, want: []string{"text"}},
		{name: "style attr url", in: `<div style="background:url(http://remote/x)">t</div>`, want: []string{"<div>t</div>"}},
		{name: "style css escapes", in: `<div style="color: red; background-image: \75\72\6C(http://remote/x)">t</div>`, want: []string{`style="color: red"`}},
		{name: "style escaped colour", in: `<div style="color: \72 gb(1,2,3)">t</div>`, want: []string{"<div>t</div>"}},
		{name: "style behavior", in: `<div style="behavior:url(http://remote/x.htc)">t</div>`},
		{name: "style expression", in: `<div style="width: expression(alert(1))">t</div>`},
		{name: "style moz binding", in: `<div style="-moz-binding:url(http://remote/xss.xml#xss)">t</div>`},
		{name: "style comment", in: `<div style="width:1px;/*x*/background-image:url(http://remote/x)">t</div>`},
		{name: "style hiding and position", in: `<div style="color: red !important; position: fixed; top: 0; display: none">t</div>`, want: []string{`style="color: red"`}},
		{name: "style negative offsets", in: `<div style="margin-top: -40px; vertical-align: -10px; margin: 0 -5px">t</div>`, want: []string{"<div>t</div>"}},
		{name: "style on image", in: `<img src="cid:a" style="width: 10px; background-image: url(http://remote/x)">`, want: []string{`style="width: 10px"`}},
		{name: "a javascript", in: `<a href="javascript:alert(1)">x</a>`, notRender: []string{"<a"}},
		{name: "a javascript entity colon", in: `<a href="JaVaScRiPt&#x3a;alert(1)">x</a>`, notRender: []string{"<a"}},
		{name: "a javascript leading space", in: `<a href=" javascript:alert(1)">x</a>`, notRender: []string{"<a"}},
		{name: "a javascript tab", in: `<a href="java&#09;script:alert(1)">x</a>`, notRender: []string{"<a"}},
		{name: "a javascript nul", in: "<a href=\"java\x00script:alert(1)\">x</a>", notRender: []string{"<a"}},
		{name: "a data html", in: `<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>`, notRender: []string{"<a"}},
		{name: "a data image", in: `<a href="` + pngData + `">x</a>`, notRender: []string{"<a"}},
		{name: "a vbscript", in: `<a href="vbscript:msgbox(1)">x</a>`, notRender: []string{"<a"}},
		{name: "a backslash host", in: `<a href="https://evil.example\@good.example/">good.example</a>`, notRender: []string{"<a"}},
		{name: "a file", in: `<a href="file:///etc/passwd">x</a>`, notRender: []string{"<a"}},
		{name: "a onclick target", in: `<a href="https://good.example/" onclick="alert(1)" target="_self">x</a>`, wantRender: []string{`target="_blank"`}},
		{name: "form input image", in: `<form action=http://remote/><input type=image src=http://remote/i.png></form>`},
		{name: "button formaction", in: `<button formaction="http://remote/">go</button>`, want: []string{"go"}},
		{name: "input onfocus", in: `<input type="text" value="x" autofocus onfocus=alert(1)>`},
		{name: "meta refresh", in: `<meta http-equiv=refresh content="0;url=http://remote/">`},
		{name: "base", in: `<base href="http://remote/"><a href="x">x</a>`},
		{name: "link stylesheet", in: `<link rel=stylesheet href="http://remote/x.css">`},
		{name: "img srcset", in: `<img srcset="http://remote/1x.png 1x" src="cid:a">`, want: []string{`src="cid:a"`}},
		{name: "picture source", in: `<picture><source srcset="http://remote/a.webp"><img src="cid:b"></picture>`, want: []string{`src="cid:b"`}},
		{name: "video poster", in: `<video poster="http://remote/p.png"><source src="http://remote/v.mp4"></video>`},
		{name: "audio", in: `<audio src="http://remote/a.mp3" autoplay></audio>`},
		{name: "body background", in: `<body background="http://remote/bg.png">text</body>`, want: []string{"text"}},
		{name: "table background", in: `<table background="http://remote/bg.png"><tr><td>x</td></tr></table>`, want: []string{"<td>x</td>"}},
		{name: "iframe", in: `<iframe src="http://remote/">inside</iframe>`, notRender: []string{"inside"}},
		{name: "iframe srcdoc", in: `<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>`},
		{name: "frameset", in: `<frameset><frame src="http://remote/"></frameset>`},
		{name: "object", in: `<object data="http://remote/x.swf"></object>`},
		{name: "embed", in: `<embed src="http://remote/x.swf">`},
		{
			name: "remote image", in: `<img src="http://remote/track.gif">`, want: nil,
			wantRender: []string{"[image blocked]"}, blocked: 1, remoteKept: true,
		},
		{
			name: "remote image with alt", in: `<p>Hi <img src="https://remote/logo.png" alt="Logo"></p>`,
			wantRender: []string{"[image blocked: Logo]"}, blocked: 1, remoteKept: true,
		},
		{
			name: "tracking pixel", in: `<img src="http://remote/p.gif" width="1" height="1">`,
			notRender: []string{"blocked"}, blocked: 1, remoteKept: true,
		},
		{name: "protocol relative image", in: `<img src="//remote/x.png">`, notRender: []string{"<img"}},
		{name: "cid image", in: `<img src="cid:part1">`, want: []string{`<img src="cid:part1"/>`}},
		{name: "data png image", in: `<img src="` + pngData + `">`, want: []string{`src="` + pngData + `"`}},
		{name: "data svg image", in: `<img src="` + svgData + `">`, notRender: []string{"<img"}},
		{name: "data png with fragment", in: `<img src="data:image/png;base64,iVBORw0KGgo=#x">`, notRender: []string{"<img"}},
		{name: "data png bad base64", in: `<img src="data:image/png;base64,<>">`, notRender: []string{"<img"}},
		{
			name: "link shows real host", in: `<a href="http://good.example">http://evil.example</a>`,
			wantRender: []string{`title="http://good.example"`, "(good.example)</span>"},
		},
		{
			name: "link userinfo", in: `<a href="https://good.example@evil.example/">https://good.example</a>`,
			wantRender: []string{"(evil.example)</span>"},
		},
		{name: "noscript", in: `<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>`, notRender: []string{"<img"}},
		{name: "template", in: `<template><img src=x onerror=alert(1)><script>alert(1)</script></template>`, notRender: []string{"alert"}},
		{name: "textarea", in: `<textarea><img title="</textarea><img src=x onerror=alert(1)>">`, notRender: []string{"<img"}},
		{name: "xmp", in: `<xmp><p title="</xmp><img src=x onerror=alert(1)>">`, notRender: []string{"<img"}},
		{name: "select", in: `<select><option>a</option></select>`, want: []string{"a"}},
		{name: "details ontoggle", in: `<details open ontoggle=alert(1)>x</details>`, want: []string{"x"}},
		{name: "marquee", in: `<marquee onstart=alert(1)>x</marquee>`, want: []string{"x"}},
		{name: "unclosed tags", in: `<div><b><i>text`, want: []string{"<div><b><i>text</i></b></div>"}},
		{name: "unclosed attribute", in: `<img src="http://remote/x.png`, notRender: []string{"<img"}},
		{name: "unclosed link", in: `<a href="https://good.example/">x`, want: []string{"x</a>"}},
		{name: "nul in attribute name", in: "<img src=\"cid:a\" o\x00nerror=alert(1)>", want: []string{`src="cid:a"`}},
		{name: "nul in tag name", in: "<scr\x00ipt>alert(1)</script><p>a\x00b</p>", want: []string{"<p>ab</p>"}},
		{name: "entities stay text", in: `&lt;script&gt;alert(1)&lt;/script&gt;`, want: []string{"&lt;script&gt;"}},
		{name: "comment", in: `<!--<script>alert(1)</script>-->x`, want: []string{"x"}, notRender: []string{"alert"}},
		{name: "conditional comment", in: `<!--[if gte mso 9]><xml><o:OfficeDocumentSettings/></xml><![endif]-->x`, want: []string{"x"}},
		{name: "cdata", in: `<![CDATA[<script>alert(1)</script>]]>`},
		{name: "id and class", in: `<p id="x" class="sealpost-blocked">t</p>`, want: []string{"<p>t</p>"}},
		{name: "outlook markup", in: `<p class=MsoNormal style='margin:0in;font-size:11.0pt;font-family:"Calibri",sans-serif'><o:p>&nbsp;</o:p></p>`, want: []string{`font-family: &#34;Calibri&#34;,sans-serif`}},
		{name: "font", in: `<font color="red" face="Arial" size="3" onmouseover="alert(1)">f</font>`, want: []string{`<font color="red" face="Arial" size="3">f</font>`}},
	}
	if len(tests) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			san := Sanitize(tt.in)
			local := Render(san, false)
			remote := Render(san, true)
			for _, out := range []struct {
				name string
				html string
				kind outputKind
			}{{"Sanitize", san, stored}, {"Render", local.HTML, renderedLocal}, {"Render remote", remote.HTML, renderedRemote}} {
				for _, v := range violations(out.html, out.kind, true) {
					t.Errorf("%s: %s\noutput: %s", out.name, v, out.html)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(san, w) {
					t.Errorf("Sanitize = %q, want it to contain %q", san, w)
				}
				if !strings.Contains(local.HTML, w) {
					t.Errorf("Render = %q, want it to contain %q", local.HTML, w)
				}
			}
			for _, w := range tt.wantRender {
				if !strings.Contains(local.HTML, w) {
					t.Errorf("Render = %q, want it to contain %q", local.HTML, w)
				}
			}
			for _, w := range tt.notRender {
				if strings.Contains(local.HTML, w) {
					t.Errorf("Render = %q, must not contain %q", local.HTML, w)
				}
			}
			if local.BlockedRemote != tt.blocked {
				t.Errorf("BlockedRemote = %d, want %d", local.BlockedRemote, tt.blocked)
			}
			if remote.BlockedRemote != 0 {
				t.Errorf("with allowRemote, BlockedRemote = %d, want 0", remote.BlockedRemote)
			}
			if got := strings.Contains(remote.HTML, "//remote/"); got != tt.remoteKept {
				t.Errorf("with allowRemote, remote image kept = %v, want %v: %s", got, tt.remoteKept, remote.HTML)
			}
			if direct := Render(tt.in, false); direct.HTML != local.HTML {
				t.Errorf("Render(raw) = %q, Render(Sanitize(raw)) = %q", direct.HTML, local.HTML)
			}
		})
	}
}

// TestViolations makes sure the checker the corpus and the fuzzer rely on
// catches what it is meant to.
func TestViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, html string
		kind       outputKind
	}{
		{"script", `<script>alert(1)</script>`, stored},
		{"event handler", `<img src="cid:a" onerror="alert(1)">`, stored},
		{"javascript link", `<a href="javascript:alert(1)">x</a>`, stored},
		{"relative link", `<a href="/x">x</a>`, stored},
		{"style url", `<p style="background: url(http://remote/x)">x</p>`, stored},
		{"style property", `<p style="position: fixed">x</p>`, stored},
		{"svg", `<svg><circle/></svg>`, stored},
		{"unknown element", `<marquee>x</marquee>`, stored},
		{"class in stored body", `<p class="x">x</p>`, stored},
		{"id", `<p id="x">x</p>`, renderedLocal},
		{"remote image kept", `<img src="http://remote/x.png">`, renderedLocal},
		{"svg data image", `<img src="` + svgData + `">`, stored},
		{"link without target", `<a href="https://good.example/">x</a>`, renderedLocal},
		{"comment", `<!-- x -->`, stored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if v := violations(tt.html, tt.kind, true); len(v) == 0 {
				t.Errorf("violations(%q) found nothing", tt.html)
			}
		})
	}
	if v := violations(Render(`<a href="https://good.example/">x</a><img src="cid:a">`, false).HTML, renderedLocal, true); len(v) != 0 {
		t.Errorf("violations on clean output: %v", v)
	}
}

func TestDeepNesting(t *testing.T) {
	t.Parallel()
	// The HTML parser refuses more than 512 open elements; such a body
	// falls back to its text.
	deep := strings.Repeat("<div><b>", 400) + "deep <script>alert(1)</script><img src=x onerror=alert(1)>text"
	r := Render(deep, false)
	if r.HTML != "deep text" {
		t.Errorf("Render(deep) = %.200q, want the text alone", r.HTML)
	}
	if got := ToText(deep); got != "deep text" {
		t.Errorf("ToText(deep) = %q", got)
	}
	shallow := strings.Repeat("<div>", 300) + "x"
	if got := Sanitize(shallow); !strings.HasPrefix(got, "<div><div>") {
		t.Errorf("Sanitize(300 nested divs) = %.100q, want the structure kept", got)
	}
}

func TestSanitizeIdempotent(t *testing.T) {
	t.Parallel()
	// Inputs whose parsed tree does not survive serialization unchanged:
	// the HTML parser fosters content out of tables and reconstructs
	// formatting elements.
	tests := map[string]string{
		"mail":              benchmarkMail(20 << 10),
		"li fostered":       "<li><tABle ><li>0",
		"div in p":          "<p><table><div>x</div></table>",
		"heading in header": "<h1><table><h2>x",
		"link in link":      `<a href="https://a.example/"><table><a href="https://b.example/">x</a>`,
		"formatting":        "<b><p>1<i>2</b>3</i><table><b>4",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			once := Sanitize(in)
			if twice := Sanitize(once); twice != once {
				t.Errorf("Sanitize is not idempotent:\nonce:  %.300q\ntwice: %.300q", once, twice)
			}
			for _, v := range violations(once, stored, true) {
				t.Error(v)
			}
		})
	}
}

func TestRenderLinks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, host string // host "" means no host marker
	}{
		{"url text same host", `<a href="https://good.example/a">https://good.example/b</a>`, ""},
		{"bare host text", `<a href="https://good.example/a">good.example</a>`, ""},
		{"host text differs", `<a href="https://evil.example/">good.example</a>`, "evil.example"},
		{"url text differs", `<a href="http://good.example">http://evil.example</a>`, "good.example"},
		{"words", `<a href="https://evil.example/login">Click here</a>`, "evil.example"},
		{"image only", `<a href="https://evil.example/"><img src="cid:x"></a>`, "evil.example"},
		{"port", `<a href="https://evil.example:8443/">Click</a>`, "evil.example:8443"},
		{"idn host", `<a href="https://bücher.example/">Books</a>`, "xn--bcher-kva.example"},
		{"look-alike text", `<a href="https://xn--pple-43d.example/">аpple.example</a>`, "xn--pple-43d.example"},
		{"mailto same", `<a href="mailto:bob@example.com">bob@example.com</a>`, ""},
		{"mailto with escapes", `<a href="mailto:%00%E2%80%AEmoc.live@x.example">x</a>`, "\ufffd\ufffdmoc.live@x.example"},
		{"mailto differs", `<a href="mailto:eve@evil.example?subject=x">bob@example.com</a>`, "eve@evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := Render(tt.in, false)
			if r.Links != 1 {
				t.Errorf("Links = %d, want 1", r.Links)
			}
			for _, want := range []string{`target="_blank"`, `rel="noopener noreferrer nofollow"`, `title="`} {
				if !strings.Contains(r.HTML, want) {
					t.Errorf("Render = %q, want %q", r.HTML, want)
				}
			}
			marker := `<span class="sealpost-linkhost" dir="ltr">`
			switch {
			case tt.host == "" && strings.Contains(r.HTML, marker):
				t.Errorf("Render = %q, want no host marker", r.HTML)
			case tt.host != "" && !strings.Contains(r.HTML, "</a>"+marker+" ("+tt.host+")</span>"):
				t.Errorf("Render = %q, want host marker (%s) after the link", r.HTML, tt.host)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		csp := FrameCSP(allow)
		for _, bad := range []string{"allow-scripts", "allow-same-origin", "allow-forms", "allow-top-navigation", "script-src"} {
			if strings.Contains(csp, bad) {
				t.Errorf("FrameCSP(%v) = %q contains %q", allow, csp, bad)
			}
		}
		for _, want := range []string{"sandbox allow-popups allow-popups-to-escape-sandbox;", "default-src 'none'",
			"style-src 'unsafe-inline'", "form-action 'none'", "base-uri 'none'", "frame-ancestors 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("FrameCSP(%v) = %q lacks %q", allow, csp, want)
			}
		}
		remote := strings.Contains(csp, "img-src data: https: http:;")
		if remote != allow {
			t.Errorf("FrameCSP(%v) = %q: remote images allowed = %v", allow, csp, remote)
		}
		if !allow && !strings.Contains(csp, "img-src data:;") {
			t.Errorf("FrameCSP(false) = %q, want img-src data: only", csp)
		}
	}
	doc := FrameDocument(Render(`<p>Hello</p>`, false).HTML)
	for _, want := range []string{"<!doctype html>", `<meta charset="utf-8">`, "<style>", "max-width:100%",
		"blockquote{", "<body>\n<p>Hello</p>\n</body>"} {
		if !strings.Contains(doc, want) {
			t.Errorf("FrameDocument lacks %q:\n%s", want, doc)
		}
	}
	parsed, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var styles int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "style" {
			styles++
		}
		if n.Type == html.ElementNode && n.Data == "script" {
			t.Error("frame document has a script element")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(parsed)
	if styles != 1 {
		t.Errorf("frame document has %d style elements, want 1", styles)
	}
}

func TestToText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"paragraphs", "<p>One</p><p>Two  \n lines</p>", "One\n\nTwo lines"},
		{"br and div", `a<br>b<div>c</div>d`, "a\nb\nc\nd"},
		{"entities", `Fish &amp; chips &lt;3 &eacute;&nbsp;x`, "Fish & chips <3 é x"},
		{"link differs", `<a href="https://example.com/x">the docs</a>.`, "the docs <https://example.com/x>."},
		{"link same", `<a href="https://example.com/">https://example.com</a>`, "https://example.com"},
		{"mailto", `<a href="mailto:bob@example.com">Bob</a>`, "Bob <bob@example.com>"},
		{"lists", `<ul><li>a</li><li>b<ol><li>x</li><li>y</li></ol></li></ul>`, "- a\n- b\n  1. x\n  2. y"},
		{"quote", `<p>Hi</p><blockquote><p>quoted</p><blockquote>deeper</blockquote></blockquote>end`, "Hi\n\n> quoted\n>\n> > deeper\nend"},
		{"pre", "<pre>  a\n    b</pre>x", "a\n    b\nx"},
		{"table", `<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>`, "a b\nc d"},
		{"hidden content", `<style>p{}</style><script>x()</script><title>T</title>Body`, "Body"},
		{"image alt", `Logo: <img src="cid:a" alt="ACME">`, "Logo: [ACME]"},
		{"hr", `a<hr>b`, "a\n----\nb"},
		{"whitespace", "  a \n\t b  ", "a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ToText(tt.in); got != tt.want {
				t.Errorf("ToText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFromText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", " \n ", ""},
		{"escape", `<script>alert("x")</script> & co`, `<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</p>`},
		{"paragraphs and lines", "a\r\nb\n\n\nc", "<p>a<br>\nb</p>\n<p>c</p>"},
		{"spaces kept", "  two  spaces", "<p>&nbsp;&nbsp;two &nbsp;spaces</p>"},
		{"link", "see https://example.com/a_(b).", `<p>see <a href="https://example.com/a_(b)">https://example.com/a_(b)</a>.</p>`},
		{"link in parens", "(https://example.com/x)", `<p>(<a href="https://example.com/x">https://example.com/x</a>)</p>`},
		{"link with parens and brackets", "[see https://example.com/a(b)c).]", `<p>[see <a href="https://example.com/a(b)c">https://example.com/a(b)c</a>).]</p>`},
		{"backslash ends link", `http://a.example\@b.example/`, `<p><a href="http://a.example">http://a.example</a>\@b.example/</p>`},
		{"no javascript link", "javascript:alert(1) http://", "<p>javascript:alert(1) http://</p>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := FromText(tt.in)
			if got != tt.want {
				t.Errorf("FromText(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, v := range violations(got, stored, false) {
				t.Error(v)
			}
		})
	}
	in := "Line one\nhttps://example.com/?a=1&b=<2>\n\nBye"
	if got, want := ToText(FromText(in)), "Line one\nhttps://example.com/?a=1&b=<2>\n\nBye"; got != want {
		t.Errorf("ToText(FromText(%q)) = %q, want %q", in, got, want)
	}
}

func TestExcerpt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"one line", "<p>Hello</p><p>world</p>", 50, "Hello world"},
		{"cut", "<p>Grüße aus Köln</p>", 5, "Grüße"},
		{"cut at space", "<p>ab cd</p>", 3, "ab"},
		{"zero", "<p>x</p>", 0, ""},
		{"hidden", "<script>secret()</script>shown", 10, "shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Excerpt(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("Excerpt(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if utf8.RuneCountInString(got) > tt.n || strings.Contains(got, "\n") {
				t.Errorf("Excerpt(%q, %d) = %q: too long or not one line", tt.in, tt.n, got)
			}
		})
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"", "plain", `<p style="color:red">x</p>`, `<a href="https://a.example">b</a>`,
		`<img src="http://remote/x">`, `<img src="cid:a">`, `<img src="` + pngData + `">`,
		`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
		`<svg><style><img src=x onerror=alert(1)></style></svg>`,
		`<noscript><p title="</noscript><img src=x onerror=alert(1)>">`,
		`<table><tr><td><a href="http://x.example">y</a></td></tr></table><blockquote>q</blockquote>`,
		`<div style="background:\75\72\6C(http://remote/x)">`,
		`<p class=MsoNormal style='margin:0in;font-size:11.0pt;font-family:"Calibri",sans-serif;color:#1F497D'>` +
			`<b>From:</b> A &lt;a@example.org&gt;<o:p></o:p></p><table border=0 cellpadding=0 width="100%"><tr>` +
			`<td valign=top style="border:solid windowtext 1.0pt;padding:0in 5.4pt"><font face=Arial color=red>x</font></td></tr></table>` +
			`<!--[if mso]><v:rect/><![endif]--><ul><li>one<li><a href="mailto:b@example.org">b</a></ul><pre> a\n b</pre>`,
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, allowRemote bool) {
		san := Sanitize(in)
		for _, v := range violations(san, stored, false) {
			t.Errorf("Sanitize: %s\noutput: %q", v, san)
		}
		if again := Sanitize(san); again != san {
			t.Errorf("Sanitize not idempotent:\nonce:  %q\ntwice: %q", san, again)
		}
		kind := renderedLocal
		if allowRemote {
			kind = renderedRemote
		}
		r := Render(in, allowRemote)
		for _, v := range violations(r.HTML, kind, false) {
			t.Errorf("Render: %s\noutput: %q", v, r.HTML)
		}
		if allowRemote && r.BlockedRemote != 0 {
			t.Errorf("BlockedRemote = %d with allowRemote", r.BlockedRemote)
		}
		_ = Excerpt(in, 80)
		for _, v := range violations(FromText(in), stored, false) {
			t.Errorf("FromText: %s", v)
		}
	})
}

// benchmarkMail builds an HTML mail of at least size bytes in the style of
// Outlook and newsletter mail: nested layout tables, inline styles, links,
// remote and inline images, quoted history and conditional comments.
func benchmarkMail(size int) string {
	var b strings.Builder
	b.WriteString(`<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta charset="utf-8">` +
		`<style>p.MsoNormal{margin:0in;font-size:11.0pt;font-family:"Calibri",sans-serif}</style>` +
		`<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026"/></xml><![endif]--></head>` +
		`<body lang="EN-US" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">` +
		`<div class="WordSection1">`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `<p class="MsoNormal" style="margin:0in 0in 0.0001pt;font-size:11.0pt;font-family:&quot;Calibri&quot;,sans-serif;color:#1F497D">`+
			`Dear colleague, regarding the referral of patient %d, please find the results attached.<o:p></o:p></p>`, i)
		fmt.Fprintf(&b, `<table border="0" cellspacing="0" cellpadding="0" width="600" style="width:450.0pt;border-collapse:collapse">`+
			`<tr><td width="300" valign="top" style="width:225.0pt;padding:0in 5.4pt 0in 5.4pt;border:solid windowtext 1.0pt">`+
			`<p class="MsoNormal"><b><span style="font-size:10.0pt;color:black">Item %d</span></b></p></td>`+
			`<td valign="top" style="padding:0in 5.4pt 0in 5.4pt"><p class="MsoNormal" align="right" style="text-align:right">`+
			`<a href="https://portal.example.com/cases/%d?utm_source=mail&amp;utm_medium=email" onclick="track()">Open case</a></p></td></tr></table>`, i, i)
		fmt.Fprintf(&b, `<p><img width="120" height="40" src="https://cdn.newsletter.example/img/banner-%d.png" alt="Banner">`+
			`<img src="cid:image%03d.png@01D9" width="64" height="64"><img src="http://t.example/open.gif?id=%d" width="1" height="1"></p>`, i, i, i)
		b.WriteString(`<blockquote style="border:none;border-left:solid #E1E1E1 1.0pt;padding:0in 0in 0in 4.0pt">` +
			`<p class="MsoNormal"><b>From:</b> Dr. Example &lt;dr@example.org&gt;<br><b>Sent:</b> Monday<br>` +
			`<b>Subject:</b> RE: results</p><ul><li>first point</li><li><i>second</i> point with <u>emphasis</u></li></ul>` +
			`<div style="background:url(http://remote/x)"><script>alert(1)</script><font color="#333333" face="Arial">` +
			`Confidential: this message may contain protected health information.</font></div></blockquote>`)
	}
	b.WriteString(`</div></body></html>`)
	return b.String()
}

func BenchmarkRender(b *testing.B) {
	mail := Sanitize(benchmarkMail(100 << 10))
	b.SetBytes(int64(len(mail)))
	b.ReportAllocs()
	for b.Loop() {
		Render(mail, false)
	}
}
