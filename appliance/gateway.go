package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/message/htmlbody"
	"github.com/sealpost/sealpost/appliance/policy"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer"
	"github.com/sealpost/sealpost/mailer/smtpd"
)

// gateway holds the SMTP intake's decisions (SPEC §7): who may relay and
// submit, which senders are known, what goes secure, what is blocked, and
// what passes through.
type gateway struct {
	a *App

	mu       sync.Mutex
	pol      policy.Policy
	compiled *policy.Compiled // nil until loaded, and after a save

	lowWarned atomic.Int64 // unix time of the last "disk nearly full" warning
}

func (a *App) smtpOptions() smtpd.Options {
	g := a.gateway
	tc := a.certs.TLSConfig().Clone()
	get := tc.GetCertificate
	if get != nil {
		// Mail clients often send no server name; answer with the
		// appliance's own.
		tc.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if h.ServerName == "" {
				h.ServerName = a.hostname()
			}
			return get(h)
		}
	}
	return smtpd.Options{
		Hostname:       a.hostname(),
		TLSConfig:      tc,
		Logger:         a.log.With().Str("component", "smtpd").Logger(),
		Limits:         g.limits,
		RelayAllowed:   g.relayAllowed,
		Authenticate:   g.authenticate,
		LocalDomain:    g.localDomain,
		CheckSender:    g.checkSender,
		CheckRecipient: nil,
		Accept:         g.accept,
	}
}

func (g *gateway) settings() settings.Settings {
	s, err := settings.Read(g.a.store)
	if err != nil {
		g.a.log.Warn().Err(err).Msg("read settings for the gateway")
		return settings.Defaults()
	}
	return s
}

func (g *gateway) limits() smtpd.Limits {
	in := g.settings().Inbound
	t := time.Duration(in.Timeout) * time.Second
	return smtpd.Limits{MaxMessageBytes: int64(in.MaxMessageMB) << 20, MaxRecipients: in.MaxRecipients,
		ReadTimeout: t, WriteTimeout: t, DataTimeout: 2 * t, MaxConnsPerIP: in.MaxConnsPerIP}
}

// relayAllowed: only the organization's mail servers use the relay port.
func (g *gateway) relayAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range g.settings().Inbound.RelayNetworks {
		if p, err := netip.ParsePrefix(n); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}

func (g *gateway) localDomain(domain string) bool { return localDomain(g.settings(), domain) }

// localDomain reports whether domain is one of the organization's (or a
// subdomain of one).
func localDomain(s settings.Settings, domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range s.Organization.Domains {
		d = strings.ToLower(d)
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

func (g *gateway) authenticate(ctx context.Context, username, password string, ip netip.Addr) (*smtpd.Principal, error) {
	u, err := g.a.accounts.AuthenticateSMTP(ctx, username, password, ip.String())
	if err != nil {
		return nil, err
	}
	return &smtpd.Principal{UserID: u.ID, Address: u.Email}, nil
}

func reject(code int, enhanced [3]int, msg string) *smtpd.Reject {
	return &smtpd.Reject{Code: code, Enhanced: enhanced, Message: msg}
}

var (
	errUnknownSender = func(addr string) error {
		return reject(550, [3]int{5, 7, 1}, "The sender "+addr+" is not a user of this secure mail service; ask your administrator to register you.")
	}
	errNotYours = reject(550, [3]int{5, 7, 1}, "You may send only from your own addresses.")
	errLoop     = reject(554, [3]int{5, 4, 6}, "Mail loop: this message passed through this gateway before.")
	errBlocked  = reject(550, [3]int{5, 7, 1}, "The organization's content policy refused this message. You have been sent a notice saying why.")
	errOnlySafe = reject(550, [3]int{5, 7, 1}, "This gateway accepts only secure messages: add the secure tag to the subject and send it again.")
	errNoRoom   = reject(452, [3]int{4, 3, 1}, "Insufficient system storage; try again later.")
)

// checkSender refuses senders who are not professional users (aliases
// count) at MAIL FROM, unless local senders are provisioned. The null
// sender is left to the recipients (bounces and the do-not-reply address).
func (g *gateway) checkSender(ctx context.Context, e *smtpd.Envelope) error {
	s := g.settings()
	if err := g.roomFor(s); err != nil {
		return err
	}
	if e.From == "" {
		return nil
	}
	u, err := g.a.accounts.UserByAddress(strings.ToLower(e.From))
	switch {
	case err == nil:
		if e.Auth != nil && u.ID != e.Auth.UserID {
			return errNotYours
		}
		if u.Status != account.StatusEnabled || !u.Has(account.RoleProfessional) {
			return errUnknownSender(e.From)
		}
		return nil
	case fault.KindOf(err) == fault.NotFound:
		if e.Auth != nil {
			return errNotYours
		}
		if s.Inbound.ProvisionLocal && localDomain(s, domainOf(e.From)) {
			return nil
		}
		return errUnknownSender(e.From)
	default:
		return err
	}
}

// roomFor defers new mail while the data directory's file system is
// nearly full (inbound.min_free_mb), as Postfix's queue_minfree does: a
// store that runs out of space mid-write can only fail, so the sender is
// asked to come back before that, and nothing already stored is at risk.
func (g *gateway) roomFor(s settings.Settings) error {
	if s.Inbound.MinFreeMB == 0 {
		return nil
	}
	free, ok := freeSpace(g.a.cfg.DataDir)
	if !ok || free >= uint64(s.Inbound.MinFreeMB)<<20 {
		return nil
	}
	if now := time.Now().Unix(); now-g.lowWarned.Load() >= 60 {
		g.lowWarned.Store(now)
		g.a.log.Warn().Uint64("free_mib", free>>20).Int("min_free_mb", s.Inbound.MinFreeMB).Msg("gateway deferring mail: the data directory's disk is nearly full")
	}
	return errNoRoom
}

// special are the appliance's own addresses: VERP bounce addresses of
// notifications and the do-not-reply sender.
func (g *gateway) special(s settings.Settings, rcpt string) (bounce, noReply bool) {
	if _, ok := mailer.NotificationIDFromAddress(rcpt); ok {
		return true, false
	}
	return false, s.Mail.FromAddress != "" && strings.EqualFold(rcpt, s.Mail.FromAddress)
}

// accept decides what becomes of a message and makes it durable before
// it returns nil (the 250).
func (g *gateway) accept(ctx context.Context, e *smtpd.Envelope, m *smtpd.Message) error {
	a := g.a
	s := g.settings()
	if err := g.roomFor(s); err != nil {
		return err
	}
	if g.looped(m) {
		return errLoop
	}
	var rcpts []string
	for _, r := range e.To {
		bounce, noReply := g.special(s, r)
		switch {
		case bounce:
			g.bounce(ctx, m, r)
		case noReply:
			g.answerNoReply(ctx, s, e, m)
		default:
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return nil // the appliance's own addresses take everything, and keep nothing
	}
	if e.From == "" {
		return reject(550, [3]int{5, 7, 1}, "Messages without a sender are accepted only for this appliance's own addresses.")
	}
	sender, err := g.sender(ctx, s, e)
	if err != nil {
		return err
	}
	pol, compiled, err := g.policy()
	if err != nil {
		return err
	}
	res := compiled.Scan(content(e, m, rcpts))
	subject, tagged := stripTag(m.Subject, s.Inbound.SubjectTag)
	// A message longer than the scan limits was not read to its end: it
	// goes secure rather than out unchecked.
	secure := tagged || res.Truncated || headerSet(m, s.Inbound.SecureHeader) || sender.DefaultSecure == account.DefaultSecureAlways ||
		sender.DefaultSecure != account.DefaultSecureOff && (res.IsSecure() || pol.AttachmentsSecure && hasAttachments(m))
	if res.Blocked() && (secure || sender.BlacklistMode == account.BlacklistAll) {
		if err := g.tellBlocked(ctx, s, sender, res.BlockCategories(), len(rcpts)); err != nil {
			return err
		}
		return errBlocked
	}
	if !secure {
		if s.Inbound.NotSecure != "pass" {
			return errOnlySafe
		}
		return g.passThrough(ctx, e, m, rcpts)
	}
	in := message.Incoming{SenderID: sender.ID, Subject: subject, HTML: m.HTML, Text: m.Text}
	in.To, in.Cc, in.Bcc = splitRecipients(m, rcpts)
	for _, p := range m.Parts {
		if p.Attachment || p.Filename != "" {
			in.Attachments = append(in.Attachments, message.IncomingFile{Name: p.Filename, Type: p.ContentType, Body: p.Body})
		}
	}
	r, err := a.messages.Intake(ctx, in)
	if err != nil {
		return intakeReject(err)
	}
	a.log.Info().Str("msg_id", r.ID).Int("recipients", len(rcpts)).Int("invited", len(r.Invited)).Msg("secure message from the gateway")
	return nil
}

// intakeReject turns a refused intake into an SMTP answer with a safe
// message; anything else is a temporary failure.
func intakeReject(err error) error {
	msg := fault.Message(err)
	if ve := account.FieldErrors(err); ve != nil {
		var parts []string
		for _, f := range ve.Fields {
			parts = append(parts, f.Message)
		}
		msg = strings.Join(parts, " ")
	}
	switch fault.KindOf(err) {
	case fault.Invalid, fault.Permission:
		return reject(550, [3]int{5, 7, 1}, msg)
	case fault.TooLarge:
		return reject(552, [3]int{5, 3, 4}, msg)
	}
	return err
}

// sender is the professional user the message is from, provisioned when
// the settings say so.
func (g *gateway) sender(ctx context.Context, s settings.Settings, e *smtpd.Envelope) (account.User, error) {
	u, err := g.a.accounts.UserByAddress(strings.ToLower(e.From))
	if err == nil {
		return u, nil
	}
	if fault.KindOf(err) != fault.NotFound || !s.Inbound.ProvisionLocal || !localDomain(s, domainOf(e.From)) {
		return account.User{}, errUnknownSender(e.From)
	}
	// Provisioning: the first administrator invites the new colleague,
	// whose mail waits until they register; refuse this one with a hint.
	admins := g.a.accounts.ListUsers(account.Query{Role: account.RoleAdmin, Status: account.StatusEnabled, Limit: 1})
	if len(admins.Users) == 0 {
		return account.User{}, errUnknownSender(e.From)
	}
	if _, err := g.a.accounts.Invite(ctx, admins.Users[0].ID, account.Invite{Email: e.From, Role: account.RoleProfessional}); err != nil && fault.KindOf(err) != fault.Conflict {
		return account.User{}, err
	}
	return account.User{}, reject(450, [3]int{4, 7, 1}, "You have been invited to the secure mail service; register from the invitation we sent, and your mail will go through when you send it again.")
}

// policy is the content policy, loaded and compiled once, and again after
// each save (forgetPolicy).
func (g *gateway) policy() (policy.Policy, *policy.Compiled, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.compiled != nil {
		return g.pol, g.compiled, nil
	}
	var p policy.Policy
	err := g.a.store.View(func(tx *store.Tx) error {
		var err error
		p, err = policy.Load(tx)
		return err
	})
	if err != nil {
		return p, nil, err
	}
	c, err := policy.Compile(p)
	if err != nil {
		return p, nil, err
	}
	g.pol, g.compiled = p, c
	return p, c, nil
}

// forgetPolicy makes the next message load the policy afresh.
func (g *gateway) forgetPolicy() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.compiled = nil
}

// content is what the policy scans: subject, text, the text of HTML,
// text-like attachments; and the domains involved.
func content(e *smtpd.Envelope, m *smtpd.Message, rcpts []string) policy.Content {
	c := policy.Content{HasAttachments: hasAttachments(m)}
	c.Parts = append(c.Parts, policy.Part{Where: "subject", Scope: policy.Scope("subject"), Text: m.Subject})
	if m.Text != "" {
		c.Parts = append(c.Parts, policy.Part{Where: "body", Scope: policy.Scope("body"), Text: m.Text})
	}
	if m.HTML != "" {
		c.Parts = append(c.Parts, policy.Part{Where: "body", Scope: policy.Scope("body"), Text: htmlbody.ToText(m.HTML)})
	}
	for _, p := range m.Parts {
		if textLike(p.ContentType, p.Filename) {
			c.Parts = append(c.Parts, policy.Part{Where: "attachment: " + p.Filename, Scope: policy.Scope("attachments"), Text: string(p.Body)})
		}
	}
	c.Domains = append(c.Domains, domainOf(e.From))
	for _, r := range rcpts {
		c.Domains = append(c.Domains, domainOf(r))
	}
	return c
}

func textLike(ct, name string) bool {
	if strings.HasPrefix(ct, "text/") {
		return true
	}
	switch ct {
	case "application/json", "application/xml", "application/csv", "application/x-csv":
		return true
	}
	for _, ext := range []string{".txt", ".csv", ".tsv", ".json", ".xml", ".md", ".log", ".html", ".htm"} {
		if strings.HasSuffix(strings.ToLower(name), ext) {
			return true
		}
	}
	return false
}

func hasAttachments(m *smtpd.Message) bool {
	for _, p := range m.Parts {
		if p.Attachment {
			return true
		}
	}
	return false
}

// stripTag removes the secure tag from a subject, whatever its case.
func stripTag(subject, tag string) (string, bool) {
	if tag == "" {
		return subject, false
	}
	i := strings.Index(strings.ToLower(subject), strings.ToLower(tag))
	if i < 0 {
		return subject, false
	}
	return strings.Join(strings.Fields(subject[:i]+" "+subject[i+len(tag):]), " "), true
}

func headerSet(m *smtpd.Message, name string) bool {
	if name == "" {
		return false
	}
	switch v := strings.ToLower(strings.TrimSpace(m.Header.Get(name))); v {
	case "", "no", "false", "0", "off":
		return false
	}
	return true
}

// splitRecipients files the envelope recipients under the header's To and
// Cc; those in neither were blind copies.
func splitRecipients(m *smtpd.Message, rcpts []string) (to, cc, bcc []string) {
	in := func(field string) map[string]bool {
		set := map[string]bool{}
		list, _ := m.Header.AddressList(field)
		for _, a := range list {
			set[strings.ToLower(a.Address)] = true
		}
		return set
	}
	toSet, ccSet := in("To"), in("Cc")
	for _, r := range rcpts {
		switch lr := strings.ToLower(r); {
		case toSet[lr]:
			to = append(to, r)
		case ccSet[lr]:
			cc = append(cc, r)
		default:
			bcc = append(bcc, r)
		}
	}
	if len(to) == 0 && len(cc) > 0 {
		to, cc = cc, nil
	}
	if len(to) == 0 && len(bcc) > 0 {
		to, bcc = bcc[:1], bcc[1:]
	}
	return to, cc, bcc
}

// receivedBy marks mail that passed through this appliance.
func (g *gateway) receivedBy() string { return "by " + g.a.hostname() + " (Sealpost)" }

// looped reports whether the message passed through this gateway before.
func (g *gateway) looped(m *smtpd.Message) bool {
	mark := g.receivedBy()
	for _, r := range m.Header.Values("Received") {
		if strings.Contains(r, mark) {
			return true
		}
	}
	return false
}

// passThrough queues the message unchanged but for a trace header, one
// item per recipient, durably.
func (g *gateway) passThrough(ctx context.Context, e *smtpd.Envelope, m *smtpd.Message, rcpts []string) error {
	a := g.a
	trace := fmt.Sprintf("Received: from %s ([%s])\r\n\t%s with ESMTP;\r\n\t%s\r\n", sanitizeHelo(e.Helo), e.RemoteIP, g.receivedBy(),
		e.ReceivedAt.UTC().Format(time.RFC1123Z))
	raw := append([]byte(trace), m.Raw...)
	err := a.store.Update(ctx, func(tx *store.Tx) error {
		for _, r := range rcpts {
			if err := a.queue.AddPassThrough(tx, newNotificationID(), e.From, r, raw); err != nil {
				return err
			}
		}
		return a.audit.Append(tx, audit.Event{Actor: "smtp", Action: "gateway.pass_through", Object: "mail",
			Detail: map[string]string{"recipients": fmt.Sprint(len(rcpts)), "size": fmt.Sprint(len(raw)), "remote_ip": e.RemoteIP.String()}})
	})
	if err != nil {
		return err
	}
	a.queue.Committed(len(rcpts))
	return nil
}

func sanitizeHelo(h string) string {
	h = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, h)
	if h == "" || len(h) > 255 {
		return "unknown"
	}
	return h
}

// tellBlocked mails the sender which policy categories stopped the
// message, and audits the refusal; no content, no rule.
func (g *gateway) tellBlocked(ctx context.Context, s settings.Settings, sender account.User, categories []string, rcpts int) error {
	a := g.a
	return a.store.Update(ctx, func(tx *store.Tx) error {
		if s.Mail.Ready() == nil {
			if _, err := (notifier{a}).queueNotice(tx, mailer.Notification{Kind: mailer.KindPolicyBlock, Categories: categories,
				Link: a.baseURL() + "/mail/inbox"}, sender.Email); err != nil {
				return err
			}
		}
		return a.audit.Append(tx, audit.Event{Actor: account.ActorOf(sender.ID), Action: "gateway.block", Object: "mail",
			Detail: map[string]string{"categories": strings.Join(categories, ", "), "recipients": fmt.Sprint(rcpts)}})
	})
}

// bounce records a delivery status notification for one of the
// appliance's notifications; anything else sent there is dropped.
func (g *gateway) bounce(ctx context.Context, m *smtpd.Message, rcpt string) {
	d, err := mailer.ParseDSN(bytes.NewReader(m.Raw))
	if err != nil {
		g.a.log.Info().Err(err).Msg("mail to a bounce address that is no delivery status notification: dropped")
		return
	}
	if _, err := g.a.queue.RecordBounce(ctx, d, rcpt); err != nil {
		g.a.log.Info().Err(err).Msg("bounce not recorded")
	}
}

// answerNoReply answers mail to the do-not-reply address once a day per
// sender, never to automatic mail, and keeps nothing of it.
func (g *gateway) answerNoReply(ctx context.Context, s settings.Settings, e *smtpd.Envelope, m *smtpd.Message) {
	if e.From == "" || strings.EqualFold(e.From, s.Mail.FromAddress) || automatic(m) || s.Mail.Ready() != nil {
		return
	}
	h := sha256.Sum256([]byte(strings.ToLower(e.From)))
	key := []byte("gw/noreply/" + hex.EncodeToString(h[:16]))
	a := g.a
	err := a.store.Update(ctx, func(tx *store.Tx) error {
		if last, err := store.GetJSON[time.Time](tx, key); err == nil && a.now().Sub(last) < 24*time.Hour {
			return nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := store.PutJSON(tx, key, a.now().UTC()); err != nil {
			return err
		}
		_, err := (notifier{a}).queueNotice(tx, mailer.Notification{Kind: mailer.KindNoReply, Link: a.baseURL() + "/mail/inbox"}, e.From)
		return err
	})
	if err != nil {
		a.log.Warn().Err(err).Msg("answer mail to the do-not-reply address")
	}
}

// automatic reports mail that must never get an automatic answer (RFC
// 3834): auto-submitted, bulk or list mail.
func automatic(m *smtpd.Message) bool {
	if v := strings.ToLower(strings.TrimSpace(m.Header.Get("Auto-Submitted"))); v != "" && v != "no" {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(m.Header.Get("Precedence"))) {
	case "bulk", "junk", "list", "auto_reply":
		return true
	}
	return m.Header.Get("List-Id") != "" || m.Header.Get("List-Unsubscribe") != "" || m.Header.Get("X-Autoreply") != ""
}
