package e2e

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssOf reads a process's resident and anonymous memory in bytes.
func rssOf(pid int) (rss, anon int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "RssAnon:":
			anon = kb << 10
		}
	}
	return rss, anon
}

// peakSampler follows a process's memory until stopped.
type peakSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	rss  int64
	anon int64
}

func samplePeak(pid int) *peakSampler {
	p := &peakSampler{stop: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			rss, anon := rssOf(pid)
			p.mu.Lock()
			p.rss, p.anon = max(p.rss, rss), max(p.anon, anon)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

func (p *peakSampler) done() (rss, anon int64) {
	close(p.stop)
	p.wg.Wait()
	return p.rss, p.anon
}

// pattern is a deterministic stream of n bytes that does not compress.
type pattern struct {
	n, off int64
	h      [32]byte
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		if (p.off+int64(i))%32 == 0 {
			p.h = sha256.Sum256(p.h[:])
		}
		b[i] = p.h[(p.off+int64(i))%32]
	}
	p.off += int64(len(b))
	return len(b), nil
}

var (
	draftIDPattern = regexp.MustCompile(`name="draft" id="draft" value="(m[a-z2-7]{20})"`)
	attIDPattern   = regexp.MustCompile(`value="remove:([a-z2-7]{26})"`)
	csrfPattern    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// TestLargeAttachment uploads a file through the compose form of the real
// binary and downloads it back, comparing every byte, while it samples the
// server's memory: streaming encryption must not hold the file. It moves
// 64 MiB in `make test`; `make bench` sets SEALPOST_LARGE_FILE_MB=1024 for
// the 1 GiB figure the issue names.
func TestLargeAttachment(t *testing.T) {
	t.Parallel()
	size := int64(64) << 20
	if mb, err := strconv.Atoi(os.Getenv("SEALPOST_LARGE_FILE_MB")); err == nil && mb > 0 {
		size = int64(mb) << 20
	}
	f := newFlow(t, 160)
	a, _, _ := professional(t, f)
	jar, _ := cookiejar.New(nil)
	c := client()
	c.Jar = jar
	c.Timeout = 30 * time.Minute
	get := func(u string) string {
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	page := get(a.base + "/signin")
	token := csrfPattern.FindStringSubmatch(page)
	if token == nil {
		t.Fatalf("no form token on the sign-in page")
	}
	res, err := c.PostForm(a.base+"/signin", url.Values{"csrf": {token[1]}, "email": {patEmail}, "password": {patPassword}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	page = get(a.base + "/mail/compose")
	token = csrfPattern.FindStringSubmatch(page)
	if !strings.Contains(page, `id="composeform"`) || token == nil {
		t.Fatalf("Pat is not signed in: %.300s", page)
	}

	pid := a.in.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	idleRSS, idleAnon := rssOf(pid)

	// Upload: the form's fields, then the file, streamed.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, kv := range [][2]string{{"csrf", token[1]}, {"to", ""}, {"subject", "Scan archive"}, {"body", "<p>The archive</p>"}, {"format", "html"}, {"do", "save"}} {
			_ = mw.WriteField(kv[0], kv[1])
		}
		fw, err := mw.CreateFormFile("files", "archive.bin")
		if err == nil {
			_, err = io.Copy(fw, &pattern{n: size})
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPost, a.base+"/mail/compose", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-CSRF-Token", token[1])
	up := samplePeak(pid)
	start := time.Now()
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	upTime := time.Since(start)
	upRSS, upAnon := up.done()
	draft, att := draftIDPattern.FindStringSubmatch(string(body)), attIDPattern.FindStringSubmatch(string(body))
	if res.StatusCode != 200 || draft == nil || att == nil {
		t.Fatalf("upload: %d %.500s", res.StatusCode, body)
	}

	down := samplePeak(pid)
	start = time.Now()
	res, err = c.Get(a.base + "/mail/m/" + draft[1] + "/a/" + att[1])
	if err != nil {
		t.Fatal(err)
	}
	want, got := sha256.New(), sha256.New()
	n, err := io.Copy(got, res.Body)
	res.Body.Close()
	downTime := time.Since(start)
	downRSS, downAnon := down.done()
	if _, werr := io.Copy(want, &pattern{n: size}); werr != nil || err != nil || n != size || string(want.Sum(nil)) != string(got.Sum(nil)) {
		t.Fatalf("download: %d of %d bytes, %v; same bytes: %v", n, size, err, string(want.Sum(nil)) == string(got.Sum(nil)))
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("%d MiB: upload %.0f MiB/s, peak RSS +%.1f MiB (anon +%.1f); download %.0f MiB/s, peak RSS +%.1f MiB (anon +%.1f); idle RSS %.1f MiB",
		size>>20, mib(size)/upTime.Seconds(), mib(upRSS-idleRSS), mib(upAnon-idleAnon),
		mib(size)/downTime.Seconds(), mib(downRSS-idleRSS), mib(downAnon-idleAnon), mib(idleRSS))
	// Anonymous memory is the process's own; resident memory also counts
	// page-cache pages of the files it maps (the store's value log), which
	// the kernel reclaims at will.
	if extra := mib(max(upAnon, downAnon) - idleAnon); extra > 100 {
		t.Errorf("moving a %d MiB file took %.0f MiB of memory above idle; the bound is 100 MiB", size>>20, extra)
	}
}
