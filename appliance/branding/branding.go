// Package branding checks the organization's banner and icon uploads and
// draws default ones from the organization's name and accent colour, for the
// first-run wizard, the admin console and notifications.
//
// Guarantee: every image this package returns is a PNG freshly encoded from
// decoded pixels, of exactly the size of its Kind. Nothing of an upload but
// its pixels survives: EXIF (with GPS positions), comments, ICC profiles, text
// chunks and trailing bytes are all dropped. Only PNG and JPEG uploads of the
// exact size are accepted, and the size is checked from the header before
// any pixel data is decompressed, so a small file cannot expand into a large
// allocation.
package branding

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"

	"github.com/sealpost/sealpost/appliance/fault"
)

// Kind is which image.
type Kind string

// The images an organization can brand.
const (
	Banner Kind = "banner" // 700×45 pixels, shown at the top of pages and notifications
	Icon   Kind = "icon"   // 64×64 pixels
)

// Size returns the exact width and height of the kind's image in pixels, or
// 0, 0 for an unknown kind.
func (k Kind) Size() (w, h int) {
	switch k {
	case Banner:
		return 700, 45
	case Icon:
		return 64, 64
	}
	return 0, 0
}

// MaxUploadBytes is the largest upload accepted (1 MiB).
const MaxUploadBytes = 1 << 20

// Check validates an uploaded image and returns it re-encoded as PNG, which
// drops every piece of metadata (EXIF, GPS, comments, ICC, text chunks).
//
// Errors for bad input are fault.Invalid with a message that names the kind
// and is safe to show; an unknown kind is a defect (fault.Internal).
func Check(kind Kind, data []byte) ([]byte, error) {
	w, h := kind.Size()
	if w == 0 {
		return nil, fmt.Errorf("check image: unknown kind %q", string(kind))
	}
	if len(data) == 0 {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("The %s file is empty.", kind), nil)
	}
	if len(data) > MaxUploadBytes {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("The %s is larger than 1 MiB.", kind),
			fmt.Errorf("upload is %d bytes, limit %d", len(data), MaxUploadBytes))
	}

	// The format is decided by content, never by file name or the client's
	// Content-Type, and the matching decoder is called directly: image.Decode
	// would also accept any format that some other package registered.
	var (
		decodeConfig func(io.Reader) (image.Config, error)
		decode       func(io.Reader) (image.Image, error)
	)
	switch ct := http.DetectContentType(data); ct {
	case "image/png":
		decodeConfig, decode = png.DecodeConfig, png.Decode
	case "image/jpeg":
		decodeConfig, decode = jpeg.DecodeConfig, jpeg.Decode
	default:
		return nil, fault.E(fault.Invalid, fmt.Sprintf("The %s must be a PNG or JPEG image.", kind),
			fmt.Errorf("content type %s", ct))
	}

	unreadable := fmt.Sprintf("The %s could not be read as a PNG or JPEG image.", kind)
	cfg, err := decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fault.E(fault.Invalid, unreadable, err)
	}
	if cfg.Width != w || cfg.Height != h {
		return nil, fault.E(fault.Invalid,
			fmt.Sprintf("The %s must be %d×%d pixels; this image is %d×%d.", kind, w, h, cfg.Width, cfg.Height), nil)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fault.E(fault.Invalid, unreadable, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		// The header said otherwise; do not trust either.
		return nil, fault.E(fault.Invalid, unreadable, fmt.Errorf("decoded %v after header said %d×%d", b, cfg.Width, cfg.Height))
	}
	return encodePNG(img)
}

// encodePNG writes img as a PNG with nothing but its pixels.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	// The default level: BestCompression saves a few per cent on images this
	// small and costs several times the CPU on some inputs.
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}
