package attachment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// server serves blob id with Serve, over loopback, and reports each
// request's error from Serve on errs.
func (e *env) server(t *testing.T, id string, key *keyring.DataKey, name, contentType string) (*httptest.Server, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd, err := e.blobs.Open(id, key)
		if err != nil {
			http.Error(w, "open failed", http.StatusInternalServerError)
			errs <- err
			return
		}
		defer rd.Close()
		errs <- Serve(w, r, rd, name, contentType, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	}))
	t.Cleanup(srv.Close)
	return srv, errs
}

func get(t *testing.T, srv *httptest.Server, method, rangeHeader string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestServe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)
	const size = 3*chunk + 17
	plain := randomBytes(size)
	id := e.put(t, key, plain)
	srv, errs := e.server(t, id, key, "Prüfbericht 2026.pdf", "application/pdf")

	tests := []struct {
		name, method, rng string
		status            int
		from, to          int // the body is plain[from:to]
		contentRange      string
		parts             [][2]int // multipart/byteranges
	}{
		{name: "full", method: "GET", status: 200, from: 0, to: size},
		{name: "head", method: "HEAD", status: 200},
		{name: "inside one chunk", method: "GET", rng: "bytes=100-199", status: 206, from: 100, to: 200,
			contentRange: fmt.Sprintf("bytes 100-199/%d", size)},
		{name: "across chunks", method: "GET", rng: "bytes=65000-140000", status: 206, from: 65000, to: 140001,
			contentRange: fmt.Sprintf("bytes 65000-140000/%d", size)},
		{name: "to the end", method: "GET", rng: fmt.Sprintf("bytes=%d-", 2*chunk), status: 206, from: 2 * chunk, to: size,
			contentRange: fmt.Sprintf("bytes %d-%d/%d", 2*chunk, size-1, size)},
		{name: "suffix", method: "GET", rng: "bytes=-500", status: 206, from: size - 500, to: size,
			contentRange: fmt.Sprintf("bytes %d-%d/%d", size-500, size-1, size)},
		{name: "suffix longer than the file", method: "GET", rng: "bytes=-999999", status: 206, from: 0, to: size,
			contentRange: fmt.Sprintf("bytes 0-%d/%d", size-1, size)},
		{name: "last byte", method: "GET", rng: fmt.Sprintf("bytes=%d-%d", size-1, size-1), status: 206, from: size - 1, to: size,
			contentRange: fmt.Sprintf("bytes %d-%d/%d", size-1, size-1, size)},
		{name: "beyond the end", method: "GET", rng: fmt.Sprintf("bytes=%d-", size), status: 416,
			contentRange: fmt.Sprintf("bytes */%d", size)},
		{name: "far beyond the end", method: "GET", rng: "bytes=9000000-9000010", status: 416},
		{name: "two ranges", method: "GET", rng: "bytes=10-19,131072-131081", status: 206,
			parts: [][2]int{{10, 20}, {131072, 131082}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := get(t, srv, tt.method, tt.rng)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if serr := <-errs; serr != nil {
				t.Errorf("Serve = %v", serr)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.contentRange != "" && resp.Header.Get("Content-Range") != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), tt.contentRange)
			}
			if tt.status >= 400 {
				return
			}
			for k, want := range map[string]string{
				"Content-Disposition":    `attachment; filename="Pr_fbericht 2026.pdf"; filename*=UTF-8''Pr%C3%BCfbericht%202026.pdf`,
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "private, no-store",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tt.parts != nil {
				checkParts(t, resp, body, plain, tt.parts)
				return
			}
			if got := resp.Header.Get("Content-Type"); got != "application/pdf" {
				t.Errorf("Content-Type %q, want application/pdf", got)
			}
			if tt.method == "HEAD" {
				if len(body) != 0 || resp.ContentLength != size {
					t.Errorf("HEAD: %d body bytes, Content-Length %d", len(body), resp.ContentLength)
				}
				return
			}
			if !bytes.Equal(body, plain[tt.from:tt.to]) {
				t.Errorf("body: %d bytes, want plain[%d:%d] (%d bytes); equal %v", len(body), tt.from, tt.to, tt.to-tt.from, bytes.Equal(body, plain[tt.from:tt.to]))
			}
		})
	}
}

func checkParts(t *testing.T, resp *http.Response, body, plain []byte, parts [][2]int) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q, want multipart/byteranges", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, want := range parts {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != "application/pdf" {
			t.Errorf("part %d: Content-Type %q", i, ct)
		}
		got, err := io.ReadAll(p)
		if err != nil || !bytes.Equal(got, plain[want[0]:want[1]]) {
			t.Errorf("part %d: %d bytes, %v; want plain[%d:%d]", i, len(got), err, want[0], want[1])
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts than asked for: %v", err)
	}
}

// TestServeDamaged: a damaged chunk that a response starts in gets a clean
// 500 with no download headers; one further on cuts the body short, and
// Serve reports it.
func TestServeDamaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const size = 3*chunk + 17
	tests := []struct {
		name      string
		damaged   int // chunk
		rng       string
		status    int
		short     bool // the body ends early
		serveFail bool
	}{
		{name: "full, first chunk damaged", damaged: 0, status: 500, serveFail: true},
		{name: "range in the damaged chunk", damaged: 1, rng: "bytes=70000-70100", status: 500, serveFail: true},
		{name: "suffix in the damaged chunk", damaged: 2, rng: "bytes=-60000", status: 500, serveFail: true},
		{name: "second of two ranges damaged", damaged: 2, rng: "bytes=0-9,140000-140009", status: 500, serveFail: true},
		{name: "range before the damage", damaged: 1, rng: "bytes=0-99", status: 206},
		{name: "range after the damage", damaged: 0, rng: "bytes=70000-70100", status: 206},
		{name: "full, later chunk damaged", damaged: 1, status: 200, short: true, serveFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := e.key(t)
			plain := randomBytes(size)
			id := e.put(t, key, plain)
			p := filepath.Join(e.dir, id[:2], id)
			data, _ := os.ReadFile(p)
			data[32+tt.damaged*(chunk+28)+100] ^= 0x80
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			srv, errs := e.server(t, id, key, "report.pdf", "application/pdf")
			resp, body, err := get(t, srv, "GET", tt.rng)
			serr := <-errs
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.serveFail != errors.Is(serr, keyring.ErrCorrupt) {
				t.Errorf("Serve = %v, want ErrCorrupt: %v", serr, tt.serveFail)
			}
			if tt.status == 500 {
				if cd := resp.Header.Get("Content-Disposition"); cd != "" {
					t.Errorf("a 500 offers a download: %q", cd)
				}
				if strings.Contains(string(body), "chunk") || strings.Contains(string(body), "keyring") {
					t.Errorf("the 500 tells the cause: %q", body)
				}
				return
			}
			if tt.short {
				if err == nil || int64(len(body)) >= resp.ContentLength {
					t.Errorf("body %d bytes of %d, read error %v: want a short body and an error", len(body), resp.ContentLength, err)
				}
				if !bytes.Equal(body, plain[:len(body)]) {
					t.Error("the short body is not a prefix of the plaintext")
				}
				return
			}
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
		})
	}
}

func TestStartChunks(t *testing.T) {
	t.Parallel()
	const size = 10 * chunk
	tests := []struct {
		rng, ifRange string
		size         int64
		want         []int64
	}{
		{size: size, want: []int64{0}},
		{size: 0, rng: "bytes=0-", want: nil},
		{size: size, rng: "bytes=0-10", want: []int64{0}},
		{size: size, rng: fmt.Sprintf("bytes=%d-", 3*chunk+1), want: []int64{3}},
		{size: size, rng: "bytes=-1", want: []int64{9}},
		{size: size, rng: "bytes=-99999999", want: []int64{0}},
		{size: size, rng: fmt.Sprintf("bytes=%d-", size), want: nil},
		{size: size, rng: fmt.Sprintf("bytes=%d-%d, %d-", chunk, chunk+1, 5*chunk), want: []int64{0, 1, 5}},
		{size: size, rng: "bytes=200000-", ifRange: `"etag"`, want: []int64{0, 3}},
		{size: size, rng: "items=1-2", want: []int64{0}},
		{size: size, rng: "bytes=x-y", want: nil},
		{size: size, rng: "bytes=" + strings.Repeat("0-0,", 100) + "1-1", want: []int64{0}},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.rng != "" {
			h.Set("Range", tt.rng)
		}
		if tt.ifRange != "" {
			h.Set("If-Range", tt.ifRange)
		}
		if got := startChunks(h, tt.size); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("startChunks(Range %q, If-Range %q, size %d) = %v, want %v", tt.rng, tt.ifRange, tt.size, got, tt.want)
		}
	}
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("%d-%d", i*chunk, i*chunk))
	}
	if got := startChunks(http.Header{"Range": {"bytes=" + strings.Join(many, ",")}}, 200*chunk); len(got) != maxCheckedChunks {
		t.Errorf("startChunks checked %d chunks of 100 ranges, want %d", len(got), maxCheckedChunks)
	}
}

func FuzzStartChunks(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=-5", "bytes=1-2,3-4", "bytes=", "bytes=--1", "bytes=9223372036854775807-"} {
		f.Add(s, int64(3*chunk+17))
	}
	f.Fuzz(func(t *testing.T, rng string, size int64) {
		if size < 0 {
			return
		}
		got := startChunks(http.Header{"Range": {rng}}, size)
		if len(got) > maxCheckedChunks {
			t.Fatalf("%d chunks", len(got))
		}
		for _, c := range got {
			if c < 0 || c*chunk >= size {
				t.Fatalf("chunk %d of a %d-byte plaintext", c, size)
			}
		}
	})
}

func TestSafeContentType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"application/pdf":                  "application/pdf",
		"IMAGE/PNG":                        "image/png",
		"image/jpeg; foo=bar":              "image/jpeg",
		"text/plain":                       "text/plain; charset=utf-8",
		"text/plain; charset=utf-7":        "text/plain; charset=utf-8",
		"text/csv; charset=iso-8859-1":     "text/csv; charset=utf-8",
		"text/html":                        "application/octet-stream",
		"text/html; charset=utf-8":         "application/octet-stream",
		"image/svg+xml":                    "application/octet-stream",
		"application/xhtml+xml":            "application/octet-stream",
		"text/xml":                         "application/octet-stream",
		"application/javascript":           "application/octet-stream",
		"text/plain\r\nX-Injected: 1":      "application/octet-stream",
		"":                                 "application/octet-stream",
		"garbage":                          "application/octet-stream",
		"application/vnd.ms-excel":         "application/octet-stream",
		"multipart/byteranges; boundary=x": "application/octet-stream",
	} {
		if got := safeContentType(in); got != want {
			t.Errorf("safeContentType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDisposition(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ä", 200) + ".docx"
	tests := []struct{ name, want string }{
		{"report.pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{"Prüfbericht 2026.pdf", `attachment; filename="Pr_fbericht 2026.pdf"; filename*=UTF-8''Pr%C3%BCfbericht%202026.pdf`},
		{`a "quoted" \name%.txt`, `attachment; filename="a _quoted_ _name_.txt"; filename*=UTF-8''a%20%22quoted%22%20_name%25.txt`},
		{"../../etc/passwd", `attachment; filename=".._.._etc_passwd"; filename*=UTF-8''.._.._etc_passwd`},
		{"x\r\nSet-Cookie: a=b", `attachment; filename="x__Set-Cookie: a=b"; filename*=UTF-8''x__Set-Cookie%3A%20a%3Db`},
		{"invoice\u202Efdp.exe", `attachment; filename="invoice_fdp.exe"; filename*=UTF-8''invoice_fdp.exe`},
		{"bad\xffutf8", `attachment; filename="bad_utf8"; filename*=UTF-8''bad_utf8`},
		{"", `attachment; filename="attachment"; filename*=UTF-8''attachment`},
		{"  ", `attachment; filename="attachment"; filename*=UTF-8''attachment`},
		{"..", `attachment; filename="attachment"; filename*=UTF-8''attachment`},
		{"日本語.txt", `attachment; filename="___.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt`},
	}
	for _, tt := range tests {
		if got := disposition(tt.name); got != tt.want {
			t.Errorf("disposition(%q) =\n %s\nwant\n %s", tt.name, got, tt.want)
		}
	}
	got := cleanName(long)
	if len(got) > maxNameBytes || !strings.HasSuffix(got, ".docx") || !strings.HasPrefix(got, "ää") {
		t.Errorf("cleanName of a %d-byte name = %d bytes %q", len(long), len(got), got)
	}
	// The header value must survive a round trip through mime parsing.
	_, params, err := mime.ParseMediaType(disposition("Prüfbericht 2026.pdf"))
	if err != nil || params["filename"] != "Prüfbericht 2026.pdf" {
		t.Errorf("mime.ParseMediaType(disposition) = %v, %v", params, err)
	}
}
