// Package zuul is the Gerrit side of sluice, in Zuul's vocabulary: the
// change and event model, event sources, the Gerrit reporter, the
// speculative merger and the Zuul v2 job parameters.
package zuul

import (
	"fmt"
	"strconv"
	"time"
)

// Account is a Gerrit account as events name it.
type Account struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
}

// Approval is one label vote (Gerrit calls them approvals in events).
type Approval struct {
	Label string  `json:"label"` // Gerrit's "type": Code-Review, Verified, Workflow...
	Value int     `json:"value"`
	Old   *int    `json:"old,omitempty"` // the value before this event, when the event says
	By    Account `json:"by"`
}

// Change is one patchset of a Gerrit change, as sluice acts on it. The
// identity is (Project, Number, Patchset); Ref and Commit name its git
// objects.
type Change struct {
	Project  string `json:"project"`
	Branch   string `json:"branch"`
	Number   int    `json:"number"`
	Patchset int    `json:"patchset"`
	// Ref is refs/changes/NN/NNNN/P; Commit its SHA-1.
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
	// ChangeID is the Change-Id footer (I + 40 hex).
	ChangeID string `json:"change_id"`
	URL      string `json:"url,omitempty"`
	Subject  string `json:"subject,omitempty"`
	// Message is the commit message, where Depends-On footers are.
	Message string  `json:"message,omitempty"`
	Owner   Account `json:"owner"`
	// Status is Gerrit's: NEW, MERGED, ABANDONED.
	Status string `json:"status,omitempty"`
	// Parents are the commit's parents.
	Parents []string `json:"parents,omitempty"`
	// Approvals are the current votes on the current patchset (filled by a
	// query, not by every event).
	Approvals []Approval `json:"approvals,omitempty"`
	// Current says whether Patchset is the change's current patchset (as
	// of the last query).
	Current bool `json:"current"`
}

// Key is the change-level result item of DESIGN.md:
// <project>~<change>~<patchset>.
func (c *Change) Key() string {
	return c.Project + "~" + strconv.Itoa(c.Number) + "~" + strconv.Itoa(c.Patchset)
}

// String names the change as Gerrit users do: 12345,2.
func (c *Change) String() string { return fmt.Sprintf("%d,%d", c.Number, c.Patchset) }

// Vote returns the newest value of label among the current approvals, and
// whether there is one.
func (c *Change) Vote(label string) (int, bool) {
	v, ok := 0, false
	for _, a := range c.Approvals {
		if a.Label == label {
			v, ok = a.Value, true
		}
	}
	return v, ok
}

// ChangeRef is Gerrit's ref of a patchset: refs/changes/NN/NNNN/P, NN the
// change number's last two digits.
func ChangeRef(number, patchset int) string {
	return fmt.Sprintf("refs/changes/%02d/%d/%d", number%100, number, patchset)
}

// EventType is the "type" of a Gerrit stream event.
type EventType string

const (
	PatchsetCreated EventType = "patchset-created"
	CommentAdded    EventType = "comment-added"
	ChangeMerged    EventType = "change-merged"
	ChangeAbandoned EventType = "change-abandoned"
	RefUpdated      EventType = "ref-updated"
	DraftPublished  EventType = "draft-published"
	// Retrigger is no Gerrit event: `sluice retrigger` asks to run one
	// stage of a buildset again (Buildset and Stage say which).
	Retrigger EventType = "sluice-retrigger"
)

// Event is one Gerrit event, reduced to what triggers need. Change is nil
// for ref-updated.
type Event struct {
	Type EventType `json:"type"`
	// Project and Branch (short name, no refs/heads/) the event is about.
	Project string  `json:"project"`
	Branch  string  `json:"branch,omitempty"`
	Change  *Change `json:"change,omitempty"`
	// Account is who caused the event: uploader, comment author,
	// submitter, abandoner.
	Account Account `json:"account"`
	// Approvals of a comment-added event: the votes cast with it.
	Approvals []Approval `json:"approvals,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	// RefName, OldRev and NewRev describe a ref-updated event; NewRev is
	// also the merge commit of change-merged.
	RefName string `json:"ref_name,omitempty"`
	// Buildset and Stage name the stage run of a Retrigger.
	Buildset string    `json:"buildset,omitempty"`
	Stage    string    `json:"stage,omitempty"`
	OldRev   string    `json:"old_rev,omitempty"`
	NewRev   string    `json:"new_rev,omitempty"`
	Created  time.Time `json:"created"`
	// Synthetic marks an event that no Gerrit stream sent: the SSH
	// source made it up from a query after a reconnection (see
	// SSHSource). It may repeat one already sent.
	Synthetic bool `json:"synthetic,omitempty"`
}
