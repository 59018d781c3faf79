package message

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// maxAttachments is the most files one message carries.
const maxAttachments = 100

// cleanName makes a file name safe to show and to offer for download: the
// last path element, without control characters, at most 255 bytes.
func cleanName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimSpace(name))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return -1
		}
		return r
	}, name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == "/" {
		return "attachment"
	}
	return name
}

func cleanType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || len(mt) > 100 {
		return "application/octet-stream"
	}
	return mt
}

// AddAttachment stores a file on one of uid's drafts, encrypted under the
// draft's key as it streams in: no plaintext touches the disk. The group's
// attachment limit applies. The file is durable before the draft names it.
func (s *Service) AddAttachment(ctx context.Context, uid, draftID, name, contentType string, r io.Reader) (Attachment, error) {
	name, contentType = cleanName(name), cleanType(contentType)
	var limit int64
	var up *attachment.Upload
	err := s.st.View(func(tx *store.Tx) error {
		rec, dk, _, err := s.draftRecord(tx, uid, draftID)
		if err != nil {
			return err
		}
		if len(rec.Attach) >= maxAttachments {
			return fault.E(fault.TooLarge, fmt.Sprintf("A message carries at most %d files.", maxAttachments), nil)
		}
		u, err := account.UserTx(tx, uid)
		if err != nil {
			return err
		}
		g, err := account.GroupTx(tx, u.Group)
		if err != nil {
			return err
		}
		limit = int64(g.AttachmentLimitMB) << 20
		up, err = s.blobs.Create(dk, limit)
		return err
	})
	if err != nil {
		return Attachment{}, err
	}
	if _, err := io.Copy(up, r); err != nil {
		up.Abort()
		if fault.KindOf(err) == fault.TooLarge {
			return Attachment{}, fault.E(fault.TooLarge, fmt.Sprintf("%s is larger than your limit of %d MB per file.", name, limit>>20), err)
		}
		return Attachment{}, fmt.Errorf("receive attachment: %w", err)
	}
	if err := up.Commit(); err != nil {
		return Attachment{}, err
	}
	a := Attachment{ID: up.ID(), Name: name, Size: up.Size(), Type: contentType}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		rec, dk, _, err := s.draftRecord(tx, uid, draftID)
		if err != nil {
			return err
		}
		rec.Attach = append(rec.Attach, attachmentRef{ID: a.ID, Size: a.Size, Type: a.Type,
			Name: dk.Seal([]byte(a.Name), aad(rec.ID, "att/"+a.ID))})
		return store.PutJSON(tx, recordKey(rec.ID), rec)
	})
	if err != nil {
		s.removeBlobs([]string{a.ID})
		return Attachment{}, err
	}
	return a, nil
}

// RemoveAttachment takes a file off a draft.
func (s *Service) RemoveAttachment(ctx context.Context, uid, draftID, attID string) error {
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		rec, _, _, err := s.draftRecord(tx, uid, draftID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rec.Attach, func(a attachmentRef) bool { return a.ID == attID })
		if i < 0 {
			return fault.E(fault.NotFound, "There is no such attachment.", nil)
		}
		rec.Attach = slices.Delete(rec.Attach, i, i+1)
		return store.PutJSON(tx, recordKey(rec.ID), rec)
	})
	if err == nil {
		s.removeBlobs([]string{attID})
	}
	return err
}

// OpenAttachment opens a message's file for a participant. A recipient's
// download is audited and counted on the delivery slip; a message that
// forbids downloads, or is recalled or expired, gives nothing.
func (s *Service) OpenAttachment(ctx context.Context, uid, id, attID, ip string) (*attachment.Reader, Attachment, error) {
	var rd *attachment.Reader
	var a Attachment
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		if rd != nil {
			rd.Close()
			rd = nil
		}
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		e, err := readerEntry(tx, uid, r)
		if err != nil {
			return err
		}
		if s.gone(r) != "" {
			return errGone
		}
		i := slices.IndexFunc(r.Attach, func(a attachmentRef) bool { return a.ID == attID })
		if i < 0 {
			return fault.E(fault.NotFound, "There is no such attachment.", nil)
		}
		if e.Role != RoleSender && r.Restrict.NoPrint {
			return fault.E(fault.Permission, "The sender does not allow downloads of this message's files.", nil)
		}
		dk, err := s.dataKey(tx, id)
		if err != nil {
			return err
		}
		ref := r.Attach[i]
		name, err := open(dk, id, "att/"+ref.ID, ref.Name)
		if err != nil {
			return err
		}
		a = Attachment{ID: ref.ID, Name: name, Size: ref.Size, Type: ref.Type}
		if rd, err = s.blobs.Open(ref.ID, dk); err != nil {
			return err
		}
		if e.Role == RoleSender || r.Draft {
			return nil
		}
		if e.Role == RoleShared {
			return s.audit(tx, account.ActorOf(uid), "attachment.download_shared", "message/"+id,
				map[string]string{"attachment": ref.ID, "size": strconv.FormatInt(ref.Size, 10), "remote_ip": ip})
		}
		sl, err := store.GetJSON[Slip](tx, slipKey(id, uid))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		sl.Downloads = append(sl.Downloads, Download{Attachment: ref.ID, At: s.now().UTC()})
		if len(sl.Downloads) > 1000 {
			sl.Downloads = sl.Downloads[len(sl.Downloads)-1000:]
		}
		if err := store.PutJSON(tx, slipKey(id, uid), sl); err != nil {
			return err
		}
		return s.audit(tx, account.ActorOf(uid), "attachment.download", "message/"+id,
			map[string]string{"attachment": ref.ID, "size": strconv.FormatInt(ref.Size, 10), "remote_ip": ip})
	})
	if err != nil {
		if rd != nil {
			rd.Close()
		}
		return nil, a, err
	}
	return rd, a, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
