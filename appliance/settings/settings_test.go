package settings

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

func open(t *testing.T) (*store.Store, *audit.Trail) {
	t.Helper()
	st, keys := storetest.Open(t, t.TempDir())
	return st, audit.New(keys, time.Now)
}

func TestSetGetAudited(t *testing.T) {
	t.Parallel()
	st, trail := open(t)
	ctx := context.Background()
	err := Set(ctx, st, trail, "cli",
		Change{"organization.name", "Example Clinic"},
		Change{"organization.domains", "example.org, clinic.example.org"},
		Change{"mail.relay_host", "smtp.example.org"},
		Change{"mail.relay_port", "465"},
		Change{"mail.relay_security", "tls"},
		Change{"mail.relay_password", "hunter2-secret"},
		Change{"notifications.show_subject", "true"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(st)
	if err != nil {
		t.Fatal(err)
	}
	if s.Organization.Name != "Example Clinic" || len(s.Organization.Domains) != 2 || s.Mail.RelayPort != 465 ||
		!s.Notifications.ShowSubject || s.Mail.RelayPassword != "hunter2-secret" {
		t.Errorf("settings after Set: %+v", s)
	}
	for key, want := range map[string]string{
		"organization.domains": "example.org,clinic.example.org", "mail.relay_password": "(set)",
		"mail.relay_username": "", "mail.mode": "relay", "notifications.show_subject": "true",
	} {
		if got, err := Get(s, key); err != nil || got != want {
			t.Errorf("Get(%s) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, kv := range All(s) {
		if strings.Contains(kv[1], "hunter2") {
			t.Error("All shows the secret")
		}
	}
	st.View(func(tx *store.Tx) error {
		events, _ := audit.List(tx, 0, 100)
		if len(events) != 7 {
			t.Errorf("%d audit events, want 7", len(events))
		}
		for _, e := range events {
			if strings.Contains(e.Detail["value"], "hunter2") {
				t.Error("the audit trail holds the secret")
			}
			if e.Actor != "cli" || e.Action != "settings.change" || !strings.HasPrefix(e.Object, "settings/") {
				t.Errorf("audit event %+v", e)
			}
		}
		return nil
	})
}

func TestInvalidChangesSaveNothing(t *testing.T) {
	t.Parallel()
	st, trail := open(t)
	ctx := context.Background()
	err := Set(ctx, st, trail, "cli",
		Change{"mail.relay_port", "seventy"},
		Change{"mail.from_address", "not an address"},
		Change{"branding.accent_color", "teal"},
		Change{"organization.name", "Fine Name"},
		Change{"mail.nonsense", "x"})
	if err == nil {
		t.Fatal("invalid changes were accepted")
	}
	for _, want := range []string{"mail.relay_port: \"seventy\" is not a whole number", "mail.from_address", "branding.accent_color", "mail.nonsense: unknown setting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	s, _ := Read(st)
	if s.Organization.Name != "" {
		t.Error("a valid change in a rejected batch was saved")
	}
}

func TestValidationRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, value, want string
	}{
		{"organization.name", "two\nlines", "must be one line"},
		{"organization.domains", "example.org,not_a_domain", "not a domain name"},
		{"organization.domains", "localhost", "not a domain name"},
		{"organization.website", "ftp://example.org", "not an http(s)://"},
		{"organization.postal_address", strings.Repeat("x", 501), "longer than 500"},
		{"branding.accent_color", "#12345", "not a colour"},
		{"mail.mode", "carrier-pigeon", "not relay or mx"},
		{"mail.relay_host", "smtp.example.org:587", "neither a host name"},
		{"mail.relay_port", "0", "not a port"},
		{"mail.relay_port", "70000", "not a port"},
		{"mail.relay_security", "none", "not starttls or tls"},
		{"mail.from_address", "Sealpost <no-reply@example.org>", "not an email address"},
		{"mail.dkim_selector", "bad selector", "not a DNS label"},
		{"notifications.show_subject", "maybe", "not true or false"},
		{"notifications.disclaimer", strings.Repeat("x", 5001), "longer than 5000"},
	}
	st, trail := open(t)
	for _, tt := range tests {
		err := Set(context.Background(), st, trail, "cli", Change{tt.key, tt.value})
		if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s = %q: %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
	for _, ok := range []Change{{"mail.relay_host", "192.0.2.10"}, {"mail.from_address", "no-reply@example.org"}, {"organization.website", "https://example.org/"}} {
		if err := Set(context.Background(), st, trail, "cli", ok); err != nil {
			t.Errorf("%s = %q refused: %v", ok.Key, ok.Value, err)
		}
	}
}

// TestDecodedCopyFollowsChanges: reads go through the decoded copy, which
// must never hide a change — a save is seen by the next read, a
// transaction sees its own save, an old snapshot keeps the old values, and
// a caller's edits to lists stay its own.
func TestDecodedCopyFollowsChanges(t *testing.T) {
	t.Parallel()
	st, trail := open(t)
	ctx := context.Background()
	name := func() string {
		t.Helper()
		s, err := Read(st)
		if err != nil {
			t.Fatal(err)
		}
		return s.Organization.Name
	}
	if got := name(); got != "" {
		t.Fatalf("fresh store: name %q", got)
	}
	for _, want := range []string{"First Clinic", "Second Clinic", "Third Clinic"} {
		if err := Set(ctx, st, trail, "cli", Change{"organization.name", want}); err != nil {
			t.Fatal(err)
		}
		if got := name(); got != want {
			t.Fatalf("after setting %q, Read gives %q", want, got)
		}
	}
	err := st.Update(ctx, func(tx *store.Tx) error {
		if err := SetTx(tx, trail, "cli", Change{"organization.name", "Inside"}); err != nil {
			return err
		}
		s, err := Load(tx)
		if err != nil {
			return err
		}
		if s.Organization.Name != "Inside" {
			t.Errorf("a transaction reads %q after saving Inside", s.Organization.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := name(); got != "Inside" {
		t.Errorf("after the transaction: %q", got)
	}
	// A snapshot taken before a change keeps what it saw.
	err = st.View(func(tx *store.Tx) error {
		if err := Set(ctx, st, trail, "cli", Change{"organization.name", "Later"}); err != nil {
			return err
		}
		s, err := Load(tx)
		if err != nil {
			return err
		}
		if s.Organization.Name != "Inside" {
			t.Errorf("an older snapshot reads %q", s.Organization.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Set(ctx, st, trail, "cli", Change{"organization.domains", "a.example, b.example"}); err != nil {
		t.Fatal(err)
	}
	s, _ := Read(st)
	s.Organization.Domains[0] = "changed.example"
	if again, _ := Read(st); again.Organization.Domains[0] != "a.example" {
		t.Errorf("a caller's edit leaked into the next read: %v", again.Organization.Domains)
	}
}
