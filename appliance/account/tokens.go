package account

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Token purposes.
const (
	purposeInvite      = "invite"
	purposeReset       = "reset"
	purposeAlias       = "alias"
	purposeUnsubscribe = "unsubscribe"
)

// Token is a one-time link's record, stored under the hash of the link's
// secret part.
type Token struct {
	Purpose string    `json:"purpose"`
	UserID  string    `json:"user_id"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Address string    `json:"address,omitempty"` // alias being confirmed
	// Alias, when set, makes this token another name for the token with
	// that hash (a message's link to an invitation): it carries nothing
	// else, and lives only as long as that token does.
	Alias string `json:"alias,omitempty"`

	// Registration in progress (invitations).
	Level        int       `json:"level,omitempty"`
	PasscodeHash string    `json:"passcode_hash,omitempty"` // level 3: argon2id of the inviter's passcode
	Attempts     int       `json:"attempts,omitempty"`      // wrong passcodes or codes
	PasswordHash string    `json:"password_hash,omitempty"` // chosen, waiting for the emailed code
	CodeHash     string    `json:"code_hash,omitempty"`
	CodeExpires  time.Time `json:"code_expires,omitzero"`
	InviterName  string    `json:"inviter_name,omitempty"`
}

func tokenKey(purpose, hash string) []byte { return []byte(tokenPrefix + purpose + "/" + hash) }

// userTokenKey points from a user to their live token of a purpose, so that
// issuing a new one (resend invitation, a second reset) voids the old.
func userTokenKey(uid, purpose, extra string) []byte {
	k := "acct/utoken/" + uid + "/" + purpose
	if extra != "" {
		k += "/" + extra
	}
	return []byte(k)
}

// issueToken stores t and returns the secret for the link. An earlier live
// token of the same user, purpose and address (or slot) is voided.
func issueToken(tx *store.Tx, t Token) (string, error) {
	ref := userTokenKey(t.UserID, t.Purpose, t.Address)
	if old, err := tx.Get(ref); err == nil {
		if err := tx.Delete(tokenKey(t.Purpose, string(old))); err != nil {
			return "", err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	secret, h, err := putToken(tx, t)
	if err != nil {
		return "", err
	}
	return secret, tx.Put(ref, []byte(h))
}

// putToken stores t under a new secret and returns it with its hash.
func putToken(tx *store.Tx, t Token) (secret, hash string, err error) {
	secret = rand.Text() + rand.Text()
	hash = hashToken(secret)
	return secret, hash, store.PutJSON(tx, tokenKey(t.Purpose, hash), t)
}

// aliasToken stores a new link that stands for main (whose hash is
// mainHash) and returns its secret. Aliases have no pointer from the user:
// voiding or using main ends them, since they resolve through it.
func aliasToken(tx *store.Tx, main Token, mainHash string, now time.Time) (string, error) {
	secret, _, err := putToken(tx, Token{Purpose: main.Purpose, UserID: main.UserID, Created: now.UTC(), Expires: main.Expires, Alias: mainHash})
	return secret, err
}

// errLink is the answer to a link that is unknown, used or expired: one
// text for all, so a guess learns nothing.
func errLink(what string) error {
	return fault.E(fault.NotFound, "This "+what+" link is not valid any more: it was used, replaced by a newer one, or it expired.", nil)
}

// lookupToken returns a live token, or errLink.
func lookupToken(tx *store.Tx, purpose, secret string, now time.Time, what string) (Token, string, error) {
	if secret == "" || len(secret) > 128 {
		return Token{}, "", errLink(what)
	}
	h := hashToken(secret)
	t, err := store.GetJSON[Token](tx, tokenKey(purpose, h))
	if errors.Is(err, store.ErrNotFound) {
		return t, h, errLink(what)
	}
	if err != nil {
		return t, h, err
	}
	if now.After(t.Expires) {
		return t, h, errLink(what)
	}
	return t, h, nil
}

// consumeToken deletes a token and the user's pointer to it.
func consumeToken(tx *store.Tx, t Token, h string) error {
	if err := tx.Delete(tokenKey(t.Purpose, h)); err != nil {
		return err
	}
	return tx.Delete(userTokenKey(t.UserID, t.Purpose, t.Address))
}
