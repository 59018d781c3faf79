package mailer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMKeys are the appliance's signing keys: Ed25519 (RFC 8463) and RSA-2048
// for receivers that do not know Ed25519 yet. Each has its own selector.
type DKIMKeys struct {
	Ed25519 ed25519.PrivateKey
	RSA     *rsa.PrivateKey
}

// GenerateDKIMKeys makes a new pair.
func GenerateDKIMKeys() (DKIMKeys, error) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return DKIMKeys{}, err
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return DKIMKeys{}, err
	}
	return DKIMKeys{Ed25519: ed, RSA: r}, nil
}

type dkimKeysJSON struct {
	Ed25519 []byte `json:"ed25519"`
	RSA     []byte `json:"rsa"` // PKCS #8
}

// MarshalBinary encodes the keys for the (encrypted) store.
func (k DKIMKeys) MarshalBinary() ([]byte, error) {
	r, err := x509.MarshalPKCS8PrivateKey(k.RSA)
	if err != nil {
		return nil, err
	}
	return json.Marshal(dkimKeysJSON{Ed25519: k.Ed25519, RSA: r})
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (k *DKIMKeys) UnmarshalBinary(data []byte) error {
	var j dkimKeysJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if len(j.Ed25519) != ed25519.PrivateKeySize {
		return fmt.Errorf("DKIM Ed25519 key has %d bytes", len(j.Ed25519))
	}
	key, err := x509.ParsePKCS8PrivateKey(j.RSA)
	if err != nil {
		return fmt.Errorf("DKIM RSA key: %w", err)
	}
	r, ok := key.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("DKIM RSA key is a %T", key)
	}
	k.Ed25519, k.RSA = j.Ed25519, r
	return nil
}

// DNSRecord is a TXT record to publish.
type DNSRecord struct{ Name, Value string }

// Selectors returns the Ed25519 and RSA selectors for a base selector.
func Selectors(base string) (ed, rsa string) { return base + "-ed25519", base + "-rsa" }

// Records returns the TXT records that publish the public keys.
func (k DKIMKeys) Records(selector, domain string) ([]DNSRecord, error) {
	edSel, rsaSel := Selectors(selector)
	rsaPub, err := x509.MarshalPKIXPublicKey(&k.RSA.PublicKey)
	if err != nil {
		return nil, err
	}
	return []DNSRecord{
		{edSel + "._domainkey." + domain, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k.Ed25519.Public().(ed25519.PublicKey))},
		{rsaSel + "._domainkey." + domain, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub)},
	}, nil
}

// signedHeaders are the headers every signature covers.
var signedHeaders = []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
	"Auto-Submitted", "List-Unsubscribe", "List-Unsubscribe-Post"}

// SignDKIM returns msg with an Ed25519 and an RSA signature for domain.
func SignDKIM(msg []byte, domain, selector string, k DKIMKeys) ([]byte, error) {
	edSel, rsaSel := Selectors(selector)
	out := msg
	for _, s := range []struct {
		sel    string
		signer crypto.Signer
	}{{rsaSel, k.RSA}, {edSel, k.Ed25519}} {
		var sig bytes.Buffer
		err := dkim.Sign(&sig, bytes.NewReader(out), &dkim.SignOptions{
			Domain: domain, Selector: s.sel, Signer: s.signer, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
			HeaderKeys: presentHeaders(out),
		})
		if err != nil {
			return nil, fmt.Errorf("DKIM sign with %s: %w", s.sel, err)
		}
		out = sig.Bytes()
	}
	return out, nil
}

// presentHeaders lists the signed headers that msg has, so a signature does
// not claim headers that a later hop could add.
func presentHeaders(msg []byte) []string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var keys []string
	for _, h := range signedHeaders {
		if bytes.Contains(bytes.ToLower(head), []byte("\n"+strings.ToLower(h)+":")) || bytes.HasPrefix(bytes.ToLower(head), []byte(strings.ToLower(h)+":")) {
			keys = append(keys, h)
		}
	}
	return keys
}
