package prefs

import (
	"archive/zip"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func with(zone, format string, clock24 bool) Prefs {
	p := Defaults()
	p.TimeZone, p.DateFormat, p.Clock24 = zone, format, clock24
	return p
}

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		p              Prefs
		t              time.Time
		date, tm, both string
	}{
		{"utc iso 24h", Defaults(), utc(2026, 7, 1, 9, 5), "2026-07-01", "09:05", "2026-07-01 09:05"},
		{"dmy", with("UTC", "dmy", true), utc(2026, 3, 4, 17, 30), "04/03/2026", "17:30", "04/03/2026 17:30"},
		{"mdy", with("UTC", "mdy", true), utc(2026, 3, 4, 17, 30), "03/04/2026", "17:30", "03/04/2026 17:30"},
		{"long", with("UTC", "long", true), utc(2026, 3, 4, 17, 30), "4 Mar 2026", "17:30", "4 Mar 2026 17:30"},
		{"12h midnight", with("UTC", "iso", false), utc(2026, 3, 4, 0, 0), "2026-03-04", "12:00 AM", "2026-03-04 12:00 AM"},
		{"12h noon", with("UTC", "iso", false), utc(2026, 3, 4, 12, 0), "2026-03-04", "12:00 PM", "2026-03-04 12:00 PM"},
		{"12h afternoon", with("UTC", "iso", false), utc(2026, 3, 4, 15, 7), "2026-03-04", "3:07 PM", "2026-03-04 3:07 PM"},
		// New York: EST −5 until 2026-03-08 02:00 local, then EDT −4.
		{"new york before dst", with("America/New_York", "iso", true), utc(2026, 3, 8, 6, 59), "2026-03-08", "01:59", "2026-03-08 01:59"},
		{"new york after dst", with("America/New_York", "iso", true), utc(2026, 3, 8, 7, 0), "2026-03-08", "03:00", "2026-03-08 03:00"},
		{"new york previous day", with("America/New_York", "mdy", false), utc(2026, 1, 1, 3, 0), "12/31/2025", "10:00 PM", "12/31/2025 10:00 PM"},
		// Kolkata: +5:30 all year.
		{"kolkata next day", with("Asia/Kolkata", "dmy", true), utc(2026, 6, 30, 18, 30), "01/07/2026", "00:00", "01/07/2026 00:00"},
		{"kolkata half hour", with("Asia/Kolkata", "long", false), utc(2026, 1, 15, 6, 45), "15 Jan 2026", "12:15 PM", "15 Jan 2026 12:15 PM"},
		// Chatham: +12:45 in the southern winter, +13:45 in summer.
		{"chatham winter", with("Pacific/Chatham", "iso", true), utc(2026, 6, 30, 11, 15), "2026-07-01", "00:00", "2026-07-01 00:00"},
		{"chatham summer", with("Pacific/Chatham", "iso", true), utc(2026, 12, 31, 10, 15), "2027-01-01", "00:00", "2027-01-01 00:00"},
		{"bad zone falls back to utc", with("Mars/Olympus", "iso", true), utc(2026, 6, 30, 11, 15), "2026-06-30", "11:15", "2026-06-30 11:15"},
		{"local refused, utc used", with("Local", "iso", true), utc(2026, 6, 30, 11, 15), "2026-06-30", "11:15", "2026-06-30 11:15"},
		{"non-utc input converted", Defaults(), time.Date(2026, 6, 30, 23, 0, 0, 0, time.FixedZone("x", -3*3600)), "2026-07-01", "02:00", "2026-07-01 02:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.p.Date(tc.t); got != tc.date {
				t.Errorf("Date = %q, want %q", got, tc.date)
			}
			if got := tc.p.Time(tc.t); got != tc.tm {
				t.Errorf("Time = %q, want %q", got, tc.tm)
			}
			if got := tc.p.DateTime(tc.t); got != tc.both {
				t.Errorf("DateTime = %q, want %q", got, tc.both)
			}
		})
	}
}

func TestShort(t *testing.T) {
	t.Parallel()
	now := utc(2026, 7, 1, 10, 0) // 15:30 in Kolkata
	tests := []struct {
		name string
		p    Prefs
		t    time.Time
		want string
	}{
		{"today", Defaults(), utc(2026, 7, 1, 8, 3), "08:03"},
		{"today 12h", with("UTC", "iso", false), utc(2026, 7, 1, 0, 3), "12:03 AM"},
		{"yesterday", Defaults(), utc(2026, 6, 30, 23, 59), "30 Jun"},
		{"this year dmy", with("UTC", "dmy", true), utc(2026, 1, 2, 8, 0), "2 Jan"},
		{"this year long", with("UTC", "long", true), utc(2026, 1, 2, 8, 0), "2 Jan"},
		{"this year mdy", with("UTC", "mdy", true), utc(2026, 1, 2, 8, 0), "Jan 2"},
		{"other year iso", Defaults(), utc(2025, 12, 31, 23, 0), "2025-12-31"},
		{"other year mdy", with("UTC", "mdy", true), utc(2025, 12, 31, 23, 0), "12/31/2025"},
		{"other year long", with("UTC", "long", true), utc(2024, 2, 29, 12, 0), "29 Feb 2024"},
		// 19:00 UTC on 30 June is 00:30 on 1 July in Kolkata: today there.
		{"today in the user's zone", with("Asia/Kolkata", "iso", true), utc(2026, 6, 30, 19, 0), "00:30"},
		{"not today in utc", Defaults(), utc(2026, 6, 30, 19, 0), "30 Jun"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.p.Short(tc.t, now); got != tc.want {
				t.Errorf("Short = %q, want %q", got, tc.want)
			}
		})
	}
	// At 21:00 on 31 December 2025 in New York (02:00 UTC on 1 January
	// 2026), a message from June 2025 is from this year.
	ny := with("America/New_York", "iso", true)
	if got := ny.Short(utc(2025, 6, 1, 12, 0), utc(2026, 1, 1, 2, 0)); got != "1 Jun" {
		t.Errorf("Short across the year in New York = %q, want 1 Jun", got)
	}
	if got := Defaults().Short(utc(2025, 6, 1, 12, 0), utc(2026, 1, 1, 2, 0)); got != "2025-06-01" {
		t.Errorf("Short across the year in UTC = %q, want 2025-06-01", got)
	}
}

func TestChoices(t *testing.T) {
	t.Parallel()
	want := []Choice{{"iso", "2026-12-31"}, {"dmy", "31/12/2026"}, {"mdy", "12/31/2026"}, {"long", "31 Dec 2026"}}
	if !slices.Equal(DateFormats, want) {
		t.Errorf("DateFormats = %v, want %v", DateFormats, want)
	}
	for _, c := range DateFormats {
		p := Defaults()
		p.DateFormat = c.Value
		if errs := p.Validate(); len(errs) != 0 {
			t.Errorf("date format %s: %v", c.Value, errs)
		}
	}
	wantDays := map[string]time.Weekday{"monday": time.Monday, "sunday": time.Sunday, "saturday": time.Saturday}
	if len(WeekStarts) != len(wantDays) {
		t.Errorf("WeekStarts = %v", WeekStarts)
	}
	for _, c := range WeekStarts {
		p := Defaults()
		p.WeekStart = c.Value
		if errs := p.Validate(); len(errs) != 0 {
			t.Errorf("week start %s: %v", c.Value, errs)
		}
		if p.Weekday() != wantDays[c.Value] || c.Label != wantDays[c.Value].String() {
			t.Errorf("week start %v: Weekday %v", c, p.Weekday())
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults()
	want := Prefs{DateFormat: "iso", Clock24: true, WeekStart: "monday", TimeZone: "UTC", Language: "en"}
	if d != want {
		t.Errorf("Defaults = %+v, want %+v", d, want)
	}
	if errs := d.Validate(); len(errs) != 0 {
		t.Errorf("Defaults are invalid: %v", errs)
	}
	if d.Location() != time.UTC {
		t.Errorf("Defaults().Location() = %v", d.Location())
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Prefs)
		want []FieldError // nil: valid
	}{
		{"defaults", func(*Prefs) {}, nil},
		{"zone from the list", func(p *Prefs) { p.TimeZone = "Pacific/Chatham" }, nil},
		{"12h and a signature", func(p *Prefs) {
			p.Clock24, p.Signature = false, "Dr. Anna Weiß\r\nPraxis am Markt\r\n\tTel. 030 1234"
		}, nil},
		{"20 lines and a trailing newline", func(p *Prefs) { p.Signature = strings.Repeat("line\n", 20) }, nil},
		{"2000 runes", func(p *Prefs) { p.Signature = strings.Repeat("ß", MaxSignatureRunes) }, nil},
		{"unknown date format", func(p *Prefs) { p.DateFormat = "2006-01-02" },
			[]FieldError{{"date_format", "Choose a date format from the list."}}},
		{"unknown week start", func(p *Prefs) { p.WeekStart = "friday" },
			[]FieldError{{"week_start", "Choose Monday, Sunday or Saturday as the first day of the week."}}},
		{"unknown zone", func(p *Prefs) { p.TimeZone = "Europe/Atlantis" },
			[]FieldError{{"time_zone", "Choose a time zone from the list."}}},
		{"empty zone", func(p *Prefs) { p.TimeZone = "" }, []FieldError{{"time_zone", "Choose a time zone from the list."}}},
		{"local zone", func(p *Prefs) { p.TimeZone = "Local" }, []FieldError{{"time_zone", "Choose a time zone from the list."}}},
		{"zone as a path", func(p *Prefs) { p.TimeZone = "../../etc/passwd" }, []FieldError{{"time_zone", "Choose a time zone from the list."}}},
		{"unknown language", func(p *Prefs) { p.Language = "xx" }, []FieldError{{"language", "Choose a language from the list."}}},
		{"signature too long", func(p *Prefs) { p.Signature = strings.Repeat("a", MaxSignatureRunes+1) },
			[]FieldError{{"signature", "Shorten the signature to 2000 characters or fewer (it has 2001)."}}},
		{"signature too many lines", func(p *Prefs) { p.Signature = strings.Repeat("line\r\n", 21) },
			[]FieldError{{"signature", "Shorten the signature to 20 lines or fewer (it has 21)."}}},
		{"signature control character", func(p *Prefs) { p.Signature = "Anna\x1b[31m" },
			[]FieldError{{"signature", "Remove the control characters from the signature."}}},
		{"signature not utf-8", func(p *Prefs) { p.Signature = "Anna \xff" },
			[]FieldError{{"signature", "Retype the signature: it contains characters that cannot be read."}}},
		{"every problem at once", func(p *Prefs) {
			*p = Prefs{Signature: strings.Repeat("x\n", 30)}
		}, []FieldError{
			{"date_format", "Choose a date format from the list."},
			{"week_start", "Choose Monday, Sunday or Saturday as the first day of the week."},
			{"time_zone", "Choose a time zone from the list."},
			{"language", "Choose a language from the list."},
			{"signature", "Shorten the signature to 20 lines or fewer (it has 30)."},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Defaults()
			tc.edit(&p)
			if got := p.Validate(); !slices.Equal(got, tc.want) {
				t.Errorf("Validate =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestZones(t *testing.T) {
	t.Parallel()
	zones := Zones()
	if len(zones) < 300 || zones[0] != "UTC" {
		t.Fatalf("Zones has %d names, first %q; want hundreds, UTC first", len(zones), zones[0])
	}
	if !slices.IsSorted(zones[1:]) {
		t.Error("Zones after UTC are not sorted")
	}
	if len(slices.Compact(slices.Clone(zones[1:]))) != len(zones)-1 || slices.Contains(zones[1:], "UTC") {
		t.Error("Zones holds a name twice")
	}
	for _, z := range []string{"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe"} {
		if !slices.Contains(zones, z) {
			t.Errorf("Zones lacks %s", z)
		}
	}
	zones[0] = "changed"
	if Zones()[0] != "UTC" {
		t.Error("changing the result of Zones changed the list")
	}
	for _, z := range Zones() {
		if _, err := time.LoadLocation(z); err != nil {
			t.Errorf("zone %s does not load: %v", z, err)
		}
		p := Defaults()
		p.TimeZone = z
		if z != "UTC" && p.Location() == time.UTC {
			t.Errorf("Location for %s is UTC", z)
		}
		if errs := p.Validate(); len(errs) != 0 {
			t.Errorf("zone %s: %v", z, errs)
		}
	}
}

// TestZonesInGoTZData checks every zone against Go's own zoneinfo.zip, the
// data that time/tzdata embeds: the zones then load in the static binary
// and in an image without /usr/share/zoneinfo, where the system database
// that time.LoadLocation tries first is missing.
func TestZonesInGoTZData(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v; cannot find Go's zoneinfo.zip", err)
	}
	name := filepath.Join(strings.TrimSpace(string(out)), "lib", "time", "zoneinfo.zip")
	zr, err := zip.OpenReader(name)
	if err != nil {
		t.Skipf("Go's time zone database is not at %s: %v", name, err)
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	for _, z := range Zones() {
		f, ok := files[z]
		if !ok {
			t.Errorf("zone %s is not in %s", z, name)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := time.LoadLocationFromTZData(z, data); err != nil {
			t.Errorf("zone %s from Go's tzdata: %v", z, err)
		}
	}
}

func TestLoadPut(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Open(t, t.TempDir())
	ctx := context.Background()

	var got Prefs
	err := st.View(func(tx *store.Tx) error {
		var err error
		got, err = Load(tx, "u1")
		return err
	})
	if err != nil || got != Defaults() {
		t.Fatalf("Load before Put = %+v, %v; want defaults", got, err)
	}

	want := Prefs{DateFormat: "mdy", Clock24: false, WeekStart: "sunday", TimeZone: "America/New_York",
		Language: "en", Signature: "Anna\nClinic", WelcomeSeen: true}
	if err := st.Update(ctx, func(tx *store.Tx) error { return Put(tx, "u1", want) }); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *store.Tx) error {
		var err error
		got, err = Load(tx, "u1")
		if err != nil {
			return err
		}
		other, err := Load(tx, "u2")
		if other != Defaults() {
			t.Errorf("another user's prefs = %+v", other)
		}
		return err
	})
	if err != nil || got != want {
		t.Errorf("Load after Put = %+v, %v; want %+v", got, err, want)
	}

	// Invalid prefs are refused with every problem and change nothing.
	bad := want
	bad.TimeZone, bad.WeekStart = "Europe/Atlantis", "friday"
	err = st.Update(ctx, func(tx *store.Tx) error { return Put(tx, "u1", bad) })
	if fault.KindOf(err) != fault.Invalid {
		t.Errorf("Put of invalid prefs: %v, want an invalid error", err)
	}
	if msg := fault.Message(err); !strings.Contains(msg, "time_zone: ") || !strings.Contains(msg, "week_start: ") {
		t.Errorf("message %q does not list both problems", msg)
	}
	if ps := Problems(err); len(ps) != 2 {
		t.Errorf("Problems = %v, want 2", ps)
	}
	st.View(func(tx *store.Tx) error {
		if got, err := Load(tx, "u1"); err != nil || got != want {
			t.Errorf("after a refused Put: %+v, %v", got, err)
		}
		return nil
	})

	// A stored record that lacks text fields gets their defaults.
	err = st.Update(ctx, func(tx *store.Tx) error {
		return store.PutJSON(tx, []byte("prefs/u3"), map[string]any{"clock24": false})
	})
	if err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *store.Tx) error {
		got, err := Load(tx, "u3")
		wantOld := Defaults()
		wantOld.Clock24 = false
		if err != nil || got != wantOld {
			t.Errorf("Load of a partial record = %+v, %v; want %+v", got, err, wantOld)
		}
		return nil
	})

	if err := st.Update(ctx, func(tx *store.Tx) error { return Put(tx, "", Defaults()) }); err == nil {
		t.Error("Put with an empty user id succeeded")
	}
	if err := st.View(func(tx *store.Tx) error { _, err := Load(tx, ""); return err }); err == nil {
		t.Error("Load with an empty user id succeeded")
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return store.PutJSON(tx, []byte("prefs/u4"), "not an object") }); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *store.Tx) error { _, err := Load(tx, "u4"); return err })
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of a corrupt record: %v, want a decode error", err)
	}
}
