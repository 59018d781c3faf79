package setup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
)

func openStore(t *testing.T, dataDir string) *store.Store {
	t.Helper()
	keys, err := keyring.Open(filepath.Join(filepath.Dir(dataDir), "sealpost.key"), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dataDir, keys, store.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); keys.Close() })
	return st
}

func TestGate(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	st := openStore(t, dataDir)
	tokenPath := filepath.Join(dataDir, TokenFile)

	g, err := Prepare(st, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Pending() || len(g.Token()) < 26 {
		t.Fatalf("a new appliance should be pending with a 128-bit token, got %v %q", g.Pending(), g.Token())
	}
	data, err := os.ReadFile(tokenPath)
	if err != nil || strings.TrimSpace(string(data)) != g.Token() {
		t.Fatalf("token file: %q, %v", data, err)
	}
	if info, _ := os.Stat(tokenPath); info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", info.Mode().Perm())
	}
	if !g.Check(g.Token()) || g.Check("") || g.Check(g.Token()+"x") || g.Check(strings.ToLower(g.Token())) {
		t.Error("Check accepts the wrong tokens or refuses the right one")
	}

	// A restart before setup makes a new token; the old one stops working.
	again, err := Prepare(st, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Token() == g.Token() || again.Check(g.Token()) {
		t.Error("the token survived a restart")
	}

	if err := again.Complete(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if again.Pending() || again.Check(again.Token()) || again.Token() != "" {
		t.Error("the gate stays open after setup completed")
	}
	if _, err := os.Stat(tokenPath); !os.IsNotExist(err) {
		t.Errorf("the token file is still there: %v", err)
	}

	// After completion a restart makes no token, and removes a stale file.
	os.WriteFile(tokenPath, []byte("STALE\n"), 0o600)
	done, err := Prepare(st, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if done.Pending() || done.Token() != "" || done.Check("STALE") {
		t.Error("setup reopened after it was completed")
	}
	if _, err := os.Stat(tokenPath); !os.IsNotExist(err) {
		t.Error("a stale token file was left after setup completed")
	}
}
