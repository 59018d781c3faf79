package attachment

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/internal/measure"
)

const benchSize = 1 << 30

// BenchmarkBlob1GiB uploads 1 GiB into a blob and downloads it again,
// streaming, and reports the throughput of each half and the peak resident
// memory above the start (the target: under 100 MiB above idle). "direct"
// copies through Upload.ReadFrom and Reader.WriteTo; "http" puts the upload
// through a loopback HTTP server and the download through Serve, as a
// browser would. Both include the fsync of Commit; the download reads the
// file back from the page cache.
func BenchmarkBlob1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 1 GiB twice; not in -short mode")
	}
	b.Run("direct", func(b *testing.B) { benchBlob(b, false) })
	b.Run("http", func(b *testing.B) { benchBlob(b, true) })
}

func benchBlob(b *testing.B, overHTTP bool) {
	e := newEnv(b)
	key := e.key(b)
	base := randomBytes(1 << 20)

	var srv *httptest.Server
	if overHTTP {
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodPut:
				u, err := e.blobs.Create(key, benchSize)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				defer u.Abort()
				if _, err := io.Copy(u, r.Body); err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				if err := u.Commit(); err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				io.WriteString(w, u.ID())
			case http.MethodGet:
				rd, err := e.blobs.Open(r.URL.Path[1:], key)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				defer rd.Close()
				if err := Serve(w, r, rd, "big.bin", "", time.Now()); err != nil {
					b.Errorf("Serve: %v", err)
				}
			}
		}))
		defer srv.Close()
	}

	runtime.GC()
	debug.FreeOSMemory()
	mem := measure.StartMemSampler(b, 10*time.Millisecond)
	var up, down time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		var id string
		src := &pattern{base: base, n: benchSize}
		if overHTTP {
			req, _ := http.NewRequest(http.MethodPut, srv.URL, src)
			req.ContentLength = benchSize
			resp, err := srv.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("upload: %d %s", resp.StatusCode, body)
			}
			id = string(body)
		} else {
			u, err := e.blobs.Create(key, benchSize)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(u, src); err != nil {
				b.Fatal(err)
			}
			if err := u.Commit(); err != nil {
				b.Fatal(err)
			}
			id = u.ID()
		}
		t1 := time.Now()
		up += t1.Sub(t0)

		check := &checker{base: base}
		if overHTTP {
			resp, err := srv.Client().Get(srv.URL + "/" + id)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(check, resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		} else {
			rd, err := e.blobs.Open(id, key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(check, rd); err != nil {
				b.Fatal(err)
			}
			rd.Close()
		}
		down += time.Since(t1)
		if check.off != benchSize {
			b.Fatalf("downloaded %d bytes, want %d", check.off, benchSize)
		}
		if enc, err := e.blobs.Stat(id); err != nil || enc != keyring.EncryptedSize(benchSize) {
			b.Fatalf("Stat = %d, %v", enc, err)
		}
		if err := e.blobs.Remove(id); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	peakRSS, peakAnon := mem.Stop()
	n := float64(b.N) * benchSize / (1 << 20)
	b.ReportMetric(n/up.Seconds(), "upload-MiB/s")
	b.ReportMetric(n/down.Seconds(), "download-MiB/s")
	if mem.OK() {
		b.ReportMetric(peakRSS, "peak-RSS-MiB")
		b.ReportMetric(peakAnon, "peak-anon-MiB")
	}
}

// pattern is n bytes of base repeated, with each 4 KiB block starting with
// its offset, so that a reordered or repeated chunk is noticed.
type pattern struct {
	base   []byte
	off, n int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	fillPattern(p.base, b, p.off)
	p.off += int64(len(b))
	return len(b), nil
}

func fillPattern(base, b []byte, off int64) {
	for i := 0; i < len(b); {
		i += copy(b[i:], base[(off+int64(i))%int64(len(base)):])
	}
	end := off + int64(len(b))
	for s := off - off%4096; s < end; s += 4096 {
		for k := range int64(8) {
			if q := s + k; q >= off && q < end {
				b[q-off] = byte(s >> (56 - 8*k))
			}
		}
	}
}

// checker compares what is written to it with the pattern.
type checker struct {
	base []byte
	want []byte
	off  int64
}

func (c *checker) Write(p []byte) (int, error) {
	if cap(c.want) < len(p) {
		c.want = make([]byte, len(p))
	}
	want := c.want[:len(p)]
	fillPattern(c.base, want, c.off)
	if !bytes.Equal(p, want) {
		return 0, fmt.Errorf("downloaded bytes differ near offset %d", c.off)
	}
	c.off += int64(len(p))
	return len(p), nil
}
