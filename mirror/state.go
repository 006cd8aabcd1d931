package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// TargetState is what the sync state file knows of one target.
type TargetState struct {
	Kind string `json:"kind"`
	// Served is the snapshot the target serves, as of its last sync,
	// restore or verify.
	Served string `json:"served,omitempty"`
	// VerifiedAt is when the target last passed a check while serving
	// Served.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// SyncedAt is when the last sync of the target ended, Outcome how
	// (PASSED or FAILED) and Error why it failed.
	SyncedAt time.Time `json:"synced_at,omitzero"`
	Outcome  string    `json:"outcome,omitempty"`
	Error    string    `json:"error,omitempty"`
	// Manifest is the file of the last sync's manifest.
	Manifest string `json:"manifest,omitempty"`
}

// State is the sync state of one release repository and format, kept in
// the state directory as state.json.
type State struct {
	Repo    string                  `json:"repo"`
	Format  string                  `json:"format"`
	Targets map[string]*TargetState `json:"targets"`
}

// maxStateSize bounds a state file.
const maxStateSize = 16 << 20

// ParseState reads a state file, checking its names.
func ParseState(data []byte) (*State, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("mirror state: larger than %d bytes", maxStateSize)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("mirror state: %w", err)
	}
	if err := CheckName("repository", s.Repo); err != nil {
		return nil, fmt.Errorf("mirror state: %w", err)
	}
	if s.Format != "deb" && s.Format != "rpm" {
		return nil, fmt.Errorf("mirror state: format %q", s.Format)
	}
	for name, t := range s.Targets {
		if err := CheckName("target", name); err != nil {
			return nil, fmt.Errorf("mirror state: %w", err)
		}
		if t == nil {
			return nil, fmt.Errorf("mirror state: target %s: empty", name)
		}
		if t.Served != "" {
			if err := CheckName("snapshot", t.Served); err != nil {
				return nil, fmt.Errorf("mirror state: target %s: %w", name, err)
			}
		}
	}
	if s.Targets == nil {
		s.Targets = map[string]*TargetState{}
	}
	return &s, nil
}

// repoDir is the state directory of one release repository and format.
func repoDir(stateDir, name, format string) string {
	return filepath.Join(stateDir, name, format)
}

// LoadState reads the state of repository name and format under
// stateDir; an empty state when there is none yet.
func LoadState(stateDir, name, format string) (*State, error) {
	p := filepath.Join(repoDir(stateDir, name, format), "state.json")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Repo: name, Format: format, Targets: map[string]*TargetState{}}, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if s.Repo != name || s.Format != format {
		return nil, fmt.Errorf("%s: holds the state of %s/%s", p, s.Repo, s.Format)
	}
	return s, nil
}

func (s *State) save(stateDir string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(repoDir(stateDir, s.Repo, s.Format), "state.json"), append(data, '\n'), 0o644)
}

func (s *State) target(t Target) *TargetState {
	ts := s.Targets[t.Name()]
	if ts == nil {
		ts = &TargetState{}
		s.Targets[t.Name()] = ts
	}
	ts.Kind = t.Kind()
	return ts
}
