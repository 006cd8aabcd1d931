package pipeline

import (
	"encoding/json"
	"fmt"
	"time"
)

// Snapshot returns the scheduler's whole state as JSON, to be stored and
// given to [Restore] after a restart.
func (s *Scheduler) Snapshot() ([]byte, error) {
	b, err := json.Marshal(&s.st)
	if err != nil {
		return nil, fmt.Errorf("pipeline: snapshot: %w", err)
	}
	return b, nil
}

// Restore makes a scheduler from a snapshot and returns the actions that
// pick up where it stopped: the stage runs that were running become new
// attempts (their old attempts are cancelled, in case they still run),
// merges not answered are asked again and submits not answered are sent
// again (a submit of a merged change answers merged).
func Restore(cfg *Config, now func() time.Time, snapshot []byte) (*Scheduler, []Action, error) {
	s, err := NewScheduler(cfg, now, "restore")
	if err != nil {
		return nil, nil, err
	}
	var st State
	if err := json.Unmarshal(snapshot, &st); err != nil {
		return nil, nil, fmt.Errorf("pipeline: restore: %w", err)
	}
	if st.Buildsets == nil {
		st.Buildsets = map[string]*Buildset{}
	}
	// Keep the configured pipelines, in the configuration's order.
	byName := map[string]*PipelineState{}
	for _, ps := range st.Pipelines {
		byName[ps.Name] = ps
	}
	st.Pipelines = st.Pipelines[:0]
	for _, p := range cfg.Pipelines {
		ps := byName[p.Name]
		if ps == nil {
			ps = &PipelineState{Name: p.Name}
		}
		st.Pipelines = append(st.Pipelines, ps)
	}
	s.st = st
	for _, ps := range s.st.Pipelines {
		p := s.cfg.pipeline(ps.Name)
		for _, q := range ps.Queues {
			for _, it := range q.Items {
				bs := s.st.Buildsets[it.Buildset]
				if bs == nil {
					it.Buildset = ""
					continue
				}
				switch {
				case it.Submitting:
					s.emit(Submit{Pipeline: p.Name, Buildset: bs.ID, Change: it.Change, Votes: votesOf(p.Success),
						Message: fmt.Sprintf("Build succeeded (%s pipeline).", p.Name), Stages: bs.summary()})
				case bs.State == Merging:
					s.emit(RequestMerge{Pipeline: p.Name, Buildset: bs.ID, Changes: bs.Changes})
				}
				for _, r := range bs.Runs {
					if r.State == Running {
						s.emit(CancelStage{Buildset: bs.ID, Stage: r.Stage, Attempt: r.Attempt})
						r.State = Pending // dispatched again as attempt+1
					}
				}
			}
		}
	}
	s.process()
	out := s.out
	s.out = nil
	return s, out, nil
}
