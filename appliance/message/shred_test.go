package message

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
)

// sealedContent is what a stolen disk holds of one message: its sealed
// subject and body, and its attachment file.
type sealedContent struct {
	id, blobID    string
	subject, body []byte
	blob          []byte
}

// opens reports what of c the data key dk opens.
func (c sealedContent) opens(dk *keyring.DataKey) []string {
	var out []string
	if _, err := dk.Open(c.subject, aad(c.id, "subject")); err == nil {
		out = append(out, "subject")
	}
	if _, err := dk.Open(c.body, aad(c.id, "body")); err == nil {
		out = append(out, "body")
	}
	if cr, err := dk.NewReaderAt(bytes.NewReader(c.blob), int64(len(c.blob))); err == nil {
		buf := make([]byte, cr.Size())
		if _, err := cr.ReadAt(buf, 0); err == nil {
			out = append(out, "attachment")
		}
	}
	return out
}

// candidateKeys are the data keys any stored value could give: the value
// itself as a wrapped key, the record it unseals to, and every base64 value
// inside that record if it is JSON (a []byte field).
func candidateKeys(keys *keyring.Keyring, key, sealed []byte) []*keyring.DataKey {
	var blobs [][]byte
	blobs = append(blobs, sealed)
	plain, err := keys.Unseal(keyring.PurposeRecord, sealed, key)
	if err == nil {
		blobs = append(blobs, plain)
		var v any
		if json.Unmarshal(plain, &v) == nil {
			blobs = append(blobs, base64Values(v)...)
		}
	}
	var out []*keyring.DataKey
	for _, b := range blobs {
		if dk, err := keys.UnwrapDataKey(b); err == nil {
			out = append(out, dk)
		}
	}
	return out
}

func base64Values(v any) [][]byte {
	var out [][]byte
	switch v := v.(type) {
	case string:
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v); err == nil {
				out = append(out, b)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, base64Values(x)...)
		}
	case map[string]any:
		for _, x := range v {
			out = append(out, base64Values(x)...)
		}
	}
	return out
}

// shredScan goes through every version of every record on disk and
// returns the keys of those that give a data key opening c, with what it
// opens; and the keys of versions that still hold plaintext of c's body or
// attachment (markers).
func shredScan(t *testing.T, st *store.Store, keys *keyring.Keyring, c sealedContent, markers []string) (openers, plaintext []string, versions int) {
	t.Helper()
	err := st.Versions(nil, func(key, sealed []byte) error {
		versions++
		if sealed == nil {
			return nil
		}
		for _, dk := range candidateKeys(keys, key, sealed) {
			if what := c.opens(dk); len(what) > 0 {
				openers = append(openers, string(key)+" ("+strings.Join(what, ", ")+")")
			}
		}
		if plain, err := keys.Unseal(keyring.PurposeRecord, sealed, key); err == nil {
			for _, m := range markers {
				if bytes.Contains(plain, []byte(m)) {
					plaintext = append(plaintext, string(key)+" holds "+m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return openers, plaintext, versions
}

// keyVersions counts the versions of a record on disk that hold a value.
func keyVersions(t *testing.T, st *store.Store, key []byte) int {
	t.Helper()
	n := 0
	err := st.Versions(key, func(k, sealed []byte) error {
		if bytes.Equal(k, key) && sealed != nil {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecallShredsContent is the crypto-shredding property: once a
// message is recalled (and the store compacted), no version of any record
// left on disk yields a data key that opens the message's sealed subject,
// body or attachment, and no record holds their plaintext (but the subject
// kept on purpose for the recall notice). Before the recall the same scan
// must find the key, or the scan proves nothing.
func TestRecallShredsContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	e.pro(t, "bob@clinic.test", "Bob")
	const (
		subject  = "Shredded subject OSPREY"
		bodyText = "Shredded body HERON"
		fileText = "Shredded attachment EGRET"
	)
	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: subject, Body: "<p>" + bodyText + "</p>"},
		file{"egret.txt", "text/plain", []byte(strings.Repeat(fileText+"\n", 5000))})
	// Saved twice, so that older versions of the draft exist too.
	if _, err := e.svc.SaveDraft(ctx, alice.ID, d); err != nil {
		t.Fatal(err)
	}
	id := e.send(t, alice, d)

	c := sealedContent{id: id}
	err := e.st.View(func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		c.subject, c.blobID = r.Subject, r.Attach[0].ID
		c.body, err = tx.Get(bodyKey(id))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.blob, err = os.ReadFile(filepath.Join(e.blobDir, c.blobID[:2], c.blobID)); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(c.blob, []byte("EGRET")) || bytes.Contains(c.body, []byte("HERON")) || bytes.Contains(c.subject, []byte("OSPREY")) {
		t.Fatal("the content is stored in the clear")
	}
	markers := []string{"HERON", "EGRET"}

	// The positive control: the live key opens everything.
	openers, plaintext, n := shredScan(t, e.st, e.keys, c, markers)
	if !slices.Contains(openers, string(dataKeyKey(id))+" (subject, body, attachment)") {
		t.Fatalf("before the recall the scan of %d versions finds no key that opens the message: %v", n, openers)
	}
	if len(plaintext) != 0 {
		t.Fatalf("plaintext on disk before the recall: %v", plaintext)
	}
	t.Logf("before the recall: %d versions on disk; %v open the message", n, openers)

	if err := e.svc.Recall(ctx, alice.ID, id, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.blobDir, c.blobID[:2], c.blobID)); !os.IsNotExist(err) {
		t.Errorf("the attachment file after the recall: %v", err)
	}

	// The deleted key's old version lives on in Badger's files until a
	// compaction drops it.
	st := e.st
	if err := st.Compact(); err != nil {
		t.Fatal(err)
	}
	stage := "after Compact"

	openers, plaintext, n = shredScan(t, st, e.keys, c, markers)
	if len(openers) > 0 {
		t.Errorf("after the recall (%s), these of %d versions on disk still open the message: %v", stage, n, openers)
	}
	if len(plaintext) > 0 {
		t.Errorf("after the recall, plaintext on disk: %v", plaintext)
	}
	if k := keyVersions(t, st, dataKeyKey(id)); k > 0 {
		t.Errorf("%d versions of the wrapped key remain", k)
	}
	// What is left: the record, with the subject kept for the notice.
	err = st.View(func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r.Gone != "recalled" || r.KeptSubject != subject || r.Subject != nil || r.Preview != nil || r.Attach != nil {
			t.Errorf("the record after the recall: %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !t.Failed() {
		t.Logf("after the recall: %d versions on disk, none opens the message", n)
	}
}
