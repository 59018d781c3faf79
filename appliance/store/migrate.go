package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/sealpost/sealpost/appliance/fault"
)

var schemaKey = append(append([]byte(nil), sysPrefix...), "schema"...)

// Migration moves the data from Version-1 to Version.
type Migration struct {
	Version int
	Name    string
	Apply   func(tx *Tx) error
}

// SchemaVersion returns the version the data is at (0 for a new store).
func (s *Store) SchemaVersion() (int, error) {
	var v int
	err := s.View(func(tx *Tx) error {
		var err error
		v, err = schemaVersion(tx)
		return err
	})
	return v, err
}

func schemaVersion(tx *Tx) (int, error) {
	data, err := tx.Get(schemaKey)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(data))
}

// Migrate runs the migrations the data has not had yet, in order, each in
// its own durable transaction that also records the new version. It refuses
// data written by a newer schema than the last migration.
func (s *Store) Migrate(ctx context.Context, migrations []Migration) error {
	latest := 0
	for i, m := range migrations {
		if m.Version != i+1 {
			return fmt.Errorf("migration %q has version %d, want %d: versions must count up from 1", m.Name, m.Version, i+1)
		}
		latest = m.Version
	}
	current, err := s.SchemaVersion()
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > latest {
		return fault.E(fault.Invalid, fmt.Sprintf(
			"the data in %s was written by a newer sealpost (schema %d; this binary knows %d); upgrade the binary", s.dir, current, latest), nil)
	}
	if current < latest && s.before != nil {
		if err := s.before(current, latest); err != nil {
			return fmt.Errorf("before migrating from schema %d to %d: %w", current, latest, err)
		}
	}
	for _, m := range migrations[current:] {
		err := s.Update(ctx, func(tx *Tx) error {
			if v, err := schemaVersion(tx); err != nil || v != m.Version-1 {
				return fmt.Errorf("schema version changed under the migration (now %d): %w", v, err)
			}
			if err := m.Apply(tx); err != nil {
				return err
			}
			return tx.put(schemaKey, []byte(strconv.Itoa(m.Version)))
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		s.log.Info().Int("version", m.Version).Str("migration", m.Name).Msg("schema migrated")
	}
	return nil
}
