package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/message/htmlbody"
	"github.com/sealpost/sealpost/appliance/prefs"
)

// mailPage is what every webmail page shows: the folders with their
// counts, and the viewer's preferences for dates.
type mailPage struct {
	page
	Form
	Prefs   prefs.Prefs
	Now     time.Time
	Folder  message.Folder
	Folders []folderLink
	Welcome string

	List  message.Page
	View  message.View
	Slip  []message.Slip
	Draft message.Draft
	// Reading: whether remote images are shown, and the frame's address.
	Images   bool
	FrameURL string
	// Compose: the unregistered recipients to confirm inviting.
	Invite  []string
	Expires string // yyyy-mm-dd
	// MayRestrict: the administrator allows restrictions.
	MayRestrict bool
}

type folderLink struct {
	Folder         message.Folder
	Label          string
	Total, Unread  int
	Current, Count bool
}

var folderLabels = map[message.Folder]string{message.Inbox: "Inbox", message.Sent: "Sent", message.Drafts: "Drafts",
	message.Archive: "Archive", message.Trash: "Trash", message.Shared: "Shared sent"}

// mailData fills the parts every webmail page has.
func (s *Server) mailData(c echo.Context, f message.Folder) (mailPage, error) {
	_, u, _ := current(c)
	p := mailPage{page: s.pageFor(c, "mail"), Form: newForm(c), Folder: f, Now: s.opts.Accounts.Now()}
	var err error
	if p.Prefs, err = s.loadPrefs(u.ID); err != nil {
		return p, err
	}
	counts, err := s.opts.Messages.Counts(u.ID)
	if err != nil {
		return p, err
	}
	folders := message.Folders
	if s.opts.Messages.SharesSent(u.ID) {
		folders = append(folders, message.Shared)
	}
	for _, folder := range folders {
		c := counts[folder]
		p.Folders = append(p.Folders, folderLink{Folder: folder, Label: folderLabels[folder], Total: c.Total,
			Unread: c.Unread, Current: folder == f, Count: folder == message.Inbox || folder == message.Drafts})
	}
	if !p.Prefs.WelcomeSeen && s.opts.Welcome != nil {
		p.Welcome = s.opts.Welcome()
	}
	return p, nil
}

// mailHome sends signed-in users to their inbox.
func (s *Server) mailHome(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/mail/inbox")
}

// folder lists one folder, a page at a time.
func (s *Server) folder(c echo.Context) error {
	f, ok := message.ParseFolder(c.Param("folder"))
	if !ok {
		return echo.ErrNotFound
	}
	_, u, _ := current(c)
	p, err := s.mailData(c, f)
	if err != nil {
		return err
	}
	if p.List, err = s.opts.Messages.List(u.ID, f, c.QueryParam("c")); err != nil {
		return err
	}
	return c.Render(http.StatusOK, "mail/list", p)
}

// bulk runs an action on the messages selected in a list.
func (s *Server) bulk(c echo.Context) error {
	_, u, _ := current(c)
	form, err := c.FormParams()
	if err != nil {
		return err
	}
	back := safeNext(c.FormValue("back"))
	if c.FormValue("action") == "welcome_seen" {
		if err := s.savePrefs(c, u.ID, func(p *prefs.Prefs) { p.WelcomeSeen = true }); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, back)
	}
	a, ok := message.ParseAction(c.FormValue("action"))
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose what to do with the selected messages.")
	}
	if err := s.opts.Messages.Apply(c.Request().Context(), u.ID, a, form["id"]); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, withDone(back, actionDone[a]))
}

var actionDone = map[message.Action]string{
	message.MarkRead: "Marked as read.", message.MarkUnread: "Marked as unread.", message.Star: "Starred.",
	message.Unstar: "Star removed.", message.MoveInbox: "Moved to the inbox.", message.MoveArch: "Archived.",
	message.MoveTrash: "Moved to the trash.", message.Restore: "Restored.", message.Purge: "Deleted for good.",
}

func withDone(path, done string) string {
	if done == "" {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "done=" + url.QueryEscape(done)
}

// readMessage shows one message and records the opening.
func (s *Server) readMessage(c echo.Context) error {
	_, u, _ := current(c)
	v, err := s.opts.Messages.Open(c.Request().Context(), u.ID, c.Param("id"), c.RealIP())
	if err != nil {
		return err
	}
	p, err := s.mailData(c, v.Folder)
	if err != nil {
		return err
	}
	p.View = v
	p.Images = c.QueryParam("images") == "1"
	p.FrameURL = "/mail/m/" + v.ID + "/body"
	if p.Images {
		p.FrameURL += "?images=1"
	}
	if v.IsSender() {
		if p.Slip, err = s.opts.Messages.SlipOf(u.ID, v.ID); err != nil {
			return err
		}
	}
	return c.Render(http.StatusOK, "mail/read", p)
}

// messageBody is the body alone, for the sandboxed frame: sanitized again,
// remote images withheld unless asked for, under its own strict policy.
func (s *Server) messageBody(c echo.Context) error {
	_, u, _ := current(c)
	format, body, err := s.opts.Messages.Body(u.ID, c.Param("id"))
	if err != nil {
		return err
	}
	if format == message.FormatText {
		body = htmlbody.FromText(body)
	}
	images := c.QueryParam("images") == "1"
	r := htmlbody.Render(body, images)
	doc := htmlbody.FrameDocument(r.HTML)
	h := c.Response().Header()
	h.Set("Content-Security-Policy", htmlbody.FrameCSP(images))
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-Sealpost-Blocked-Images", fmt.Sprint(r.BlockedRemote))
	return c.HTML(http.StatusOK, doc)
}

// printMessage is the print view.
func (s *Server) printMessage(c echo.Context) error {
	_, u, _ := current(c)
	v, err := s.opts.Messages.Open(c.Request().Context(), u.ID, c.Param("id"), c.RealIP())
	if err != nil {
		return err
	}
	if v.Gone != "" {
		return fault.E(fault.NotFound, "This message was recalled or has expired; its content is gone.", nil)
	}
	if !v.CanPrint {
		return fault.E(fault.Permission, "The sender does not allow this message to be printed.", nil)
	}
	p, err := s.mailData(c, v.Folder)
	if err != nil {
		return err
	}
	p.View, p.FrameURL = v, "/mail/m/"+v.ID+"/body"
	return c.Render(http.StatusOK, "mail/print", p)
}

// download serves an attachment, with Range, after the checks and the
// audit event.
func (s *Server) download(c echo.Context) error {
	_, u, _ := current(c)
	rd, a, err := s.opts.Messages.OpenAttachment(c.Request().Context(), u.ID, c.Param("id"), c.Param("att"), c.RealIP())
	if err != nil {
		return err
	}
	defer rd.Close()
	// A large file takes longer than the server's write timeout.
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(24 * time.Hour))
	attachment.Serve(c.Response(), c.Request(), rd, a.Name, a.Type, time.Time{})
	return nil
}

// messageAction runs the buttons of the reading page.
func (s *Server) messageAction(c echo.Context) error {
	_, u, _ := current(c)
	ctx := c.Request().Context()
	id := c.Param("id")
	switch action := c.FormValue("action"); action {
	case message.KindReply, message.KindReplyAll, message.KindForward:
		pr, err := s.loadPrefs(u.ID)
		if err != nil {
			return err
		}
		draft, err := s.opts.Messages.Respond(ctx, u.ID, id, action, pr.Signature, func(v message.View) string {
			return pr.DateTime(v.Sent)
		})
		if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/mail/compose?draft="+draft)
	case "recall":
		err := s.opts.Messages.Recall(ctx, u.ID, id, c.FormValue("reason"), c.FormValue("notify") == "on")
		if err != nil {
			if ve := account.FieldErrors(err); ve != nil {
				return echo.NewHTTPError(http.StatusBadRequest, ve.For("reason"))
			}
			return err
		}
		return c.Redirect(http.StatusSeeOther, withDone(message.Link(id), "The message was recalled. Its recipients can no longer read it."))
	default:
		a, ok := message.ParseAction(action)
		if !ok {
			return echo.NewHTTPError(http.StatusBadRequest, "Choose what to do with this message.")
		}
		if err := s.opts.Messages.Apply(ctx, u.ID, a, []string{id}); err != nil {
			return err
		}
		switch a {
		case message.MoveTrash, message.MoveArch, message.Purge, message.MarkUnread:
			return c.Redirect(http.StatusSeeOther, withDone("/mail/inbox", actionDone[a]))
		}
		return c.Redirect(http.StatusSeeOther, withDone(message.Link(id), actionDone[a]))
	}
}

// events streams mailbox changes (server-sent events): counts only.
func (s *Server) events(c echo.Context) error {
	_, u, _ := current(c)
	ch, cancel := s.opts.Messages.Subscribe(u.ID)
	defer cancel()
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(event string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("hello", map[string]string{}); err != nil {
		return nil
	}
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case ev := <-ch:
			if err := send("mailbox", ev.Counts); err != nil {
				return nil
			}
		case <-ping.C:
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}

// composeForm shows a new message, or a draft.
func (s *Server) composeForm(c echo.Context) error {
	_, u, _ := current(c)
	p, err := s.mailData(c, message.Drafts)
	if err != nil {
		return err
	}
	if id := c.QueryParam("draft"); id != "" {
		if p.Draft, err = s.opts.Messages.Draft(u.ID, id); err != nil {
			return err
		}
	} else {
		p.Draft = message.Draft{Format: message.FormatHTML, To: c.QueryParam("to"), ReadNotify: true}
		if sig := strings.TrimSpace(p.Prefs.Signature); sig != "" {
			p.Draft.Body = "<p><br></p>" + htmlbody.FromText("-- \n"+sig)
		}
	}
	if err := s.composeDefaults(&p); err != nil {
		return err
	}
	return c.Render(http.StatusOK, "mail/compose", p)
}

func (s *Server) composeDefaults(p *mailPage) error {
	set, err := s.opts.ReadSettings()
	if err != nil {
		return err
	}
	p.MayRestrict = set.Messages.Restrictions
	if !p.Draft.Expires.IsZero() {
		p.Expires = p.Draft.Expires.In(p.Prefs.Location()).Format("2006-01-02")
	} else if p.Expires == "" && set.Messages.ExpiryDefaultDays > 0 {
		p.Expires = p.Now.AddDate(0, 0, set.Messages.ExpiryDefaultDays).In(p.Prefs.Location()).Format("2006-01-02")
	}
	if p.Draft.ID == "" && set.Messages.ReadNotification {
		p.Draft.ReadNotify = true
	}
	return nil
}

// compose handles the compose form: its fields, then any files (streamed
// into the draft, encrypted as they arrive), then the button pressed:
// send, save, attach, remove a file or discard.
func (s *Server) compose(c echo.Context) error {
	_, u, _ := current(c)
	ctx := c.Request().Context()
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(6 * time.Hour))
	p, err := s.mailData(c, message.Drafts)
	if err != nil {
		return err
	}
	fields := map[string]string{}
	var uploadErr error
	draftID := ""
	saveFirst := func() error {
		if draftID != "" {
			return nil
		}
		d, err := s.draftFrom(fields, p.Prefs)
		if err != nil {
			return err
		}
		draftID, err = s.opts.Messages.SaveDraft(ctx, u.ID, d)
		return err
	}
	tokenSeen := false
	var textBytes int64 // of the form's fields, files apart
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct == "multipart/form-data" {
		mr, err := c.Request().MultipartReader()
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read. Try again.")
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return echo.NewHTTPError(http.StatusBadRequest, "The upload was interrupted. Try again.")
			}
			name := part.FormName()
			if part.FileName() == "" {
				v, err := io.ReadAll(io.LimitReader(part, maxFormText-textBytes+1))
				if err != nil {
					return echo.NewHTTPError(http.StatusBadRequest, "The upload was interrupted. Try again.")
				}
				if textBytes += int64(len(v)); textBytes > maxFormText {
					return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "The message text is too long; send long documents as attachments.")
				}
				if err := bodyToken(c, name, string(v), tokenSeen); err != nil {
					return err
				}
				if name == "csrf" {
					tokenSeen = true
					continue
				}
				fields[name] = string(v)
				continue
			}
			if err := bodyToken(c, name, "", tokenSeen); err != nil {
				return err
			}
			if uploadErr != nil {
				continue
			}
			if uploadErr = saveFirst(); uploadErr != nil {
				continue
			}
			if _, err := s.opts.Messages.AddAttachment(ctx, u.ID, draftID, part.FileName(), part.Header.Get("Content-Type"), part); err != nil {
				uploadErr = err
			}
		}
	} else {
		form, err := c.FormParams()
		if err != nil {
			return err
		}
		for k := range form {
			fields[k] = form.Get(k)
		}
	}
	if err := bodyToken(c, "", "", tokenSeen); err != nil {
		return err // a form that never showed its token
	}
	if draftID == "" {
		draftID = fields["draft"]
	}
	d, derr := s.draftFrom(fields, p.Prefs)
	d.ID = draftID
	show := func(status int) error {
		p.Draft = d
		if d.ID != "" {
			if saved, err := s.opts.Messages.Draft(u.ID, d.ID); err == nil {
				p.Draft.Attachments, p.Draft.Parent, p.Draft.ParentKind = saved.Attachments, saved.Parent, saved.ParentKind
				p.Draft.Saved = saved.Saved
			}
			// The draft may be new: show it in the folder counts.
			if fresh, err := s.mailData(c, message.Drafts); err == nil {
				p.Folders = fresh.Folders
			}
		}
		p.Form.Values = fields
		p.Expires = fields["expires"]
		if err := s.composeDefaults(&p); err != nil {
			return err
		}
		return c.Render(status, "mail/compose", p)
	}
	if derr != nil {
		return show(p.Form.fail(derr))
	}
	if uploadErr != nil {
		if d.ID != "" {
			_, _ = s.opts.Messages.SaveDraft(ctx, u.ID, d)
		}
		p.Form.Errors["files"] = fault.Message(uploadErr)
		return show(statusOf[fault.KindOf(uploadErr)])
	}
	switch action := fields["do"]; {
	case action == "discard":
		if d.ID != "" {
			if err := s.opts.Messages.Apply(ctx, u.ID, message.Purge, []string{d.ID}); err != nil {
				return err
			}
		}
		return c.Redirect(http.StatusSeeOther, withDone("/mail/inbox", "The draft was discarded."))
	case strings.HasPrefix(action, "remove:"):
		if err := s.opts.Messages.RemoveAttachment(ctx, u.ID, d.ID, strings.TrimPrefix(action, "remove:")); err != nil {
			return err
		}
		fallthrough
	case action == "save" || action == "attach":
		id, err := s.opts.Messages.SaveDraft(ctx, u.ID, d)
		if err != nil {
			return show(p.Form.fail(err))
		}
		d.ID = id
		switch {
		case action == "attach":
			p.Flash = "The files are attached, encrypted."
		case action == "save":
			p.Flash = "Draft saved."
		default:
			p.Flash = "The file was removed."
		}
		return show(http.StatusOK)
	case action == "send":
		d.InviteConfirmed = fields["invite_confirmed"] == "yes"
		res, err := s.opts.Messages.Send(ctx, u.ID, d)
		var need *message.InviteNeededError
		switch {
		case errors.As(err, &need):
			if d.ID == "" {
				if d.ID, err = s.opts.Messages.SaveDraft(ctx, u.ID, d); err != nil {
					return show(p.Form.fail(err))
				}
			}
			p.Invite = need.Addresses
			return show(http.StatusOK)
		case err != nil:
			if d.ID == "" {
				d.ID, _ = s.opts.Messages.SaveDraft(ctx, u.ID, d)
			}
			return show(p.Form.fail(err))
		}
		done := "Your secure message was sent."
		if len(res.Invited) > 0 {
			done += " " + strings.Join(res.Invited, ", ") + " got an invitation to register and read it."
		}
		return c.Redirect(http.StatusSeeOther, withDone(message.Link(res.ID), done))
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Send the message or save the draft.")
	}
}

// maxFormText bounds the compose form's fields together (files apart):
// the text limit (messages.max_body_kb, at most 20 MiB) and room for the
// rest.
const maxFormText = 24 << 20

// draftFrom reads the compose form's fields.
func (s *Server) draftFrom(f map[string]string, pr prefs.Prefs) (message.Draft, error) {
	d := message.Draft{ID: f["draft"], To: f["to"], Cc: f["cc"], Bcc: f["bcc"], Subject: strings.TrimSpace(f["subject"]),
		Body: f["body"], Format: f["format"], Passcode: f["passcode"], ReadNotify: f["read_notify"] == "on",
		Restrict: message.Restrictions{NoReply: f["no_reply"] == "on", NoForward: f["no_forward"] == "on", NoPrint: f["no_print"] == "on"}}
	if d.Format != message.FormatText {
		d.Format = message.FormatHTML
	}
	if e := strings.TrimSpace(f["expires"]); e != "" {
		day, err := time.ParseInLocation("2006-01-02", e, pr.Location())
		if err != nil {
			return d, fault.E(fault.Invalid, "Check the highlighted fields.", &account.ValidationError{Fields: []account.FieldError{
				{Field: "expires", Message: "Enter the expiry as a date, such as 2027-01-31."}}})
		}
		d.Expires = day.Add(24*time.Hour - time.Second) // the end of that day, in the sender's zone
	}
	return d, nil
}

// autosave keeps a draft as the sender types (from the compose page's
// script) and answers its id.
func (s *Server) autosave(c echo.Context) error {
	_, u, _ := current(c)
	form, err := c.FormParams()
	if err != nil {
		return err
	}
	fields := map[string]string{}
	for k := range form {
		fields[k] = form.Get(k)
	}
	pr, err := s.loadPrefs(u.ID)
	if err != nil {
		return err
	}
	d, err := s.draftFrom(fields, pr)
	if err != nil {
		d.Expires = time.Time{}
	}
	id, err := s.opts.Messages.SaveDraft(c.Request().Context(), u.ID, d)
	if err != nil {
		return c.JSON(statusOf[fault.KindOf(err)], map[string]string{"error": fault.Message(err)})
	}
	return c.JSON(http.StatusOK, map[string]string{"id": id, "saved": pr.Time(s.opts.Accounts.Now())})
}
