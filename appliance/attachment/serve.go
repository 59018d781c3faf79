package attachment

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// inertTypes are the content types a download may keep: none of them runs
// script in a browser. Everything else, text/html and image/svg+xml among
// them, is sent as application/octet-stream.
var inertTypes = map[string]string{
	"application/pdf": "application/pdf",
	"application/zip": "application/zip",
	"audio/mpeg":      "audio/mpeg",
	"image/gif":       "image/gif",
	"image/jpeg":      "image/jpeg",
	"image/png":       "image/png",
	"image/webp":      "image/webp",
	"text/csv":        "text/csv; charset=utf-8",
	"text/plain":      "text/plain; charset=utf-8",
	"video/mp4":       "video/mp4",
}

// maxCheckedChunks bounds the chunks Serve decrypts before it answers.
const maxCheckedChunks = 16

// Serve sends the plaintext of rd as a download named name, with
// http.ServeContent, so Range, If-Range and conditional requests work. It
// sets Content-Disposition: attachment with an ASCII fallback and an
// RFC 5987 UTF-8 name, X-Content-Type-Options: nosniff, Cache-Control:
// private, no-store, and contentType only if it is in a short list of inert
// types (application/octet-stream otherwise).
//
// Before any header is written it decrypts the first chunk of each
// requested range (chunk 0 without a Range), so a damaged blob gets a plain
// 500 rather than a 206 whose body stops short. It returns that error, or
// the error of a later chunk that failed after the headers went out (the
// client then sees a body shorter than its Content-Length), for the log;
// the response has been written either way. Serve does not close rd.
func Serve(w http.ResponseWriter, r *http.Request, rd *Reader, name, contentType string, modtime time.Time) error {
	for _, i := range startChunks(r.Header, rd.Size()) {
		if err := rd.load(i); err != nil {
			http.Error(w, "The attachment could not be read.", http.StatusInternalServerError)
			return fmt.Errorf("serve attachment: %w", err)
		}
	}
	if _, err := rd.Seek(0, io.SeekStart); err != nil {
		http.Error(w, "The attachment could not be read.", http.StatusInternalServerError)
		return fmt.Errorf("serve attachment: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", safeContentType(contentType))
	h.Set("Content-Disposition", disposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-store")
	sr := &servedReader{r: rd}
	http.ServeContent(w, r, "", modtime, sr)
	if sr.err != nil {
		return fmt.Errorf("serve attachment: %w", sr.err)
	}
	return nil
}

// servedReader remembers the first read error, which http.ServeContent
// drops.
type servedReader struct {
	r   *Reader
	err error
}

func (s *servedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func (s *servedReader) Seek(offset int64, whence int) (int64, error) {
	return s.r.Seek(offset, whence)
}

// startChunks returns the chunks at which the response to a request with
// header h starts to read a plaintext of size bytes: the first chunk of
// each range it asks for, and chunk 0 when it has no Range, when an
// If-Range may turn it into a full response, or when it has several (which
// http.ServeContent may answer in full). A malformed Range is left to
// ServeContent to refuse.
func startChunks(h http.Header, size int64) []int64 {
	if size == 0 {
		return nil // Open authenticated the only chunk
	}
	ranges, ok := strings.CutPrefix(h.Get("Range"), "bytes=")
	if !ok {
		return []int64{0}
	}
	var chunks []int64
	if h.Get("If-Range") != "" || strings.Contains(ranges, ",") {
		chunks = append(chunks, 0)
	}
	for part := range strings.SplitSeq(ranges, ",") {
		first, last, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			continue
		}
		var start int64
		if first == "" { // a suffix range: the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n <= 0 {
				continue
			}
			start = max(size-n, 0)
		} else {
			s, err := strconv.ParseInt(first, 10, 64)
			if err != nil || s < 0 || s >= size {
				continue
			}
			start = s
		}
		if c := start / keyring.ChunkSize; !contains(chunks, c) {
			chunks = append(chunks, c)
			if len(chunks) == maxCheckedChunks {
				break
			}
		}
	}
	return chunks
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// safeContentType returns contentType's media type if it is one of a few
// inert types (text with charset=utf-8), else application/octet-stream.
func safeContentType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "application/octet-stream"
	}
	if t, ok := inertTypes[mt]; ok {
		return t
	}
	return "application/octet-stream"
}

// maxNameBytes bounds a download's file name, as file systems do.
const maxNameBytes = 255

// disposition returns a Content-Disposition header value that makes
// browsers download a file called name (RFC 6266): an ASCII fallback in
// filename= and the UTF-8 name, percent-encoded, in filename*= (RFC 5987).
// Control and bidirectional-override characters and path separators are
// replaced, so the name can neither break the header nor disguise its
// extension.
func disposition(name string) string {
	name = cleanName(name)
	var b strings.Builder
	b.WriteString(`attachment; filename="`)
	for _, r := range name {
		if r >= 0x20 && r < 0x7f && r != '"' && r != '\\' && r != '%' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteString(`"; filename*=UTF-8''`)
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAttrChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// isAttrChar reports whether c may stand unencoded in an RFC 5987 value.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// cleanName makes a sender's file name safe to offer for download.
func cleanName(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return '_'
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == utf8.RuneError:
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:maxNameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name
}
