// Package setup runs the first-run wizard. Until setup is finished, a
// one-time token, printed at start and written to DATA_DIR/setup-token (mode
// 0600), is required to reach it, so nobody else on the network can claim the
// appliance first. A new token is made at every start; only its hash is kept
// in memory.
package setup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/sealpost/sealpost/appliance/atomicfile"
	"github.com/sealpost/sealpost/appliance/store"
)

// TokenFile is the name of the token file in the data directory.
const TokenFile = "setup-token"

// completedKey marks finished setup in the store.
var completedKey = []byte("setup/completed")

// Gate guards the setup wizard.
type Gate struct {
	pending   atomic.Bool
	tokenHash [sha256.Size]byte
	token     string
	tokenPath string
}

// Prepare reads whether setup is finished. If it is not, it makes a new
// token and writes it to the token file; if it is, it removes a stale file.
func Prepare(st *store.Store, dataDir string) (*Gate, error) {
	g := &Gate{tokenPath: filepath.Join(dataDir, TokenFile)}
	done := false
	err := st.View(func(tx *store.Tx) error {
		_, err := tx.Get(completedKey)
		switch {
		case err == nil:
			done = true
		case errors.Is(err, store.ErrNotFound):
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read setup state: %w", err)
	}
	if done {
		if err := os.Remove(g.tokenPath); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove %s: %w", g.tokenPath, err)
		}
		return g, nil
	}
	g.token = rand.Text()
	g.tokenHash = sha256.Sum256([]byte(g.token))
	if err := atomicfile.Write(g.tokenPath, []byte(g.token+"\n")); err != nil {
		return nil, fmt.Errorf("write setup token: %w", err)
	}
	g.pending.Store(true)
	return g, nil
}

// Pending reports whether setup is still to be done.
func (g *Gate) Pending() bool { return g.pending.Load() }

// Token returns the one-time token, to be printed once at start; empty when
// setup is finished.
func (g *Gate) Token() string {
	if !g.Pending() {
		return ""
	}
	return g.token
}

// Check reports, in constant time, whether token is the setup token.
func (g *Gate) Check(token string) bool {
	if !g.Pending() {
		return false
	}
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], g.tokenHash[:]) == 1
}

// Complete records that setup is finished and removes the token file. The
// wizard cannot run again afterwards.
func (g *Gate) Complete(ctx context.Context, st *store.Store) error {
	err := st.Update(ctx, func(tx *store.Tx) error {
		return tx.Put(completedKey, []byte("1"))
	})
	if err != nil {
		return fmt.Errorf("record setup completed: %w", err)
	}
	return g.finish()
}

// finish closes the wizard after setup is recorded in the store.
func (g *Gate) finish() error {
	g.pending.Store(false)
	if err := os.Remove(g.tokenPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", g.tokenPath, err)
	}
	return nil
}
