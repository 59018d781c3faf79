package message

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/message/htmlbody"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Draft is a message being written, as the compose form has it.
type Draft struct {
	ID         string
	To, Cc     string // addresses as typed, separated by commas, semicolons or lines
	Bcc        string
	Subject    string
	Body       string
	Format     string    // FormatHTML or FormatText
	Expires    time.Time // zero: the default expiry
	Restrict   Restrictions
	ReadNotify bool
	Passcode   string // for recipients who are not registered yet (level 3)

	// InviteConfirmed is the sender's yes to inviting unregistered
	// recipients as guests. It is asked for each send, never stored.
	InviteConfirmed bool

	// Filled in when a draft is read.
	Parent      string
	ParentKind  string
	Attachments []Attachment
	Saved       time.Time
}

// Attachment is a file of a message.
type Attachment struct {
	ID   string
	Name string
	Size int64
	Type string
}

// InviteNeededError lists recipients who are not registered: the sender
// confirms inviting them as guests, then sends again.
type InviteNeededError struct{ Addresses []string }

func (e *InviteNeededError) Error() string {
	return "not registered yet: " + strings.Join(e.Addresses, ", ")
}

func invalid(errs []account.FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return fault.E(fault.Invalid, "Check the highlighted fields.", &account.ValidationError{Fields: errs})
}

// SendResult says what a send did.
type SendResult struct {
	ID      string
	Invited []string // addresses invited as guests
}

// parsed is one recipient as typed.
type parsed struct {
	addr, name, kind string
}

// parseRecipients reads the to, cc and bcc fields; an address given twice
// counts once, in its first field.
func parseRecipients(d Draft) ([]parsed, []account.FieldError) {
	var out []parsed
	var errs []account.FieldError
	seen := map[string]bool{}
	for _, f := range []struct{ field, kind, raw string }{{"to", RoleTo, d.To}, {"cc", RoleCc, d.Cc}, {"bcc", RoleBcc, d.Bcc}} {
		var bad []string
		for _, item := range splitAddresses(f.raw) {
			name, addr := "", item
			if a, err := mail.ParseAddress(item); err == nil {
				name, addr = a.Name, a.Address
			}
			norm, err := account.NormalizeAddress(addr)
			if err != nil {
				bad = append(bad, item)
				continue
			}
			if !seen[norm] {
				seen[norm] = true
				out = append(out, parsed{norm, name, f.kind})
			}
		}
		if len(bad) > 0 {
			errs = append(errs, account.FieldError{Field: f.field, Message: "Not an email address: " + strings.Join(bad, ", ") + "."})
		}
	}
	return out, errs
}

func splitAddresses(raw string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == ';' || r == '\n' || r == '\r' }) {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkDraft is what a draft may hold at all, sent or not.
func checkDraft(d Draft, set settings.Settings) []account.FieldError {
	var errs []account.FieldError
	if !utf8.ValidString(d.Subject) || strings.ContainsAny(d.Subject, "\r\n") || utf8.RuneCountInString(d.Subject) > 500 {
		errs = append(errs, account.FieldError{Field: "subject", Message: "Keep the subject to one line of at most 500 characters."})
	}
	if !utf8.ValidString(d.Body) {
		errs = append(errs, account.FieldError{Field: "body", Message: "The text is not valid UTF-8."})
	} else if len(d.Body) > set.Messages.MaxBodyKB*1024 {
		errs = append(errs, account.FieldError{Field: "body", Message: fmt.Sprintf("The text is longer than %d KiB; send long documents as attachments.", set.Messages.MaxBodyKB)})
	}
	if d.Format != FormatHTML && d.Format != FormatText {
		errs = append(errs, account.FieldError{Field: "format", Message: "Choose formatted or plain text."})
	}
	if len(d.To)+len(d.Cc)+len(d.Bcc) > 200_000 {
		errs = append(errs, account.FieldError{Field: "to", Message: "There are too many recipients."})
	}
	if n := utf8.RuneCountInString(d.Passcode); n > 0 && (n < 6 || n > 64) {
		errs = append(errs, account.FieldError{Field: "passcode", Message: "Choose a passcode of 6 to 64 characters, and give it to the recipients by phone or in person."})
	}
	return errs
}

// checkOptions keeps a send within the bounds the administrator sets.
func (s *Service) checkOptions(d *Draft, set settings.Settings) []account.FieldError {
	var errs []account.FieldError
	m := set.Messages
	now := s.now()
	if d.Expires.IsZero() && m.ExpiryDefaultDays > 0 {
		d.Expires = now.Add(time.Duration(m.ExpiryDefaultDays) * 24 * time.Hour)
	}
	switch {
	case d.Expires.IsZero() && m.ExpiryMaxDays > 0:
		errs = append(errs, account.FieldError{Field: "expires", Message: fmt.Sprintf("Choose an expiry date within %d days.", m.ExpiryMaxDays)})
	case !d.Expires.IsZero() && !d.Expires.After(now):
		errs = append(errs, account.FieldError{Field: "expires", Message: "Choose an expiry date in the future."})
	case !d.Expires.IsZero() && m.ExpiryMaxDays > 0 && d.Expires.After(now.Add(time.Duration(m.ExpiryMaxDays)*24*time.Hour+time.Hour)):
		errs = append(errs, account.FieldError{Field: "expires", Message: fmt.Sprintf("Choose an expiry date within %d days.", m.ExpiryMaxDays)})
	}
	if !m.Restrictions && d.Restrict != (Restrictions{}) {
		errs = append(errs, account.FieldError{Field: "restrict", Message: "Your administrator does not allow restrictions on messages."})
	}
	return errs
}

// sealContent seals a draft's subject, preview and body into r and returns
// the body record. The preview is made from written, the text as the
// sender wrote it (without the disclaimer).
func sealContent(dk *keyring.DataKey, r *record, subject, body, written string) []byte {
	r.Subject = dk.Seal([]byte(subject), aad(r.ID, "subject"))
	var text string
	if r.Format == FormatHTML {
		text = htmlbody.Excerpt(written, 160)
	} else {
		text = excerptText(written, 160)
	}
	r.Preview = dk.Seal([]byte(text), aad(r.ID, "preview"))
	r.BodySize = len(body)
	return dk.Seal([]byte(body), aad(r.ID, "body"))
}

func excerptText(s string, n int) string {
	if cut := 8 * n; len(s) > cut { // plenty for n runes once spaces are folded
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// cleanBody sanitizes a formatted body; plain text stays as typed.
func cleanBody(format, body string) string {
	if format == FormatHTML {
		return htmlbody.Sanitize(body)
	}
	return strings.ReplaceAll(body, "\r\n", "\n")
}

// newRecord makes a draft record with a fresh data key.
func (s *Service) newRecord(tx *store.Tx, sender account.User) (record, *keyring.DataKey, error) {
	dk, wrapped, err := s.keys.NewDataKey()
	if err != nil {
		return record{}, nil, err
	}
	r := s.blankRecord(sender, newID())
	if err := tx.Put(dataKeyKey(r.ID), wrapped); err != nil {
		return r, nil, err
	}
	return r, dk, nil
}

// blankRecord is a new draft of sender's.
func (s *Service) blankRecord(sender account.User, id string) record {
	return record{ID: id, Thread: id, SenderID: sender.ID, Draft: true, Created: s.now().UTC(),
		From: Participant{UserID: sender.ID, Address: sender.Email, Name: sender.Name, Kind: RoleSender}}
}

// draftRecord finds uid's draft id.
func (s *Service) draftRecord(tx *store.Tx, uid, id string) (record, *keyring.DataKey, entry, error) {
	r, err := getRecord(tx, id)
	if err != nil {
		return r, nil, entry{}, err
	}
	if !r.Draft || r.SenderID != uid {
		return r, nil, entry{}, errNotFound
	}
	e, err := getEntry(tx, uid, id)
	if err != nil {
		return r, nil, e, err
	}
	dk, err := s.dataKey(tx, id)
	return r, dk, e, err
}

// SaveDraft keeps what the sender has written so far; a draft without an
// id is created. It returns the draft's id.
func (s *Service) SaveDraft(ctx context.Context, uid string, d Draft) (string, error) {
	if d.Format == "" {
		d.Format = FormatHTML
	}
	var id string
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		if err := invalid(checkDraft(d, set)); err != nil {
			return err
		}
		sender, err := account.UserTx(tx, uid)
		if err != nil {
			return err
		}
		r, dk, old, err := s.draftOrNew(tx, sender, d.ID)
		if err != nil {
			return err
		}
		id = r.ID
		return s.writeDraft(tx, r, dk, old, d)
	})
	if err == nil {
		s.publish(uid)
	}
	return id, err
}

func (s *Service) draftOrNew(tx *store.Tx, sender account.User, id string) (record, *keyring.DataKey, *entry, error) {
	if id == "" {
		r, dk, err := s.newRecord(tx, sender)
		return r, dk, nil, err
	}
	r, dk, e, err := s.draftRecord(tx, sender.ID, id)
	return r, dk, &e, err
}

func (s *Service) writeDraft(tx *store.Tx, r record, dk *keyring.DataKey, old *entry, d Draft) error {
	r.Format, r.RawTo, r.RawCc, r.RawBcc = d.Format, d.To, d.Cc, d.Bcc
	r.Expires, r.Restrict, r.ReadNotify = d.Expires.UTC(), d.Restrict, d.ReadNotify
	r.Passcode = nil
	if d.Passcode != "" {
		r.Passcode = dk.Seal([]byte(d.Passcode), aad(r.ID, "passcode"))
	}
	r.Created = s.now().UTC()
	clean := cleanBody(d.Format, d.Body)
	body := sealContent(dk, &r, d.Subject, clean, clean)
	if err := store.PutJSON(tx, recordKey(r.ID), r); err != nil {
		return err
	}
	if err := tx.Put(bodyKey(r.ID), body); err != nil {
		return err
	}
	e := entry{ID: r.ID, Folder: Drafts, Role: RoleSender, Read: true, Date: r.Created}
	return s.putEntry(tx, r.SenderID, old, e)
}

// Draft reads one of uid's drafts for the compose form.
func (s *Service) Draft(uid, id string) (Draft, error) {
	var d Draft
	err := s.st.View(func(tx *store.Tx) error {
		r, dk, _, err := s.draftRecord(tx, uid, id)
		if err != nil {
			return err
		}
		d = Draft{ID: r.ID, To: r.RawTo, Cc: r.RawCc, Bcc: r.RawBcc, Format: r.Format, Expires: r.Expires,
			Restrict: r.Restrict, ReadNotify: r.ReadNotify, Parent: r.Parent, ParentKind: r.ParentKind, Saved: r.Created}
		if d.Subject, err = open(dk, r.ID, "subject", r.Subject); err != nil {
			return err
		}
		if d.Passcode, err = open(dk, r.ID, "passcode", r.Passcode); err != nil {
			return err
		}
		sealed, err := tx.Get(bodyKey(r.ID))
		if err != nil {
			return err
		}
		if d.Body, err = open(dk, r.ID, "body", sealed); err != nil {
			return err
		}
		d.Attachments, err = attachments(dk, r)
		return err
	})
	return d, err
}

func attachments(dk *keyring.DataKey, r record) ([]Attachment, error) {
	out := make([]Attachment, 0, len(r.Attach))
	for _, a := range r.Attach {
		name, err := open(dk, r.ID, "att/"+a.ID, a.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, Attachment{ID: a.ID, Name: name, Size: a.Size, Type: a.Type})
	}
	return out, nil
}

// recipient is a resolved recipient.
type recipient struct {
	Participant
	user    account.User
	invite  bool   // not registered: invite as a guest
	link    string // a registration link, for users who have not registered
	isGuest bool
}

// Send sends a draft (saving it first: d.ID may be empty). Unregistered
// recipients need d.InviteConfirmed; without it Send returns an
// *InviteNeededError and changes nothing.
func (s *Service) Send(ctx context.Context, uid string, d Draft) (SendResult, error) {
	if d.Format == "" {
		d.Format = FormatHTML
	}
	var res SendResult
	var notify []string
	err := s.sending(ctx, uid, func(tx *store.Tx) error {
		res, notify = SendResult{}, nil
		o, err := s.outgoing(tx, uid, &d)
		if err != nil {
			return err
		}
		set, sender, group, list, errs := o.set, o.sender, o.group, o.list, o.errs
		if strings.TrimSpace(d.Subject) == "" {
			errs = append(errs, account.FieldError{Field: "subject", Message: "Give the message a subject."})
		}
		r, dk, old, err := s.draftOrNew(tx, sender, d.ID)
		if err != nil {
			return err
		}
		var parent *record
		if r.Parent != "" {
			p, err := getRecord(tx, r.Parent)
			if err == nil {
				parent = &p
			}
		}
		rcpts, rerrs, newAddrs, err := s.resolve(tx, sender, group, list, parent)
		if err != nil {
			return err
		}
		errs = append(errs, rerrs...)
		errs = append(errs, keptAmongParticipants(parent, sender, rcpts)...)
		if err := invalid(errs); err != nil {
			return err
		}
		if len(newAddrs) > 0 && !d.InviteConfirmed {
			return &InviteNeededError{Addresses: newAddrs}
		}
		return s.deliver(ctx, tx, set, sender, r, dk, old, d, rcpts, &res, &notify)
	})
	if err != nil {
		return res, err
	}
	for _, u := range notify {
		s.publish(u)
	}
	return res, nil
}

// outgoing is what every send checks first in its transaction: the
// settings, the sender (enabled) and their group, the recipients as typed,
// and the problems found so far.
type outgoing struct {
	set    settings.Settings
	sender account.User
	group  account.Group
	list   []parsed
	errs   []account.FieldError
}

func (s *Service) outgoing(tx *store.Tx, uid string, d *Draft) (outgoing, error) {
	var o outgoing
	var err error
	if o.set, err = settings.Load(tx); err != nil {
		return o, err
	}
	if o.sender, err = account.UserTx(tx, uid); err != nil {
		return o, err
	}
	if o.sender.Status != account.StatusEnabled {
		return o, fault.E(fault.Permission, "Your account may not send messages.", nil)
	}
	if o.group, err = account.GroupTx(tx, o.sender.Group); err != nil {
		return o, err
	}
	o.errs = append(checkDraft(*d, o.set), s.checkOptions(d, o.set)...)
	var perrs []account.FieldError
	o.list, perrs = parseRecipients(*d)
	o.errs = append(o.errs, perrs...)
	if len(o.list) == 0 && len(perrs) == 0 {
		o.errs = append(o.errs, account.FieldError{Field: "to", Message: "Add at least one recipient."})
	}
	if len(o.list) > o.set.Messages.MaxRecipients {
		o.errs = append(o.errs, account.FieldError{Field: "to", Message: fmt.Sprintf("Send to at most %d recipients at once.", o.set.Messages.MaxRecipients)})
	}
	return o, nil
}

// resolve finds each recipient's user and applies who may write to whom.
func (s *Service) resolve(tx *store.Tx, sender account.User, group account.Group, list []parsed, parent *record) ([]recipient, []account.FieldError, []string, error) {
	var out []recipient
	var errs []account.FieldError
	var newAddrs, refused, notAllowed []string
	restricted := sender.IsGuest() || !group.Features.ComposeToAnyone
	mayInvite := !sender.IsGuest() && (group.Features.InviteGuests || sender.Has(account.RoleAdmin))
	for _, p := range list {
		rc := recipient{Participant: Participant{Address: p.addr, Name: p.name, Kind: p.kind}}
		u, err := account.UserByAddressTx(tx, p.addr)
		switch {
		case err == nil:
			if u.ID == sender.ID {
				errs = append(errs, account.FieldError{Field: p.kind, Message: "You are the sender; your copy is in Sent. Remove your own address."})
				continue
			}
			if u.Status == account.StatusDisabled || u.Unsubscribed {
				refused = append(refused, p.addr)
				continue
			}
			rc.UserID, rc.user, rc.isGuest = u.ID, u, u.IsGuest()
			if rc.Name == "" {
				rc.Name = u.Name
			}
			if restricted {
				ok, err := mayWrite(tx, sender, u, parent)
				if err != nil {
					return nil, nil, nil, err
				}
				if !ok {
					notAllowed = append(notAllowed, p.addr)
					continue
				}
			}
		case fault.KindOf(err) == fault.NotFound:
			if restricted || !mayInvite {
				notAllowed = append(notAllowed, p.addr)
				continue
			}
			rc.invite, rc.isGuest = true, true
			newAddrs = append(newAddrs, p.addr)
		default:
			return nil, nil, nil, err
		}
		out = append(out, rc)
	}
	if len(refused) > 0 {
		errs = append(errs, account.FieldError{Field: "to", Message: "These addresses cannot receive secure messages (the account is disabled): " + strings.Join(refused, ", ") + "."})
	}
	if len(notAllowed) > 0 {
		msg := "You can write only to staff you have exchanged messages with, or reply to a message: " + strings.Join(notAllowed, ", ") + "."
		if !sender.IsGuest() {
			msg = "You may not write to these addresses, or invite them: " + strings.Join(notAllowed, ", ") + "."
		}
		errs = append(errs, account.FieldError{Field: "to", Message: msg})
	}
	return out, errs, newAddrs, nil
}

// keptAmongParticipants: a reply to a message its sender does not allow
// to be forwarded goes only to that message's sender and recipients, or the
// reply would forward the quoted text.
func keptAmongParticipants(parent *record, sender account.User, rcpts []recipient) []account.FieldError {
	if parent == nil || !parent.Restrict.NoForward || parent.SenderID == sender.ID {
		return nil
	}
	var outside []string
	for _, rc := range rcpts {
		if rc.UserID != parent.SenderID && !slices.ContainsFunc(parent.Recipients, func(p Participant) bool { return p.UserID != "" && p.UserID == rc.UserID }) {
			outside = append(outside, rc.Address)
		}
	}
	if len(outside) == 0 {
		return nil
	}
	return []account.FieldError{{Field: "to", Message: "The sender does not allow their message to be forwarded, so reply only to its sender and recipients; remove " + strings.Join(outside, ", ") + "."}}
}

// mayWrite is the rule for guests (SPEC §5): reply to a message's
// participants, or write to professional users they exchanged messages
// with.
func mayWrite(tx *store.Tx, sender, to account.User, parent *record) (bool, error) {
	if parent != nil {
		if parent.SenderID == to.ID || slices.ContainsFunc(parent.Recipients, func(p Participant) bool { return p.UserID == to.ID && p.Kind != RoleBcc }) {
			if _, err := getEntry(tx, sender.ID, parent.ID); err == nil {
				return true, nil
			}
		}
	}
	if !to.Has(account.RoleProfessional) {
		return false, nil
	}
	_, err := tx.Get(contactKey(sender.ID, to.ID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func days(n int) string {
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}

// withDisclaimer appends the administrator's disclaimer on the server, so
// no sender can leave it out.
func withDisclaimer(format, body, disclaimer string) string {
	disclaimer = strings.TrimSpace(disclaimer)
	if disclaimer == "" {
		return body
	}
	if format == FormatHTML {
		return body + `<hr><p><small>` + strings.ReplaceAll(html.EscapeString(disclaimer), "\n", "<br>") + `</small></p>`
	}
	return body + "\n\n-- \n" + disclaimer
}

// deliver turns the draft into a sent message inside tx: sealed content,
// the sender's Sent entry, each recipient's Inbox entry, slip and
// notification, invitations, contacts, usage and the audit event.
func (s *Service) deliver(ctx context.Context, tx *store.Tx, set settings.Settings, sender account.User, r record, dk *keyring.DataKey, old *entry, d Draft, rcpts []recipient, res *SendResult, notify *[]string) error {
	now := s.now().UTC()
	r.Draft, r.Sent, r.Created = false, now, now
	r.Format, r.Expires, r.Restrict, r.ReadNotify = d.Format, d.Expires.UTC(), d.Restrict, d.ReadNotify
	r.RawTo, r.RawCc, r.RawBcc, r.Passcode = "", "", "", nil
	r.From = Participant{UserID: sender.ID, Address: sender.Email, Name: sender.Name, Kind: RoleSender}
	for i := range rcpts {
		rc := &rcpts[i]
		switch {
		case rc.invite:
			if !sender.Has(account.RoleAdmin) {
				if err := needQuotaTurn(tx); err != nil {
					return err
				}
			}
			inv, err := s.accounts.InviteTx(ctx, tx, sender.ID, account.Invite{Email: rc.Address, Name: rc.Name,
				Role: account.RoleGuest, Passcode: d.Passcode, RequirePasscode: d.Passcode != "", Quiet: true, Next: Link(r.ID)})
			if err != nil {
				if ve := account.FieldErrors(err); ve != nil {
					for i := range ve.Fields {
						if ve.Fields[i].Field == "email" {
							ve.Fields[i].Field = "to"
						}
					}
				}
				return err
			}
			rc.UserID, rc.user, rc.link = inv.User.ID, inv.User, inv.Link
			res.Invited = append(res.Invited, rc.Address)
		case rc.user.Status == account.StatusInvited:
			link, err := s.accounts.InvitationLinkTx(tx, rc.UserID, sender.ID, Link(r.ID))
			if err != nil {
				return err
			}
			rc.link = link
		}
		r.Recipients = append(r.Recipients, rc.Participant)
	}
	subject := d.Subject
	written := cleanBody(d.Format, d.Body)
	body := withDisclaimer(d.Format, written, set.Notifications.Disclaimer)
	sealedBody := sealContent(dk, &r, subject, body, written)
	if err := shareSent(tx, sender, &r); err != nil {
		return err
	}
	if err := store.PutJSON(tx, recordKey(r.ID), r); err != nil {
		return err
	}
	if err := tx.Put(bodyKey(r.ID), sealedBody); err != nil {
		return err
	}
	if err := tx.Put(threadKey(r.Thread, now, r.ID), nil); err != nil {
		return err
	}
	if !r.Expires.IsZero() {
		if err := tx.Put(expiryKey(r.Expires, r.ID), nil); err != nil {
			return err
		}
	}
	if err := s.putEntry(tx, sender.ID, old, entry{ID: r.ID, Folder: Sent, Role: RoleSender, Read: true, Date: now}); err != nil {
		return err
	}
	size := r.size()
	if err := s.accounts.CountUsage(tx, sender.ID, account.Usage{Sent: 1, Bytes: size}); err != nil {
		return err
	}
	*notify = append(*notify, sender.ID)
	for _, rc := range rcpts {
		if err := s.putEntry(tx, rc.UserID, nil, entry{ID: r.ID, Folder: Inbox, Role: rc.Kind, Date: now}); err != nil {
			return err
		}
		for _, k := range [][]byte{contactKey(sender.ID, rc.UserID), contactKey(rc.UserID, sender.ID)} {
			if err := tx.Put(k, nil); err != nil {
				return err
			}
		}
		link := rc.link
		if link == "" {
			link = s.baseURL() + Link(r.ID)
		}
		n := Notice{Kind: "new_message", To: rc.Address, ToName: rc.Name, UserID: rc.UserID,
			Guest: rc.isGuest, SenderName: sender.DisplayName(), Link: link}
		if rc.link != "" {
			n.Register, n.ValidFor = true, days(set.Security.InvitationDays)
		}
		if set.Notifications.ShowSubject {
			n.Subject = subject
		}
		nid, err := s.notifier.NotifyMessage(tx, n)
		if err != nil {
			return err
		}
		sl := Slip{UserID: rc.UserID, Address: rc.Address, Name: rc.Name, Kind: rc.Kind, Notification: nid, Notified: now}
		if err := store.PutJSON(tx, slipKey(r.ID, rc.UserID), sl); err != nil {
			return err
		}
		if err := s.accounts.CountUsage(tx, rc.UserID, account.Usage{Received: 1, Bytes: size}); err != nil {
			return err
		}
		*notify = append(*notify, rc.UserID)
	}
	res.ID = r.ID
	detail := map[string]string{"recipients": strconv.Itoa(len(rcpts)), "attachments": strconv.Itoa(len(r.Attach))}
	if len(res.Invited) > 0 {
		detail["invited"] = strconv.Itoa(len(res.Invited))
	}
	if r.Parent != "" {
		detail[r.ParentKind+"_to"] = r.Parent
	}
	return s.audit(tx, account.ActorOf(sender.ID), "message.send", "message/"+r.ID, detail)
}
