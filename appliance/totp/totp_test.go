package totp

import (
	"bytes"
	"crypto/fips140"
	"encoding/base32"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"github.com/sealpost/sealpost/appliance/fault"
)

// rfcSecret is the SHA-1 key of RFC 6238's test vectors, "12345678901234567890".
var rfcSecret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

// now is a fixed instant in the middle of a step; tests never read the clock.
var now = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	var c string
	var err error
	fips140.WithoutEnforcement(func() { c, err = ptotp.GenerateCodeCustom(secret, at, validate) })
	if err != nil {
		t.Fatalf("generate code: %v", err)
	}
	return c
}

// TestRFC6238Vectors checks Verify against the published test vectors (the
// last six digits of the eight-digit SHA-1 codes), independently of the
// library that generates codes in the other tests.
func TestRFC6238Vectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			step, ok := Verify(rfcSecret, tt.code, time.Unix(tt.unix, 0), 0)
			if !ok {
				t.Fatalf("Verify(%s at %d) refused", tt.code, tt.unix)
			}
			if want := tt.unix / Period; step != want {
				t.Errorf("step = %d, want %d", step, want)
			}
		})
	}
}

func TestVerifySkew(t *testing.T) {
	t.Parallel()
	cur := now.Unix() / Period
	tests := []struct {
		name   string
		offset time.Duration
		ok     bool
		step   int64
	}{
		{"now", 0, true, cur},
		{"one step behind", -30 * time.Second, true, cur - 1},
		{"one step ahead", 30 * time.Second, true, cur + 1},
		{"two steps behind", -60 * time.Second, false, 0},
		{"two steps ahead", 60 * time.Second, false, 0},
		{"three steps behind", -90 * time.Second, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := code(t, rfcSecret, now.Add(tt.offset))
			step, ok := Verify(rfcSecret, c, now, 0)
			if ok != tt.ok {
				t.Fatalf("Verify(code at now%+v) ok = %v, want %v", tt.offset, ok, tt.ok)
			}
			if ok && step != tt.step {
				t.Errorf("step = %d, want %d", step, tt.step)
			}
			if !ok && step != 0 {
				t.Errorf("refused code returned step %d, want lastStep 0", step)
			}
		})
	}
}

func TestVerifyNoReplay(t *testing.T) {
	t.Parallel()
	c := code(t, rfcSecret, now)
	step, ok := Verify(rfcSecret, c, now, 0)
	if !ok {
		t.Fatal("first use refused")
	}
	if again, ok := Verify(rfcSecret, c, now, step); ok {
		t.Fatal("same code accepted twice")
	} else if again != step {
		t.Errorf("refused replay returned step %d, want lastStep %d", again, step)
	}
	// The same code a few seconds later, still within the window, is still a replay.
	if _, ok := Verify(rfcSecret, c, now.Add(20*time.Second), step); ok {
		t.Error("same code accepted again 20 s later")
	}
	// An earlier step's code, still within the skew window, is refused too.
	if _, ok := Verify(rfcSecret, code(t, rfcSecret, now.Add(-30*time.Second)), now, step); ok {
		t.Error("code of an earlier step accepted after a later one")
	}
	// The next step's code is fresh.
	next, ok := Verify(rfcSecret, code(t, rfcSecret, now.Add(30*time.Second)), now.Add(30*time.Second), step)
	if !ok || next != step+1 {
		t.Errorf("next step: step %d ok %v, want %d true", next, ok, step+1)
	}
}

func TestVerifyRefusesBadInput(t *testing.T) {
	t.Parallel()
	good := code(t, rfcSecret, now)
	wrong := []byte(good)
	wrong[5] = '0' + (wrong[5]-'0'+1)%10
	tests := []struct {
		name, secret, code string
		ok                 bool
	}{
		{"good", rfcSecret, good, true},
		{"spaces ignored", rfcSecret, " " + good[:3] + " " + good[3:] + " ", true},
		{"lower-case secret", strings.ToLower(rfcSecret), good, true},
		{"wrong code", rfcSecret, string(wrong), false},
		{"empty", rfcSecret, "", false},
		{"five digits", rfcSecret, good[:5], false},
		{"seven digits", rfcSecret, good + "0", false},
		{"letter", rfcSecret, good[:5] + "a", false},
		{"tab", rfcSecret, good[:3] + "\t" + good[3:], false},
		{"dash", rfcSecret, good[:3] + "-" + good[3:], false},
		{"fullwidth digits", rfcSecret, "１２３４５６", false},
		{"empty secret", "", good, false},
		{"not base32", "not base32!", good, false},
		{"secret under 128 bits", base32.StdEncoding.EncodeToString([]byte("123456789012345")), good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, ok := Verify(tt.secret, tt.code, now, 0); ok != tt.ok {
				t.Errorf("Verify(%q, %q) ok = %v, want %v", tt.secret, tt.code, ok, tt.ok)
			}
		})
	}
}

func TestStepAt(t *testing.T) {
	t.Parallel()
	tests := []struct{ unix, step int64 }{
		{0, 0}, {29, 0}, {30, 1}, {59, 1}, {-1, -1}, {-30, -1}, {-31, -2},
	}
	for _, tt := range tests {
		if got := stepAt(time.Unix(tt.unix, 0)); got != tt.step {
			t.Errorf("stepAt(%d) = %d, want %d", tt.unix, got, tt.step)
		}
	}
}

func TestEnrol(t *testing.T) {
	t.Parallel()
	tests := []struct{ issuer, account string }{
		{"Sealpost", "alice@example.org"},
		{"Sealpost Clinic", "dr. bob+2fa@example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			t.Parallel()
			e, err := Enrol(tt.issuer, tt.account)
			if err != nil {
				t.Fatalf("Enrol: %v", err)
			}

			raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
			if err != nil || len(raw) != 20 {
				t.Fatalf("secret %q: %d bytes, err %v; want 20 bytes of base32", e.Secret, len(raw), err)
			}

			u, err := url.Parse(e.URL)
			if err != nil {
				t.Fatalf("parse URL %q: %v", e.URL, err)
			}
			q := u.Query()
			checks := []struct{ what, got, want string }{
				{"scheme", u.Scheme, "otpauth"},
				{"host", u.Host, "totp"},
				{"path", u.Path, "/" + tt.issuer + ":" + tt.account},
				{"secret", q.Get("secret"), e.Secret},
				{"issuer", q.Get("issuer"), tt.issuer},
				{"algorithm", q.Get("algorithm"), "SHA1"},
				{"digits", q.Get("digits"), "6"},
				{"period", q.Get("period"), "30"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("URL %s = %q, want %q (URL %s)", c.what, c.got, c.want, e.URL)
				}
			}
			key, err := otp.NewKeyFromURL(e.URL)
			if err != nil {
				t.Fatalf("NewKeyFromURL: %v", err)
			}
			if key.Issuer() != tt.issuer || key.AccountName() != tt.account || key.Secret() != e.Secret {
				t.Errorf("key from URL: issuer %q account %q secret %q", key.Issuer(), key.AccountName(), key.Secret())
			}

			cfg, err := png.DecodeConfig(bytes.NewReader(e.QRPNG))
			if err != nil {
				t.Fatalf("decode QR PNG: %v", err)
			}
			if cfg.Width != 200 || cfg.Height != 200 {
				t.Errorf("QR PNG is %d×%d, want 200×200", cfg.Width, cfg.Height)
			}
			if _, err := png.Decode(bytes.NewReader(e.QRPNG)); err != nil {
				t.Errorf("decode QR PNG image: %v", err)
			}

			// The secret works with an authenticator's codes.
			if _, ok := Verify(e.Secret, code(t, e.Secret, now), now, 0); !ok {
				t.Error("code from the enrolled secret refused")
			}
		})
	}
}

func TestEnrolSecretsDiffer(t *testing.T) {
	t.Parallel()
	a, err := Enrol("Sealpost", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Enrol("Sealpost", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if a.Secret == b.Secret {
		t.Error("two enrolments got the same secret")
	}
}

func TestEnrolInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, issuer, account string }{
		{"no issuer", "", "alice@example.org"},
		{"no account", "Sealpost", ""},
		{"colon in issuer", "Seal:post", "alice@example.org"},
		{"colon in account", "Sealpost", "alice:example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Enrol(tt.issuer, tt.account)
			if err == nil {
				t.Fatal("Enrol succeeded")
			}
			if k := fault.KindOf(err); k != fault.Invalid {
				t.Errorf("kind = %v, want invalid", k)
			}
		})
	}
}

func TestFromSecret(t *testing.T) {
	t.Parallel()
	e, err := Enrol("Sealpost", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	again, err := FromSecret("Sealpost", "alice@example.org", e.Secret)
	if err != nil {
		t.Fatalf("FromSecret: %v", err)
	}
	if again.Secret != e.Secret || again.URL != e.URL || !bytes.Equal(again.QRPNG, e.QRPNG) {
		t.Errorf("FromSecret differs from Enrol:\n%s\n%s", again.URL, e.URL)
	}
	for _, bad := range []string{"", "not base32!", base32.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := FromSecret("Sealpost", "alice@example.org", bad); err == nil {
			t.Errorf("FromSecret(%q) succeeded", bad)
		}
	}
	if _, err := FromSecret("", "alice@example.org", e.Secret); fault.KindOf(err) != fault.Invalid {
		t.Errorf("FromSecret without issuer: err %v, want an invalid fault", err)
	}
}
