// Package gerrittest provides a fake Gerrit for tests, faithful at the
// protocol boundary and backed by real git repositories.
//
// A [Gerrit] keeps bare repositories on disk (made and changed with the
// git CLI), changes with their patchsets under refs/changes/NN/NNNN/P,
// votes, and messages. Tests act on it as users would, through
// [Gerrit.CreateProject], [Gerrit.Upload], [Gerrit.Review],
// [Gerrit.Abandon] and [Gerrit.PushBranch]; sluice talks to it as to a
// real server:
//
//   - the REST API of Documentation/rest-api-changes.txt under /a/ with
//     HTTP basic auth (and reads without /a/, anonymously): query changes
//     (GET /changes/?q=...&o=...&n=...), get a change (GET
//     /changes/{id} and /changes/{id}/detail), set review (POST
//     /changes/{id}/revisions/{rev}/review, ReviewInput) and submit (POST
//     /changes/{id}/submit and /changes/{id}/revisions/{rev}/submit). JSON
//     answers start with Gerrit's ")]}'" line; errors are text/plain with
//     Gerrit's messages and statuses (400, 401, 403, 404, 409);
//   - the stream-events JSON of Documentation/cmd-stream-events.txt and
//     json.txt, one event per line, to every [Gerrit.Subscribe]r:
//     patchset-created, comment-added (with the approvals of the author on
//     every label, oldValue when the vote changed), change-merged (with
//     newRev), change-abandoned and ref-updated;
//   - `gerrit query --format json` ([Gerrit.QueryJSON]) for the fake SSH
//     daemon of this package.
//
// Submit follows Gerrit's merge-if-necessary: the change's commit, with any
// open changes it depends on, is fast-forwarded onto the branch or merged
// with a merge commit (git merge-tree, so git 2.38 or later); a path
// conflict, a missing required vote or a dependency on a commit that is
// not an open change's current patchset answers 409 with Gerrit's text.
// Labels follow the MaxWithBlock function when required (a maximal vote
// is needed, a minimal one blocks) and NoBlock otherwise.
//
// Where the fake is simpler than Gerrit, on purpose: votes are not copied
// to a new patchset (no copy conditions), there are no permissions beyond
// the one REST account, no drafts, inline comments, topics submitted
// together, reviewers, hashtags or work-in-progress, the query language
// has only ANDed change:, status:, is:, project:, branch:, topic:,
// commit: and limit: terms, and no project-created event is sent.
package gerrittest
