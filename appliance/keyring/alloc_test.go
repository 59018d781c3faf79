//go:build !race

// The race detector drops sync.Pool entries at random, so these run without it.

package keyring

import (
	"bytes"
	"io"
	"testing"
)

// TestAllocations holds the hot paths to their allocation budgets.
func TestAllocations(t *testing.T) {
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	d := newDataKey(t)
	value, key := randomBytes(2048), []byte("msg/0001/body")
	sealed, _ := k.Seal(PurposeRecord, value, key)
	chunk := randomBytes(ChunkSize)
	file := encrypt(t, d, randomBytes(4*ChunkSize), false)
	r, err := d.NewReaderAt(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Seal: only the output", 1, func() { k.Seal(PurposeRecord, value, key) }},
		{"Unseal: only the output", 1, func() { k.Unseal(PurposeRecord, sealed, key) }},
		{"DataKey.Seal: only the output", 1, func() { d.Seal(value, key) }},
		{"ChunkReader.ReadAt: none", 0, func() { r.ReadAt(buf, ChunkSize-500) }},
		{"NewWriter and 64 chunks: one buffer and the writer", 2, func() {
			w, _ := d.NewWriter(io.Discard)
			for range 64 {
				w.Write(chunk)
			}
			w.Write(chunk[:100])
			w.Close()
		}},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(50, tt.f); got > tt.max {
			t.Errorf("%s: %v allocations, want at most %v", tt.name, got, tt.max)
		}
	}
}
