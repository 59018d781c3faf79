package store

import (
	"context"
	"errors"

	"golang.org/x/crypto/acme/autocert"
)

// autocertCache keeps autocert's account key and certificates in the store,
// so they are encrypted at rest like everything else.
type autocertCache struct {
	s      *Store
	prefix string
}

var _ autocert.Cache = (*autocertCache)(nil)

// AutocertCache returns an autocert.Cache over the records under prefix.
func (s *Store) AutocertCache(prefix string) autocert.Cache {
	return &autocertCache{s: s, prefix: prefix}
}

func (c *autocertCache) Get(_ context.Context, name string) ([]byte, error) {
	var data []byte
	err := c.s.View(func(tx *Tx) error {
		var err error
		data, err = tx.Get([]byte(c.prefix + name))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

func (c *autocertCache) Put(ctx context.Context, name string, data []byte) error {
	return c.s.Update(ctx, func(tx *Tx) error { return tx.Put([]byte(c.prefix+name), data) })
}

func (c *autocertCache) Delete(ctx context.Context, name string) error {
	return c.s.Update(ctx, func(tx *Tx) error { return tx.Delete([]byte(c.prefix + name)) })
}
