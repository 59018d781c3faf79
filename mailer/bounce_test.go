package mailer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/internal/clocktest"
	"github.com/sealpost/sealpost/mailer/smtptest"
)

// sampleFor parses a sample bounce after putting to where it names from.
func sampleFor(t *testing.T, file, from, to string) *DSN {
	t.Helper()
	data := readSample(t, file)
	if from != "" {
		if !bytes.Contains(data, []byte(from)) {
			t.Fatalf("%s does not name %s", file, from)
		}
		data = bytes.ReplaceAll(data, []byte(from), []byte(to))
	}
	d, err := ParseDSN(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sentNotification delivers one notification through a capture relay and
// returns it with the envelope sender the relay saw: where its bounce goes.
func sentNotification(t *testing.T) (*Queue, *clocktest.Clock, Item, string) {
	t.Helper()
	relay := smtptest.Start(t, smtptest.Options{})
	q := newTestQueue(openStore(t, t.TempDir()), relayFor(relay, "starttls"))
	clock := clocktest.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	q.Now = clock.Now
	id := enqueue(t, q, 1, "example.test")[0]
	runQueue(t, q)
	got := relay.Wait(1, 15*time.Second)
	if len(got) != 1 {
		t.Fatalf("relay received %d messages", len(got))
	}
	it := waitState(t, q, id, StateSent)
	if got[0].From != it.ReturnPath {
		t.Fatalf("envelope sender %q, item return path %q", got[0].From, it.ReturnPath)
	}
	return q, clock, it, got[0].From
}

func TestRecordBounceAfterDelivery(t *testing.T) {
	t.Parallel()
	q, clock, sent, bounceTo := sentNotification(t)
	clock.Set(sent.Done.Add(2 * time.Hour))
	d := sampleFor(t, "postfix-failed.eml", "patient@example.test", sent.To)

	id, err := q.RecordBounce(context.Background(), d, bounceTo)
	if err != nil || id != sent.ID {
		t.Fatalf("RecordBounce: %q, %v", id, err)
	}
	it, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	const want = "bounced by mx.example.test: 5.1.1 (smtp; 550 5.1.1 <user0@example.test>: Recipient address rejected: User unknown in virtual mailbox table)"
	if it.State != StateFailed || it.LastError != want || !it.Done.Equal(clock.Now()) {
		t.Errorf("after the bounce: state %s, done %v, last error %q", it.State, it.Done, it.LastError)
	}
	if it.Attempts != 1 || it.Reply != sent.Reply || it.Message != nil {
		t.Errorf("the bounce changed more than the outcome: %+v", it)
	}
	if list, _ := q.List(10); len(list) != 1 || list[0].ID != id {
		t.Errorf("queue list after the bounce: %+v", list)
	}
	if n := testutil.ToFloat64(q.metrics.queued); n != 0 {
		t.Errorf("queue length gauge %v, want 0", n)
	}

	// The same bounce again (a duplicate) keeps the first time.
	clock.Set(clock.Now().Add(time.Hour))
	if _, err := q.RecordBounce(context.Background(), d, strings.ToUpper(bounceTo[:8])+bounceTo[8:]); err != nil {
		t.Fatal(err)
	}
	if again, _ := q.Get(id); !again.Done.Equal(it.Done) || again.LastError != want {
		t.Errorf("after the same bounce again: %+v", again)
	}
	// A late delay warning does not hide the failure.
	if _, err := q.RecordBounce(context.Background(), sampleFor(t, "postfix-delayed.eml", "slow@example.test", sent.To), bounceTo); err != nil {
		t.Fatal(err)
	}
	if again, _ := q.Get(id); again.State != StateFailed || again.LastError != want {
		t.Errorf("after a late delay warning: %+v", again)
	}
}

func TestRecordBounceDelayedKeepsState(t *testing.T) {
	t.Parallel()
	q, clock, sent, bounceTo := sentNotification(t)
	clock.Set(sent.Done.Add(4 * time.Hour))
	d := sampleFor(t, "postfix-delayed.eml", "slow@example.test", sent.To)
	if _, err := q.RecordBounce(context.Background(), d, bounceTo); err != nil {
		t.Fatal(err)
	}
	it, _ := q.Get(sent.ID)
	const want = "delayed at mail.clinic.test: 4.7.1 (smtp; 451 4.7.1 <user0@example.test>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/example.test.html)"
	if it.State != StateSent || it.LastError != want || !it.Done.Equal(sent.Done) {
		t.Errorf("after a delay warning: state %s, done %v (sent %v), last error %q", it.State, it.Done, sent.Done, it.LastError)
	}
}

func TestRecordBounceWhichRecipient(t *testing.T) {
	t.Parallel()
	q, _, sent, bounceTo := sentNotification(t)

	// A worker still holding a notification it has sent does not stand in
	// the way.
	q.mu.Lock()
	q.inflight[sent.ID] = true
	q.mu.Unlock()

	// Its recipient's block says relayed: the failure of another is not its own.
	d := sampleFor(t, "sendmail-two-recipients.eml", "archive@legacy.example.com", sent.To)
	if _, err := q.RecordBounce(context.Background(), d, bounceTo); err != nil {
		t.Fatal(err)
	}
	if it, _ := q.Get(sent.ID); it.State != StateSent || it.LastError != "" {
		t.Errorf("after a relayed block for its recipient: %+v", it)
	}

	// No block names its recipient (forwarded): the failure is its own.
	d = sampleFor(t, "exim.eml", "", "")
	if _, err := q.RecordBounce(context.Background(), d, bounceTo); err != nil {
		t.Fatal(err)
	}
	const want = "bounced by mx1.example.org: 5.0.0 (smtp; 550 5.7.1 <someone@example.org>: Relay access denied)"
	if it, _ := q.Get(sent.ID); it.State != StateFailed || it.LastError != want {
		t.Errorf("after a bounce for a forwarded address: %+v", it)
	}
}

func TestRecordBounceQueued(t *testing.T) {
	t.Parallel()
	q := newTestQueue(openStore(t, t.TempDir()), Relay{})
	clock := clocktest.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	q.Now = clock.Now
	id := enqueue(t, q, 1, "example.test")[0]
	queued, _ := q.Get(id)
	if n, _ := q.countQueued(); n != 1 || testutil.ToFloat64(q.metrics.queued) != 1 {
		t.Fatalf("before: %d due, gauge %v", n, testutil.ToFloat64(q.metrics.queued))
	}
	clock.Set(clock.Now().Add(time.Minute))
	d := sampleFor(t, "postfix-failed.eml", "patient@example.test", queued.To)
	if _, err := q.RecordBounce(context.Background(), d, queued.ReturnPath); err != nil {
		t.Fatal(err)
	}
	it, _ := q.Get(id)
	if it.State != StateFailed || it.Message != nil || !it.Done.Equal(clock.Now()) || !strings.HasPrefix(it.LastError, "bounced by mx.example.test: 5.1.1 (") {
		t.Errorf("after the bounce: %+v", it)
	}
	if n, _ := q.countQueued(); n != 0 {
		t.Errorf("%d entries left in the due index", n)
	}
	if due, _ := q.due(10); len(due) != 0 {
		t.Errorf("still due: %v", due)
	}
	if g := testutil.ToFloat64(q.metrics.queued); g != 0 {
		t.Errorf("queue length gauge %v, want 0", g)
	}
}

func TestRecordBounceRefuses(t *testing.T) {
	t.Parallel()
	q := newTestQueue(openStore(t, t.TempDir()), Relay{})
	id := enqueue(t, q, 1, "example.test")[0]
	it, _ := q.Get(id)
	d := sampleFor(t, "postfix-failed.eml", "patient@example.test", it.To)
	ctx := context.Background()

	if _, err := q.RecordBounce(ctx, d, "bounces+zz9unknown@clinic.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown notification: %v, want store.ErrNotFound", err)
	}
	for _, addr := range []string{"no-reply@clinic.test", "bounces+N000000@clinic.test", "bounces+@clinic.test", ""} {
		if _, err := q.RecordBounce(ctx, d, addr); err == nil || errors.Is(err, store.ErrNotFound) ||
			!strings.Contains(err.Error(), "not a notification's return path") {
			t.Errorf("address %q: %v", addr, err)
		}
	}
	if _, err := q.RecordBounce(ctx, d, "bounces+"+id+"@elsewhere.test"); err == nil || !strings.Contains(err.Error(), "another return path") {
		t.Errorf("another domain: %v", err)
	}
	if _, err := q.RecordBounce(ctx, &DSN{}, it.ReturnPath); err == nil {
		t.Error("a report without recipients was recorded")
	}

	// An attempt in flight: try again later, nothing written.
	q.mu.Lock()
	q.inflight[id] = true
	q.mu.Unlock()
	if _, err := q.RecordBounce(ctx, d, it.ReturnPath); !errors.Is(err, ErrInFlight) {
		t.Errorf("in flight: %v, want ErrInFlight", err)
	}
	q.mu.Lock()
	inflight := q.inflight[id]
	delete(q.inflight, id)
	q.mu.Unlock()
	if !inflight {
		t.Error("RecordBounce released a claim it did not hold")
	}
	if after, _ := q.Get(id); after.State != StateQueued || after.Message == nil {
		t.Errorf("refused bounces changed the item: %+v", after)
	}
	// RecordBounce holds the claim only while it runs.
	if _, err := q.RecordBounce(ctx, d, it.ReturnPath); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inflight[id] {
		t.Error("RecordBounce left the notification claimed")
	}
}

func TestBounceSummary(t *testing.T) {
	t.Parallel()
	long := "smtp; 550 5.1.1 \r\n\tUnknown\x00 user\xff " + strings.Repeat("é", 400)
	tests := []struct {
		name string
		d    DSN
		r    DSNRecipient
		want string
	}{
		{"remote MTA named", DSN{ReportingMTA: "relay.test"},
			DSNRecipient{Action: ActionFailed, Status: "5.1.1", RemoteMTA: "mx.test", DiagnosticCode: "smtp; 550 no"},
			"bounced by mx.test: 5.1.1 (smtp; 550 no)"},
		{"reporting MTA only", DSN{ReportingMTA: "relay.test"},
			DSNRecipient{Action: ActionFailed, Status: "5.0.0"}, "bounced by relay.test: 5.0.0"},
		{"no MTA", DSN{}, DSNRecipient{Action: ActionFailed, Status: "5.0.0"}, "bounced: 5.0.0"},
		{"delay", DSN{ReportingMTA: "relay.test"},
			DSNRecipient{Action: ActionDelayed, Status: "4.4.1", RemoteMTA: "mx.test", DiagnosticCode: "X-Postfix; connect to mx.test: timed out"},
			"delayed at relay.test: 4.4.1 (X-Postfix; connect to mx.test: timed out)"},
		{"delay without reporting MTA", DSN{},
			DSNRecipient{Action: ActionDelayed, Status: "4.4.1", RemoteMTA: "mx.test"}, "delayed at mx.test: 4.4.1"},
	}
	for _, tt := range tests {
		if got := bounceSummary(&tt.d, tt.r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	got := bounceSummary(&DSN{}, DSNRecipient{Action: ActionFailed, Status: "5.1.1", RemoteMTA: "mx.test", DiagnosticCode: long})
	if len(got) > maxBounceSummary || !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n\t\x00") ||
		!strings.HasPrefix(got, "bounced by mx.test: 5.1.1 (smtp; 550 5.1.1 Unknown user\uFFFD éé") || !strings.HasSuffix(got, "é…") {
		t.Errorf("long diagnostic: %d bytes %q", len(got), got)
	}
}
