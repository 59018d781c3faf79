// Package prefs holds a user's display preferences: date and time format,
// first day of the week, time zone, language and signature. Times are stored
// in UTC everywhere; this package only converts them for display, in the
// viewer's zone and format. A time zone is accepted only from the embedded
// list that Zones returns, so a stored preference never names a file outside
// the time zone database (no "Local", no paths), and every zone loads from
// the tzdata compiled into the binary when the system has none.
package prefs

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // every zone loads in the static binary and an image without /usr/share/zoneinfo
	"unicode"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/internal/i18n"
)

// Limits of the signature.
const (
	MaxSignatureRunes = 2000
	MaxSignatureLines = 20
)

// Prefs is one user's display preferences.
type Prefs struct {
	DateFormat  string `json:"date_format"`  // a DateFormats value
	Clock24     bool   `json:"clock24"`      // 15:04 rather than 3:04 PM
	WeekStart   string `json:"week_start"`   // a WeekStarts value
	TimeZone    string `json:"time_zone"`    // an IANA name from Zones
	Language    string `json:"language"`     // a language of the i18n catalogue
	Signature   string `json:"signature"`    // plain text appended to new messages
	WelcomeSeen bool   `json:"welcome_seen"` // the admin's welcome message was shown once
}

// Defaults are the preferences of a user who never saved any.
func Defaults() Prefs {
	return Prefs{DateFormat: "iso", Clock24: true, WeekStart: "monday", TimeZone: "UTC", Language: "en"}
}

// Choice is one option of a select: the stored value and what the user sees.
type Choice struct{ Value, Label string }

// dateLayouts are the Go layouts of the date formats, by value.
var dateLayouts = map[string]string{
	"iso":  "2006-01-02",
	"dmy":  "02/01/2006",
	"mdy":  "01/02/2006",
	"long": "2 Jan 2006",
}

// exampleDate is shown in the labels of DateFormats. The day is over 12 so
// that day-first and month-first read differently.
var exampleDate = time.Date(2026, time.December, 31, 0, 0, 0, 0, time.UTC)

// DateFormats are the date formats, each labelled with an example date.
var DateFormats = func() []Choice {
	var cs []Choice
	for _, v := range []string{"iso", "dmy", "mdy", "long"} {
		cs = append(cs, Choice{Value: v, Label: exampleDate.Format(dateLayouts[v])})
	}
	return cs
}()

// WeekStarts are the days a week may start on.
var WeekStarts = []Choice{
	{Value: "monday", Label: "Monday"},
	{Value: "sunday", Label: "Sunday"},
	{Value: "saturday", Label: "Saturday"},
}

var weekdays = map[string]time.Weekday{"monday": time.Monday, "sunday": time.Sunday, "saturday": time.Saturday}

//go:embed zones.txt
var zonesTxt string

// zoneList is UTC, then the embedded names in order; zoneSet holds them.
var zoneList = sync.OnceValue(func() []string {
	zones := []string{"UTC"}
	for line := range strings.Lines(zonesTxt) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "UTC" {
			continue
		}
		zones = append(zones, line)
	}
	return zones
})

var zoneSet = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	for _, z := range zoneList() {
		set[z] = true
	}
	return set
})

// Zones returns the IANA time zone names a user may choose, for a select:
// UTC first, then the others sorted. The caller may change the slice.
func Zones() []string { return slices.Clone(zoneList()) }

// languages are the languages of the i18n catalogue. The catalogue is
// embedded and its own tests load it, so the fallback to English is for a
// defect only.
var languages = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{"en": true}
	if c, err := i18n.Load(); err == nil {
		for _, l := range c.Languages() {
			set[l.Value] = true
		}
	}
	return set
})

// FieldError is one invalid preference. Field is its JSON name; Message is
// short, safe to show, and says what to do.
type FieldError struct{ Field, Message string }

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate reports every invalid preference at once, each naming its field.
func (p Prefs) Validate() []FieldError {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	if _, ok := dateLayouts[p.DateFormat]; !ok {
		bad("date_format", "Choose a date format from the list.")
	}
	if _, ok := weekdays[p.WeekStart]; !ok {
		bad("week_start", "Choose Monday, Sunday or Saturday as the first day of the week.")
	}
	if !zoneSet()[p.TimeZone] {
		bad("time_zone", "Choose a time zone from the list.")
	}
	if !languages()[p.Language] {
		bad("language", "Choose a language from the list.")
	}
	sig := p.Signature
	switch {
	case !utf8.ValidString(sig):
		bad("signature", "Retype the signature: it contains characters that cannot be read.")
	case strings.ContainsFunc(sig, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
		bad("signature", "Remove the control characters from the signature.")
	}
	if n := utf8.RuneCountInString(sig); n > MaxSignatureRunes {
		bad("signature", fmt.Sprintf("Shorten the signature to %d characters or fewer (it has %d).", MaxSignatureRunes, n))
	}
	if n := strings.Count(strings.TrimRight(sig, "\r\n"), "\n") + 1; n > MaxSignatureLines {
		bad("signature", fmt.Sprintf("Shorten the signature to %d lines or fewer (it has %d).", MaxSignatureLines, n))
	}
	return errs
}

// InvalidError is every problem of preferences that Put refused.
type InvalidError struct{ Problems []FieldError }

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the problems of preferences that Put refused, or nil.
func Problems(err error) []FieldError {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Problems
	}
	return nil
}

// locations caches loaded zones by name: loading one reads the zone database.
var locations sync.Map // string → *time.Location

// Location returns the user's time zone, or UTC if it is not one of Zones.
func (p Prefs) Location() *time.Location {
	if p.TimeZone == "UTC" || !zoneSet()[p.TimeZone] {
		return time.UTC
	}
	if loc, ok := locations.Load(p.TimeZone); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return time.UTC
	}
	locations.Store(p.TimeZone, loc)
	return loc
}

// Weekday returns the first day of the user's week, Monday if unset.
func (p Prefs) Weekday() time.Weekday {
	if d, ok := weekdays[p.WeekStart]; ok {
		return d
	}
	return time.Monday
}

func (p Prefs) dateLayout() string {
	if l, ok := dateLayouts[p.DateFormat]; ok {
		return l
	}
	return dateLayouts["iso"]
}

func (p Prefs) timeLayout() string {
	if p.Clock24 {
		return "15:04"
	}
	return "3:04 PM"
}

// Date shows t's date in the user's zone and date format.
func (p Prefs) Date(t time.Time) string { return t.In(p.Location()).Format(p.dateLayout()) }

// Time shows t's time of day in the user's zone: 15:04 or 3:04 PM.
func (p Prefs) Time(t time.Time) string { return t.In(p.Location()).Format(p.timeLayout()) }

// DateTime shows t's date and time in the user's zone and formats.
func (p Prefs) DateTime(t time.Time) string {
	return t.In(p.Location()).Format(p.dateLayout() + " " + p.timeLayout())
}

// Short shows t in a message list, as seen at now in the user's zone: the
// time alone for today, day and month for this year ("2 Jan", or "Jan 2"
// for month-first dates), else the date.
func (p Prefs) Short(t, now time.Time) string {
	loc := p.Location()
	t, now = t.In(loc), now.In(loc)
	ty, tm, td := t.Date()
	ny, nm, nd := now.Date()
	switch {
	case ty == ny && tm == nm && td == nd:
		return t.Format(p.timeLayout())
	case ty == ny && p.DateFormat == "mdy":
		return t.Format("Jan 2")
	case ty == ny:
		return t.Format("2 Jan")
	default:
		return t.Format(p.dateLayout())
	}
}

func key(userID string) []byte { return []byte("prefs/" + userID) }

// Load returns the user's preferences, or Defaults if they never saved any.
// Text fields a stored record lacks take their default.
func Load(tx *store.Tx, userID string) (Prefs, error) {
	if userID == "" {
		return Prefs{}, errors.New("load prefs: empty user id")
	}
	p, err := store.GetJSON[Prefs](tx, key(userID))
	if errors.Is(err, store.ErrNotFound) {
		return Defaults(), nil
	}
	if err != nil {
		return Prefs{}, fmt.Errorf("load prefs: %w", err)
	}
	d := Defaults()
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fill(&p.DateFormat, d.DateFormat)
	fill(&p.WeekStart, d.WeekStart)
	fill(&p.TimeZone, d.TimeZone)
	fill(&p.Language, d.Language)
	return p, nil
}

// Put validates p and saves it as the user's preferences. Invalid
// preferences are refused with a fault.Invalid error listing every problem;
// Problems returns them.
func Put(tx *store.Tx, userID string, p Prefs) error {
	if userID == "" {
		return errors.New("put prefs: empty user id")
	}
	if problems := p.Validate(); len(problems) > 0 {
		invalid := &InvalidError{Problems: problems}
		return fault.E(fault.Invalid, invalid.Error(), invalid)
	}
	if err := store.PutJSON(tx, key(userID), p); err != nil {
		return fmt.Errorf("put prefs: %w", err)
	}
	return nil
}
