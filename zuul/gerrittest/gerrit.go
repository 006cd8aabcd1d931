package gerrittest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/zuul"
)

// xssiPrefix starts every JSON answer of Gerrit's REST API.
const xssiPrefix = ")]}'\n"

// restTime is the layout of REST API timestamps (UTC, nanoseconds).
const restTime = "2006-01-02 15:04:05.000000000"

// zeroRev is git's name for "no commit" in a ref update.
const zeroRev = "0000000000000000000000000000000000000000"

const (
	// defaultQueryLimit is gerrit query's limit when the query gives none.
	defaultQueryLimit = 500
	gitTimeout        = time.Minute
	maxBodyBytes      = 1 << 20
)

// Label is a review label of the fake, the same on every project.
type Label struct {
	Name     string
	Min, Max int
	// Required labels use Gerrit's MaxWithBlock function: submit needs a
	// Max vote and no Min vote. Other labels are NoBlock: their votes do
	// not matter to submit.
	Required bool
}

// DefaultLabels are the labels of a Gerrit made with no Options.Labels:
// Code-Review and Verified from -2 to +2, both required, and Workflow
// from -1 to +1, not required.
func DefaultLabels() []Label {
	return []Label{
		{Name: "Code-Review", Min: -2, Max: 2, Required: true},
		{Name: "Verified", Min: -2, Max: 2, Required: true},
		{Name: "Workflow", Min: -1, Max: 1},
	}
}

// Options configure a Gerrit.
type Options struct {
	// User and Password are the REST API's HTTP credentials; the
	// defaults are "sluice" and a random password.
	User, Password string
	// Labels replace DefaultLabels.
	Labels []Label
	// Now is the clock of events, commits and timestamps; the default is
	// time.Now.
	Now func() time.Time
}

// Review is one review the fake recorded, from its REST API or from
// [Gerrit.Review].
type Review struct {
	Change, Patchset int
	By               zuul.Account
	Labels           map[string]int
	Message          string
	Tag              string
	Notify           string
	When             time.Time
}

// Request is one request the REST API answered.
type Request struct {
	Method, Path string
	Status       int
}

// Patchset describes an upload for [Gerrit.UploadPatchset].
type Patchset struct {
	// Project and Branch of a new change.
	Project, Branch string
	// Change, when not 0, is the change this is a new patchset of.
	Change int
	// Parent is the parent commit; "" means the branch's tip for a new
	// change, and the parent of the current patchset for a new patchset.
	Parent string
	// Files are added or replaced on the parent's tree (mode 100644);
	// Delete names files to remove.
	Files  map[string]string
	Delete []string
	// Message is the commit message; a Change-Id footer is added when it
	// has none, as Gerrit's commit-msg hook does.
	Message string
	// Uploader is the uploader, author and (of a new change) owner;
	// the default is the account "owner".
	Uploader zuul.Account
	Topic    string
}

// Gerrit is a fake Gerrit server. Its helper methods (CreateProject,
// Upload, Review...) fail the test on error and must be called from the
// test's goroutine; its REST API and QueryJSON and Subscribe may be used
// from any goroutine.
type Gerrit struct {
	// URL is the root of the web and REST server, such as
	// http://127.0.0.1:41234 (no trailing slash).
	URL string
	// User and Password are the REST API's credentials.
	User, Password string

	t      testing.TB
	srv    *httptest.Server
	dir    string // bare repositories: dir/<project>.git
	home   string // HOME of git
	labels []Label
	now    func() time.Time

	mu         sync.Mutex
	projects   map[string]*project
	changes    map[int]*change
	lastNumber int
	accounts   map[string]int
	reviews    []Review
	events     [][]byte
	subs       map[*subscriber]struct{}
	failN      int // the next failN requests answer failStatus
	failStatus int
	submitHook submitHook
	hookMsg    string
	closed     bool

	// reqMu guards requests, recorded while handlers hold mu.
	reqMu    sync.Mutex
	requests []Request
}

type submitHook int

const (
	hookNone submitHook = iota
	hookReject
	hookIgnore
)

type project struct {
	name string
	dir  string
}

type change struct {
	number    int
	id        string // Change-Id
	project   string
	branch    string
	topic     string
	owner     zuul.Account
	status    string
	created   time.Time
	updated   time.Time
	submitted time.Time
	submitter *zuul.Account
	patchsets []*patchset
	messages  []changeMessage
}

type patchset struct {
	number   int
	commit   string
	parents  []string
	ref      string
	uploader zuul.Account
	message  string
	created  time.Time
	votes    []*vote
}

type vote struct {
	label string
	by    zuul.Account
	value int
	date  time.Time
	tag   string
}

type changeMessage struct {
	id       string
	author   zuul.Account
	date     time.Time
	text     string
	patchset int
	tag      string
}

// httpError is an answer of the REST API that is not a success.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func errorf(status int, format string, a ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, a...)}
}

// NewGerrit starts a fake Gerrit with the default Options; it stops when
// the test ends. It needs git; without it the test is skipped.
func NewGerrit(t testing.TB) *Gerrit { return NewGerritWith(t, Options{}) }

// NewGerritWith starts a fake Gerrit configured by opts.
func NewGerritWith(t testing.TB, opts Options) *Gerrit {
	t.Helper()
	needGit(t)
	g := &Gerrit{
		User:     opts.User,
		Password: opts.Password,
		t:        t,
		dir:      t.TempDir(),
		home:     t.TempDir(),
		labels:   opts.Labels,
		now:      opts.Now,
		projects: map[string]*project{},
		changes:  map[int]*change{},
		accounts: map[string]int{},
		subs:     map[*subscriber]struct{}{},
	}
	if g.User == "" {
		g.User = "sluice"
	}
	if g.Password == "" {
		g.Password = rand.Text()
	}
	if g.labels == nil {
		g.labels = DefaultLabels()
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.srv = httptest.NewServer(g.handler())
	g.URL = g.srv.URL
	t.Cleanup(g.close)
	return g
}

// needGit skips the test when git is missing, except under CI=true,
// where it fails (internal/pkgtest.NeedTool's rule: this package is not
// a test file, so it may not import that package).
func needGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git not found")
		}
		t.Skip("git not found")
	}
}

func (g *Gerrit) close() {
	g.mu.Lock()
	g.closed = true
	subs := make([]*subscriber, 0, len(g.subs))
	for s := range g.subs {
		subs = append(subs, s)
	}
	g.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
	g.srv.Close()
}

// Owner is the default account of uploads.
var Owner = zuul.Account{Name: "Change Owner", Email: "owner@example.org", Username: "owner"}

// Account is the account of the REST API's user, who votes and submits
// through it.
func (g *Gerrit) Account() zuul.Account {
	return zuul.Account{Name: "Sluice CI", Email: g.User + "@example.org", Username: g.User}
}

// serverIdent commits merges.
var serverIdent = zuul.Account{Name: "Gerrit Code Review", Email: "gerrit@example.org"}

// ---- test helpers ----

var projectName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$`)

// CreateProject makes the project name with one commit on master holding
// files, and returns that commit.
func (g *Gerrit) CreateProject(name string, files map[string]string) string {
	g.t.Helper()
	sha, err := g.createProject(name, files)
	if err != nil {
		g.t.Fatalf("gerrittest: create project %s: %v", name, err)
	}
	return sha
}

func (g *Gerrit) createProject(name string, files map[string]string) (string, error) {
	if !projectName.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".git") {
		return "", errors.New("bad project name")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.projects[name] != nil {
		return "", errors.New("project exists")
	}
	p := &project{name: name, dir: filepath.Join(g.dir, filepath.FromSlash(name)+".git")}
	if err := os.MkdirAll(filepath.Dir(p.dir), 0o755); err != nil {
		return "", err
	}
	if _, err := g.git("", nil, nil, "init", "--quiet", "--bare", "--initial-branch=master", p.dir); err != nil {
		return "", err
	}
	sha, err := g.commit(p, "refs/heads/master", "", files, nil, "Initial empty repository\n", Owner, g.now())
	if err != nil {
		return "", err
	}
	g.projects[name] = p
	return sha, nil
}

// GitDir is the bare repository of project, a path git can fetch from.
func (g *Gerrit) GitDir(project string) string {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.projects[project]
	if p == nil {
		g.t.Fatalf("gerrittest: no project %s", project)
	}
	return p.dir
}

// BranchTip returns the commit branch points at, "" when there is none.
func (g *Gerrit) BranchTip(project, branch string) string {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.projects[project]
	if p == nil {
		g.t.Fatalf("gerrittest: no project %s", project)
	}
	tip, err := g.revParse(p, "refs/heads/"+branch)
	if err != nil {
		g.t.Fatalf("gerrittest: %v", err)
	}
	return tip
}

// File returns the content of path at rev (a commit or ref) of project.
func (g *Gerrit) File(project, rev, path string) string {
	g.t.Helper()
	g.mu.Lock()
	p := g.projects[project]
	g.mu.Unlock()
	if p == nil {
		g.t.Fatalf("gerrittest: no project %s", project)
	}
	out, err := g.git(p.dir, nil, nil, "cat-file", "blob", rev+":"+path)
	if err != nil {
		g.t.Fatalf("gerrittest: %v", err)
	}
	return string(out)
}

// PushBranch commits files (added or replaced) with message straight to
// branch, as a push that bypasses review, and returns the new commit. A
// new branch starts from master's tip. It sends ref-updated.
func (g *Gerrit) PushBranch(project, branch string, files map[string]string, message string) string {
	g.t.Helper()
	sha, err := g.pushBranch(project, branch, files, message)
	if err != nil {
		g.t.Fatalf("gerrittest: push %s %s: %v", project, branch, err)
	}
	return sha
}

func (g *Gerrit) pushBranch(name, branch string, files map[string]string, message string) (string, error) {
	if !validBranch(branch) {
		return "", errors.New("bad branch name")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.projects[name]
	if p == nil {
		return "", errors.New("no such project")
	}
	ref := "refs/heads/" + branch
	old, err := g.revParse(p, ref)
	if err != nil {
		return "", err
	}
	from := old
	if from == "" {
		if from, err = g.revParse(p, "refs/heads/master"); err != nil {
			return "", err
		}
	}
	now := g.now()
	sha, err := g.commit(p, ref, from, files, nil, message, Owner, now)
	if err != nil {
		return "", err
	}
	if old == "" {
		old = zeroRev
	}
	g.emitRefUpdated(p.name, ref, old, sha, Owner, now)
	return sha, nil
}

func validBranch(b string) bool {
	return b != "" && !strings.HasPrefix(b, "refs/") && !strings.Contains(b, "..") &&
		!strings.ContainsAny(b, " \t\n\r~^:?*[\\") && !strings.HasPrefix(b, "-") &&
		!strings.HasSuffix(b, "/") && !strings.HasSuffix(b, ".lock")
}

// Upload uploads a new change to branch of project: a commit on the
// branch's tip with files added or replaced, and message (a Change-Id is
// added when it has none). It sends patchset-created.
func (g *Gerrit) Upload(project, branch string, files map[string]string, message string) *zuul.Change {
	g.t.Helper()
	return g.UploadPatchset(Patchset{Project: project, Branch: branch, Files: files, Message: message})
}

// UploadPatchset uploads a new change, or a new patchset of p.Change, as
// p describes. It sends patchset-created.
func (g *Gerrit) UploadPatchset(p Patchset) *zuul.Change {
	g.t.Helper()
	c, err := g.upload(p)
	if err != nil {
		g.t.Fatalf("gerrittest: upload: %v", err)
	}
	return c
}

var changeIDLine = regexp.MustCompile(`(?m)^Change-Id: (I[0-9a-f]{40})\s*$`)

func (g *Gerrit) upload(in Patchset) (*zuul.Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	uploader := in.Uploader
	if uploader == (zuul.Account{}) {
		uploader = Owner
	}
	now := g.now()
	var c *change
	if in.Change != 0 {
		c = g.changes[in.Change]
		if c == nil {
			return nil, fmt.Errorf("no change %d", in.Change)
		}
		if c.status != "NEW" {
			return nil, fmt.Errorf("change %d is closed", c.number)
		}
	} else {
		if !validBranch(in.Branch) {
			return nil, fmt.Errorf("bad branch name %q", in.Branch)
		}
		c = &change{
			number:  g.lastNumber + 1,
			project: in.Project,
			branch:  in.Branch,
			topic:   in.Topic,
			owner:   uploader,
			status:  "NEW",
			created: now,
		}
	}
	p := g.projects[c.project]
	if p == nil {
		return nil, fmt.Errorf("no project %s", c.project)
	}
	parent := in.Parent
	switch {
	case parent != "":
		sha, err := g.revParse(p, parent)
		if err != nil {
			return nil, err
		}
		if sha == "" {
			return nil, fmt.Errorf("no commit %s in %s", parent, p.name)
		}
		parent = sha
	case in.Change != 0:
		if ps := c.current().parents; len(ps) > 0 {
			parent = ps[0]
		}
	default:
		tip, err := g.revParse(p, "refs/heads/"+c.branch)
		if err != nil {
			return nil, err
		}
		if tip == "" {
			return nil, fmt.Errorf("no branch %s in %s", c.branch, p.name)
		}
		parent = tip
	}
	msg := normalizeMessage(in.Message)
	if m := changeIDLine.FindStringSubmatch(msg); m != nil {
		if c.id != "" && m[1] != c.id {
			return nil, fmt.Errorf("Change-Id %s of the message is not change %d's %s", m[1], c.number, c.id)
		}
		c.id = m[1]
	} else {
		if c.id == "" {
			sum := sha1.Sum([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%s\x00%d", c.project, c.branch, c.number, msg, now.UnixNano())))
			c.id = "I" + hex.EncodeToString(sum[:])
		}
		msg = addFooter(msg, "Change-Id: "+c.id)
	}
	psNum := len(c.patchsets) + 1
	ref := zuul.ChangeRef(c.number, psNum)
	sha, err := g.commit(p, ref, parent, in.Files, in.Delete, msg, uploader, now)
	if err != nil {
		return nil, err
	}
	ps := &patchset{number: psNum, commit: sha, ref: ref, uploader: uploader, message: msg, created: now}
	if parent != "" {
		ps.parents = []string{parent}
	}
	if in.Change == 0 {
		g.lastNumber++
		g.changes[c.number] = c
	}
	c.patchsets = append(c.patchsets, ps)
	c.updated = now
	c.messages = append(c.messages, changeMessage{
		id: g.messageID(), author: uploader, date: now, patchset: psNum,
		text: fmt.Sprintf("Uploaded patch set %d.", psNum),
	})
	g.emit(streamEvent{
		Type:     "patchset-created",
		Change:   g.eventChange(c),
		PatchSet: g.eventPatchSet(c, ps, false),
		Uploader: ptr(uploader),
	}, c, now)
	return g.model(c, ps), nil
}

// normalizeMessage ends msg with one newline, with no trailing blank
// lines.
func normalizeMessage(msg string) string {
	msg = strings.TrimRight(msg, "\n \t")
	if msg == "" {
		msg = "Change"
	}
	return msg + "\n"
}

var footerLine = regexp.MustCompile(`^[A-Za-z0-9-]+: `)

// addFooter adds line to the footer paragraph of msg, or as a new
// paragraph when the last one is not footers (or is the subject).
func addFooter(msg, line string) string {
	body := strings.TrimSuffix(msg, "\n")
	paras := strings.Split(body, "\n\n")
	last := paras[len(paras)-1]
	footers := len(paras) > 1
	for _, l := range strings.Split(last, "\n") {
		if !footerLine.MatchString(l) {
			footers = false
		}
	}
	if footers {
		return body + "\n" + line + "\n"
	}
	return body + "\n\n" + line + "\n"
}

func (c *change) current() *patchset { return c.patchsets[len(c.patchsets)-1] }

// Review votes labels (label to value; 0 removes a vote) on c's patchset
// (c.Number and c.Patchset) as by, with message, and sends
// comment-added.
func (g *Gerrit) Review(c *zuul.Change, by zuul.Account, labels map[string]int, message string) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := g.changes[c.Number]
	if ch == nil || c.Patchset < 1 || c.Patchset > len(ch.patchsets) {
		g.t.Fatalf("gerrittest: review: no change %s", c)
	}
	if _, err := g.review(ch, ch.patchsets[c.Patchset-1], by, reviewInput{Message: message, Labels: labels}); err != nil {
		g.t.Fatalf("gerrittest: review %s: %v", c, err)
	}
}

// Abandon abandons change number as by, and sends change-abandoned.
func (g *Gerrit) Abandon(number int, by zuul.Account, reason string) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.changes[number]
	if c == nil || c.status != "NEW" {
		g.t.Fatalf("gerrittest: abandon: no open change %d", number)
	}
	now := g.now()
	c.status = "ABANDONED"
	c.updated = now
	text := "Abandoned"
	if reason != "" {
		text += "\n\n" + reason
	}
	c.messages = append(c.messages, changeMessage{id: g.messageID(), author: by, date: now, text: text, patchset: c.current().number})
	g.emit(streamEvent{
		Type:      "change-abandoned",
		Change:    g.eventChange(c),
		PatchSet:  g.eventPatchSet(c, c.current(), false),
		Abandoner: ptr(by),
		Reason:    reason,
	}, c, now)
}

// Submit submits change number as the REST user would, and returns the
// error the REST API would answer.
func (g *Gerrit) Submit(number int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.changes[number]
	if c == nil {
		return fmt.Errorf("no change %d", number)
	}
	if err := g.submit(c, g.Account()); err != nil {
		return err
	}
	return nil
}

// Change returns change number, at its current patchset, as sluice's model.
func (g *Gerrit) Change(number int) *zuul.Change {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.changes[number]
	if c == nil {
		g.t.Fatalf("gerrittest: no change %d", number)
	}
	return g.model(c, c.current())
}

// Reviews returns the reviews of change number, oldest first.
func (g *Gerrit) Reviews(number int) []Review {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Review
	for _, r := range g.reviews {
		if r.Change == number {
			r.Labels = cloneMap(r.Labels)
			out = append(out, r)
		}
	}
	return out
}

// Events returns every event sent so far, one JSON line each (without
// the newline), oldest first.
func (g *Gerrit) Events() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events)
}

// Requests returns the REST requests answered so far, oldest first.
func (g *Gerrit) Requests() []Request {
	g.reqMu.Lock()
	defer g.reqMu.Unlock()
	return slices.Clone(g.requests)
}

// FailNextSubmit makes the next submit answer 409 with message, and
// change nothing.
func (g *Gerrit) FailNextSubmit(message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.submitHook, g.hookMsg = hookReject, message
}

// IgnoreNextSubmit makes the next submit answer 200 with the change,
// still NEW, and merge nothing: a Gerrit that says yes and does not.
func (g *Gerrit) IgnoreNextSubmit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.submitHook = hookIgnore
}

// FailRequests makes the next n REST requests answer status (a 5xx or
// 429, say) before looking at them.
func (g *Gerrit) FailRequests(n, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failN, g.failStatus = n, status
}

func cloneMap(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func (g *Gerrit) messageID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// model returns c at ps as sluice's model.
func (g *Gerrit) model(c *change, ps *patchset) *zuul.Change {
	m := &zuul.Change{
		Project:  c.project,
		Branch:   c.branch,
		Number:   c.number,
		Patchset: ps.number,
		Ref:      ps.ref,
		Commit:   ps.commit,
		ChangeID: c.id,
		URL:      g.changeURL(c),
		Subject:  subject(ps.message),
		Message:  ps.message,
		Owner:    c.owner,
		Status:   c.status,
		Parents:  slices.Clone(ps.parents),
		Current:  ps == c.current(),
	}
	for _, v := range ps.votes {
		m.Approvals = append(m.Approvals, zuul.Approval{Label: v.label, Value: v.value, By: v.by})
	}
	return m
}

func (g *Gerrit) changeURL(c *change) string {
	return fmt.Sprintf("%s/c/%s/+/%d", g.URL, c.project, c.number)
}

func subject(msg string) string {
	s, _, _ := strings.Cut(msg, "\n")
	return s
}

func accountKey(a zuul.Account) string {
	switch {
	case a.Username != "":
		return "u:" + a.Username
	case a.Email != "":
		return "e:" + a.Email
	}
	return "n:" + a.Name
}

func (g *Gerrit) accountID(a zuul.Account) int {
	k := accountKey(a)
	id, ok := g.accounts[k]
	if !ok {
		id = 1000000 + len(g.accounts)
		g.accounts[k] = id
	}
	return id
}

func (g *Gerrit) label(name string) *Label {
	for i := range g.labels {
		if g.labels[i].Name == name {
			return &g.labels[i]
		}
	}
	return nil
}

// ---- review and submit ----

// reviewInput is Gerrit's ReviewInput, as far as the fake reads it.
type reviewInput struct {
	Message string         `json:"message"`
	Labels  map[string]int `json:"labels"`
	Tag     string         `json:"tag"`
	Notify  string         `json:"notify"`
}

// review applies in to ps of c as by; it returns the votes of by on
// every label after it.
func (g *Gerrit) review(c *change, ps *patchset, by zuul.Account, in reviewInput) (map[string]int, error) {
	names := make([]string, 0, len(in.Labels))
	for name, v := range in.Labels {
		l := g.label(name)
		if l == nil {
			return nil, errorf(http.StatusBadRequest, "label \"%s\" is not a configured label", name)
		}
		if v < l.Min || v > l.Max {
			return nil, errorf(http.StatusBadRequest, "label \"%s\": %d is not a valid value", name, v)
		}
		names = append(names, name)
	}
	if len(in.Labels) > 0 && c.status != "NEW" {
		return nil, errorf(http.StatusConflict, "change is closed")
	}
	switch in.Notify {
	case "", "NONE", "OWNER", "OWNER_REVIEWERS", "ALL":
	default:
		return nil, errorf(http.StatusBadRequest, "invalid notify value %q", in.Notify)
	}
	sort.Slice(names, func(i, j int) bool { return g.labelIndex(names[i]) < g.labelIndex(names[j]) })
	now := g.now()
	old := map[string]int{}
	for _, v := range ps.votes {
		if accountKey(v.by) == accountKey(by) {
			old[v.label] = v.value
		}
	}
	var summary []string
	for _, name := range names {
		val := in.Labels[name]
		if val == old[name] {
			continue
		}
		ps.votes = slices.DeleteFunc(ps.votes, func(v *vote) bool {
			return v.label == name && accountKey(v.by) == accountKey(by)
		})
		if val != 0 {
			ps.votes = append(ps.votes, &vote{label: name, by: by, value: val, date: now, tag: in.Tag})
		}
		switch {
		case val > 0:
			summary = append(summary, fmt.Sprintf("%s+%d", name, val))
		case val < 0:
			summary = append(summary, fmt.Sprintf("%s%d", name, val))
		default:
			summary = append(summary, "-"+name)
		}
	}
	text := fmt.Sprintf("Patch Set %d:", ps.number)
	if len(summary) > 0 {
		text += " " + strings.Join(summary, " ")
	}
	if in.Message != "" {
		text += "\n\n" + in.Message
	}
	c.updated = now
	c.messages = append(c.messages, changeMessage{id: g.messageID(), author: by, date: now, text: text, patchset: ps.number, tag: in.Tag})
	g.reviews = append(g.reviews, Review{
		Change: c.number, Patchset: ps.number, By: by, Labels: cloneMap(in.Labels),
		Message: in.Message, Tag: in.Tag, Notify: in.Notify, When: now,
	})
	after := map[string]int{}
	var approvals []eventApproval
	for _, l := range g.labels {
		v := 0
		for _, vt := range ps.votes {
			if vt.label == l.Name && accountKey(vt.by) == accountKey(by) {
				v = vt.value
			}
		}
		after[l.Name] = v
		a := eventApproval{Type: l.Name, Description: l.Name, Value: strconv.Itoa(v)}
		if _, asked := in.Labels[l.Name]; asked && old[l.Name] != v {
			a.OldValue = ptr(strconv.Itoa(old[l.Name]))
		}
		approvals = append(approvals, a)
	}
	g.emit(streamEvent{
		Type:      "comment-added",
		Change:    g.eventChange(c),
		PatchSet:  g.eventPatchSet(c, ps, false),
		Author:    ptr(by),
		Approvals: approvals,
		Comment:   text,
	}, c, now)
	return after, nil
}

func (g *Gerrit) labelIndex(name string) int {
	for i, l := range g.labels {
		if l.Name == name {
			return i
		}
	}
	return len(g.labels)
}

// unsatisfied returns the required labels c's current patchset lacks
// (no Max vote, or a Min vote).
func (g *Gerrit) unsatisfied(c *change) []string {
	var out []string
	ps := c.current()
	for _, l := range g.labels {
		if !l.Required {
			continue
		}
		hasMax, hasMin := false, false
		for _, v := range ps.votes {
			if v.label == l.Name {
				hasMax = hasMax || v.value == l.Max
				hasMin = hasMin || v.value == l.Min
			}
		}
		if !hasMax || hasMin {
			out = append(out, l.Name)
		}
	}
	return out
}

// submit merges c, with the open changes it depends on, as
// merge-if-necessary does.
func (g *Gerrit) submit(c *change, by zuul.Account) error {
	switch g.submitHook {
	case hookReject:
		g.submitHook = hookNone
		return errorf(http.StatusConflict, "%s", g.hookMsg)
	case hookIgnore:
		g.submitHook = hookNone
		return nil
	}
	switch c.status {
	case "MERGED":
		return errorf(http.StatusConflict, "change is merged")
	case "ABANDONED":
		return errorf(http.StatusConflict, "change is abandoned")
	}
	p := g.projects[c.project]
	ref := "refs/heads/" + c.branch
	tip, err := g.revParse(p, ref)
	if err != nil {
		return err
	}
	if tip == "" {
		return errorf(http.StatusConflict, "destination branch \"%s\" not found.", ref)
	}
	commit := c.current().commit
	out, err := g.git(p.dir, nil, nil, "rev-list", "--topo-order", "--reverse", commit, "^"+tip)
	if err != nil {
		return err
	}
	pending := strings.Fields(string(out))
	var set []*change // the changes to merge, oldest first
	var problems []string
	for _, sha := range pending {
		var dep *change
		for _, o := range g.changes {
			if o.status == "NEW" && o.project == c.project && o.branch == c.branch && o.current().commit == sha {
				dep = o
			}
		}
		if dep == nil {
			problems = append(problems, fmt.Sprintf("Change %d: Depends on change that was not submitted."+
				" Commit %s depends on commit %s which cannot be merged.", c.number, commit, sha))
			continue
		}
		set = append(set, dep)
	}
	if len(pending) == 0 {
		set = []*change{c} // already in the branch: only the state changes
	}
	for _, s := range set {
		for _, l := range g.unsatisfied(s) {
			problems = append(problems, fmt.Sprintf("Change %d: submit requirement '%s' is unsatisfied.", s.number, l))
		}
	}
	if len(problems) > 0 {
		return submitProblems(max(len(set), 1), problems)
	}
	now := g.now()
	newTip := tip
	if len(pending) > 0 {
		if ff, err := g.isAncestor(p, tip, commit); err != nil {
			return err
		} else if ff {
			newTip = commit
		} else if newTip, err = g.mergeCommit(p, tip, commit, c, by, now); err != nil {
			return err
		}
		if _, err := g.git(p.dir, nil, nil, "update-ref", ref, newTip, tip); err != nil {
			return err
		}
	}
	for _, s := range set {
		s.status = "MERGED"
		s.updated, s.submitted, s.submitter = now, now, ptr(by)
		s.messages = append(s.messages, changeMessage{
			id: g.messageID(), author: by, date: now, patchset: s.current().number,
			text: "Change has been successfully merged by " + by.Name,
		})
	}
	if newTip != tip {
		g.emitRefUpdated(p.name, ref, tip, newTip, by, now)
	}
	for _, s := range set {
		g.emit(streamEvent{
			Type:      "change-merged",
			Change:    g.eventChange(s),
			PatchSet:  g.eventPatchSet(s, s.current(), false),
			Submitter: ptr(by),
			NewRev:    newTip,
		}, s, now)
	}
	return nil
}

func submitProblems(n int, problems []string) *httpError {
	changes := "change"
	if n != 1 {
		changes = "changes"
	}
	return errorf(http.StatusConflict, "Failed to submit %d %s due to the following problems:\n%s",
		n, changes, strings.Join(problems, "\n"))
}

// mergeCommit merges commit into tip with a merge commit, or answers a
// path conflict.
func (g *Gerrit) mergeCommit(p *project, tip, commit string, c *change, by zuul.Account, now time.Time) (string, error) {
	out, err := g.git(p.dir, nil, nil, "merge-tree", "--write-tree", "--no-messages", tip, commit)
	if code := exitCode(err); code == 1 {
		return "", submitProblems(1, []string{fmt.Sprintf("Change %d: Change could not be merged due to a path conflict."+
			" Please rebase the change locally and upload the rebased commit for review.", c.number)})
	} else if err != nil {
		return "", err
	}
	tree, _, _ := strings.Cut(string(out), "\n")
	msg := fmt.Sprintf("Merge \"%s\"\n", subject(c.current().message))
	env := identEnv(by, serverIdent, now)
	out, err = g.git(p.dir, []byte(msg), env, "commit-tree", tree, "-p", tip, "-p", commit)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// exitCode is the exit status of the command that returned err: 0 when
// err is nil, -1 when it did not run or was killed.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exec.ExitError](err); ok {
		return e.ExitCode()
	}
	return -1
}

// ---- git ----

// Git runs git with args on the repository gitDir (such as GitDir's) and
// returns its output, trimmed; it fails the test on error.
func Git(t testing.TB, gitDir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), gitTimeout)
	defer cancel()
	cmd := proc.Command(ctx, "git", append([]string{"--git-dir", gitDir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// git runs git in dir ("" for none) with stdin, and returns its output.
func (g *Gerrit) git(dir string, stdin []byte, env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	full := args
	if dir != "" {
		full = append([]string{"--git-dir", dir}, args...)
	}
	cmd := proc.Command(ctx, "git", full...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + g.home, "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
	}, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

func identEnv(author, committer zuul.Account, when time.Time) []string {
	date := fmt.Sprintf("%d +0000", when.Unix())
	return []string{
		"GIT_AUTHOR_NAME=" + author.Name, "GIT_AUTHOR_EMAIL=" + email(author), "GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=" + committer.Name, "GIT_COMMITTER_EMAIL=" + email(committer), "GIT_COMMITTER_DATE=" + date,
	}
}

func email(a zuul.Account) string {
	if a.Email != "" {
		return a.Email
	}
	return a.Username + "@example.org"
}

// revParse returns the commit rev names in p, "" when there is none.
func (g *Gerrit) revParse(p *project, rev string) (string, error) {
	out, err := g.git(p.dir, nil, nil, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if exitCode(err) == 1 {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func (g *Gerrit) isAncestor(p *project, a, b string) (bool, error) {
	_, err := g.git(p.dir, nil, nil, "merge-base", "--is-ancestor", a, b)
	switch exitCode(err) {
	case 0:
		return true, nil
	case 1:
		return false, nil
	}
	return false, err
}

// commit writes a commit with git fast-import to ref: parent's tree (or
// an empty one) with files set and del removed.
func (g *Gerrit) commit(p *project, ref, parent string, files map[string]string, del []string, msg string, by zuul.Account, when time.Time) (string, error) {
	var b bytes.Buffer
	ident := fmt.Sprintf("%s <%s> %d +0000", by.Name, email(by), when.Unix())
	fmt.Fprintf(&b, "commit %s\nauthor %s\ncommitter %s\ndata %d\n%s\n", ref, ident, ident, len(msg), msg)
	if parent != "" {
		fmt.Fprintf(&b, "from %s\n", parent)
	}
	for _, path := range del {
		if !validPath(path) {
			return "", fmt.Errorf("bad file name %q", path)
		}
		fmt.Fprintf(&b, "D %s\n", path)
	}
	paths := make([]string, 0, len(files))
	for path := range files {
		if !validPath(path) {
			return "", fmt.Errorf("bad file name %q", path)
		}
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		fmt.Fprintf(&b, "M 100644 inline %s\ndata %d\n%s\n", path, len(files[path]), files[path])
	}
	b.WriteString("done\n")
	if _, err := g.git(p.dir, b.Bytes(), nil, "fast-import", "--quiet", "--done"); err != nil {
		return "", err
	}
	return g.revParse(p, ref)
}

func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "\"") || strings.ContainsAny(p, "\n\x00") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || seg == ".git" {
			return false
		}
	}
	return true
}

// ---- events ----

// streamEvent is one line of stream-events (cmd-stream-events.txt).
type streamEvent struct {
	Type      string          `json:"type"`
	Change    *eventChange    `json:"change,omitempty"`
	PatchSet  *eventPatchSet  `json:"patchSet,omitempty"`
	Uploader  *zuul.Account   `json:"uploader,omitempty"`
	Author    *zuul.Account   `json:"author,omitempty"`
	Approvals []eventApproval `json:"approvals,omitempty"`
	Comment   string          `json:"comment,omitempty"`
	Submitter *zuul.Account   `json:"submitter,omitempty"`
	NewRev    string          `json:"newRev,omitempty"`
	Abandoner *zuul.Account   `json:"abandoner,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	RefUpdate *eventRefUpdate `json:"refUpdate,omitempty"`
	// Project, RefName and ChangeKey are what Gerrit 3 adds to every
	// change event.
	Project        string     `json:"project,omitempty"`
	RefName        string     `json:"refName,omitempty"`
	ChangeKey      *changeKey `json:"changeKey,omitempty"`
	EventCreatedOn int64      `json:"eventCreatedOn"`
}

type changeKey struct {
	ID string `json:"id"`
}

// eventChange is json.txt's change attribute; the fields after Status
// are those of gerrit query.
type eventChange struct {
	Project         string            `json:"project"`
	Branch          string            `json:"branch"`
	Topic           string            `json:"topic,omitempty"`
	ID              string            `json:"id"`
	Number          int               `json:"number"`
	Subject         string            `json:"subject"`
	Owner           zuul.Account      `json:"owner"`
	URL             string            `json:"url"`
	CommitMessage   string            `json:"commitMessage,omitempty"`
	CreatedOn       int64             `json:"createdOn"`
	LastUpdated     int64             `json:"lastUpdated,omitempty"`
	Open            *bool             `json:"open,omitempty"`
	Status          string            `json:"status"`
	Comments        []queryMessage    `json:"comments,omitempty"`
	CurrentPatchSet *eventPatchSet    `json:"currentPatchSet,omitempty"`
	PatchSets       []*eventPatchSet  `json:"patchSets,omitempty"`
	DependsOn       []queryDependency `json:"dependsOn,omitempty"`
	NeededBy        []queryDependency `json:"neededBy,omitempty"`
	SubmitRecords   []submitRecord    `json:"submitRecords,omitempty"`
}

// eventPatchSet is json.txt's patchSet attribute.
type eventPatchSet struct {
	Number    int             `json:"number"`
	Revision  string          `json:"revision"`
	Parents   []string        `json:"parents"`
	Ref       string          `json:"ref"`
	Uploader  zuul.Account    `json:"uploader"`
	CreatedOn int64           `json:"createdOn"`
	Author    zuul.Account    `json:"author"`
	Kind      string          `json:"kind"`
	Approvals []eventApproval `json:"approvals,omitempty"`
	Files     []queryFile     `json:"files,omitempty"`
}

// eventApproval is json.txt's approval attribute: values are strings.
type eventApproval struct {
	Type        string        `json:"type"`
	Description string        `json:"description,omitempty"`
	Value       string        `json:"value"`
	OldValue    *string       `json:"oldValue,omitempty"`
	GrantedOn   int64         `json:"grantedOn,omitempty"`
	By          *zuul.Account `json:"by,omitempty"`
}

type eventRefUpdate struct {
	OldRev  string `json:"oldRev"`
	NewRev  string `json:"newRev"`
	RefName string `json:"refName"`
	Project string `json:"project"`
}

type queryMessage struct {
	Timestamp int64        `json:"timestamp"`
	Reviewer  zuul.Account `json:"reviewer"`
	Message   string       `json:"message"`
}

type queryDependency struct {
	ID                string `json:"id"`
	Number            int    `json:"number"`
	Revision          string `json:"revision"`
	Ref               string `json:"ref"`
	IsCurrentPatchSet bool   `json:"isCurrentPatchSet"`
}

type submitRecord struct {
	Status string        `json:"status"`
	Labels []submitLabel `json:"labels,omitempty"`
}

type submitLabel struct {
	Label  string        `json:"label"`
	Status string        `json:"status"`
	By     *zuul.Account `json:"by,omitempty"`
}

type queryFile struct {
	File    string `json:"file"`
	FileOld string `json:"fileOld,omitempty"`
	Type    string `json:"type"`
}

func (g *Gerrit) eventChange(c *change) *eventChange {
	return &eventChange{
		Project:       c.project,
		Branch:        c.branch,
		Topic:         c.topic,
		ID:            c.id,
		Number:        c.number,
		Subject:       subject(c.current().message),
		Owner:         c.owner,
		URL:           g.changeURL(c),
		CommitMessage: c.current().message,
		CreatedOn:     c.created.Unix(),
		Status:        c.status,
	}
}

func (g *Gerrit) eventPatchSet(c *change, ps *patchset, approvals bool) *eventPatchSet {
	e := &eventPatchSet{
		Number:    ps.number,
		Revision:  ps.commit,
		Parents:   slices.Clone(ps.parents),
		Ref:       ps.ref,
		Uploader:  ps.uploader,
		CreatedOn: ps.created.Unix(),
		Author:    ps.uploader,
		Kind:      "REWORK",
	}
	if e.Parents == nil {
		e.Parents = []string{}
	}
	if approvals {
		for _, v := range ps.votes {
			e.Approvals = append(e.Approvals, eventApproval{
				Type: v.label, Description: v.label, Value: strconv.Itoa(v.value),
				GrantedOn: v.date.Unix(), By: ptr(v.by),
			})
		}
	}
	return e
}

func (g *Gerrit) emitRefUpdated(project, ref, oldRev, newRev string, by zuul.Account, now time.Time) {
	g.emit(streamEvent{
		Type:      "ref-updated",
		Submitter: ptr(by),
		RefUpdate: &eventRefUpdate{OldRev: oldRev, NewRev: newRev, RefName: ref, Project: project},
		Project:   project,
		RefName:   ref,
	}, nil, now)
}

// emit sends e to every subscriber; g.mu is held.
func (g *Gerrit) emit(e streamEvent, c *change, now time.Time) {
	if c != nil {
		e.Project = c.project
		e.RefName = "refs/heads/" + c.branch
		e.ChangeKey = &changeKey{ID: c.id}
	}
	e.EventCreatedOn = now.Unix()
	line, err := json.Marshal(e)
	if err != nil {
		panic(err) // only plain types: cannot happen
	}
	g.events = append(g.events, line)
	for s := range g.subs {
		s.queue = append(s.queue, line)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscriber is one Subscribe: an unbounded queue that a goroutine moves
// to out, so that a slow reader never stops the fake.
type subscriber struct {
	g       *Gerrit
	queue   [][]byte // under g.mu
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	out     chan []byte
	once    sync.Once
}

// Subscribe returns a channel of the events sent from now on, one JSON
// line each without the newline, in order, and a function that ends the
// subscription and closes the channel. Subscriptions end with the test.
func (g *Gerrit) Subscribe() (<-chan []byte, func()) {
	s := &subscriber{
		g: g, wake: make(chan struct{}, 1), done: make(chan struct{}),
		stopped: make(chan struct{}), out: make(chan []byte),
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		close(s.out)
		return s.out, func() {}
	}
	g.subs[s] = struct{}{}
	g.mu.Unlock()
	go s.pump()
	return s.out, s.cancel
}

// Subscribers says how many event streams are open: a test waits for its
// client's before it makes the events the client must see.
func (g *Gerrit) Subscribers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.subs)
}

func (s *subscriber) cancel() {
	s.once.Do(func() {
		s.g.mu.Lock()
		delete(s.g.subs, s)
		s.g.mu.Unlock()
		close(s.done)
		<-s.stopped
	})
}

func (s *subscriber) pump() {
	defer close(s.stopped)
	defer close(s.out)
	for {
		s.g.mu.Lock()
		if len(s.queue) == 0 {
			s.g.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		line := s.queue[0]
		s.queue = s.queue[1:]
		s.g.mu.Unlock()
		select {
		case s.out <- line:
		case <-s.done:
			return
		}
	}
}

// ---- queries ----

// query is a parsed query: ANDed terms.
type query struct {
	terms []term
	limit int
}

type term struct {
	op, val string
	not     bool
	age     time.Duration // of age:
}

// parseQuery parses Gerrit's query language, as far as the fake knows
// it: whitespace-separated operator:value terms, ANDed, each negated by a
// leading '-'.
func parseQuery(s string) (*query, error) {
	q := &query{}
	for _, word := range strings.Fields(s) {
		if word == "AND" {
			continue
		}
		t := term{}
		if strings.HasPrefix(word, "-") {
			t.not, word = true, word[1:]
		} else if strings.HasPrefix(word, "NOT:") {
			t.not, word = true, word[4:]
		}
		op, val, ok := strings.Cut(word, ":")
		val = strings.Trim(val, "\"{}")
		if !ok || val == "" {
			return nil, errorf(http.StatusBadRequest, "Unsupported query: %s", word)
		}
		t.op, t.val = op, val
		switch op {
		case "change", "project", "branch", "topic", "commit":
		case "status", "is":
			switch val {
			case "open", "new", "closed", "merged", "abandoned":
			default:
				return nil, errorf(http.StatusBadRequest, "Unrecognized value: %s", val)
			}
		case "age":
			d, err := parseAge(val)
			if err != nil {
				return nil, err
			}
			t.age = d
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || t.not {
				return nil, errorf(http.StatusBadRequest, "Invalid limit: %s", val)
			}
			q.limit = n
			continue
		default:
			return nil, errorf(http.StatusBadRequest, "Unsupported operator %s:%s", op, val)
		}
		q.terms = append(q.terms, t)
	}
	if len(q.terms) == 0 && q.limit == 0 {
		return nil, errorf(http.StatusBadRequest, "empty query")
	}
	return q, nil
}

var ageUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// parseAge parses the value of age: such as 90s, 2d or 1week.
func parseAge(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, errorf(http.StatusBadRequest, "Invalid age: %s", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 32)
	unit, ok := ageUnits[s[i:]]
	if err != nil || !ok {
		return 0, errorf(http.StatusBadRequest, "Invalid age: %s", s)
	}
	return time.Duration(n) * unit, nil
}

func (q *query) match(c *change, now time.Time) bool {
	for _, t := range q.terms {
		ok := true
		switch t.op {
		case "change":
			ok = t.val == strconv.Itoa(c.number) || t.val == c.id
		case "project":
			ok = t.val == c.project
		case "branch":
			ok = t.val == c.branch || t.val == "refs/heads/"+c.branch
		case "topic":
			ok = t.val == c.topic
		case "commit":
			ok = slices.ContainsFunc(c.patchsets, func(ps *patchset) bool { return strings.HasPrefix(ps.commit, t.val) })
		case "age":
			// age:X: last updated at least X ago.
			ok = !c.updated.After(now.Add(-t.age))
		case "status", "is":
			switch t.val {
			case "open", "new":
				ok = c.status == "NEW"
			case "closed":
				ok = c.status != "NEW"
			default:
				ok = strings.EqualFold(t.val, c.status)
			}
		}
		if ok == t.not {
			return false
		}
	}
	return true
}

// find returns the changes q matches, most recently updated first.
func (g *Gerrit) find(q *query) []*change {
	var out []*change
	now := g.now()
	for _, c := range g.changes {
		if q.match(c, now) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].updated.Equal(out[j].updated) {
			return out[i].updated.After(out[j].updated)
		}
		return out[i].number > out[j].number
	})
	return out
}

// QueryJSON answers `gerrit query --format json [options] <query>`: args
// are the command's words, with or without the leading "gerrit query".
// It returns the JSON lines (without newlines): one per change, then the
// stats line. The options known are --format, --current-patch-set,
// --patch-sets, --all-approvals, --commit-message, --dependencies,
// --submit-records, --comments, --files, --start/-S and --limit.
func (g *Gerrit) QueryJSON(args []string) ([][]byte, error) {
	if len(args) >= 2 && args[0] == "gerrit" && args[1] == "query" {
		args = args[2:]
	} else if len(args) >= 1 && args[0] == "query" {
		args = args[1:]
	}
	var (
		format                                            string
		current, patchSets, allApprovals, commitMsg, deps bool
		submitRecords, comments, files                    bool
		start                                             int
		terms                                             []string
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		takeValue := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		switch {
		case name == "--format":
			v, err := takeValue()
			if err != nil {
				return nil, err
			}
			format = strings.ToLower(v)
		case name == "--current-patch-set":
			current = true
		case name == "--patch-sets":
			patchSets = true
		case name == "--all-approvals":
			allApprovals, patchSets = true, true
		case name == "--commit-message":
			commitMsg = true
		case name == "--dependencies":
			deps = true
		case name == "--submit-records":
			submitRecords = true
		case name == "--comments":
			comments = true
		case name == "--files":
			files = true
		case name == "--start" || name == "-S":
			v, err := takeValue()
			if err != nil {
				return nil, err
			}
			if start, err = strconv.Atoi(v); err != nil || start < 0 {
				return nil, fmt.Errorf("bad --start %q", v)
			}
		case name == "--limit":
			v, err := takeValue()
			if err != nil {
				return nil, err
			}
			terms = append(terms, "limit:"+v)
		case a == "--":
			terms = append(terms, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && !strings.Contains(a, ":"):
			return nil, fmt.Errorf("gerrit query: unknown option %q", a)
		default:
			terms = append(terms, a)
		}
	}
	if format != "json" {
		return nil, fmt.Errorf("gerrit query: the fake answers --format json only, not %q", format)
	}
	q, err := parseQuery(strings.Join(terms, " "))
	if err != nil {
		return nil, fmt.Errorf("gerrit query: %w", err)
	}
	began := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	found := g.find(q)
	found = found[min(start, len(found)):]
	limit := q.limit
	if limit == 0 {
		limit = defaultQueryLimit
	}
	more := false
	if len(found) > limit {
		found, more = found[:limit], true
	}
	var lines [][]byte
	for _, c := range found {
		e := g.eventChange(c)
		if !commitMsg {
			e.CommitMessage = ""
		}
		e.LastUpdated = c.updated.Unix()
		e.Open = ptr(c.status == "NEW")
		if current {
			e.CurrentPatchSet = g.eventPatchSet(c, c.current(), true)
			if files {
				if e.CurrentPatchSet.Files, err = g.files(c, c.current()); err != nil {
					return nil, err
				}
			}
		}
		if patchSets {
			for _, ps := range c.patchsets {
				eps := g.eventPatchSet(c, ps, allApprovals)
				if files {
					if eps.Files, err = g.files(c, ps); err != nil {
						return nil, err
					}
				}
				e.PatchSets = append(e.PatchSets, eps)
			}
		}
		if deps {
			e.DependsOn, e.NeededBy = g.dependencies(c)
		}
		if submitRecords {
			e.SubmitRecords = []submitRecord{g.submitRecord(c)}
		}
		if comments {
			for _, m := range c.messages {
				e.Comments = append(e.Comments, queryMessage{Timestamp: m.date.Unix(), Reviewer: m.author, Message: m.text})
			}
		}
		line, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	stats, err := json.Marshal(struct {
		Type        string `json:"type"`
		RowCount    int    `json:"rowCount"`
		RunTimeMS   int64  `json:"runTimeMilliseconds"`
		MoreChanges bool   `json:"moreChanges"`
	}{"stats", len(found), time.Since(began).Milliseconds(), more})
	if err != nil {
		return nil, err
	}
	return append(lines, stats), nil
}

// dependencies returns the changes c's current patchset depends on (its
// parent's change) and the open changes whose current patchset has one of
// c's patchsets for parent.
func (g *Gerrit) dependencies(c *change) (dependsOn, neededBy []queryDependency) {
	cur := c.current()
	for _, o := range g.sortedChanges() {
		if o == c || o.project != c.project {
			continue
		}
		for _, ps := range o.patchsets {
			if slices.Contains(cur.parents, ps.commit) {
				dependsOn = append(dependsOn, queryDependency{
					ID: o.id, Number: o.number, Revision: ps.commit, Ref: ps.ref, IsCurrentPatchSet: ps == o.current(),
				})
			}
		}
		if o.status != "NEW" {
			continue
		}
		for _, ps := range c.patchsets {
			if slices.Contains(o.current().parents, ps.commit) {
				neededBy = append(neededBy, queryDependency{
					ID: o.id, Number: o.number, Revision: o.current().commit, Ref: o.current().ref, IsCurrentPatchSet: true,
				})
			}
		}
	}
	return dependsOn, neededBy
}

func (g *Gerrit) sortedChanges() []*change {
	out := make([]*change, 0, len(g.changes))
	for _, c := range g.changes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

func (g *Gerrit) submitRecord(c *change) submitRecord {
	if c.status != "NEW" {
		return submitRecord{Status: "CLOSED"}
	}
	r := submitRecord{Status: "OK"}
	ps := c.current()
	for _, l := range g.labels {
		if !l.Required {
			continue
		}
		sl := submitLabel{Label: l.Name, Status: "NEED"}
		for _, v := range ps.votes {
			if v.label != l.Name {
				continue
			}
			if v.value == l.Min {
				sl.Status, sl.By = "REJECT", ptr(v.by)
				break
			}
			if v.value == l.Max {
				sl.Status, sl.By = "OK", ptr(v.by)
			}
		}
		if sl.Status != "OK" {
			r.Status = "NOT_READY"
		}
		r.Labels = append(r.Labels, sl)
	}
	return r
}

// files lists the files ps changes against its first parent, with
// Gerrit's /COMMIT_MSG first.
func (g *Gerrit) files(c *change, ps *patchset) ([]queryFile, error) {
	args := []string{"diff-tree", "-r", "--no-commit-id", "--name-status", "-M"}
	if len(ps.parents) == 0 {
		args = append(args, "--root", ps.commit)
	} else {
		args = append(args, ps.parents[0], ps.commit)
	}
	out, err := g.git(g.projects[c.project].dir, nil, nil, args...)
	if err != nil {
		return nil, err
	}
	list := []queryFile{{File: "/COMMIT_MSG", Type: "ADDED"}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 {
			continue
		}
		qf := queryFile{File: f[len(f)-1]}
		switch f[0][0] {
		case 'A':
			qf.Type = "ADDED"
		case 'D':
			qf.Type = "DELETED"
		case 'R':
			qf.Type, qf.FileOld = "RENAMED", f[1]
		case 'C':
			qf.Type, qf.FileOld = "COPIED", f[1]
		default:
			qf.Type = "MODIFIED"
		}
		list = append(list, qf)
	}
	return list, nil
}

// ---- REST API ----

func (g *Gerrit) handler() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/a"} {
		mux.HandleFunc("GET "+prefix+"/changes/{$}", g.serveQuery)
		mux.HandleFunc("GET "+prefix+"/changes/{id}", g.serveChange)
		mux.HandleFunc("GET "+prefix+"/changes/{id}/detail", g.serveDetail)
	}
	mux.HandleFunc("POST /a/changes/{id}/revisions/{rev}/review", g.serveReview)
	mux.HandleFunc("POST /a/changes/{id}/submit", g.serveSubmit)
	mux.HandleFunc("POST /a/changes/{id}/revisions/{rev}/submit", g.serveSubmit)
	mux.HandleFunc("POST /changes/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusForbidden, "Authentication required"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, g: g, req: Request{Method: r.Method, Path: r.URL.Path}}
		defer rec.record(http.StatusOK) // a handler that wrote nothing
		g.mu.Lock()
		fail := g.failN > 0
		status := g.failStatus
		if fail {
			g.failN--
		}
		g.mu.Unlock()
		if fail {
			writeError(rec, errorf(status, "%s", http.StatusText(status)))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/a/") {
			user, pass, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(g.User)) != 1 ||
				subtle.ConstantTimeCompare([]byte(pass), []byte(g.Password)) != 1 {
				rec.Header().Set("WWW-Authenticate", `Basic realm="Gerrit Code Review"`)
				writeError(rec, errorf(http.StatusUnauthorized, "Unauthorized"))
				return
			}
		}
		mux.ServeHTTP(rec, r)
	})
}

// statusRecorder records a request in g.requests when its answer
// starts, so that a client that has the answer finds it in Requests.
type statusRecorder struct {
	http.ResponseWriter
	g        *Gerrit
	req      Request
	recorded bool
}

func (s *statusRecorder) record(status int) {
	if s.recorded {
		return
	}
	s.recorded = true
	s.req.Status = status
	s.g.reqMu.Lock()
	s.g.requests = append(s.g.requests, s.req)
	s.g.reqMu.Unlock()
}

func (s *statusRecorder) WriteHeader(code int) {
	s.record(code)
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.record(http.StatusOK)
	return s.ResponseWriter.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*httpError](err)
	if !ok {
		e = &httpError{status: http.StatusInternalServerError, msg: err.Error()}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	io.WriteString(w, e.msg+"\n")
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	io.WriteString(w, xssiPrefix)
	w.Write(b)
	io.WriteString(w, "\n")
}

// lookup resolves a change id of the REST API: a number, project~number,
// project~branch~Change-Id or a Change-Id. g.mu is held.
func (g *Gerrit) lookup(id string) (*change, error) {
	notFound := errorf(http.StatusNotFound, "Not found: %s", id)
	parts := strings.Split(id, "~")
	switch len(parts) {
	case 1:
		if n, err := strconv.Atoi(id); err == nil {
			if c := g.changes[n]; c != nil {
				return c, nil
			}
			return nil, notFound
		}
		var found *change
		for _, c := range g.changes {
			if c.id == id {
				if found != nil {
					return nil, errorf(http.StatusNotFound, "Multiple changes found for %s", id)
				}
				found = c
			}
		}
		if found == nil {
			return nil, notFound
		}
		return found, nil
	case 2:
		n, err := strconv.Atoi(parts[1])
		if c := g.changes[n]; err == nil && c != nil && c.project == parts[0] {
			return c, nil
		}
	case 3:
		branch := strings.TrimPrefix(parts[1], "refs/heads/")
		for _, c := range g.changes {
			if c.project == parts[0] && c.branch == branch && c.id == parts[2] {
				return c, nil
			}
		}
	}
	return nil, notFound
}

// revision resolves a revision id: current, a patchset number or a
// commit (or a prefix of at least 4 digits).
func revision(c *change, rev string) (*patchset, error) {
	if rev == "current" {
		return c.current(), nil
	}
	if n, err := strconv.Atoi(rev); err == nil && len(rev) < 4 {
		if n >= 1 && n <= len(c.patchsets) {
			return c.patchsets[n-1], nil
		}
	} else if len(rev) >= 4 {
		for _, ps := range c.patchsets {
			if strings.HasPrefix(ps.commit, rev) {
				return ps, nil
			}
		}
	}
	return nil, errorf(http.StatusNotFound, "Not found: %s", rev)
}

// listOptions are the o= values of Gerrit's ListChangesOption that the
// fake knows; those it does not act on are accepted and ignored.
var listOptions = map[string]bool{
	"LABELS": true, "DETAILED_LABELS": true, "CURRENT_REVISION": true, "ALL_REVISIONS": true,
	"CURRENT_COMMIT": true, "ALL_COMMITS": true, "DETAILED_ACCOUNTS": true, "MESSAGES": true,
	"SUBMITTABLE": true,
	// accepted, not acted on
	"CURRENT_FILES": false, "ALL_FILES": false, "CURRENT_ACTIONS": false, "CHANGE_ACTIONS": false,
	"REVIEWED": false, "WEB_LINKS": false, "CHECK": false, "COMMIT_FOOTERS": false,
	"PUSH_CERTIFICATES": false, "REVIEWER_UPDATES": false, "TRACKING_IDS": false,
	"SKIP_MERGEABLE": false, "SKIP_DIFFSTAT": false, "SUBMIT_REQUIREMENTS": false,
	"DOWNLOAD_COMMANDS": false, "STAR": false,
}

func parseOptions(r *http.Request) (map[string]bool, error) {
	opts := map[string]bool{}
	for _, o := range r.URL.Query()["o"] {
		if _, ok := listOptions[o]; !ok {
			return nil, errorf(http.StatusBadRequest, "\"%s\" is not a valid value for \"-o\"", o)
		}
		opts[o] = true
	}
	return opts, nil
}

func (g *Gerrit) serveQuery(w http.ResponseWriter, r *http.Request) {
	opts, err := parseOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v := r.URL.Query()
	qs := v["q"]
	if len(qs) == 0 {
		qs = []string{"status:open"}
	}
	limit, start := 0, 0
	if s := v.Get("n"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid n: %s", s))
			return
		}
	}
	if s := v.Get("S"); s != "" {
		if start, err = strconv.Atoi(s); err != nil || start < 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid S: %s", s))
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var results [][]*changeInfo
	for _, s := range qs {
		q, err := parseQuery(s)
		if err != nil {
			writeError(w, err)
			return
		}
		n := limit
		if q.limit > 0 && (n == 0 || q.limit < n) {
			n = q.limit
		}
		found := g.find(q)
		found = found[min(start, len(found)):]
		more := false
		if n > 0 && len(found) > n {
			found, more = found[:n], true
		}
		infos := []*changeInfo{}
		for _, c := range found {
			infos = append(infos, g.changeInfo(c, opts))
		}
		if more {
			infos[len(infos)-1].MoreChanges = true
		}
		results = append(results, infos)
	}
	if len(results) == 1 {
		writeJSON(w, results[0])
		return
	}
	writeJSON(w, results)
}

func (g *Gerrit) serveChange(w http.ResponseWriter, r *http.Request) {
	opts, err := parseOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := g.lookup(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, g.changeInfo(c, opts))
}

func (g *Gerrit) serveDetail(w http.ResponseWriter, r *http.Request) {
	opts, err := parseOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, o := range []string{"LABELS", "DETAILED_LABELS", "DETAILED_ACCOUNTS", "MESSAGES"} {
		opts[o] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := g.lookup(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, g.changeInfo(c, opts))
}

func (g *Gerrit) serveReview(w http.ResponseWriter, r *http.Request) {
	var in reviewInput
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "request too large"))
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "Invalid json: %v", err))
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := g.lookup(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	ps, err := revision(c, r.PathValue("rev"))
	if err != nil {
		writeError(w, err)
		return
	}
	labels, err := g.review(c, ps, g.Account(), in)
	if err != nil {
		writeError(w, err)
		return
	}
	res := struct {
		Labels map[string]int `json:"labels,omitempty"`
	}{}
	if len(in.Labels) > 0 {
		res.Labels = map[string]int{}
		for name := range in.Labels {
			res.Labels[name] = labels[name]
		}
	}
	writeJSON(w, res)
}

func (g *Gerrit) serveSubmit(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := g.lookup(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if rev := r.PathValue("rev"); rev != "" {
		ps, err := revision(c, rev)
		if err != nil {
			writeError(w, err)
			return
		}
		if ps != c.current() {
			writeError(w, errorf(http.StatusConflict, "revision %s is not current revision", ps.commit))
			return
		}
	}
	if err := g.submit(c, g.Account()); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, g.changeInfo(c, map[string]bool{}))
}

// ---- ChangeInfo ----

type accountInfo struct {
	AccountID int    `json:"_account_id"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	Username  string `json:"username,omitempty"`
}

type approvalInfo struct {
	accountInfo
	Value int    `json:"value"`
	Date  string `json:"date,omitempty"`
	Tag   string `json:"tag,omitempty"`
}

type labelInfo struct {
	Optional     bool              `json:"optional,omitempty"`
	Approved     *accountInfo      `json:"approved,omitempty"`
	Rejected     *accountInfo      `json:"rejected,omitempty"`
	Recommended  *accountInfo      `json:"recommended,omitempty"`
	Disliked     *accountInfo      `json:"disliked,omitempty"`
	Blocking     bool              `json:"blocking,omitempty"`
	Value        int               `json:"value,omitempty"`
	DefaultValue *int              `json:"default_value,omitempty"`
	Values       map[string]string `json:"values,omitempty"`
	All          []approvalInfo    `json:"all,omitempty"`
}

type gitPersonInfo struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Date  string `json:"date"`
	TZ    int    `json:"tz"`
}

type commitInfo struct {
	Parents   []parentInfo  `json:"parents"`
	Author    gitPersonInfo `json:"author"`
	Committer gitPersonInfo `json:"committer"`
	Subject   string        `json:"subject"`
	Message   string        `json:"message"`
}

type parentInfo struct {
	Commit  string `json:"commit"`
	Subject string `json:"subject,omitempty"`
}

type fetchInfo struct {
	URL string `json:"url"`
	Ref string `json:"ref"`
}

type revisionInfo struct {
	Kind     string               `json:"kind"`
	Number   int                  `json:"_number"`
	Created  string               `json:"created"`
	Uploader accountInfo          `json:"uploader"`
	Ref      string               `json:"ref"`
	Fetch    map[string]fetchInfo `json:"fetch"`
	Commit   *commitInfo          `json:"commit,omitempty"`
}

type messageInfo struct {
	ID             string       `json:"id"`
	Author         *accountInfo `json:"author,omitempty"`
	Date           string       `json:"date"`
	Message        string       `json:"message"`
	Tag            string       `json:"tag,omitempty"`
	RevisionNumber int          `json:"_revision_number"`
}

type changeInfo struct {
	ID                    string                   `json:"id"`
	TripletID             string                   `json:"triplet_id"`
	Project               string                   `json:"project"`
	Branch                string                   `json:"branch"`
	Topic                 string                   `json:"topic,omitempty"`
	ChangeID              string                   `json:"change_id"`
	Subject               string                   `json:"subject"`
	Status                string                   `json:"status"`
	Created               string                   `json:"created"`
	Updated               string                   `json:"updated"`
	Submitted             string                   `json:"submitted,omitempty"`
	Submitter             *accountInfo             `json:"submitter,omitempty"`
	Submittable           *bool                    `json:"submittable,omitempty"`
	Insertions            int                      `json:"insertions"`
	Deletions             int                      `json:"deletions"`
	Number                int                      `json:"_number"`
	Owner                 accountInfo              `json:"owner"`
	Labels                map[string]*labelInfo    `json:"labels,omitempty"`
	PermittedLabels       map[string][]string      `json:"permitted_labels,omitempty"`
	Messages              []messageInfo            `json:"messages,omitempty"`
	CurrentRevision       string                   `json:"current_revision,omitempty"`
	CurrentRevisionNumber int                      `json:"current_revision_number"`
	Revisions             map[string]*revisionInfo `json:"revisions,omitempty"`
	MoreChanges           bool                     `json:"_more_changes,omitempty"`
}

func restTimeOf(t time.Time) string { return t.UTC().Format(restTime) }

func (g *Gerrit) accountInfo(a zuul.Account, detailed bool) accountInfo {
	ai := accountInfo{AccountID: g.accountID(a)}
	if detailed {
		ai.Name, ai.Email, ai.Username = a.Name, a.Email, a.Username
	}
	return ai
}

// changeInfo is c as GET /changes/{id} answers with opts.
func (g *Gerrit) changeInfo(c *change, opts map[string]bool) *changeInfo {
	detailed := opts["DETAILED_ACCOUNTS"]
	cur := c.current()
	ci := &changeInfo{
		ID:                    url.PathEscape(c.project) + "~" + strconv.Itoa(c.number),
		TripletID:             url.PathEscape(c.project) + "~" + url.PathEscape(c.branch) + "~" + c.id,
		Project:               c.project,
		Branch:                c.branch,
		Topic:                 c.topic,
		ChangeID:              c.id,
		Subject:               subject(cur.message),
		Status:                c.status,
		Created:               restTimeOf(c.created),
		Updated:               restTimeOf(c.updated),
		Number:                c.number,
		Owner:                 g.accountInfo(c.owner, detailed),
		CurrentRevisionNumber: cur.number,
	}
	if c.submitter != nil {
		ci.Submitted = restTimeOf(c.submitted)
		ci.Submitter = ptr(g.accountInfo(*c.submitter, detailed))
	}
	if opts["SUBMITTABLE"] {
		ci.Submittable = ptr(c.status == "NEW" && len(g.unsatisfied(c)) == 0)
	}
	if opts["LABELS"] || opts["DETAILED_LABELS"] {
		ci.Labels = map[string]*labelInfo{}
		for _, l := range g.labels {
			li := &labelInfo{Optional: !l.Required}
			var max, min, maxV, minV *vote
			for _, v := range cur.votes {
				if v.label != l.Name {
					continue
				}
				if max == nil || v.value > max.value {
					max = v
				}
				if min == nil || v.value < min.value {
					min = v
				}
				if v.value == l.Max {
					maxV = v
				}
				if v.value == l.Min {
					minV = v
				}
			}
			if opts["LABELS"] {
				switch {
				case minV != nil:
					li.Rejected = ptr(g.accountInfo(minV.by, detailed))
				case maxV != nil:
					li.Approved = ptr(g.accountInfo(maxV.by, detailed))
				case min != nil && min.value < 0:
					li.Disliked = ptr(g.accountInfo(min.by, detailed))
				case max != nil && max.value > 0:
					li.Recommended = ptr(g.accountInfo(max.by, detailed))
				}
				if min != nil && min.value < 0 {
					li.Value = min.value
				} else if max != nil {
					li.Value = max.value
				}
				li.Blocking = l.Required && minV != nil
			}
			if opts["DETAILED_LABELS"] {
				li.DefaultValue = ptr(0)
				li.Values = map[string]string{}
				for v := l.Min; v <= l.Max; v++ {
					li.Values[labelValue(v)] = fmt.Sprintf("%s %s", l.Name, labelValue(v))
				}
				for _, v := range cur.votes {
					if v.label == l.Name {
						li.All = append(li.All, approvalInfo{
							accountInfo: g.accountInfo(v.by, detailed), Value: v.value, Date: restTimeOf(v.date), Tag: v.tag,
						})
					}
				}
			}
			ci.Labels[l.Name] = li
		}
		if opts["DETAILED_LABELS"] && c.status == "NEW" {
			ci.PermittedLabels = map[string][]string{}
			for _, l := range g.labels {
				for v := l.Min; v <= l.Max; v++ {
					ci.PermittedLabels[l.Name] = append(ci.PermittedLabels[l.Name], labelValue(v))
				}
			}
		}
	}
	if opts["MESSAGES"] {
		for _, m := range c.messages {
			ci.Messages = append(ci.Messages, messageInfo{
				ID: m.id, Author: ptr(g.accountInfo(m.author, detailed)), Date: restTimeOf(m.date),
				Message: m.text, Tag: m.tag, RevisionNumber: m.patchset,
			})
		}
	}
	if opts["CURRENT_REVISION"] || opts["ALL_REVISIONS"] || opts["CURRENT_COMMIT"] || opts["ALL_COMMITS"] {
		ci.CurrentRevision = cur.commit
		ci.Revisions = map[string]*revisionInfo{}
		for _, ps := range c.patchsets {
			if ps != cur && !opts["ALL_REVISIONS"] {
				continue
			}
			ri := &revisionInfo{
				Kind: "REWORK", Number: ps.number, Created: restTimeOf(ps.created),
				Uploader: g.accountInfo(ps.uploader, detailed), Ref: ps.ref,
				Fetch: map[string]fetchInfo{"anonymous http": {URL: g.URL + "/" + c.project, Ref: ps.ref}},
			}
			if opts["ALL_COMMITS"] || (opts["CURRENT_COMMIT"] && ps == cur) {
				person := gitPersonInfo{Name: ps.uploader.Name, Email: email(ps.uploader), Date: restTimeOf(ps.created)}
				cm := &commitInfo{Author: person, Committer: person, Subject: subject(ps.message), Message: ps.message}
				cm.Parents = []parentInfo{}
				for _, p := range ps.parents {
					cm.Parents = append(cm.Parents, parentInfo{Commit: p})
				}
				ri.Commit = cm
			}
			ci.Revisions[ps.commit] = ri
		}
	}
	return ci
}

// labelValue formats a label value as Gerrit does: "+2", " 0", "-1".
func labelValue(v int) string {
	switch {
	case v > 0:
		return "+" + strconv.Itoa(v)
	case v == 0:
		return " 0"
	}
	return strconv.Itoa(v)
}
