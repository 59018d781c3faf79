package message

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/store"
)

// Item is a message in a list.
type Item struct {
	ID             string
	From           Participant
	To             []Participant // what the viewer may see of the recipients
	Subject        string
	Preview        string
	Date           time.Time
	Read, Starred  bool
	HasAttachments bool
	Gone           string // "recalled" or "expired"
	Draft          bool
	Role           string
}

// Page is one page of a folder, newest first. Older and Newer are cursors
// for the next pages ("" when there are none).
type Page struct {
	Items        []Item
	Older, Newer string
}

// PageSize is how many messages a list page holds.
const PageSize = 50

// List is one page of a folder. cursor is "" for the newest messages, or
// a page's Older or Newer cursor; it walks the folder's index from there and
// never the whole mailbox.
func (s *Service) List(uid string, f Folder, cursor string) (Page, error) {
	var p Page
	err := s.st.View(func(tx *store.Tx) error {
		prefix := folderPrefix(uid, f)
		if f == Shared {
			pattern, err := sharingFor(tx, uid)
			if err != nil || pattern == "" {
				return err
			}
			prefix = sharedFolderPrefix(pattern)
		}
		var keys [][]byte
		collect := func(k, _ []byte) error {
			keys = append(keys, k)
			if len(keys) > PageSize {
				return store.ErrStop
			}
			return nil
		}
		backwards := strings.HasPrefix(cursor, "n")
		var start []byte
		if len(cursor) > 1 {
			start = append(bytes.Clone(prefix), cursor[1:]...)
		}
		var err error
		if backwards {
			err = tx.ScanBefore(prefix, start, collect)
			slices.Reverse(keys)
		} else {
			from := prefix
			if start != nil {
				from = append(start, 0) // the key after the cursor
			}
			err = tx.ScanFrom(prefix, from, collect)
		}
		if err != nil {
			return err
		}
		more := len(keys) > PageSize
		if more {
			if backwards {
				keys = keys[1:]
			} else {
				keys = keys[:PageSize]
			}
		}
		for _, k := range keys {
			id := string(k[bytes.LastIndexByte(k, '/')+1:])
			it, err := s.item(tx, uid, id)
			if err != nil {
				return err
			}
			p.Items = append(p.Items, it)
		}
		if len(keys) > 0 {
			first, last := string(keys[0][len(prefix):]), string(keys[len(keys)-1][len(prefix):])
			// Going back, older pages exist (we came from one) and newer
			// ones if there were more; going forward, the reverse.
			if backwards || more {
				p.Older = "o" + last
			}
			if backwards && more || !backwards && cursor != "" {
				p.Newer = "n" + first
			}
		}
		return nil
	})
	return p, err
}

// item reads one list line: the record, the viewer's entry and the sealed
// subject and preview (never the body).
func (s *Service) item(tx *store.Tx, uid, id string) (Item, error) {
	r, err := getRecord(tx, id)
	if err != nil {
		return Item{}, err
	}
	e, err := readerEntry(tx, uid, r)
	if err != nil {
		return Item{}, err
	}
	it := Item{ID: id, From: r.From, To: visibleRecipients(r, uid), Date: e.Date, Read: e.Read, Starred: e.Starred,
		HasAttachments: len(r.Attach) > 0, Gone: s.gone(r), Draft: r.Draft, Role: e.Role}
	if r.Draft {
		it.To = draftRecipients(r)
	}
	if it.Gone != "" {
		it.Subject = s.goneSubject(tx, r)
		return it, nil
	}
	dk, err := s.dataKey(tx, id)
	if err != nil {
		return it, err
	}
	if it.Subject, err = open(dk, id, "subject", r.Subject); err != nil {
		return it, err
	}
	it.Preview, err = open(dk, id, "preview", r.Preview)
	return it, err
}

// goneSubject is what a recalled or expired message still shows: the
// subject kept at the shredding, or, for one expired but not yet swept,
// its sealed subject while the key is still there.
func (s *Service) goneSubject(tx *store.Tx, r record) string {
	if r.KeptSubject != "" || r.Gone != "" {
		return r.KeptSubject
	}
	dk, err := s.dataKey(tx, r.ID)
	if err != nil {
		return ""
	}
	subject, _ := open(dk, r.ID, "subject", r.Subject)
	return subject
}

func draftRecipients(r record) []Participant {
	var out []Participant
	for _, a := range splitAddresses(r.RawTo + "," + r.RawCc + "," + r.RawBcc) {
		out = append(out, Participant{Address: a, Kind: RoleTo})
	}
	return out
}

// visibleRecipients hides bcc recipients from everyone but the sender and
// themselves.
func visibleRecipients(r record, uid string) []Participant {
	out := make([]Participant, 0, len(r.Recipients))
	for _, p := range r.Recipients {
		if p.Kind == RoleBcc && uid != r.SenderID && p.UserID != uid {
			continue
		}
		out = append(out, p)
	}
	return out
}

// View is a message as its reader sees it.
type View struct {
	ID, Thread   string
	From         Participant
	To, Cc, Bcc  []Participant
	Subject      string
	Format       string
	Sent         time.Time
	Expires      time.Time
	Restrict     Restrictions
	ReadNotify   bool
	Attachments  []Attachment
	Folder       Folder
	Starred      bool
	Role         string // the viewer's: sender, to, cc, bcc
	Gone         string // "recalled" or "expired": no content
	GoneAt       time.Time
	RecallReason string
	Conversation []Item // the other messages of the thread the viewer has

	CanReply, CanForward, CanRecall, CanDownload, CanPrint bool
}

// IsSender reports whether the viewer sent the message.
func (v View) IsSender() bool { return v.Role == RoleSender }

// Open shows a message to a participant. A recipient's opening is
// recorded: counted on the delivery slip, audited, the entry marked read,
// and on the first opening the sender told when they asked for it.
func (s *Service) Open(ctx context.Context, uid, id, ip string) (View, error) {
	var v View
	var firstOpen bool
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		v, firstOpen = View{}, false
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		e, err := readerEntry(tx, uid, r)
		if err != nil {
			return err
		}
		if r.Draft {
			return errNotFound // drafts open in the compose form
		}
		if v, err = s.view(tx, r, e, uid); err != nil {
			return err
		}
		if e.Role == RoleShared {
			return s.audit(tx, account.ActorOf(uid), "message.open_shared", "message/"+id, map[string]string{"remote_ip": ip})
		}
		if !e.Read {
			old := e
			e.Read = true
			if err := s.putEntry(tx, uid, &old, e); err != nil {
				return err
			}
		}
		if e.Role == RoleSender {
			return nil // a sender reading their own copy is not an opening
		}
		sl, err := store.GetJSON[Slip](tx, slipKey(id, uid))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if v.Gone == "" {
			sl.Opens++
			if sl.FirstOpened.IsZero() {
				sl.FirstOpened, firstOpen = s.now().UTC(), true
			}
			if err := store.PutJSON(tx, slipKey(id, uid), sl); err != nil {
				return err
			}
		}
		detail := map[string]string{"remote_ip": ip}
		if v.Gone != "" {
			detail["gone"] = v.Gone
		}
		if err := s.audit(tx, account.ActorOf(uid), "message.open", "message/"+id, detail); err != nil {
			return err
		}
		if firstOpen && r.ReadNotify {
			return s.tellFirstOpen(tx, r, uid)
		}
		return nil
	})
	if err == nil {
		s.publish(uid)
		if firstOpen {
			s.publish(v.From.UserID)
		}
	}
	return v, err
}

// tellFirstOpen mails the sender that a recipient opened the message.
func (s *Service) tellFirstOpen(tx *store.Tx, r record, uid string) error {
	sender, err := account.UserTx(tx, r.SenderID)
	if err != nil || sender.Status != account.StatusEnabled {
		return nil // a disabled sender gets no mail
	}
	reader, err := account.UserTx(tx, uid)
	if err != nil {
		return err
	}
	_, err = s.notifier.NotifyMessage(tx, Notice{Kind: "first_open", To: sender.Email, ToName: sender.Name, UserID: sender.ID,
		RecipientName: reader.DisplayName(), Link: s.baseURL() + Link(r.ID) + "#slip"})
	return err
}

// view builds what uid sees of r.
func (s *Service) view(tx *store.Tx, r record, e entry, uid string) (View, error) {
	v := View{ID: r.ID, Thread: r.Thread, From: r.From, Format: r.Format, Sent: r.Sent, Expires: r.Expires,
		Restrict: r.Restrict, ReadNotify: r.ReadNotify, Folder: e.Folder, Starred: e.Starred, Role: e.Role,
		Gone: s.gone(r), GoneAt: r.GoneAt, RecallReason: r.RecallReason}
	for _, p := range visibleRecipients(r, uid) {
		switch p.Kind {
		case RoleTo:
			v.To = append(v.To, p)
		case RoleCc:
			v.Cc = append(v.Cc, p)
		case RoleBcc:
			v.Bcc = append(v.Bcc, p)
		}
	}
	if v.Gone == "expired" && v.GoneAt.IsZero() {
		v.GoneAt = r.Expires
	}
	sender := e.Role == RoleSender
	conv, err := s.conversation(tx, r, uid)
	if err != nil {
		return v, err
	}
	v.Conversation = conv
	if v.Gone != "" {
		v.Subject = s.goneSubject(tx, r)
		return v, nil
	}
	dk, err := s.dataKey(tx, r.ID)
	if err != nil {
		return v, err
	}
	if v.Subject, err = open(dk, r.ID, "subject", r.Subject); err != nil {
		return v, err
	}
	if v.Attachments, err = attachments(dk, r); err != nil {
		return v, err
	}
	shared := e.Role == RoleShared // a colleague reads; they are no participant
	v.CanReply = !shared && (sender || !r.Restrict.NoReply)
	v.CanForward = !shared && (sender || !r.Restrict.NoForward)
	v.CanDownload = sender || !r.Restrict.NoPrint
	v.CanPrint = v.CanDownload
	if sender {
		u, err := account.UserTx(tx, uid)
		if err != nil {
			return v, err
		}
		if g, err := account.GroupTx(tx, u.Group); err == nil {
			v.CanRecall = g.Features.Recall || u.Has(account.RoleAdmin)
		}
	}
	return v, nil
}

// conversation lists the other messages of r's thread that uid has.
func (s *Service) conversation(tx *store.Tx, r record, uid string) ([]Item, error) {
	var ids []string
	err := tx.Scan([]byte(threadPrefix+r.Thread+"/"), func(k, _ []byte) error {
		id := string(k[bytes.LastIndexByte(k, '/')+1:])
		if id != r.ID {
			ids = append(ids, id)
		}
		if len(ids) >= 200 {
			return store.ErrStop
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, id := range ids {
		it, err := s.item(tx, uid, id)
		if err != nil {
			if errors.Is(err, errNotFound) {
				continue // not the viewer's
			}
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// Body is a message's text for the reading frame or the print view; it
// records nothing (the page's Open did). A recalled or expired message has
// none.
func (s *Service) Body(uid, id string) (format, body string, err error) {
	err = s.st.View(func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if _, err := readerEntry(tx, uid, r); err != nil {
			return err
		}
		if s.gone(r) != "" {
			return errGone
		}
		dk, err := s.dataKey(tx, id)
		if err != nil {
			return err
		}
		sealed, err := tx.Get(bodyKey(id))
		if err != nil {
			return err
		}
		format = r.Format
		body, err = open(dk, id, "body", sealed)
		return err
	})
	return format, body, err
}

// sentRecord is a message uid sent and still has; anything else is not
// found.
func sentRecord(tx *store.Tx, uid, id string) (record, error) {
	r, err := getRecord(tx, id)
	if err != nil {
		return r, err
	}
	if r.SenderID != uid || r.Draft {
		return r, errNotFound
	}
	_, err = getEntry(tx, uid, id)
	return r, err
}

// SlipOf is the delivery slip of a message, for its sender only.
func (s *Service) SlipOf(uid, id string) ([]Slip, error) {
	var out []Slip
	err := s.st.View(func(tx *store.Tx) error {
		r, err := sentRecord(tx, uid, id)
		if err != nil {
			return err
		}
		for _, p := range r.Recipients {
			sl, err := store.GetJSON[Slip](tx, slipKey(id, p.UserID))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			sl.UserID, sl.Address, sl.Name, sl.Kind = p.UserID, p.Address, p.Name, p.Kind
			out = append(out, sl)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Delivery = "queued"
		if s.delivery != nil && out[i].Notification != "" {
			out[i].Delivery, out[i].DeliveryAt, out[i].Detail = s.delivery(out[i].Notification)
		}
	}
	return out, nil
}
