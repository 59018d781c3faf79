package message

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
	"github.com/sealpost/sealpost/internal/clocktest"
)

// outbox is the mailer as the domains see it: it keeps every notice of a
// transaction that committed, so tests see what would really be mailed.
type outbox struct {
	mu       sync.Mutex
	seq      int
	notices  []Notice         // message notices
	accounts []account.Notice // invitations and the like
}

var (
	_ Notifier         = (*outbox)(nil)
	_ account.Notifier = (*outbox)(nil)
)

func (o *outbox) NotifyMessage(tx *store.Tx, n Notice) (string, error) {
	o.mu.Lock()
	o.seq++
	id := fmt.Sprintf("n%06d", o.seq)
	o.mu.Unlock()
	tx.OnDone(func(committed bool) {
		if committed {
			o.mu.Lock()
			o.notices = append(o.notices, n)
			o.mu.Unlock()
		}
	})
	return id, nil
}

func (o *outbox) Notify(tx *store.Tx, n account.Notice) error {
	tx.OnDone(func(committed bool) {
		if committed {
			o.mu.Lock()
			o.accounts = append(o.accounts, n)
			o.mu.Unlock()
		}
	})
	return nil
}

// sent returns the message notices of a kind (all kinds for "") to an
// address (everyone for "").
func (o *outbox) sent(kind, to string) []Notice {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Notice
	for _, n := range o.notices {
		if (kind == "" || n.Kind == kind) && (to == "" || n.To == to) {
			out = append(out, n)
		}
	}
	return out
}

func (o *outbox) invitation(t testing.TB, to string) account.Notice {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.accounts) - 1; i >= 0; i-- {
		if n := o.accounts[i]; n.Kind == "invitation" && n.To == to {
			return n
		}
	}
	t.Fatalf("no invitation to %s", to)
	return account.Notice{}
}

// env is a message service over a real encrypted store and blob directory.
type env struct {
	dir      string
	st       *store.Store
	keys     *keyring.Keyring
	trail    *audit.Trail
	accounts *account.Service
	svc      *Service
	blobs    *attachment.Blobs
	blobDir  string
	clock    *clocktest.Clock
	mail     *outbox
	admin    account.User
}

const (
	testPassword = "a long and private passphrase"
	baseURL      = "https://portal.test"
)

var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, keys := storetest.Open(t, dir)
	e := &env{dir: dir, st: st, keys: keys, clock: clocktest.New(start), mail: &outbox{}, blobDir: filepath.Join(dir, "blobs")}
	e.trail = audit.New(keys, e.clock.Now)
	var err error
	e.accounts, err = account.New(ctx, account.Options{Store: st, Audit: e.trail, Notifier: e.mail, Logger: zerolog.Nop(),
		Now: e.clock.Now, BaseURL: func() string { return baseURL }})
	if err != nil {
		t.Fatal(err)
	}
	if e.blobs, err = attachment.OpenBlobs(e.blobDir); err != nil {
		t.Fatal(err)
	}
	e.svc = New(Options{Store: st, Keys: keys, Blobs: e.blobs, Accounts: e.accounts, Audit: e.trail, Notifier: e.mail,
		Logger: zerolog.Nop(), BaseURL: func() string { return baseURL }, Now: e.clock.Now})
	err = st.Update(ctx, func(tx *store.Tx) error {
		e.admin, err = e.accounts.CreateAdmin(ctx, tx, "admin@clinic.test", "Ada Admin", testPassword)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.accounts.Committed(e.admin)
	e.set(t, "registration.level", "1", "security.admin_requires_totp", "false")
	return e
}

// set changes settings: key, value, key, value…
func (e *env) set(t testing.TB, kv ...string) {
	t.Helper()
	var ch []settings.Change
	for i := 0; i < len(kv); i += 2 {
		ch = append(ch, settings.Change{Key: kv[i], Value: kv[i+1]})
	}
	if err := settings.Set(context.Background(), e.st, e.trail, "test", ch...); err != nil {
		t.Fatal(err)
	}
}

// user invites someone as the administrator and registers them at level 1,
// as a person following the link would: an enabled user of that role.
func (e *env) user(t testing.TB, role account.Role, email, name string) account.User {
	t.Helper()
	ctx := context.Background()
	if _, err := e.accounts.Invite(ctx, e.admin.ID, account.Invite{Email: email, Name: name, Role: role}); err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	link, err := url.Parse(e.mail.invitation(t, email).Link)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := e.accounts.Register(ctx, link.Query().Get("token"), account.Registration{Name: name, Password: testPassword, Confirm: testPassword}, "10.0.0.9", "test")
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	if u := reg.SignIn.User; u.Status != account.StatusEnabled || !u.Has(role) {
		t.Fatalf("registered %s: %+v", email, u)
	}
	return reg.SignIn.User
}

// inviteQuota sets the professional group's invitation quota.
func (e *env) inviteQuota(t testing.TB, n int) {
	t.Helper()
	g, err := e.accounts.Group(account.GroupProfessional)
	if err != nil {
		t.Fatal(err)
	}
	g.InviteQuota = n
	if _, err := e.accounts.SaveGroup(context.Background(), account.ActorOf(e.admin.ID), g); err != nil {
		t.Fatal(err)
	}
}

func (e *env) pro(t testing.TB, email, name string) account.User {
	t.Helper()
	return e.user(t, account.RoleProfessional, email, name)
}

func (e *env) guest(t testing.TB, email, name string) account.User {
	t.Helper()
	return e.user(t, account.RoleGuest, email, name)
}

// send sends d as from and fails the test on an error.
func (e *env) send(t testing.TB, from account.User, d Draft) string {
	t.Helper()
	if d.Subject == "" {
		d.Subject = "A subject"
	}
	res, err := e.svc.Send(context.Background(), from.ID, d)
	if err != nil {
		t.Fatalf("send %q from %s: %v", d.Subject, from.Email, err)
	}
	if !validID(res.ID) {
		t.Fatalf("send gave id %q", res.ID)
	}
	return res.ID
}

func (e *env) open(t testing.TB, u account.User, id string) View {
	t.Helper()
	v, err := e.svc.Open(context.Background(), u.ID, id, "192.0.2.1")
	if err != nil {
		t.Fatalf("open %s as %s: %v", id, u.Email, err)
	}
	return v
}

func (e *env) apply(t testing.TB, u account.User, a Action, ids ...string) {
	t.Helper()
	if err := e.svc.Apply(context.Background(), u.ID, a, ids); err != nil {
		t.Fatalf("%s %v as %s: %v", a, ids, u.Email, err)
	}
}

// counts reads a user's folder counts.
func (e *env) counts(t testing.TB, u account.User) map[Folder]Counts {
	t.Helper()
	c, err := e.svc.Counts(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantCounts compares the counts of the folders given; folders not given
// must be empty.
func (e *env) wantCounts(t testing.TB, u account.User, want map[Folder]Counts) {
	t.Helper()
	got := e.counts(t, u)
	for _, f := range Folders {
		if got[f] != want[f] {
			t.Errorf("%s %s: %+v, want %+v", u.Email, f, got[f], want[f])
		}
	}
}

// events returns the audit events of an action (all for ""), oldest first.
func (e *env) events(t testing.TB, action string) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := e.st.View(func(tx *store.Tx) error {
		evs, err := audit.List(tx, 0, 1<<20)
		for _, ev := range evs {
			if action == "" || ev.Action == action {
				out = append(out, ev)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventsOn counts the events of an action on one object.
func (e *env) eventsOn(t testing.TB, action, object string) int {
	t.Helper()
	n := 0
	for _, ev := range e.events(t, action) {
		if ev.Object == object {
			n++
		}
	}
	return n
}

// blobFiles lists the committed blob files and any .part files.
func (e *env) blobFiles(t testing.TB) (blobs, parts []string) {
	t.Helper()
	err := filepath.WalkDir(e.blobDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".part") {
			parts = append(parts, filepath.Base(p))
		} else {
			blobs = append(blobs, filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(blobs)
	return blobs, parts
}

func (e *env) blobExists(t testing.TB, id string) bool {
	t.Helper()
	_, err := e.blobs.Stat(id)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// userByAddress reads a user, or reports that there is none.
func (e *env) userByAddress(t testing.TB, addr string) (account.User, bool) {
	t.Helper()
	u, err := e.accounts.UserByAddress(addr)
	if fault.KindOf(err) == fault.NotFound {
		return u, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return u, true
}

func wantKind(t testing.TB, what string, err error, kind fault.Kind) {
	t.Helper()
	if err == nil || fault.KindOf(err) != kind {
		t.Errorf("%s: %v (%v), want %v", what, err, fault.KindOf(err), kind)
	}
}

// fieldError is the message for field in err, or "".
func fieldError(err error) func(field string) string {
	ve := account.FieldErrors(err)
	return func(field string) string {
		if ve == nil {
			return ""
		}
		return ve.For(field)
	}
}

func addresses(ps []Participant) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Address
	}
	slices.Sort(out)
	return out
}
