package message

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/internal/measure"
	"github.com/sealpost/sealpost/mailer"
)

// fillMailbox writes n messages from sender to rcpt straight into the
// store, newest last, one step apart from first: the records, sealed
// content, keys, thread and mailbox entries, counts and slips that deliver
// writes, in large transactions, without notifications, usage or audit
// events (which a mailbox page and an opening never read). It returns the
// ids, oldest first. Only a benchmark needs a mailbox this big this fast.
func (s *Service) fillMailbox(ctx context.Context, sender, rcpt account.User, n int, first time.Time, step time.Duration) ([]string, error) {
	body := "<p>" + strings.Repeat("A paragraph of an ordinary message, long enough to be realistic. ", 15) + "</p>"
	ids := make([]string, 0, n)
	const batch = 500
	for done := 0; done < n; done += batch {
		var made []string
		err := s.st.Update(ctx, func(tx *store.Tx) error {
			made = made[:0]
			for i := done; i < min(done+batch, n); i++ {
				date := first.Add(time.Duration(i) * step).UTC()
				dk, wrapped, err := s.keys.NewDataKey()
				if err != nil {
					return err
				}
				r := s.blankRecord(sender, newID())
				r.Draft, r.Sent, r.Created, r.Format = false, date, date, FormatHTML
				r.Recipients = []Participant{{UserID: rcpt.ID, Address: rcpt.Email, Name: rcpt.Name, Kind: RoleTo}}
				sealed := sealContent(dk, &r, fmt.Sprintf("Message number %d", i), body, body)
				if err := tx.Put(dataKeyKey(r.ID), wrapped); err != nil {
					return err
				}
				if err := store.PutJSON(tx, recordKey(r.ID), r); err != nil {
					return err
				}
				if err := tx.Put(bodyKey(r.ID), sealed); err != nil {
					return err
				}
				if err := tx.Put(threadKey(r.Thread, date, r.ID), nil); err != nil {
					return err
				}
				if err := s.putEntry(tx, sender.ID, nil, entry{ID: r.ID, Folder: Sent, Role: RoleSender, Read: true, Date: date}); err != nil {
					return err
				}
				if err := s.putEntry(tx, rcpt.ID, nil, entry{ID: r.ID, Folder: Inbox, Role: RoleTo, Date: date}); err != nil {
					return err
				}
				sl := Slip{UserID: rcpt.ID, Address: rcpt.Email, Name: rcpt.Name, Kind: RoleTo, Notification: "n" + r.ID, Notified: date}
				if err := store.PutJSON(tx, slipKey(r.ID, rcpt.ID), sl); err != nil {
					return err
				}
				made = append(made, r.ID)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		ids = append(ids, made...)
		// As the running appliance's counter folds a busy mailbox.
		if err := s.counts.Fold(ctx, s.st, []string{sender.ID, rcpt.ID}); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// BenchmarkInboxPage measures a mailbox of 100,000 messages: the first
// page of the inbox, a page in the middle reached by a cursor (older, and
// newer back from there), and the opening of random messages (a write: the
// entry marked read, the slip counted, the opening audited, made durable).
// Each round takes 100 samples of each; it reports their p50 and p95 in
// milliseconds, and how long building the mailbox took. Targets: a page and
// an opening under 50 ms at p95.
func BenchmarkInboxPage(b *testing.B) {
	const total = 100_000
	ctx := context.Background()
	e := newEnv(b)
	alice := e.pro(b, "alice@clinic.test", "Alice")
	bob := e.pro(b, "bob@clinic.test", "Bob")

	t0 := time.Now()
	ids, err := e.svc.fillMailbox(ctx, alice, bob, total, start.Add(-total*time.Second), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	// A few sent the ordinary way, on top.
	for range 5 {
		e.clock.Add(time.Second)
		ids = append(ids, e.send(b, alice, Draft{To: "bob@clinic.test", Subject: "Through Send", Body: "<p>x</p>"}))
	}
	build := time.Since(t0)
	if c := e.counts(b, bob)[Inbox]; c.Total != len(ids) {
		b.Fatalf("the inbox holds %d, want %d", c.Total, len(ids))
	}
	b.Logf("built a mailbox of %d messages in %v", len(ids), build.Round(time.Millisecond))

	// The cursors of the page that starts at the 50,000th newest message.
	newestFirst := func(i int) string { return ids[len(ids)-1-i] }
	keyOf := func(id string) string {
		var en entry
		err := e.st.View(func(tx *store.Tx) error {
			var err error
			en, err = getEntry(tx, bob.ID, id)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return reversed(en.Date) + "/" + id
	}
	older := "o" + keyOf(newestFirst(total/2-1))
	newer := "n" + keyOf(newestFirst(total/2+PageSize))

	steal0, total0, _ := measure.MachineCPU()
	var firstPage, middle, back, opens []time.Duration
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(p Page, err error, want string) {
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Items) != PageSize || p.Items[0].ID != want {
			b.Fatalf("a page of %d starting at %s, want %s", len(p.Items), p.Items[0].ID, want)
		}
	}
	for b.Loop() {
		for range 100 {
			t := time.Now()
			p, err := e.svc.List(bob.ID, Inbox, "")
			firstPage = append(firstPage, time.Since(t))
			check(p, err, newestFirst(0))

			t = time.Now()
			p, err = e.svc.List(bob.ID, Inbox, older)
			middle = append(middle, time.Since(t))
			check(p, err, newestFirst(total/2))

			t = time.Now()
			p, err = e.svc.List(bob.ID, Inbox, newer)
			back = append(back, time.Since(t))
			check(p, err, newestFirst(total/2))

			id := ids[rng.IntN(len(ids))]
			t = time.Now()
			v, err := e.svc.Open(ctx, bob.ID, id, "192.0.2.1")
			opens = append(opens, time.Since(t))
			if err != nil || v.ID != id || v.Subject == "" {
				b.Fatalf("open %s: %v", id, err)
			}
		}
	}
	b.Logf("while measuring: %s", measure.MachineLoad(steal0, total0))
	report := func(name string, ds []time.Duration) {
		b.ReportMetric(measure.PercentileMS(ds, 0.5), name+"-p50-ms")
		b.ReportMetric(measure.PercentileMS(ds, 0.95), name+"-p95-ms")
	}
	report("first", firstPage)
	report("middle", middle)
	report("newer", back)
	report("open", opens)
	b.ReportMetric(build.Seconds(), "build-s")
	b.ReportMetric(0, "ns/op") // a round is 400 samples; the percentiles are what counts
}

// mailerNotifier queues notices as the appliance does: rendered from the
// templates, composed, DKIM-signed (both keys) and added to the mail
// queue inside the sending transaction.
type mailerNotifier struct {
	renderer *mailer.Renderer
	queue    *mailer.Queue
	dkim     mailer.DKIMKeys
	mu       sync.Mutex
	seq      int
}

func (m *mailerNotifier) NotifyMessage(tx *store.Tx, n Notice) (string, error) {
	s, err := settings.Load(tx)
	if err != nil {
		return "", err
	}
	r, err := m.renderer.Render(mailer.Notification{Kind: mailer.Kind(n.Kind), SenderName: n.SenderName,
		RecipientName: n.RecipientName, Subject: n.Subject, Link: n.Link}, mailer.Brand{OrgName: "Example Clinic", ShowSubject: s.Notifications.ShowSubject})
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	m.seq++
	id := fmt.Sprintf("nbench%08d", m.seq)
	m.mu.Unlock()
	env := mailer.Envelope{ID: id, FromAddress: "no-reply@clinic.test", FromName: "Example Clinic", To: n.To,
		Hostname: "mail.clinic.test", Date: time.Now()}
	msg, err := mailer.Compose(env, r)
	if err != nil {
		return "", err
	}
	if msg, err = mailer.SignDKIM(msg, "clinic.test", "sealpost", m.dkim); err != nil {
		return "", err
	}
	if err := m.queue.Add(tx, mailer.Kind(n.Kind), env, msg); err != nil {
		return "", err
	}
	return id, nil
}

// BenchmarkSend50 measures a send to 50 registered recipients, from the
// call until it returns: everything committed and durable, every
// notification queued. With the test outbox the notifications cost
// nothing; with the mail queue each is rendered, composed, DKIM-signed and
// stored in the same transaction, as in the appliance. Each round sends 10
// messages; it reports the p50 and p95 in milliseconds. Target: under one
// second.
func BenchmarkSend50(b *testing.B) {
	const recipients = 50
	e := newEnv(b)
	alice := e.pro(b, "alice@clinic.test", "Alice")
	var to []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range recipients {
		// Registration hashes a password; a few at once.
		email := fmt.Sprintf("pro%02d@clinic.test", i)
		if _, err := e.accounts.Invite(context.Background(), e.admin.ID, account.Invite{Email: email, Role: account.RoleProfessional}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			e.registerInvited(b, email)
			mu.Lock()
			to = append(to, email)
			mu.Unlock()
		})
	}
	wg.Wait()
	d := Draft{To: strings.Join(to, ", "), Subject: "To fifty", Body: "<p>" + strings.Repeat("Text of a message to many. ", 40) + "</p>"}

	renderer, err := mailer.NewRenderer()
	if err != nil {
		b.Fatal(err)
	}
	dkim, err := mailer.GenerateDKIMKeys()
	if err != nil {
		b.Fatal(err)
	}
	queue := mailer.NewQueue(e.st, nil, zerolog.Nop())
	for _, n := range []struct {
		name     string
		notifier Notifier
	}{{"outbox", e.mail}, {"mailer", &mailerNotifier{renderer: renderer, queue: queue, dkim: dkim}}} {
		b.Run(n.name, func(b *testing.B) {
			e.svc.notifier = n.notifier
			steal0, total0, _ := measure.MachineCPU()
			var took []time.Duration
			for b.Loop() {
				for range 10 {
					t := time.Now()
					res, err := e.svc.Send(context.Background(), alice.ID, d)
					took = append(took, time.Since(t))
					if err != nil || res.ID == "" {
						b.Fatal(err)
					}
				}
			}
			b.Logf("%d sends; while measuring: %s", len(took), measure.MachineLoad(steal0, total0))
			b.ReportMetric(measure.PercentileMS(took, 0.5), "send-p50-ms")
			b.ReportMetric(measure.PercentileMS(took, 0.95), "send-p95-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// registerInvited registers an invited user at level 1.
func (e *env) registerInvited(t testing.TB, email string) {
	t.Helper()
	link := e.mail.invitation(t, email).Link
	token := link[strings.Index(link, "token=")+len("token="):]
	if i := strings.IndexByte(token, '&'); i >= 0 {
		token = token[:i]
	}
	if _, err := e.accounts.Register(context.Background(), token, account.Registration{Name: email, Password: testPassword, Confirm: testPassword}, "", ""); err != nil {
		t.Errorf("register %s: %v", email, err)
	}
}
