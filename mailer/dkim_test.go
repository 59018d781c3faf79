package mailer

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

func TestDKIMSignVerify(t *testing.T) {
	t.Parallel()
	keys, err := GenerateDKIMKeys()
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var again DKIMKeys
	if err := again.UnmarshalBinary(data); err != nil || !again.Ed25519.Equal(keys.Ed25519) || !again.RSA.Equal(keys.RSA) {
		t.Fatalf("keys do not round-trip: %v", err)
	}
	records, err := keys.Records("sealpost", "clinic.test")
	if err != nil {
		t.Fatal(err)
	}
	dns := map[string]string{}
	for _, r := range records {
		dns[r.Name] = r.Value
	}
	if len(dns) != 2 || !strings.HasPrefix(dns["sealpost-ed25519._domainkey.clinic.test"], "v=DKIM1; k=ed25519; p=") ||
		!strings.HasPrefix(dns["sealpost-rsa._domainkey.clinic.test"], "v=DKIM1; k=rsa; p=") {
		t.Fatalf("records %v", records)
	}

	r, _ := NewRenderer()
	rendered, _ := r.Render(sample(KindNewMessage), testBrand)
	msg, err := Compose(Envelope{ID: "n1", FromAddress: "no-reply@clinic.test", To: "bob@outside.test",
		Hostname: "mail.clinic.test", UnsubscribeLink: "https://x/u", Date: time.Now()}, rendered)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignDKIM(msg, "clinic.test", "sealpost", keys)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(domain string) ([]string, error) {
		if v, ok := dns[domain]; ok {
			return []string{v}, nil
		}
		return nil, fmt.Errorf("no TXT record for %s", domain)
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(verifications) != 2 {
		t.Fatalf("verify: %v, %d signatures", err, len(verifications))
	}
	for _, v := range verifications {
		if v.Err != nil || v.Domain != "clinic.test" {
			t.Errorf("signature by %s: %v", v.Domain, v.Err)
		}
		if !contains(v.HeaderKeys, "List-Unsubscribe") || !contains(v.HeaderKeys, "From") {
			t.Errorf("signed headers %v", v.HeaderKeys)
		}
	}

	// A changed body fails both signatures.
	tampered := bytes.Replace(signed, []byte("Dr. Ada Lovelace"), []byte("Dr. Eve Mallory"), 1)
	verifications, _ = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: lookup})
	for _, v := range verifications {
		if v.Err == nil {
			t.Error("a changed message still verifies")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
