package branding

import (
	"errors"

	"github.com/sealpost/sealpost/appliance/store"
)

func imageKey(kind Kind) []byte { return []byte("branding/" + string(kind) + ".png") }

// Save keeps an uploaded image, already checked by Check, in tx.
func Save(tx *store.Tx, kind Kind, png []byte) error { return tx.Put(imageKey(kind), png) }

// Image returns the organization's uploaded image of kind, or the default
// drawn from its name and accent colour when none was uploaded.
func Image(tx *store.Tx, kind Kind, orgName, accent string) ([]byte, error) {
	data, err := tx.Get(imageKey(kind))
	if errors.Is(err, store.ErrNotFound) {
		return Default(kind, orgName, accent)
	}
	return data, err
}
