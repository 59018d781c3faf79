package appliance

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/setup"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer"
)

// brand is how notifications look, from the settings.
func brand(s settings.Settings) mailer.Brand {
	return mailer.Brand{
		OrgName: s.Organization.Name, Website: s.Organization.Website, AccentColor: s.Branding.AccentColor,
		Disclaimer: s.Notifications.Disclaimer, PostalAddress: s.Organization.PostalAddress,
		ShowSubject: s.Notifications.ShowSubject,
	}
}

// sender is the configured delivery path and how to name it to a person.
func (a *App) sender(s settings.Settings, to string) (mailer.Sender, string, error) {
	m := s.Mail
	if err := m.Ready(); err != nil {
		return nil, "", err
	}
	if m.Mode == "mx" {
		d := mailer.Direct{STS: a.mtaSTS, HelloName: a.hostname(), Sessions: a.tlsSessions,
			Log: a.log.With().Str("component", "mailq").Logger()}
		return d, "the mail exchangers of " + domainOf(to), nil
	}
	r := mailer.Relay{Host: m.RelayHost, Port: m.RelayPort, Security: m.RelaySecurity,
		Username: m.RelayUsername, Password: m.RelayPassword, HelloName: a.hostname(), Sessions: a.tlsSessions,
		Conns: a.relayConns}
	if m.RelayCAFile != "" {
		pool, err := a.relayCAs.load(m.RelayCAFile)
		if err != nil {
			return nil, "", fmt.Errorf("mail.relay_ca_file: %w", err)
		}
		r.RootCAs = pool
	}
	return r, fmt.Sprintf("the relay %s:%d (%s)", r.Host, r.Port, r.Security), nil
}

// caFileCache keeps a CA file parsed while the file is unchanged (same
// size and modification time): every delivery names the relay's roots,
// and the connection cache keys connections by them.
type caFileCache struct {
	mu    sync.Mutex
	path  string
	stamp string
	pool  *x509.CertPool
}

func (c *caFileCache) load(path string) (*x509.CertPool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	stamp := fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil && c.path == path && c.stamp == stamp {
		return c.pool, nil
	}
	pool, err := settings.LoadCAFile(path)
	if err != nil {
		return nil, err
	}
	c.path, c.stamp, c.pool = path, stamp, pool
	return pool, nil
}

// currentSender is the delivery path the settings name now.
func (a *App) currentSender(context.Context) (mailer.Sender, error) {
	s, err := settings.Read(a.store)
	if err != nil {
		return nil, err
	}
	sender, _, err := a.sender(s, "")
	return sender, err
}

// messageIDHost is the right side of notifications' Message-IDs: the
// appliance's name, or the sender's domain when no name is configured (a
// Message-ID ending in @localhost looks like spam to receivers).
func (a *App) messageIDHost(s settings.Settings) string {
	if a.cfg.Hostname != "" || s.Mail.FromAddress == "" {
		return a.hostname()
	}
	return domainOf(s.Mail.FromAddress)
}

// newNotificationID is a random id, safe in a Message-ID and a VERP address.
func newNotificationID() string { return strings.ToLower(rand.Text()) }

// mailTest sends a branded test message at once through the configured path
// and reports what the peer answered.
func (a *App) mailTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mail test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "recipient address")
	queued := fs.Bool("queue", false, "send through the outbound queue")
	if err := fs.Parse(args); err != nil || *to == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: sealpost mail test --to ADDRESS [--queue]")
		return 2
	}
	if addr, err := mail.ParseAddress(*to); err != nil || addr.Address != *to {
		fmt.Fprintf(stderr, "%q is not an email address\n", *to)
		return 2
	}
	s, err := settings.Read(a.store)
	if err != nil {
		return a.fail(stderr, err)
	}
	sender, via, err := a.sender(s, *to)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	env, msg, err := a.testMessage(ctx, s, *to)
	if err != nil {
		return a.fail(stderr, err)
	}
	if *queued {
		if err := a.queue.Enqueue(ctx, mailer.KindTest, env, msg); err != nil {
			return a.fail(stderr, err)
		}
		fmt.Fprintf(stdout, "Test message %s queued for %s; `sealpost queue list` shows it until it is delivered.\n", env.ID, *to)
		return 0
	}
	sendCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	reply, sendErr := sender.Send(sendCtx, env.ReturnPath(), []string{*to}, msg)
	outcome := "delivered"
	if sendErr != nil {
		outcome = "failed"
	}
	err = a.store.Update(ctx, func(tx *store.Tx) error {
		return a.audit.Append(tx, audit.Event{Actor: "cli", Action: "mail.test", Object: "mail/" + env.ID,
			Detail: map[string]string{"to_domain": (*to)[strings.LastIndexByte(*to, '@')+1:], "outcome": outcome}})
	})
	if err != nil {
		return a.fail(stderr, err)
	}
	if sendErr != nil {
		var de *mailer.DeliveryError
		if errors.As(sendErr, &de) && de.Reply != "" {
			fmt.Fprintf(stderr, "%s refused the test message: %s\n", capitalize(via), de.Reply)
		} else {
			fmt.Fprintf(stderr, "The test message could not be sent through %s: %v\n", via, sendErr)
		}
		return 1
	}
	fmt.Fprintf(stdout, "Test message sent to %s through %s.\nThe peer answered: %s\n", *to, via, reply)
	return 0
}

// testMessage is a branded test message to one address.
func (a *App) testMessage(ctx context.Context, s settings.Settings, to string) (mailer.Envelope, []byte, error) {
	rendered, err := a.renderer.Render(mailer.Notification{Kind: mailer.KindTest}, brand(s))
	if err != nil {
		return mailer.Envelope{}, nil, err
	}
	env := mailer.Envelope{ID: newNotificationID(), FromAddress: s.Mail.FromAddress, FromName: s.Mail.FromName,
		To: to, Hostname: a.messageIDHost(s), Date: time.Now()}
	msg, err := a.compose(ctx, s, env, rendered)
	return env, msg, err
}

// wizardTestMail sends the setup wizard's test message with the answers
// entered so far (nothing is saved yet) and returns the peer's reply.
func (a *App) wizardTestMail(ctx context.Context, answers setup.Answers, to string) (string, error) {
	addr, err := mail.ParseAddress(to)
	if err != nil || addr.Address != to {
		return "", fault.E(fault.Invalid, "Enter the address to send the test message to.", nil)
	}
	s, problems := answers.Settings()
	if len(problems) > 0 {
		return "", fault.E(fault.Invalid, "Correct the fields above first: "+problems[0].Error(), nil)
	}
	sender, via, err := a.sender(s, to)
	if err != nil {
		return "", fault.E(fault.Invalid, err.Error(), err)
	}
	env, msg, err := a.testMessage(ctx, s, to)
	if err != nil {
		return "", err
	}
	sendCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	reply, err := sender.Send(sendCtx, env.ReturnPath(), []string{to}, msg)
	if err != nil {
		var de *mailer.DeliveryError
		if errors.As(err, &de) && de.Reply != "" {
			return "", fault.E(fault.Invalid, capitalize(via)+" refused the test message: "+de.Reply, err)
		}
		return "", fault.E(fault.Invalid, "The test message could not be sent through "+via+": "+err.Error(), err)
	}
	return reply, nil
}

var dkimKeysKey = []byte("mail/dkim-keys")

// dkimKeys returns the DKIM keys, made and stored on first use.
func (a *App) dkimKeys(ctx context.Context) (mailer.DKIMKeys, error) {
	var keys mailer.DKIMKeys
	err := a.store.Update(ctx, func(tx *store.Tx) error {
		data, err := tx.Get(dkimKeysKey)
		if err == nil {
			return keys.UnmarshalBinary(data)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if keys, err = mailer.GenerateDKIMKeys(); err != nil {
			return err
		}
		if data, err = keys.MarshalBinary(); err != nil {
			return err
		}
		if err := tx.Put(dkimKeysKey, data); err != nil {
			return err
		}
		return a.audit.Append(tx, audit.Event{Actor: "system", Action: "mail.dkim.keys_created", Object: "mail/dkim"})
	})
	return keys, err
}

// compose builds a notification's message and, when the settings say so,
// signs it with DKIM for the sender's domain.
func (a *App) compose(ctx context.Context, s settings.Settings, env mailer.Envelope, r mailer.Rendered) ([]byte, error) {
	return composeSigned(s, env, r, func() (mailer.DKIMKeys, error) { return a.dkimKeys(ctx) })
}

// composeSigned builds a message and signs it with the keys that keys
// returns when the settings say so.
func composeSigned(s settings.Settings, env mailer.Envelope, r mailer.Rendered, keys func() (mailer.DKIMKeys, error)) ([]byte, error) {
	msg, err := mailer.Compose(env, r)
	if err != nil || !s.Mail.DKIMSign {
		return msg, err
	}
	k, err := keys()
	if err != nil {
		return nil, err
	}
	return mailer.SignDKIM(msg, domainOf(s.Mail.FromAddress), s.Mail.DKIMSelector, k)
}

// storedDKIMKeys reads the DKIM keys in tx without making them: inside
// another flow's transaction (a notification) no second audited write may
// start, and the keys exist once `sealpost mail dkim` has shown them.
func storedDKIMKeys(tx *store.Tx) (mailer.DKIMKeys, error) {
	var keys mailer.DKIMKeys
	data, err := tx.Get(dkimKeysKey)
	if errors.Is(err, store.ErrNotFound) {
		return keys, fault.E(fault.Unavailable, "DKIM signing is on but no keys exist yet: run sealpost mail dkim and publish its records.", err)
	}
	if err != nil {
		return keys, err
	}
	return keys, keys.UnmarshalBinary(data)
}

func capitalize(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func domainOf(address string) string { return address[strings.LastIndexByte(address, '@')+1:] }

// mailDKIM prints the DNS records that publish the DKIM keys.
func (a *App) mailDKIM(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mail dkim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	domain := fs.String("domain", "", "the signing domain")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: sealpost mail dkim [--domain DOMAIN]")
		return 2
	}
	s, err := settings.Read(a.store)
	if err != nil {
		return a.fail(stderr, err)
	}
	if *domain == "" {
		if s.Mail.FromAddress == "" {
			fmt.Fprintln(stderr, "set mail.from_address first (its domain signs), or give --domain")
			return 2
		}
		*domain = domainOf(s.Mail.FromAddress)
	}
	keys, err := a.dkimKeys(ctx)
	if err != nil {
		return a.fail(stderr, err)
	}
	records, err := keys.Records(s.Mail.DKIMSelector, *domain)
	if err != nil {
		return a.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "Publish these DNS TXT records for %s, then: sealpost settings set mail.dkim_sign true\n\n", *domain)
	for _, r := range records {
		fmt.Fprintf(stdout, "%s. IN TXT %s\n", r.Name, zoneStrings(r.Value))
	}
	if !s.Mail.DKIMSign {
		fmt.Fprintln(stdout, "\nSigning is off (mail.dkim_sign false).")
	}
	return 0
}

// zoneStrings quotes a TXT value as zone-file strings of at most 255 bytes.
func zoneStrings(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	return strings.Join(append(parts, `"`+v+`"`), " ")
}
