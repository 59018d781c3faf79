package account

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// The built-in groups.
const (
	GroupProfessional = "professional"
	GroupGuest        = "guest"
)

// Features are what a group's members may do.
type Features struct {
	ComposeToAnyone  bool `json:"compose_to_anyone"` // write first to any address (guests: only to professionals they exchanged with)
	InviteGuests     bool `json:"invite_guests"`
	Aliases          bool `json:"aliases"`
	LargeAttachments bool `json:"large_attachments"`
	Recall           bool `json:"recall"`
}

// Group is a set of users with the same features and limits.
type Group struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	Description       string   `json:"description,omitempty"`
	BuiltIn           bool     `json:"built_in,omitempty"`
	Features          Features `json:"features"`
	InviteQuota       int      `json:"invite_quota"`        // new users per period; 0: none
	QuotaPeriodDays   int      `json:"quota_period_days"`   // the period
	AttachmentLimitMB int      `json:"attachment_limit_mb"` // per file
	RequireTOTP       bool     `json:"require_totp"`        // members need a second factor
}

func builtInGroups() []Group {
	return []Group{
		{ID: GroupProfessional, Name: "Professional", Description: "Staff of the organization.", BuiltIn: true,
			Features:    Features{ComposeToAnyone: true, InviteGuests: true, Aliases: true, LargeAttachments: true, Recall: true},
			InviteQuota: 100, QuotaPeriodDays: 30, AttachmentLimitMB: 5120},
		{ID: GroupGuest, Name: "Guest", Description: "Invited outside recipients.", BuiltIn: true,
			InviteQuota: 0, QuotaPeriodDays: 30, AttachmentLimitMB: 100},
	}
}

func (s *Service) ensureBuiltInGroups(ctx context.Context) error {
	missing := false
	err := s.st.View(func(tx *store.Tx) error {
		for _, g := range builtInGroups() {
			if _, err := tx.Get(groupKey(g.ID)); errors.Is(err, store.ErrNotFound) {
				missing = true
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !missing {
		return err
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		for _, g := range builtInGroups() {
			if _, err := tx.Get(groupKey(g.ID)); errors.Is(err, store.ErrNotFound) {
				if err := store.PutJSON(tx, groupKey(g.ID), g); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Validate reports every problem with a group, each naming its field.
func (g Group) Validate() []FieldError {
	var errs []FieldError
	if n := strings.TrimSpace(g.Name); n == "" || len(n) > 80 {
		errs = append(errs, FieldError{"name", "Give the group a name of at most 80 characters."})
	}
	if len(g.Description) > 500 {
		errs = append(errs, FieldError{"description", "Keep the description under 500 characters."})
	}
	if g.InviteQuota < 0 || g.InviteQuota > 100000 {
		errs = append(errs, FieldError{"invite_quota", "The invite quota is a number from 0 to 100,000."})
	}
	if g.QuotaPeriodDays < 1 || g.QuotaPeriodDays > 366 {
		errs = append(errs, FieldError{"quota_period_days", "The quota period is from 1 to 366 days."})
	}
	if g.AttachmentLimitMB < 1 || g.AttachmentLimitMB > 5120 {
		errs = append(errs, FieldError{"attachment_limit_mb", "The attachment limit is from 1 to 5,120 MB (5 GB)."})
	}
	return errs
}

// FieldError is a problem with one input field, to be shown next to it.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError is every problem with a form at once.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return strings.Join(parts, "; ")
}

// For returns the message for one field, or "".
func (e *ValidationError) For(field string) string {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message
		}
	}
	return ""
}

// invalid wraps field errors as an Invalid fault, or returns nil.
func invalid(errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return fault.E(fault.Invalid, "Check the highlighted fields.", &ValidationError{Fields: errs})
}

// FieldErrors returns the field errors inside err, if any.
func FieldErrors(err error) *ValidationError {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return nil
}

// Groups returns every group, built-in ones first, then by name.
func (s *Service) Groups() ([]Group, error) {
	var out []Group
	err := s.st.View(func(tx *store.Tx) error {
		return tx.Scan([]byte(groupPrefix), func(_, value []byte) error {
			var g Group
			if err := json.Unmarshal(value, &g); err != nil {
				return err
			}
			out = append(out, g)
			return nil
		})
	})
	sortGroups(out)
	return out, err
}

func sortGroups(gs []Group) {
	rank := func(g Group) string {
		switch g.ID {
		case GroupProfessional:
			return "0"
		case GroupGuest:
			return "1"
		}
		return "2" + strings.ToLower(g.Name)
	}
	slices.SortFunc(gs, func(a, b Group) int { return strings.Compare(rank(a), rank(b)) })
}

// Group returns one group.
func (s *Service) Group(id string) (Group, error) {
	var g Group
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		g, err = getGroup(tx, id)
		return err
	})
	return g, err
}

func getGroup(tx *store.Tx, id string) (Group, error) {
	g, err := store.GetJSON[Group](tx, groupKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return g, fault.E(fault.NotFound, "no such group", nil)
	}
	return g, err
}

// SaveGroup creates a group (empty ID) or changes one, audited.
func (s *Service) SaveGroup(ctx context.Context, actor string, g Group) (Group, error) {
	g.Name = strings.TrimSpace(g.Name)
	if err := invalid(g.Validate()); err != nil {
		return g, err
	}
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		action := "group.change"
		if g.ID == "" {
			g.ID = "g" + strings.ToLower(rand.Text()[:10])
			action = "group.create"
		} else {
			old, err := getGroup(tx, g.ID)
			if err != nil {
				return err
			}
			g.BuiltIn = old.BuiltIn
		}
		if err := s.uniqueGroupName(tx, g); err != nil {
			return err
		}
		if err := store.PutJSON(tx, groupKey(g.ID), g); err != nil {
			return err
		}
		return s.audit(tx, actor, action, "group/"+g.ID, map[string]string{
			"name": g.Name, "invite_quota": strconv.Itoa(g.InviteQuota), "attachment_limit_mb": strconv.Itoa(g.AttachmentLimitMB),
			"features": fmt.Sprintf("%+v", g.Features), "require_totp": strconv.FormatBool(g.RequireTOTP)})
	})
	return g, err
}

func (s *Service) uniqueGroupName(tx *store.Tx, g Group) error {
	return tx.Scan([]byte(groupPrefix), func(_, value []byte) error {
		var other Group
		if err := json.Unmarshal(value, &other); err != nil {
			return err
		}
		if other.ID != g.ID && strings.EqualFold(other.Name, g.Name) {
			return invalid([]FieldError{{"name", "Another group has this name."}})
		}
		return nil
	})
}
