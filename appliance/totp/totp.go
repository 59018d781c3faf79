// Package totp is the second factor: time-based one-time passwords (RFC
// 6238: HMAC-SHA-1, six digits, 30-second steps) and single-use recovery
// codes. A one-time password is accepted at most once: Verify refuses a code
// of the step last accepted or an earlier one. Recovery codes are kept only
// as hashes and compared in constant time.
package totp

import (
	"bytes"
	"crypto/fips140"
	"encoding/base32"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"github.com/sealpost/sealpost/appliance/fault"
)

const (
	// Period is the length of a step in seconds.
	Period = 30
	// Digits is the length of a code.
	Digits = 6

	secretSize    = 20 // bytes: 160 bits, as RFC 4226 recommends
	minSecretSize = 16 // bytes: RFC 4226 requires at least 128 bits
	qrSize        = 200
)

// validate checks one step exactly; Verify walks the steps itself so that it
// knows which one matched.
var validate = ptotp.ValidateOpts{
	Period:    Period,
	Skew:      0,
	Digits:    otp.DigitsSix,
	Algorithm: otp.AlgorithmSHA1,
}

// Enrolment is a new, not yet confirmed, second factor.
type Enrolment struct {
	Secret string // base32, 160 bits, to store (sealed) with the user
	URL    string // otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
	QRPNG  []byte // the URL as a QR code PNG, 200×200
}

// Enrol makes a new random secret for account at issuer, its otpauth URL
// and that URL as a QR code. Neither issuer nor account may be empty or
// contain a colon, which separates them in the URL.
func Enrol(issuer, account string) (Enrolment, error) {
	return enrolment(issuer, account, nil)
}

// FromSecret rebuilds the enrolment for a secret made by Enrol and not yet
// confirmed, so that a reloaded page shows the same QR code.
func FromSecret(issuer, account, secret string) (Enrolment, error) {
	raw, ok := decodeSecret(secret)
	if !ok {
		return Enrolment{}, fmt.Errorf("rebuild totp enrolment: stored secret is not base32 of at least %d bytes", minSecretSize)
	}
	return enrolment(issuer, account, raw)
}

// enrolment builds an Enrolment for secret, or for a new random secret if
// secret is nil.
func enrolment(issuer, account string, secret []byte) (Enrolment, error) {
	if issuer == "" || account == "" {
		return Enrolment{}, fault.E(fault.Invalid, "an issuer and an account name are required for a second factor", nil)
	}
	if strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return Enrolment{}, fault.E(fault.Invalid, "the issuer and the account name of a second factor must not contain a colon", nil)
	}
	key, err := ptotp.Generate(ptotp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      Period,
		SecretSize:  secretSize,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrolment{}, fmt.Errorf("generate totp key: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return Enrolment{}, fmt.Errorf("render totp qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("encode totp qr code: %w", err)
	}
	// key.String is the text the QR code holds.
	return Enrolment{Secret: key.Secret(), URL: key.String(), QRPNG: buf.Bytes()}, nil
}

// Verify checks a 6-digit code at time now, allowing one 30-second step of
// clock skew either way. lastStep is the step of the last code accepted for
// this user (0 if none): a code of that step or an earlier one is refused (no
// replay). It returns the step to store as the new lastStep; when ok is
// false that is lastStep itself, so storing it changes nothing.
//
// Spaces in code are ignored; anything else that is not a digit, or a code
// of the wrong length, is refused. So is a secret that is not base32 or
// shorter than 128 bits.
func Verify(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.ReplaceAll(code, " ", "")
	if !wellFormed(code) || !secretOK(secret) {
		return lastStep, false
	}
	current := stepAt(now)
	// Check every candidate step, not stopping at the first match, so the
	// time taken does not say which step matched. If a code matches two
	// steps, keep the later one.
	for s := current - 1; s <= current+1; s++ {
		var match bool
		var err error
		// RFC 6238 codes, and every authenticator app, use HMAC-SHA-1.
		// HMAC-SHA-1 remains approved for message authentication (NIST SP
		// 800-131A), but Go's fips140=only mode refuses SHA-1 outright, so
		// this one computation runs outside that enforcement.
		fips140.WithoutEnforcement(func() {
			match, err = ptotp.ValidateCustom(code, secret, time.Unix(s*Period, 0), validate)
		})
		if err != nil {
			return lastStep, false
		}
		if match && s > lastStep {
			step, ok = s, true
		}
	}
	if !ok {
		return lastStep, false
	}
	return step, true
}

// stepAt returns the RFC 6238 time step of t: floor(unix seconds / Period).
func stepAt(t time.Time) int64 {
	sec := t.Unix()
	s := sec / Period
	if sec%Period < 0 {
		s--
	}
	return s
}

func wellFormed(code string) bool {
	if len(code) != Digits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// secretOK reports whether secret is one Verify accepts.
func secretOK(secret string) bool {
	_, ok := decodeSecret(secret)
	return ok
}

// decodeSecret decodes secret the way the otp library does (upper case,
// padding optional) and reports whether it holds at least minSecretSize
// bytes. It keeps an empty or truncated secret from verifying codes made
// with a weak key.
func decodeSecret(secret string) ([]byte, bool) {
	s := strings.ToUpper(strings.TrimRight(strings.TrimSpace(secret), "="))
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	return b, err == nil && len(b) >= minSecretSize
}
