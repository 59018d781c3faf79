package smtpd

import (
	"strings"
	"testing"
	"time"
)

// TestBusyDataSlots: when as many messages as MaxConcurrentData are being
// received, the next sender waits for a slot and, failing one, gets a 451
// to try again later; once a slot frees, mail flows.
func TestBusyDataSlots(t *testing.T) {
	old := dataWait
	dataWait = 200 * time.Millisecond
	t.Cleanup(func() { dataWait = old })
	f := start(t)
	for range MaxConcurrentData {
		f.srv.dataSlots <- struct{}{}
	}
	err := sendPlain(t, f.relay, aliceAddr, []string{"bob@example.org"}, testBody)
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("with every slot taken: %v, want 451", err)
	}
	<-f.srv.dataSlots
	if err := sendPlain(t, f.relay, aliceAddr, []string{"bob@example.org"}, testBody); err != nil {
		t.Errorf("with a slot free: %v", err)
	}
	for range MaxConcurrentData - 1 {
		<-f.srv.dataSlots
	}
}
