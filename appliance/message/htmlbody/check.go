package htmlbody

import (
	"net/url"
	"regexp"
	"strings"
)

// checkLink accepts http and https URLs with a host and mailto URLs with an
// address, and returns the URL in canonical form.
func checkLink(val string) (string, bool) {
	u, ok := parseURL(val)
	if !ok {
		return "", false
	}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return "", false
		}
	case "mailto":
		if u.Opaque == "" {
			return "", false
		}
	default:
		return "", false
	}
	return u.String(), true
}

// checkImage accepts http, https and cid URLs and base64 data URLs of PNG,
// JPEG, GIF and WebP images. Not SVG: it can carry script.
func checkImage(val string) (string, bool) {
	u, ok := parseURL(val)
	if !ok {
		return "", false
	}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return "", false
		}
	case "cid":
		if u.Opaque == "" {
			return "", false
		}
	case "data":
		if u.RawQuery != "" || u.Fragment != "" || !validDataImage(u.Opaque) {
			return "", false
		}
	default:
		return "", false
	}
	return u.String(), true
}

// isRemote reports whether an image URL that passed checkImage loads from the
// network.
func isRemote(src string) bool {
	s := strings.ToLower(src)
	return strings.HasPrefix(s, "http:") || strings.HasPrefix(s, "https:")
}

// parseURL parses a URL that has no white space, control character or
// backslash: browsers read a backslash as a slash, Go does not, and the two
// must agree on the host.
func parseURL(val string) (*url.URL, bool) {
	for i := 0; i < len(val); i++ {
		if c := val[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return nil, false
		}
	}
	u, err := url.Parse(val)
	if err != nil {
		return nil, false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, true
}

var dataImagePrefixes = []string{
	"image/png;base64,", "image/jpeg;base64,", "image/gif;base64,", "image/webp;base64,",
}

// validDataImage checks the part of a data URL after "data:": an allowed image
// type and well-formed standard base64.
func validDataImage(opaque string) bool {
	for _, p := range dataImagePrefixes {
		if strings.HasPrefix(opaque, p) {
			return validBase64(opaque[len(p):])
		}
	}
	return false
}

func validBase64(s string) bool {
	if s == "" || len(s)%4 != 0 {
		return false
	}
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			pad++
			if pad > 2 {
				return false
			}
		case pad > 0:
			return false
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// Inline styles. Each allowed property has a matcher that sees the value in
// lower case. bluemonday applies the matchers to the value after decoding CSS
// escapes; cleanStyle applies them again to the raw text, where a backslash,
// a parenthesis other than rgb(), a quote out of place, a semicolon or "@"
// can never match. Lengths are never negative, so that one element cannot be
// pulled over another (or over the markers Render adds).
const lengthPat = `(?:[0-9]{1,5}(?:\.[0-9]{1,4})?|\.[0-9]{1,4})(?:px|pt|em|rem|ex|ch|%|cm|mm|in|pc|vw|vh)?`

var (
	colorRe = regexp.MustCompile(`^(?:#[0-9a-f]{3,4}|#[0-9a-f]{6}|#[0-9a-f]{8}|` +
		`rgba?\(\s*[0-9]{1,3}%?\s*,\s*[0-9]{1,3}%?\s*,\s*[0-9]{1,3}%?\s*` +
		`(?:,\s*(?:[01]|[01]?\.[0-9]{1,4}|[0-9]{1,3}%)\s*)?\)|[a-z]{3,24})$`)
	lengthRe   = regexp.MustCompile(`^(?:` + lengthPat + `|auto)$`)
	boxRe      = regexp.MustCompile(`^(?:` + lengthPat + `|auto)(?:\s+(?:` + lengthPat + `|auto)){0,3}$`)
	fontSizeRe = regexp.MustCompile(`^(?:` + lengthPat + `|xx-small|x-small|small|medium|large|x-large|xx-large|smaller|larger)$`)
	lineRe     = regexp.MustCompile(`^(?:` + lengthPat + `|normal)$`)
	vAlignRe   = regexp.MustCompile(`^(?:baseline|sub|super|top|text-top|middle|bottom|text-bottom)$`)
	familyPat  = `(?:"[\p{L}\p{N} _-]{1,64}"|'[\p{L}\p{N} _-]{1,64}'|[\p{L}\p{N}][\p{L}\p{N} _-]{0,63})`
	familyRe   = regexp.MustCompile(`^` + familyPat + `(?:\s*,\s*` + familyPat + `){0,9}$`)
	weightRe   = regexp.MustCompile(`^(?:normal|bold|bolder|lighter|[1-9]00)$`)
	borderPart = regexp.MustCompile(`rgba?\([^()]*\)|\S+`)
	borderKw   = regexp.MustCompile(`^(?:none|hidden|solid|dashed|dotted|double|groove|ridge|inset|outset|thin|medium|thick)$`)
	lengthOnly = regexp.MustCompile(`^` + lengthPat + `$`)
)

func enum(vals ...string) func(string) bool {
	return func(v string) bool {
		for _, e := range vals {
			if v == e {
				return true
			}
		}
		return false
	}
}

func border(v string) bool {
	parts := borderPart.FindAllString(v, -1)
	if len(parts) == 0 || len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if !borderKw.MatchString(p) && !lengthOnly.MatchString(p) && !colorRe.MatchString(p) {
			return false
		}
	}
	return true
}

var styleProps = map[string]func(string) bool{
	"color":            colorRe.MatchString,
	"background-color": colorRe.MatchString,
	"background":       colorRe.MatchString,
	"text-align":       enum("left", "right", "center", "justify"),
	"font-weight":      weightRe.MatchString,
	"font-style":       enum("normal", "italic", "oblique"),
	"text-decoration":  enum("none", "underline", "line-through", "underline line-through", "line-through underline"),
	"font-size":        fontSizeRe.MatchString,
	"font-family":      familyRe.MatchString,
	"line-height":      lineRe.MatchString,
	"margin":           boxRe.MatchString,
	"margin-top":       lengthRe.MatchString,
	"margin-right":     lengthRe.MatchString,
	"margin-bottom":    lengthRe.MatchString,
	"margin-left":      lengthRe.MatchString,
	"padding":          boxRe.MatchString,
	"padding-top":      lengthRe.MatchString,
	"padding-right":    lengthRe.MatchString,
	"padding-bottom":   lengthRe.MatchString,
	"padding-left":     lengthRe.MatchString,
	"border":           border,
	"border-top":       border,
	"border-right":     border,
	"border-bottom":    border,
	"border-left":      border,
	"border-collapse":  enum("collapse", "separate"),
	"width":            lengthRe.MatchString,
	"height":           lengthRe.MatchString,
	"vertical-align":   vAlignRe.MatchString,
	"white-space":      enum("normal", "nowrap", "pre", "pre-wrap", "pre-line"),
}

// cleanStyle re-checks a style attribute as bluemonday wrote it
// ("prop: value; prop: value") and keeps the declarations that pass.
func cleanStyle(val string) string {
	var kept []string
	for _, decl := range strings.Split(val, ";") {
		prop, value, ok := strings.Cut(decl, ":")
		if !ok {
			continue
		}
		prop = strings.ToLower(strings.TrimSpace(prop))
		value = strings.TrimSpace(value)
		match, ok := styleProps[prop]
		if !ok || !match(strings.ToLower(value)) {
			continue
		}
		kept = append(kept, prop+": "+value)
	}
	return strings.Join(kept, "; ")
}
