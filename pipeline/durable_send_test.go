package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/store"
	"github.com/sluice-ci/sluice/zuul"
)

// refusingReporter refuses the reports of one change for good.
type refusingReporter struct {
	mu      sync.Mutex
	refuse  int
	posted  []int
	refused int
}

func (r *refusingReporter) Report(_ context.Context, rep Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rep.Change.Number == r.refuse {
		r.refused++
		return fmt.Errorf("%w: change is gone", ErrReportRefused)
	}
	r.posted = append(r.posted, rep.Change.Number)
	return nil
}

// TestReportRefusedIsGivenUp: a report the source refuses for good is
// given up at once, and the reports behind it go out.
func TestReportRefusedIsGivenUp(t *testing.T) {
	t.Parallel()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := NewStateStore(db, zuul.NewJournal(db), nil)
	var actions []Action
	for n := 1; n <= 3; n++ {
		actions = append(actions, Report{Pipeline: "check", Change: zuul.Change{Project: "p", Number: n, Patchset: 1}, Action: "success"})
	}
	if err := st.Save(t.Context(), []byte(`{}`), 0, actions); err != nil {
		t.Fatal(err)
	}
	rep := &refusingReporter{refuse: 2}
	r := &Runner{parts: Parts{Reporter: rep, Persist: st}, log: slog.New(slog.DiscardHandler), wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.sendDurable(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rep.mu.Lock()
		n := len(rep.posted)
		rep.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("posted %v, refused %d: the refused report holds the others", rep.posted, rep.refused)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if rep.refused != 1 || rep.posted[0] != 1 || rep.posted[1] != 3 {
		t.Fatalf("posted %v, refused %d times", rep.posted, rep.refused)
	}
	if qs, err := st.Unsent(t.Context(), 10); err != nil || len(qs) != 0 {
		t.Fatalf("unsent %+v %v", qs, err)
	}
}
