package branding

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/math/fixed"

	"github.com/sealpost/sealpost/appliance/fault"
)

const (
	exifMarker    = "SEALPOST-EXIF-MARKER GPS 52.3676N 4.9041E"
	commentMarker = "SEALPOST-JPEG-COMMENT-MARKER"
	textMarker    = "SEALPOST-PNG-TEXT-MARKER"
	iccMarker     = "SEALPOST-ICC-MARKER"
	trailerMarker = "SEALPOST-TRAILER-MARKER"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// pattern returns a w×h image with gradients, so that a decoder that mixes up
// rows or channels shows up in the pixel comparison. With alpha, the alpha
// channel varies too.
func pattern(w, h int, alpha bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(0xff)
			if alpha {
				a = uint8(x * 255 / max(w-1, 1))
			}
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(x * 7), G: uint8(y * 11), B: uint8((x + y) * 3), A: a})
		}
	}
	return img
}

func encodedPNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodedJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodedGIF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jpegSegment builds a JPEG marker segment; its length counts itself.
func jpegSegment(marker byte, payload []byte) []byte {
	seg := []byte{0xff, marker, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(2+len(payload)))
	return append(seg, payload...)
}

// withEXIF puts an EXIF APP1 segment (a big-endian TIFF header followed by
// the marker) and a COM segment right after the JPEG's SOI marker.
func withEXIF(t testing.TB, data []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(data, []byte{0xff, 0xd8}) {
		t.Fatal("not a JPEG")
	}
	exif := append([]byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"), exifMarker...)
	out := append([]byte{0xff, 0xd8}, jpegSegment(0xe1, exif)...)
	out = append(out, jpegSegment(0xfe, []byte(commentMarker))...)
	return append(out, data[2:]...)
}

// pngChunk builds a PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// withPNGMetadata puts tEXt, iTXt, eXIf and iCCP chunks right after IHDR and
// bytes after IEND.
func withPNGMetadata(t testing.TB, data []byte) []byte {
	t.Helper()
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	if !bytes.HasPrefix(data, pngSignature) || string(data[12:16]) != "IHDR" {
		t.Fatal("not a PNG")
	}
	out := append([]byte(nil), data[:ihdrEnd]...)
	out = append(out, pngChunk("tEXt", []byte("Comment\x00"+textMarker))...)
	out = append(out, pngChunk("iTXt", []byte("Author\x00\x00\x00\x00\x00"+textMarker))...)
	out = append(out, pngChunk("eXIf", append([]byte("MM\x00\x2a\x00\x00\x00\x08"), exifMarker...))...)
	out = append(out, pngChunk("iCCP", []byte(iccMarker+"\x00\x00garbage-profile"))...)
	out = append(out, data[ihdrEnd:]...)
	return append(out, trailerMarker...)
}

// withIHDRSize rewrites the width and height that a PNG's header claims.
func withIHDRSize(data []byte, w, h uint32) []byte {
	out := append([]byte(nil), data...)
	binary.BigEndian.PutUint32(out[16:], w)
	binary.BigEndian.PutUint32(out[20:], h)
	binary.BigEndian.PutUint32(out[29:], crc32.ChecksumIEEE(out[12:29]))
	return out
}

// pngChunkTypes lists the chunk types of a PNG in order.
func pngChunkTypes(t testing.TB, data []byte) []string {
	t.Helper()
	if !bytes.HasPrefix(data, pngSignature) {
		t.Fatalf("output does not start with the PNG signature: % x", data[:min(len(data), 8)])
	}
	var types []string
	rest := data[8:]
	for len(rest) >= 12 {
		n := int(binary.BigEndian.Uint32(rest))
		if 12+n > len(rest) {
			t.Fatalf("chunk %q overruns the file", rest[4:8])
		}
		types = append(types, string(rest[4:8]))
		rest = rest[12+n:]
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the last chunk", len(rest))
	}
	return types
}

// decodePNG decodes data strictly as a PNG of size w×h.
func decodePNG(t testing.TB, data []byte, w, h int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	if b := img.Bounds(); b != image.Rect(0, 0, w, h) {
		t.Fatalf("output bounds %v, want %d×%d at the origin", b, w, h)
	}
	return img
}

// samePixels reports the first pixel where a and b differ in 8-bit NRGBA.
func samePixels(a, b image.Image) error {
	if a.Bounds() != b.Bounds() {
		return fmt.Errorf("bounds %v and %v", a.Bounds(), b.Bounds())
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ca := color.NRGBAModel.Convert(a.At(x, y))
			cb := color.NRGBAModel.Convert(b.At(x, y))
			if ca != cb {
				return fmt.Errorf("pixel (%d,%d) is %v, want %v", x, y, cb, ca)
			}
		}
	}
	return nil
}

func TestKindSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind Kind
		w, h int
	}{
		{Banner, 700, 45},
		{Icon, 64, 64},
		{"favicon", 0, 0},
		{"", 0, 0},
	}
	for _, tt := range tests {
		if w, h := tt.kind.Size(); w != tt.w || h != tt.h {
			t.Errorf("Kind(%q).Size() = %d, %d; want %d, %d", tt.kind, w, h, tt.w, tt.h)
		}
	}
}

func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	bannerPNG := encodedPNG(t, pattern(700, 45, false))
	iconPNG := encodedPNG(t, pattern(64, 64, true))
	iconAtLimit := append(append([]byte(nil), iconPNG...), make([]byte, MaxUploadBytes-len(iconPNG))...)
	paletted := image.NewPaletted(image.Rect(0, 0, 64, 64), color.Palette{color.Transparent, color.White, color.NRGBA{R: 0x0f, G: 0x7b, B: 0x6c, A: 0xff}})
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(i % 3)
	}
	gray := image.NewGray(image.Rect(0, 0, 700, 45))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}

	tests := []struct {
		name    string
		kind    Kind
		data    []byte
		markers []string // must not appear in the output
	}{
		{name: "banner png", kind: Banner, data: bannerPNG},
		{name: "banner jpeg", kind: Banner, data: encodedJPEG(t, pattern(700, 45, false))},
		{name: "banner grey jpeg", kind: Banner, data: encodedJPEG(t, gray)},
		{name: "icon png with alpha", kind: Icon, data: iconPNG},
		{name: "icon paletted png", kind: Icon, data: encodedPNG(t, paletted)},
		{name: "icon jpeg", kind: Icon, data: encodedJPEG(t, pattern(64, 64, false))},
		{name: "icon png at the size limit", kind: Icon, data: iconAtLimit},
		{
			name: "banner jpeg with exif and comment", kind: Banner,
			data:    withEXIF(t, encodedJPEG(t, pattern(700, 45, false))),
			markers: []string{exifMarker, commentMarker, "Exif"},
		},
		{
			name: "icon jpeg with exif and comment", kind: Icon,
			data:    withEXIF(t, encodedJPEG(t, pattern(64, 64, false))),
			markers: []string{exifMarker, commentMarker, "Exif"},
		},
		{
			name: "banner png with text, exif, icc and trailer", kind: Banner,
			data:    withPNGMetadata(t, bannerPNG),
			markers: []string{textMarker, exifMarker, iccMarker, trailerMarker},
		},
		{
			name: "icon png with text, exif, icc and trailer", kind: Icon,
			data:    withPNGMetadata(t, iconPNG),
			markers: []string{textMarker, exifMarker, iccMarker, trailerMarker},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, m := range tt.markers {
				if !bytes.Contains(tt.data, []byte(m)) {
					t.Fatalf("test input lacks marker %q", m)
				}
			}
			out, err := Check(tt.kind, tt.data)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			w, h := tt.kind.Size()
			got := decodePNG(t, out, w, h)
			want, _, err := image.Decode(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if err := samePixels(want, got); err != nil {
				t.Errorf("pixels changed: %v", err)
			}
			for _, m := range tt.markers {
				if bytes.Contains(out, []byte(m)) {
					t.Errorf("output still contains %q", m)
				}
			}
			for _, typ := range pngChunkTypes(t, out) {
				switch typ {
				case "IHDR", "PLTE", "tRNS", "IDAT", "IEND":
				default:
					t.Errorf("output has a %s chunk; only pixel chunks may remain", typ)
				}
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	t.Parallel()
	iconPNG := encodedPNG(t, pattern(64, 64, false))
	iconJPEG := encodedJPEG(t, pattern(64, 64, false))
	tooLarge := append(append([]byte(nil), iconPNG...), make([]byte, MaxUploadBytes+1-len(iconPNG))...)

	tests := []struct {
		name string
		kind Kind
		data []byte
		want string
	}{
		{"banner too wide and tall", Banner, encodedPNG(t, pattern(800, 60, false)), "The banner must be 700×45 pixels; this image is 800×60."},
		{"banner given an icon", Banner, iconJPEG, "The banner must be 700×45 pixels; this image is 64×64."},
		{"icon one pixel too wide", Icon, encodedJPEG(t, pattern(65, 64, false)), "The icon must be 64×64 pixels; this image is 65×64."},
		{"icon given a banner", Icon, encodedPNG(t, pattern(700, 45, false)), "The icon must be 64×64 pixels; this image is 700×45."},
		// A header that promises 10⁸ pixels in a file of a few bytes must be
		// refused before any decompression.
		{"decompression bomb header", Icon, withIHDRSize(iconPNG, 100000, 100000), "The icon must be 64×64 pixels; this image is 100000×100000."},
		{"banner over 1 MiB", Banner, tooLarge, "The banner is larger than 1 MiB."},
		{"icon over 1 MiB", Icon, tooLarge, "The icon is larger than 1 MiB."},
		{"gif", Icon, encodedGIF(t, pattern(64, 64, false)), "The icon must be a PNG or JPEG image."},
		{"svg", Banner, []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="700" height="45"><script>alert(1)</script></svg>`), "The banner must be a PNG or JPEG image."},
		{"bare svg", Icon, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"></svg>`), "The icon must be a PNG or JPEG image."},
		{"webp", Icon, []byte("RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"), "The icon must be a PNG or JPEG image."},
		{"bmp", Banner, []byte("BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00"), "The banner must be a PNG or JPEG image."},
		{"html", Banner, []byte("<html><body>hello</body></html>"), "The banner must be a PNG or JPEG image."},
		{"png truncated in the pixel data", Icon, iconPNG[:len(iconPNG)/2], "The icon could not be read as a PNG or JPEG image."},
		{"png truncated in the header", Banner, iconPNG[:20], "The banner could not be read as a PNG or JPEG image."},
		{"png signature only", Icon, pngSignature, "The icon could not be read as a PNG or JPEG image."},
		{"png with bad header crc", Icon, append(append([]byte(nil), iconPNG[:29]...), append([]byte{0, 0, 0, 0}, iconPNG[33:]...)...), "The icon could not be read as a PNG or JPEG image."},
		{"jpeg truncated", Icon, iconJPEG[:len(iconJPEG)/2], "The icon could not be read as a PNG or JPEG image."},
		{"jpeg magic only", Banner, []byte{0xff, 0xd8, 0xff}, "The banner could not be read as a PNG or JPEG image."},
		{"empty banner", Banner, []byte{}, "The banner file is empty."},
		{"nil icon", Icon, nil, "The icon file is empty."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := Check(tt.kind, tt.data)
			if err == nil {
				t.Fatalf("Check accepted the input and returned %d bytes", len(out))
			}
			if out != nil {
				t.Errorf("Check returned %d bytes with an error", len(out))
			}
			if k := fault.KindOf(err); k != fault.Invalid {
				t.Errorf("kind %v, want invalid (error %v)", k, err)
			}
			if got := fault.Message(err); got != tt.want {
				t.Errorf("message %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	if _, err := Check("favicon", encodedPNG(t, pattern(64, 64, false))); err == nil || fault.KindOf(err) != fault.Internal {
		t.Errorf("Check with an unknown kind: %v, want an internal error", err)
	}
	if _, err := Default("favicon", "Example", ""); err == nil || fault.KindOf(err) != fault.Internal {
		t.Errorf("Default with an unknown kind: %v, want an internal error", err)
	}
}

var defaultNames = []string{
	"Example Clinic",
	"",
	"A very long organization name that cannot possibly fit into seven hundred pixels of banner width at all",
	"Ünïcödé Gesundheit AG",
}

// whiteish reports whether c is drawn text rather than background.
func whiteish(c color.RGBA) bool { return c.R >= 0xf0 && c.G >= 0xf0 && c.B >= 0xf0 && c.A == 0xff }

func rgbaAt(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

// inkBox returns the smallest rectangle holding every opaque pixel that is
// not the accent colour, and how many of them are white-ish.
func inkBox(img image.Image, accent color.RGBA) (box image.Rectangle, white int) {
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := rgbaAt(img, x, y)
			if c.A != 0xff || c == accent {
				continue
			}
			box = box.Union(image.Rect(x, y, x+1, y+1))
			if whiteish(c) {
				white++
			}
		}
	}
	return box, white
}

func TestDefaultBanner(t *testing.T) {
	t.Parallel()
	accent := color.RGBA{R: 0x0f, G: 0x7b, B: 0x6c, A: 0xff}
	names := append([]string{"HELLO WORLD", "Wimbledon & Jónsdóttir Ärzte GmbH", "東京 Clinic", "東京"}, defaultNames...)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := Default(Banner, name, "")
			if err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, out, 700, 45)
			for y := range 45 {
				for x := range bannerPadding - 2 {
					if c := rgbaAt(img, x, y); c != accent {
						t.Fatalf("pixel (%d,%d) in the left padding is %v, want the accent %v", x, y, c, accent)
					}
				}
			}
			box, white := inkBox(img, accent)
			if name == "" || name == "東京" {
				if !box.Empty() {
					t.Fatalf("banner without a drawable name has text in %v", box)
				}
				return
			}
			if white < 50 {
				t.Fatalf("only %d white text pixels", white)
			}
			if box.Min.X < bannerPadding-2 || box.Min.X > bannerPadding+3 {
				t.Errorf("text starts at x=%d, want about %d", box.Min.X, bannerPadding)
			}
			if box.Max.X > 700-bannerPadding+1 {
				t.Errorf("text reaches x=%d, past the right padding", box.Max.X)
			}
			if box.Min.Y < 4 || box.Max.Y > 45-3 {
				t.Errorf("text spans rows %d–%d, too close to the edge", box.Min.Y, box.Max.Y)
			}
			if box.Dy() < 12 {
				t.Errorf("text is only %d pixels tall", box.Dy())
			}
			if !strings.ContainsAny(name, "gjpqy,") && !strings.ContainsAny(name, "ÄÖÜÁÉÍÓÚ") {
				// No descenders and no accents above capitals: the ink is the
				// capital height, which must sit in the middle.
				if mid := float64(box.Min.Y+box.Max.Y) / 2; mid < 21.5 || mid > 23.5 {
					t.Errorf("text rows %d–%d are centred at %.1f, want 22.5", box.Min.Y, box.Max.Y, mid)
				}
			}
		})
	}
}

func TestDefaultIcon(t *testing.T) {
	t.Parallel()
	accent := color.RGBA{R: 0x0f, G: 0x7b, B: 0x6c, A: 0xff}
	names := append([]string{"WW MM", "東京"}, defaultNames...)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := Default(Icon, name, "#zzzzzz")
			if err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, out, 64, 64)
			for _, p := range []image.Point{{0, 0}, {63, 0}, {0, 63}, {63, 63}} {
				if c := rgbaAt(img, p.X, p.Y); c.A != 0 {
					t.Errorf("corner %v is %v, want transparent", p, c)
				}
			}
			for _, p := range []image.Point{{0, 32}, {32, 0}, {63, 32}, {32, 63}, {5, 5}, {58, 58}} {
				if c := rgbaAt(img, p.X, p.Y); c != accent {
					t.Errorf("edge pixel %v is %v, want the accent %v", p, c, accent)
				}
			}
			box, white := inkBox(img, accent)
			if white < 30 {
				t.Fatalf("only %d white text pixels", white)
			}
			if box.Min.X < 8 || box.Max.X > 56 || box.Min.Y < 8 || box.Max.Y > 56 {
				t.Errorf("initials occupy %v, too close to the edge", box)
			}
			if mid := float64(box.Min.X+box.Max.X) / 2; mid < 31 || mid > 33 {
				t.Errorf("initials span columns %d–%d, centred at %.1f, want 32", box.Min.X, box.Max.X, mid)
			}
			if mid := float64(box.Min.Y+box.Max.Y) / 2; name != "Ünïcödé Gesundheit AG" && (mid < 31 || mid > 33) {
				t.Errorf("initials span rows %d–%d, centred at %.1f, want 32", box.Min.Y, box.Max.Y, mid)
			}
		})
	}
}

func TestDefaultAccent(t *testing.T) {
	t.Parallel()
	def := color.RGBA{R: 0x0f, G: 0x7b, B: 0x6c, A: 0xff}
	tests := []struct {
		accent string
		want   color.RGBA
	}{
		{"", def},
		{"#0f7b6c", def},
		{"#ff0000", color.RGBA{R: 0xff, A: 0xff}},
		{"#1A2B3C", color.RGBA{R: 0x1a, G: 0x2b, B: 0x3c, A: 0xff}},
		{"#fff", def},
		{"0f7b6c00", def},
		{"#12345g", def},
		{"#+12345", def},
		{"red", def},
		{"#0f7b6c ", def},
	}
	for _, tt := range tests {
		t.Run(tt.accent, func(t *testing.T) {
			t.Parallel()
			for _, kind := range []Kind{Banner, Icon} {
				out, err := Default(kind, "Example Clinic", tt.accent)
				if err != nil {
					t.Fatal(err)
				}
				w, h := kind.Size()
				img := decodePNG(t, out, w, h)
				if c := rgbaAt(img, 2, h/2); c != tt.want {
					t.Errorf("%s: left edge is %v, want %v", kind, c, tt.want)
				}
			}
		})
	}
}

func TestDefaultIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{Banner, Icon} {
		a, err := Default(kind, "Example Clinic", "#336699")
		if err != nil {
			t.Fatal(err)
		}
		b, err := Default(kind, "Example Clinic", "#336699")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two calls gave different images", kind)
		}
		// What Default makes, Check accepts unchanged in pixels.
		c, err := Check(kind, a)
		if err != nil {
			t.Fatalf("%s: Check rejects the default image: %v", kind, err)
		}
		w, h := kind.Size()
		if err := samePixels(decodePNG(t, a, w, h), decodePNG(t, c, w, h)); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

func TestInitials(t *testing.T) {
	t.Parallel()
	f, err := boldFont()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, want string }{
		{"Example Clinic", "EC"},
		{"example clinic", "EC"},
		{"Acme", "A"},
		{"", "?"},
		{"   \t\n ", "?"},
		{"&  -- !!", "?"},
		{"Ünïcödé Gesundheit AG", "ÜG"},
		{"U\u0308nico Health", "ÜH"}, // decomposed Ü is composed first
		{"Dr. Müller & Partner", "DM"},
		{"& Partners Law", "PL"},
		{"(Example) Clinic", "EC"},
		{"3M Health", "3H"},
		{"東京 Clinic", "C"}, // the font has no glyph for 東
		{"Ελληνική Κλινική", "ΕΚ"},
		{"Example\u202eClinic Two", "EC"}, // a bidi override is a word break, not a letter
	}
	for _, tt := range tests {
		if got := initials(drawableName(f, tt.name)); got != tt.want {
			t.Errorf("initials(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestFitBanner(t *testing.T) {
	t.Parallel()
	f, err := boldFont()
	if err != nil {
		t.Fatal(err)
	}
	maxWidth := fixed.I(700 - 2*bannerPadding)
	full, err := newFace(f, bannerMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		text   string
		shrunk bool // drawn smaller than the full size
		cut    bool // truncated with an ellipsis
	}{
		{"short", "Example Clinic", false, false},
		{"shrunk", strings.Repeat("Abcdefghij ", 6) + "Klm", true, false},
		{"truncated", defaultNames[2], true, true},
		{"one endless word", strings.Repeat("W", 300), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			face, text, err := fitBanner(f, tt.text, maxWidth)
			if err != nil {
				t.Fatal(err)
			}
			if w := inkWidth(face, text); w > maxWidth {
				t.Errorf("%q is %v wide, more than %v", text, w, maxWidth)
			}
			if shrunk := face.Metrics().Height < full.Metrics().Height; shrunk != tt.shrunk {
				t.Errorf("shrunk = %v, want %v", shrunk, tt.shrunk)
			}
			if cut := strings.HasSuffix(text, ellipsis); cut != tt.cut {
				t.Errorf("truncated = %v (%q), want %v", cut, text, tt.cut)
			}
			if tt.cut {
				prefix := strings.TrimSuffix(text, ellipsis)
				if !strings.HasPrefix(tt.text, prefix) || strings.HasSuffix(prefix, " ") {
					t.Errorf("truncated text %q is not a trimmed prefix of the name", text)
				}
				// One more character would not have fitted.
				more := []rune(tt.text)[:len([]rune(prefix))+1]
				if inkWidth(face, string(more)+ellipsis) <= maxWidth && !strings.HasSuffix(string(more), " ") {
					t.Errorf("truncated at %q although %q fits", text, string(more)+ellipsis)
				}
			} else if text != tt.text {
				t.Errorf("text %q changed to %q", tt.text, text)
			}
		})
	}
}

// TestDefaultWriteForReview writes the default images to the directory in
// SEALPOST_BRANDING_OUT, so that a person can look at them.
func TestDefaultWriteForReview(t *testing.T) {
	dir := os.Getenv("SEALPOST_BRANDING_OUT")
	if dir == "" {
		t.Skip("set SEALPOST_BRANDING_OUT to a directory to write the default banner and icon there")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ file, name, accent string }{
		{"example-clinic", "Example Clinic", ""},
		{"empty", "", ""},
		{"long", defaultNames[2], ""},
		{"unicode", defaultNames[3], ""},
		{"single-word", "Acme", "#1f4e79"},
		{"wide-initials", "Wimbledon Medical", "#8a2be2"},
		{"light-accent", "Sunny Day Care", "#f2c94c"},
	}
	for _, c := range cases {
		for _, kind := range []Kind{Banner, Icon} {
			out, err := Default(kind, c.name, c.accent)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, fmt.Sprintf("%s-%s.png", kind, c.file))
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
}

// bands returns a w×h image of four flat colour bands with a translucent
// one: small when encoded, so that the fuzzer mutates and minimizes quickly.
func bands(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	cs := []color.NRGBA{{0x0f, 0x7b, 0x6c, 0xff}, {0xff, 0xff, 0xff, 0xff}, {0x20, 0x20, 0x20, 0x80}, {0xf2, 0xc9, 0x4c, 0xff}}
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, cs[x*len(cs)/w])
		}
	}
	return img
}

func FuzzCheck(f *testing.F) {
	iconPNG := encodedPNG(f, bands(64, 64))
	iconJPEG := encodedJPEG(f, bands(64, 64))
	bannerPNG := encodedPNG(f, bands(700, 45))
	f.Add(iconPNG, false)
	f.Add(iconJPEG, false)
	f.Add(withPNGMetadata(f, iconPNG), false)
	f.Add(withEXIF(f, iconJPEG), false)
	f.Add(iconPNG[:len(iconPNG)/2], false)
	f.Add(withIHDRSize(iconPNG, 700, 45), true)
	f.Add(bannerPNG, true)
	f.Add(encodedJPEG(f, bands(700, 45)), true)
	f.Add(encodedGIF(f, bands(64, 64)), false)
	f.Add([]byte("<svg/>"), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, banner bool) {
		kind := Icon
		if banner {
			kind = Banner
		}
		out, err := Check(kind, data)
		if err != nil {
			if k := fault.KindOf(err); k != fault.Invalid {
				t.Fatalf("kind %v, want invalid: %v", k, err)
			}
			if msg := fault.Message(err); !strings.HasPrefix(msg, "The "+string(kind)+" ") {
				t.Fatalf("message %q does not name the %s", msg, kind)
			}
			return
		}
		w, h := kind.Size()
		decodePNG(t, out, w, h)
		for _, typ := range pngChunkTypes(t, out) {
			switch typ {
			case "IHDR", "PLTE", "tRNS", "IDAT", "IEND":
			default:
				t.Fatalf("output has a %s chunk", typ)
			}
		}
	})
}
