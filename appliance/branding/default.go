package branding

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
	"golang.org/x/text/unicode/norm"
)

// defaultAccent is the accent colour used when none or an invalid one is given.
const defaultAccent = "#0f7b6c"

// Layout of the default images, in pixels at 72 DPI (one point is one pixel).
const (
	bannerPadding  = 14   // left and right padding of the banner's name
	bannerMaxSize  = 22.0 // font size of a name that fits
	bannerMinSize  = 15.0 // smallest font size before the name is truncated
	iconRadius     = 14.0 // corner radius of the icon's rounded square
	iconTextWidth  = 46   // widest the initials may be
	iconSizeOne    = 36.0 // font size of a single initial
	iconSizeTwo    = 30.0 // font size of two initials
	iconMinSize    = 18.0 // smallest font size of the initials
	maxNameRunes   = 256  // longer names are cut before measuring
	ellipsis       = "…"
	unknownInitial = "?"
)

// boldFont is the embedded Go Bold font, parsed once. A *sfnt.Font is safe
// for concurrent use; faces made from it are not, so each call makes its own.
var boldFont = sync.OnceValues(func() (*sfnt.Font, error) {
	return opentype.Parse(gobold.TTF)
})

// Default draws a clean default image from the organization's name and the
// accent colour (#rrggbb; an invalid or empty one means #0f7b6c): the banner
// is the accent colour with the name in white, vertically centred, left
// padding ~14 px, text shrunk to fit or truncated with an ellipsis if too
// long; the icon is a rounded square in the accent colour with the
// organization's initials (up to two letters, from the first letters of the
// first two words; "?" for an empty name) centred in white. Output: PNG bytes.
//
// Characters the embedded font cannot draw are left out; a banner for a name
// with nothing left to draw is the plain accent colour.
func Default(kind Kind, orgName, accent string) ([]byte, error) {
	w, h := kind.Size()
	if w == 0 {
		return nil, fmt.Errorf("draw default image: unknown kind %q", string(kind))
	}
	f, err := boldFont()
	if err != nil {
		return nil, fmt.Errorf("parse embedded font: %w", err)
	}
	bg := parseAccent(accent)
	name := drawableName(f, orgName)

	var img *image.RGBA
	switch kind {
	case Banner:
		img, err = drawBanner(f, w, h, bg, name)
	case Icon:
		img, err = drawIcon(f, w, h, bg, initials(name))
	}
	if err != nil {
		return nil, fmt.Errorf("draw default %s: %w", kind, err)
	}
	return encodePNG(img)
}

// parseAccent parses "#rrggbb" and falls back to defaultAccent.
func parseAccent(s string) color.RGBA {
	if c, ok := parseHex(s); ok {
		return c
	}
	c, _ := parseHex(defaultAccent)
	return c
}

func parseHex(s string) (color.RGBA, bool) {
	if len(s) != 7 || s[0] != '#' {
		return color.RGBA{}, false
	}
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil {
		return color.RGBA{}, false
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}, true
}

// drawableName normalizes the name to NFC, turns control and format
// characters into spaces, collapses white space and drops characters the font
// has no glyph for.
func drawableName(f *sfnt.Font, name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, " ")
	}
	name = norm.NFC.String(name)
	var buf sfnt.Buffer
	var b strings.Builder
	n := 0
	for _, r := range name {
		if n == maxNameRunes {
			break
		}
		switch {
		case unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			r = ' '
		case !hasGlyph(f, &buf, r):
			continue
		}
		b.WriteRune(r)
		n++
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func hasGlyph(f *sfnt.Font, buf *sfnt.Buffer, r rune) bool {
	x, err := f.GlyphIndex(buf, r)
	return err == nil && x != 0
}

// initials returns the upper-cased first letter or digit of each of the
// first two words that have one, or "?".
func initials(name string) string {
	var out []rune
	for word := range strings.FieldsSeq(name) {
		for _, r := range word {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				out = append(out, unicode.ToUpper(r))
				break
			}
		}
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		return unknownInitial
	}
	return string(out)
}

func newFace(f *sfnt.Font, size float64) (font.Face, error) {
	return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
}

// drawBanner fills the banner with bg and writes name in white, shrunk or
// truncated to fit between the paddings.
func drawBanner(f *sfnt.Font, w, h int, bg color.RGBA, name string) (*image.RGBA, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	if name == "" {
		return img, nil
	}
	maxWidth := fixed.I(w - 2*bannerPadding)
	face, text, err := fitBanner(f, name, maxWidth)
	if err != nil {
		return nil, err
	}
	// Centre the capital letters: descenders hang below, as in any heading.
	capHeight := face.Metrics().CapHeight
	baseline := (fixed.I(h) + capHeight) / 2
	d := font.Drawer{
		Dst:  img,
		Src:  image.White,
		Face: face,
		Dot:  fixed.Point26_6{X: fixed.I(bannerPadding), Y: fixed.I(baseline.Round())},
	}
	d.DrawString(text)
	return img, nil
}

// fitBanner returns the largest face in which name fits maxWidth, or the
// smallest face with name truncated and an ellipsis.
func fitBanner(f *sfnt.Font, name string, maxWidth fixed.Int26_6) (font.Face, string, error) {
	var face font.Face
	for size := bannerMaxSize; size >= bannerMinSize; size-- {
		var err error
		if face, err = newFace(f, size); err != nil {
			return nil, "", err
		}
		if inkWidth(face, name) <= maxWidth {
			return face, name, nil
		}
	}
	runes := []rune(name)
	truncated := func(n int) string {
		return strings.TrimRightFunc(string(runes[:n]), func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsPunct(r)
		}) + ellipsis
	}
	// Binary search for the longest prefix that fits with the ellipsis.
	lo, hi := 0, len(runes)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if inkWidth(face, truncated(mid)) <= maxWidth {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return face, truncated(lo), nil
}

// inkWidth is how far right of the dot s reaches: its advance, or its ink if
// the last glyph overhangs.
func inkWidth(face font.Face, s string) fixed.Int26_6 {
	bounds, advance := font.BoundString(face, s)
	return max(advance, bounds.Max.X)
}

// drawIcon draws an anti-aliased rounded square in bg on a transparent
// background with the initials centred in white.
func drawIcon(f *sfnt.Font, w, h int, bg color.RGBA, text string) (*image.RGBA, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := roundedRectCoverage(float64(x)+0.5, float64(y)+0.5, float64(w), float64(h), iconRadius)
			if a <= 0 {
				continue
			}
			img.SetRGBA(x, y, premultiply(bg, a))
		}
	}

	size := iconSizeOne
	if utf8.RuneCountInString(text) > 1 {
		size = iconSizeTwo
	}
	var (
		face   font.Face
		bounds fixed.Rectangle26_6
	)
	for ; ; size-- {
		var err error
		if face, err = newFace(f, size); err != nil {
			return nil, err
		}
		bounds, _ = font.BoundString(face, text)
		if bounds.Max.X-bounds.Min.X <= fixed.I(iconTextWidth) || size <= iconMinSize {
			break
		}
	}
	// Centre the ink horizontally and the capital height vertically, so that
	// every icon has its baseline in the same place.
	capHeight := face.Metrics().CapHeight
	x := (fixed.I(w) - bounds.Min.X - bounds.Max.X) / 2
	y := (fixed.I(h) + capHeight) / 2
	d := font.Drawer{
		Dst:  img,
		Src:  image.White,
		Face: face,
		Dot:  fixed.Point26_6{X: fixed.I(x.Round()), Y: fixed.I(y.Round())},
	}
	d.DrawString(text)
	return img, nil
}

// roundedRectCoverage returns how much of the pixel centred at (px, py) lies
// inside the w×h rectangle with corner radius r, from 0 to 1, using the
// signed distance to the edge for a one-pixel anti-aliased border.
func roundedRectCoverage(px, py, w, h, r float64) float64 {
	// Distance from the centre, folded into one quadrant.
	qx := math.Abs(px-w/2) - (w/2 - r)
	qy := math.Abs(py-h/2) - (h/2 - r)
	outside := math.Hypot(math.Max(qx, 0), math.Max(qy, 0))
	inside := math.Min(math.Max(qx, qy), 0)
	dist := outside + inside - r
	return math.Min(math.Max(0.5-dist, 0), 1)
}

func premultiply(c color.RGBA, a float64) color.RGBA {
	m := func(v uint8) uint8 { return uint8(math.Round(float64(v) * a)) }
	return color.RGBA{R: m(c.R), G: m(c.G), B: m(c.B), A: m(0xff)}
}
