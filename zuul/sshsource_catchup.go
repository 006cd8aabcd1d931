package zuul

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxCatchUpPages bounds the --start pages of one catch-up.
const maxCatchUpPages = 100

// CatchUpArgs are the arguments, after "gerrit query", of the catch-up
// query for changes updated in the last age (rounded up to the second),
// from result start on (0 for the first page). Fakes of Gerrit answer
// them.
func CatchUpArgs(age time.Duration, start int) []string {
	secs := max(int64(math.Ceil(age.Seconds())), 1)
	args := []string{"--format", "json", "--current-patch-set", "--all-approvals", "--comments", "--dependencies", "--submit-records"}
	if start > 0 {
		args = append(args, "--start", strconv.Itoa(start))
	}
	return append(args, fmt.Sprintf("status:open -age:%ds", secs))
}

// catchUp sends the events synthesized from the open changes updated since
// since minus CatchupMargin; see SSHSource.
func (s *SSHSource) catchUp(ctx context.Context, client *ssh.Client, out chan<- Event, since time.Time) error {
	cutoff := since.Add(-s.cfg.CatchupMargin)
	age := time.Since(cutoff)
	var evs []Event
	start, changes := 0, 0
	for page := 0; ; page++ {
		if page == maxCatchUpPages {
			return fmt.Errorf("gerrit ssh %s: catch-up: more than %d pages of changes", s.cfg.Addr, maxCatchUpPages)
		}
		rows, st, err := s.query(ctx, client, CatchUpArgs(age, start))
		if err != nil {
			return fmt.Errorf("gerrit ssh %s: catch-up: %w", s.cfg.Addr, err)
		}
		changes += len(rows)
		for _, r := range rows {
			evs = append(evs, synthesize(r, cutoff)...)
		}
		if !st.MoreChanges || len(rows) == 0 {
			break
		}
		start += len(rows)
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Created.Compare(b.Created) })
	s.log.Info("gerrit catch-up", "cutoff", cutoff, "changes", changes, "events", len(evs))
	for _, ev := range evs {
		if err := send(ctx, out, ev); err != nil {
			return err
		}
	}
	return nil
}

// query runs `gerrit query` with args and parses its output.
func (s *SSHSource) query(ctx context.Context, client *ssh.Client, args []string) ([]queryRow, QueryStats, error) {
	cmd, err := commandLine(append([]string{"gerrit", "query"}, args...))
	if err != nil {
		return nil, QueryStats{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	sess, err := client.NewSession()
	if err != nil {
		return nil, QueryStats{}, fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, QueryStats{}, err
	}
	stderr := &tailBuffer{max: 4096}
	sess.Stderr = stderr
	if err := sess.Start(cmd); err != nil {
		return nil, QueryStats{}, fmt.Errorf("%s: %w", cmd, err)
	}
	rows, st, perr := parseQuery(stdout)
	if perr != nil {
		sess.Close()
	}
	werr := sess.Wait()
	if ctx.Err() != nil {
		return nil, st, fmt.Errorf("%s: %w", cmd, ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	if werr != nil && perr == nil {
		perr = werr
	}
	if perr != nil {
		if msg != "" {
			return nil, st, fmt.Errorf("%s: %w (stderr: %s)", cmd, perr, msg)
		}
		return nil, st, fmt.Errorf("%s: %w", cmd, perr)
	}
	return rows, st, nil
}

// commandLine joins args into the command line of an SSH exec request, as
// Gerrit's command parser splits it: arguments with anything but safe
// characters are single-quoted. Arguments holding a quote or a control
// character are refused (sluice never makes such).
func commandLine(args []string) (string, error) {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@,+") == "" {
			b.WriteString(a)
			continue
		}
		if strings.ContainsAny(a, `'"\`) || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", errors.New("gerrit ssh: refusing a command argument with a quote, backslash or control character")
		}
		b.WriteString("'" + a + "'")
	}
	return b.String(), nil
}

// synthesize makes the events of one queried change that happened at or
// after cutoff: patchset-created for a new current patch set, comment-added
// for review messages on it and for votes on it. See SSHSource.
func synthesize(r queryRow, cutoff time.Time) []Event {
	c, ps, from := r.change, r.raw.CurrentPatchSet, cutoff.Unix()
	newEvent := func(t EventType, who Account, at int64) Event {
		cc := c
		cc.Parents = slices.Clone(c.Parents)
		cc.Approvals = slices.Clone(c.Approvals)
		return Event{Type: t, Project: c.Project, Branch: c.Branch, Change: &cc, Account: who, Created: time.Unix(at, 0).UTC(), Synthetic: true}
	}
	var evs []Event
	if ps.CreatedOn >= from {
		evs = append(evs, newEvent(PatchsetCreated, account(ps.Uploader), ps.CreatedOn))
	}
	type key struct {
		who Account
		at  int64
	}
	votes := map[key][]Approval{}
	var order []key
	for i, ga := range ps.Approvals {
		if ga.GrantedOn < from {
			continue
		}
		k := key{account(ga.By), ga.GrantedOn}
		if _, ok := votes[k]; !ok {
			order = append(order, k)
		}
		votes[k] = append(votes[k], c.Approvals[i])
	}
	for _, m := range r.raw.Comments {
		if m.Timestamp < from || reviewPatchSet(m.Message) != c.Patchset {
			continue
		}
		k := key{account(m.Reviewer), m.Timestamp}
		ev := newEvent(CommentAdded, k.who, m.Timestamp)
		ev.Comment = m.Message
		ev.Approvals = votes[k]
		delete(votes, k)
		evs = append(evs, ev)
	}
	for _, k := range order {
		if v, ok := votes[k]; ok {
			ev := newEvent(CommentAdded, k.who, k.at)
			ev.Approvals = v
			evs = append(evs, ev)
		}
	}
	return evs
}

// reviewPatchSet is N of a review message "Patch Set N: ...", 0 for other
// messages (uploads, merges, abandons, which Gerrit writes itself).
func reviewPatchSet(msg string) int {
	rest, ok := strings.CutPrefix(msg, "Patch Set ")
	if !ok {
		return 0
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || num[0] == '+' {
		return 0
	}
	return n
}
