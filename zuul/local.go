package zuul

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sluice-ci/sluice/store"
)

// LocalSource is the name the local source's events are journalled under.
const LocalSource = "local"

// ErrNoChange reports a change number the local source does not know.
var ErrNoChange = errors.New("zuul: no such change")

// ErrVotesClosed reports votes on a change that is merged or abandoned;
// a message alone is still taken.
var ErrVotesClosed = errors.New("zuul: votes are closed")

// LocalProject is a project of the local source: a git repository on this
// machine, and its target branch.
type LocalProject struct {
	Name string `yaml:"name"`
	// Path is the repository (a work tree's or a bare one).
	Path   string `yaml:"path"`
	Branch string `yaml:"branch"`
}

// Local is the local source of the embedded default: Gerrit's change
// workflow on local git repositories, with no Gerrit. Changes, patchsets,
// votes and messages live in the store; every action journals the event
// Gerrit would have sent, in the same transaction.
type Local struct {
	db       *store.DB
	journal  *Journal
	projects map[string]LocalProject
	// Merge makes the merge commit of a submit that cannot fast-forward:
	// it returns the commit merging theirs into ours, or an error
	// wrapping ErrNotSubmittable on a conflict.
	merge MergeFunc
	now   func() time.Time
}

// MergeFunc merges commit theirs into ours in repo as Gerrit's
// merge-if-necessary submit would, and returns the merge commit.
type MergeFunc func(ctx context.Context, repo *git.Repository, ours, theirs plumbing.Hash, message string) (plumbing.Hash, error)

// NewLocal returns the local source over projects, journalling into j.
func NewLocal(db *store.DB, j *Journal, projects []LocalProject, merge MergeFunc) (*Local, error) {
	l := &Local{db: db, journal: j, projects: map[string]LocalProject{}, merge: merge, now: time.Now}
	for _, p := range projects {
		if err := checkProjectName(p.Name); err != nil {
			return nil, err
		}
		if p.Branch == "" {
			p.Branch = "main"
		}
		if err := checkBranchName(p.Branch); err != nil {
			return nil, fmt.Errorf("local project %s: %w", p.Name, err)
		}
		if _, dup := l.projects[p.Name]; dup {
			return nil, fmt.Errorf("local project %s: given twice", p.Name)
		}
		l.projects[p.Name] = p
	}
	return l, nil
}

var (
	projectNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)
	branchNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	changeIDRE    = regexp.MustCompile(`(?m)^Change-Id: (I[0-9a-f]{40})\s*$`)
)

func checkProjectName(name string) error {
	if len(name) > 255 || !projectNameRE.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".git") {
		return fmt.Errorf("project name %q: want letters, digits, . _ - and / between parts", name)
	}
	return nil
}

func checkBranchName(name string) error {
	if len(name) > 255 || !branchNameRE.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".lock") || strings.Contains(name, "//") {
		return fmt.Errorf("branch name %q is not a safe git branch name", name)
	}
	return nil
}

func (l *Local) project(name string) (LocalProject, *git.Repository, error) {
	p, ok := l.projects[name]
	if !ok {
		return LocalProject{}, nil, fmt.Errorf("local: project %q is not configured (known: %s)", name,
			strings.Join(slices.Sorted(maps.Keys(l.projects)), ", "))
	}
	repo, err := git.PlainOpen(p.Path)
	if err != nil {
		return p, nil, fmt.Errorf("local project %s: open %s: %w", name, p.Path, err)
	}
	return p, repo, nil
}

// Propose makes the commit that rev names in project's repository a
// patchset, as a push to refs/for/<branch> would: a new change, or a new
// patchset of the open change with the same Change-Id. It writes the
// change ref into the repository and journals patchset-created.
func (l *Local) Propose(ctx context.Context, project, rev string, owner Account) (*Change, error) {
	p, repo, err := l.project(project)
	if err != nil {
		return nil, err
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("local project %s: revision %q: %w", project, rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, fmt.Errorf("local project %s: commit %s: %w", project, h, err)
	}
	tip, err := repo.Reference(plumbing.NewBranchReferenceName(p.Branch), true)
	if err != nil {
		return nil, fmt.Errorf("local project %s: branch %s: %w", project, p.Branch, err)
	}
	if tip.Hash() == c.Hash {
		return nil, fmt.Errorf("local project %s: %s is the tip of %s already: no new changes", project, c.Hash, p.Branch)
	}
	changeID := changeIDOf(project, p.Branch, c)
	parents := make([]string, 0, c.NumParents())
	for _, ph := range c.ParentHashes {
		parents = append(parents, ph.String())
	}
	parentsJSON, _ := json.Marshal(parents)
	subject, _, _ := strings.Cut(c.Message, "\n")
	now := l.now()

	var ch *Change
	err = l.db.Tx(ctx, func(tx *sql.Tx) error {
		var number, patchset int
		var status, last string
		err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT c.number, c.status, p.patchset, p.commit_sha
			FROM local_changes c JOIN local_patchsets p ON p.number = c.number
			WHERE c.project = ? AND c.branch = ? AND c.change_id = ? ORDER BY p.patchset DESC LIMIT 1`),
			project, p.Branch, changeID).Scan(&number, &status, &patchset, &last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM local_changes`).Scan(&number); err != nil {
				return err
			}
			patchset = 1
			if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO local_changes
				(number, project, branch, change_id, subject, owner, status, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, 'NEW', ?, ?)`),
				number, project, p.Branch, changeID, subject, accountName(owner), now.UnixNano(), now.UnixNano()); err != nil {
				return err
			}
		case err != nil:
			return err
		case status != "NEW":
			return fmt.Errorf("local: change %d (%s) is %s: push a new Change-Id", number, changeID, status)
		case last == c.Hash.String():
			return fmt.Errorf("local: change %d: patchset %d is %s already: no new changes", number, patchset, last)
		default:
			patchset++
			if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE local_changes SET subject = ?, updated_at = ? WHERE number = ?`),
				subject, now.UnixNano(), number); err != nil {
				return err
			}
		}
		ref := ChangeRef(number, patchset)
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO local_patchsets
			(number, patchset, commit_sha, ref, message, parents, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			number, patchset, c.Hash.String(), ref, c.Message, string(parentsJSON), now.UnixNano()); err != nil {
			return err
		}
		// The ref goes in before the commit of the transaction: a
		// journalled event never names a ref that is missing. A ref
		// left by a rolled-back transaction is overwritten by the
		// next patchset of that number.
		if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), c.Hash)); err != nil {
			return fmt.Errorf("write %s: %w", ref, err)
		}
		ch = &Change{Project: project, Branch: p.Branch, Number: number, Patchset: patchset, Ref: ref,
			Commit: c.Hash.String(), ChangeID: changeID, Subject: subject, Message: c.Message, Owner: owner,
			Status: "NEW", Parents: parents, Current: true}
		_, err = l.journal.Append(ctx, tx, LocalSource, &Event{Type: PatchsetCreated, Project: project, Branch: p.Branch,
			Change: ch, Account: owner, Created: now.UTC()})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("local: propose %s %s: %w", project, rev, err)
	}
	return ch, nil
}

// changeIDOf returns the commit's Change-Id footer, or, for a commit
// without one (no commit-msg hook locally), one derived from the project,
// branch and the commit's author and subject, so that amending the commit
// keeps it.
func changeIDOf(project, branch string, c *object.Commit) string {
	if m := changeIDRE.FindAllStringSubmatch(c.Message, -1); len(m) > 0 {
		return m[len(m)-1][1]
	}
	subject, _, _ := strings.Cut(c.Message, "\n")
	sum := sha1.Sum([]byte(project + "\x00" + branch + "\x00" + c.Author.Email + "\x00" + strings.TrimSpace(subject)))
	return "I" + hex.EncodeToString(sum[:])
}

func accountName(a Account) string {
	switch {
	case a.Username != "":
		return a.Username
	case a.Email != "":
		return a.Email
	}
	return a.Name
}

// Review adds a message and votes to a patchset (0: the current one), as
// Gerrit's set-review does, and journals comment-added with the votes.
func (l *Local) Review(ctx context.Context, number, patchset int, by Account, message string, labels map[string]int, tag string) error {
	now := l.now()
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		ch, err := l.change(ctx, tx, number, patchset)
		if err != nil {
			return err
		}
		if ch.Status != "NEW" && len(labels) > 0 {
			return fmt.Errorf("change %d is %s: %w", number, ch.Status, ErrVotesClosed)
		}
		labelsJSON, _ := json.Marshal(labels)
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO local_messages
			(number, patchset, account, tag, message, labels, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			number, ch.Patchset, accountName(by), tag, message, string(labelsJSON), now.UnixNano()); err != nil {
			return err
		}
		var approvals []Approval
		var votes []string
		for _, label := range slices.Sorted(maps.Keys(labels)) {
			v := labels[label]
			old, _ := voteOf(ch.Approvals, label, accountName(by))
			if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO local_votes (number, patchset, label, account, value, voted_at)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (number, patchset, label, account) DO UPDATE SET value = excluded.value, voted_at = excluded.voted_at`),
				number, ch.Patchset, label, accountName(by), v, now.UnixNano()); err != nil {
				return err
			}
			approvals = append(approvals, Approval{Label: label, Value: v, Old: &old, By: by})
			votes = append(votes, fmt.Sprintf("%s%+d", label, v))
		}
		// Gerrit's comment text: "Patch Set N: Label+V ...", a blank
		// line, the message.
		comment := fmt.Sprintf("Patch Set %d:", ch.Patchset)
		if len(votes) > 0 {
			comment += " " + strings.Join(votes, " ")
		}
		if message != "" {
			comment += "\n\n" + message
		}
		_, err = l.journal.Append(ctx, tx, LocalSource, &Event{Type: CommentAdded, Project: ch.Project, Branch: ch.Branch,
			Change: ch, Account: by, Approvals: approvals, Comment: comment, Created: now.UTC()})
		return err
	})
	if err != nil {
		return fmt.Errorf("local: review change %d: %w", number, err)
	}
	return nil
}

func voteOf(as []Approval, label, account string) (int, bool) {
	for _, a := range as {
		if a.Label == label && accountName(a.By) == account {
			return a.Value, true
		}
	}
	return 0, false
}

// Change returns change number at its current patchset, with the current
// votes, as a Gerrit query would.
func (l *Local) Change(ctx context.Context, number int) (*Change, error) {
	var ch *Change
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		ch, err = l.change(ctx, tx, number, 0)
		return err
	})
	return ch, err
}

// change reads change number at patchset (0: the current one).
func (l *Local) change(ctx context.Context, tx *sql.Tx, number, patchset int) (*Change, error) {
	ch := &Change{Number: number}
	var owner string
	var current int
	err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT c.project, c.branch, c.change_id, c.subject, c.owner, c.status,
		(SELECT MAX(patchset) FROM local_patchsets WHERE number = c.number)
		FROM local_changes c WHERE c.number = ?`), number).Scan(
		&ch.Project, &ch.Branch, &ch.ChangeID, &ch.Subject, &owner, &ch.Status, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("change %d: %w", number, ErrNoChange)
	}
	if err != nil {
		return nil, fmt.Errorf("change %d: %w", number, err)
	}
	ch.Owner = Account{Username: owner}
	if patchset == 0 {
		patchset = current
	}
	ch.Patchset, ch.Current = patchset, patchset == current
	var parents string
	err = tx.QueryRowContext(ctx, l.db.Rebind(`SELECT commit_sha, ref, message, parents FROM local_patchsets
		WHERE number = ? AND patchset = ?`), number, patchset).Scan(&ch.Commit, &ch.Ref, &ch.Message, &parents)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("change %d patchset %d: %w", number, patchset, ErrNoChange)
	}
	if err != nil {
		return nil, fmt.Errorf("change %d: %w", number, err)
	}
	if err := json.Unmarshal([]byte(parents), &ch.Parents); err != nil {
		return nil, fmt.Errorf("change %d: parents: %w", number, err)
	}
	rows, err := tx.QueryContext(ctx, l.db.Rebind(`SELECT label, account, value FROM local_votes
		WHERE number = ? AND patchset = ? ORDER BY voted_at, label, account`), number, patchset)
	if err != nil {
		return nil, fmt.Errorf("change %d: votes: %w", number, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Approval
		var account string
		if err := rows.Scan(&a.Label, &account, &a.Value); err != nil {
			return nil, fmt.Errorf("change %d: votes: %w", number, err)
		}
		a.By = Account{Username: account}
		ch.Approvals = append(ch.Approvals, a)
	}
	return ch, rows.Err()
}

// SubmitLabels are the votes a change needs before Submit merges it:
// the highest Code-Review and Verified, as Gerrit's default submit
// requirements with a Verified label.
var SubmitLabels = map[string]int{"Code-Review": 2, "Verified": 2}

// Submit merges change number's current patchset into its branch as
// Gerrit's merge-if-necessary does (a fast-forward when the branch tip is
// an ancestor, a merge commit otherwise), and journals change-merged and
// ref-updated. A change that is not open, lacks SubmitLabels or conflicts
// gets an error wrapping ErrNotSubmittable.
func (l *Local) Submit(ctx context.Context, number int, by Account) (*Change, error) {
	ch, err := l.Change(ctx, number)
	if err != nil {
		return nil, fmt.Errorf("local: submit: %w", err)
	}
	if ch.Status != "NEW" {
		return nil, fmt.Errorf("local: submit change %d: %w: change is %s", number, ErrNotSubmittable, strings.ToLower(ch.Status))
	}
	for label, want := range SubmitLabels {
		if best := maxVote(ch.Approvals, label); best < want {
			return nil, fmt.Errorf("local: submit change %d: %w: needs %s%+d", number, ErrNotSubmittable, label, want)
		}
		if worst := minVote(ch.Approvals, label); worst <= -want {
			return nil, fmt.Errorf("local: submit change %d: %w: blocked by %s%+d", number, ErrNotSubmittable, label, worst)
		}
	}
	p, repo, err := l.project(ch.Project)
	if err != nil {
		return nil, err
	}
	branch := plumbing.NewBranchReferenceName(p.Branch)
	tip, err := repo.Reference(branch, true)
	if err != nil {
		return nil, fmt.Errorf("local: submit change %d: branch %s: %w", number, p.Branch, err)
	}
	commit := plumbing.NewHash(ch.Commit)
	newTip := commit
	theirs, err := repo.CommitObject(commit)
	if err != nil {
		return nil, fmt.Errorf("local: submit change %d: %w", number, err)
	}
	ours, err := repo.CommitObject(tip.Hash())
	if err != nil {
		return nil, fmt.Errorf("local: submit change %d: %w", number, err)
	}
	if ff, err := ours.IsAncestor(theirs); err != nil {
		return nil, fmt.Errorf("local: submit change %d: %w", number, err)
	} else if !ff {
		if l.merge == nil {
			return nil, fmt.Errorf("local: submit change %d: %w: the branch moved and no merger is configured", number, ErrNotSubmittable)
		}
		msg := fmt.Sprintf("Merge \"%s\"\n\nChange-Id: %s\n", ch.Subject, ch.ChangeID)
		if newTip, err = l.merge(ctx, repo, tip.Hash(), commit, msg); err != nil {
			return nil, fmt.Errorf("local: submit change %d: %w", number, err)
		}
	}
	now := l.now()
	err = l.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE local_changes SET status = 'MERGED', updated_at = ?
			WHERE number = ? AND status = 'NEW'`), now.UnixNano(), number)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: change %d was merged or abandoned meanwhile", ErrNotSubmittable, number)
		}
		// Compare and swap: the branch must still be where the merge
		// started from.
		if err := repo.Storer.CheckAndSetReference(plumbing.NewHashReference(branch, newTip), tip); err != nil {
			return fmt.Errorf("%w: branch %s moved during the submit: %v", ErrNotSubmittable, p.Branch, err)
		}
		ch.Status = "MERGED"
		if _, err := l.journal.Append(ctx, tx, LocalSource, &Event{Type: ChangeMerged, Project: ch.Project, Branch: ch.Branch,
			Change: ch, Account: by, NewRev: newTip.String(), Created: now.UTC()}); err != nil {
			return err
		}
		_, err = l.journal.Append(ctx, tx, LocalSource, &Event{Type: RefUpdated, Project: ch.Project, Branch: ch.Branch,
			Account: by, RefName: branch.String(), OldRev: tip.Hash().String(), NewRev: newTip.String(), Created: now.UTC()})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("local: submit change %d: %w", number, err)
	}
	return ch, nil
}

// Abandon closes change number without merging it.
func (l *Local) Abandon(ctx context.Context, number int, by Account, reason string) error {
	now := l.now()
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		ch, err := l.change(ctx, tx, number, 0)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE local_changes SET status = 'ABANDONED', updated_at = ?
			WHERE number = ? AND status = 'NEW'`), now.UnixNano(), number)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("change %d is %s", number, ch.Status)
		}
		ch.Status = "ABANDONED"
		_, err = l.journal.Append(ctx, tx, LocalSource, &Event{Type: ChangeAbandoned, Project: ch.Project, Branch: ch.Branch,
			Change: ch, Account: by, Comment: reason, Created: now.UTC()})
		return err
	})
	if err != nil {
		return fmt.Errorf("local: abandon change %d: %w", number, err)
	}
	return nil
}

// Message is a comment or report on a change.
type Message struct {
	Patchset int
	By       string
	Tag      string
	Text     string
	Labels   map[string]int
	At       time.Time
}

// Messages returns the comments and reports of change number, oldest
// first.
func (l *Local) Messages(ctx context.Context, number int) ([]Message, error) {
	rows, err := l.db.QueryContext(ctx, l.db.Rebind(`SELECT patchset, account, tag, message, labels, created_at
		FROM local_messages WHERE number = ? ORDER BY id`), number)
	if err != nil {
		return nil, fmt.Errorf("local: messages of change %d: %w", number, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var labels string
		var at int64
		if err := rows.Scan(&m.Patchset, &m.By, &m.Tag, &m.Text, &labels, &at); err != nil {
			return nil, fmt.Errorf("local: messages of change %d: %w", number, err)
		}
		if err := json.Unmarshal([]byte(labels), &m.Labels); err != nil {
			return nil, fmt.Errorf("local: messages of change %d: %w", number, err)
		}
		m.At = time.Unix(0, at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

func maxVote(as []Approval, label string) int {
	best := 0
	for _, a := range as {
		if a.Label == label && a.Value > best {
			best = a.Value
		}
	}
	return best
}

func minVote(as []Approval, label string) int {
	worst := 0
	for _, a := range as {
		if a.Label == label && a.Value < worst {
			worst = a.Value
		}
	}
	return worst
}

var localQueryRE = regexp.MustCompile(`^(change|commit):([0-9]+|I[0-9a-f]{40}|[0-9a-f]{40})$`)

// Query answers the Gerrit queries the scheduler asks (change:N,
// change:<Change-Id>, commit:<sha>) with the changes at their current
// patchsets.
func (l *Local) Query(ctx context.Context, q string) ([]Change, error) {
	m := localQueryRE.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return nil, fmt.Errorf("local: query %q: only change:N, change:<Change-Id> and commit:<sha> are answered", q)
	}
	var sqlq string
	switch {
	case m[1] == "change" && !strings.HasPrefix(m[2], "I"):
		sqlq = `SELECT number FROM local_changes WHERE number = ?`
	case m[1] == "change":
		sqlq = `SELECT number FROM local_changes WHERE change_id = ? ORDER BY number`
	case len(m[2]) == 40:
		sqlq = `SELECT DISTINCT number FROM local_patchsets WHERE commit_sha = ? ORDER BY number`
	default:
		return nil, fmt.Errorf("local: query %q: not a commit id", q)
	}
	var out []Change
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, l.db.Rebind(sqlq), m[2])
		if err != nil {
			return err
		}
		var numbers []int
		for rows.Next() {
			var n int
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			numbers = append(numbers, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range numbers {
			ch, err := l.change(ctx, tx, n, 0)
			if err != nil {
				return err
			}
			out = append(out, *ch)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local: query %q: %w", q, err)
	}
	return out, nil
}
