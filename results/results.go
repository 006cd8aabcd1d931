package results

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// ErrNotFound is returned, wrapped, for a result, testcase or group that
// does not exist.
var ErrNotFound = errors.New("results: not found")

// ValidationError says that a result or a query is not valid. Field names
// the offending field as the ResultsDB API spells it: "outcome",
// "testcase.name", "groups", "data", "submit_time", "page", "limit",
// "_distinct_on".
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("results: invalid %s: %s", e.Field, e.Reason)
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// PresetOutcomes are the outcomes every ResultsDB accepts.
var PresetOutcomes = []string{"PASSED", "INFO", "FAILED", "NEEDS_INSPECTION"}

// DefaultAdditionalOutcomes are the outcomes accepted beside
// [PresetOutcomes] when [Config] names none: those of a stage that has
// not ended, and of one that could not run.
var DefaultAdditionalOutcomes = []string{"QUEUED", "RUNNING", "ERROR"}

// Limits of the schema, as upstream's.
const (
	maxTestcaseName = 255
	maxGroupUUID    = 36
	maxOutcome      = 32
	// DefaultLimit is the page size when a query gives none.
	DefaultLimit = 20
)

// Config is the results section of sluice's configuration.
type Config struct {
	// AdditionalOutcomes are accepted beside PresetOutcomes, as upstream's
	// ADDITIONAL_RESULT_OUTCOMES. Nil means DefaultAdditionalOutcomes; an
	// empty list, none.
	AdditionalOutcomes []string `yaml:"additional_outcomes"`
}

// Validate checks that every additional outcome is an upper-case word of
// at most 32 characters.
func (c Config) Validate() error {
	for _, o := range c.AdditionalOutcomes {
		if o == "" || len(o) > maxOutcome || strings.ToUpper(o) != o || strings.ContainsAny(o, " ,\t\n") {
			return fmt.Errorf("results: additional_outcomes: %q is not an upper-case word of 1 to %d characters", o, maxOutcome)
		}
	}
	return nil
}

// Outcomes returns every outcome that c accepts.
func (c Config) Outcomes() []string {
	extra := c.AdditionalOutcomes
	if extra == nil {
		extra = DefaultAdditionalOutcomes
	}
	return slices.Concat(PresetOutcomes, extra)
}

// Result is a ResultsDB result.
type Result struct {
	ID       int64
	Testcase Testcase
	// Groups are the UUIDs of the result's groups.
	Groups []string
	// SubmitTime is in UTC, to the millisecond.
	SubmitTime time.Time
	Outcome    string
	Note       string
	RefURL     string
	// Data holds the result's extra data: a key may have several values,
	// kept in the order given.
	Data map[string][]string
}

// Testcase is a ResultsDB testcase, named by Name, which may contain '/'.
type Testcase struct {
	Name   string
	RefURL string
}

// Group is a ResultsDB group of results.
type Group struct {
	UUID        string
	Description string
	RefURL      string
}

// Store keeps results in a store.DB.
type Store struct {
	db       *store.DB
	outcomes []string
}

// NewStore returns a Store on db that accepts the outcomes of cfg, which
// the caller has validated.
func NewStore(db *store.DB, cfg Config) *Store {
	return &Store{db: db, outcomes: cfg.Outcomes()}
}

// Outcomes returns the outcomes that s accepts.
func (s *Store) Outcomes() []string { return slices.Clone(s.outcomes) }

// outcome returns o as stored (trimmed, upper case), or an error if s does
// not accept it.
func (s *Store) outcome(o string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(o))
	if !slices.Contains(s.outcomes, n) {
		return "", invalid("outcome", "%q is not one of %s", o, strings.Join(s.outcomes, ", "))
	}
	return n, nil
}
