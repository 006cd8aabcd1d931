package zuul

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The JSON that Gerrit's `gerrit stream-events` prints, one event per line,
// and that the webhooks plugin posts, is described in Gerrit's
// Documentation/cmd-stream-events.txt and Documentation/json.txt; `gerrit
// query --format json` prints change attributes of the same json.txt, one
// per line, then a stats line. Gerrit says any field may be missing, so
// this file says which ones sluice cannot do without and refuses lines that
// lack them, naming the field.

// MaxEventSize is the longest event line (or webhook body) accepted, in
// bytes, newline excluded.
const MaxEventSize = 1 << 20

// MaxQueryLineSize is the longest line of `gerrit query` output accepted:
// with --all-approvals a change carries every patch set and its votes.
const MaxQueryLineSize = 8 << 20

// maxQueryRows bounds the changes one query output may hold.
const maxQueryRows = 100000

// ParseError is a line of Gerrit JSON that sluice cannot use. Field is the
// JSON path at fault ("change.number", "patchSet.ref"), empty when the line
// is not JSON at all.
type ParseError struct {
	Field string
	Err   error
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return "gerrit json: " + e.Err.Error()
	}
	return "gerrit json: " + e.Field + ": " + e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// UnsupportedEventError is what ParseEvent returns for a well-formed event
// of a type sluice does not act on (reviewer-added, hashtags-changed,
// dropped-output, a plugin's event...). Sources skip such lines and go on.
type UnsupportedEventError struct {
	Type string
}

func (e *UnsupportedEventError) Error() string {
	return fmt.Sprintf("gerrit event: unsupported type %q", e.Type)
}

// DroppedOutput is the type of the event Gerrit sends to a stream-events
// client whose queue overflowed: events were lost.
const DroppedOutput = "dropped-output"

var (
	errMissing  = errors.New("missing")
	errTooLarge = errors.New("too large")
)

func fieldErr(field string, format string, args ...any) error {
	return &ParseError{Field: field, Err: fmt.Errorf(format, args...)}
}

func missing(field string) error { return &ParseError{Field: field, Err: errMissing} }

// Gerrit's JSON, as far as sluice reads it. Numbers that Gerrit printed as
// strings in old releases (change and patch set numbers, approval values)
// are kept raw and converted with their field name at hand.
type (
	gAccount struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Username string `json:"username"`
	}
	gApproval struct {
		Type        string          `json:"type"`
		Description string          `json:"description"`
		Value       json.RawMessage `json:"value"`
		OldValue    json.RawMessage `json:"oldValue"`
		GrantedOn   int64           `json:"grantedOn"`
		By          *gAccount       `json:"by"`
	}
	gPatchSet struct {
		Number    json.RawMessage `json:"number"`
		Revision  string          `json:"revision"`
		Parents   []string        `json:"parents"`
		Ref       string          `json:"ref"`
		Uploader  *gAccount       `json:"uploader"`
		Author    *gAccount       `json:"author"`
		CreatedOn int64           `json:"createdOn"`
		Kind      string          `json:"kind"`
		Approvals []gApproval     `json:"approvals"`
	}
	gChange struct {
		// Type is set only on the stats and error lines of a query.
		Type            string          `json:"type"`
		Message         string          `json:"message"` // of an error line
		Project         string          `json:"project"`
		Branch          string          `json:"branch"`
		ID              string          `json:"id"`
		Number          json.RawMessage `json:"number"`
		Subject         string          `json:"subject"`
		Owner           *gAccount       `json:"owner"`
		URL             string          `json:"url"`
		CommitMessage   string          `json:"commitMessage"`
		CreatedOn       int64           `json:"createdOn"`
		LastUpdated     int64           `json:"lastUpdated"`
		Status          string          `json:"status"`
		CurrentPatchSet *gPatchSet      `json:"currentPatchSet"`
		// Comments are the change messages (query --comments).
		Comments []gMessage `json:"comments"`
		// Stats line fields.
		RowCount                json.RawMessage `json:"rowCount"`
		MoreChanges             bool            `json:"moreChanges"`
		RunTimeMilliseconds     int64           `json:"runTimeMilliseconds"`
		RunningTimeMilliseconds int64           `json:"runningTimeMilliseconds"` // as cmd-query.txt spells it
	}
	gMessage struct {
		Timestamp int64     `json:"timestamp"`
		Reviewer  *gAccount `json:"reviewer"`
		Message   string    `json:"message"`
	}
	gRefUpdate struct {
		OldRev  string `json:"oldRev"`
		NewRev  string `json:"newRev"`
		RefName string `json:"refName"`
		Project string `json:"project"`
	}
	gEvent struct {
		Type           string      `json:"type"`
		Change         *gChange    `json:"change"`
		PatchSet       *gPatchSet  `json:"patchSet"`
		Uploader       *gAccount   `json:"uploader"`
		Author         *gAccount   `json:"author"`
		Submitter      *gAccount   `json:"submitter"`
		Abandoner      *gAccount   `json:"abandoner"`
		Approvals      []gApproval `json:"approvals"`
		Comment        string      `json:"comment"`
		Reason         string      `json:"reason"`
		NewRev         string      `json:"newRev"`
		RefUpdate      *gRefUpdate `json:"refUpdate"`
		EventCreatedOn int64       `json:"eventCreatedOn"`
	}
)

// decode unmarshals one JSON object, turning encoding/json's errors into
// ParseErrors that name the field.
func decode(line []byte, v any) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return &ParseError{Err: errors.New("not a JSON object")}
	}
	err := json.Unmarshal(line, v)
	if err == nil {
		return nil
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			field = "(top)"
		}
		return fieldErr(field, "%s where %s is wanted", te.Value, te.Type)
	}
	return &ParseError{Err: fmt.Errorf("not JSON: %w", err)}
}

// ParseEvent parses one line of `gerrit stream-events` output (or one
// webhooks plugin body) into an Event. An event of a type sluice does not
// act on gives an *UnsupportedEventError; a line sluice cannot use gives a
// *ParseError naming the field.
//
// Branch is the short name (no refs/heads/). For ref-updated, RefName is
// always a full ref name: old Gerrit releases gave branches as a bare
// name, which is read as refs/heads/<name>.
func ParseEvent(line []byte) (Event, error) {
	if len(line) > MaxEventSize {
		return Event{}, &ParseError{Err: fmt.Errorf("event of %d bytes: %w (limit %d)", len(line), errTooLarge, MaxEventSize)}
	}
	var g gEvent
	if err := decode(line, &g); err != nil {
		return Event{}, err
	}
	ev := Event{Type: EventType(g.Type)}
	if g.EventCreatedOn > 0 {
		ev.Created = time.Unix(g.EventCreatedOn, 0).UTC()
	}
	var who *gAccount
	switch ev.Type {
	case "":
		return Event{}, missing("type")
	case RefUpdated:
		return refUpdated(ev, &g)
	case PatchsetCreated, DraftPublished:
		who = g.Uploader
	case CommentAdded:
		who = g.Author
	case ChangeMerged:
		who = g.Submitter
		if g.NewRev != "" {
			if !isSHA1(g.NewRev) {
				return Event{}, fieldErr("newRev", "%q is not a 40-hex commit id", g.NewRev)
			}
			ev.NewRev = g.NewRev
		}
	case ChangeAbandoned:
		who = g.Abandoner
		ev.Comment = g.Reason
	default:
		if !validEventType(g.Type) {
			return Event{}, fieldErr("type", "%q is not an event type", g.Type)
		}
		return Event{}, &UnsupportedEventError{Type: g.Type}
	}
	if g.Change == nil {
		return Event{}, missing("change")
	}
	if g.PatchSet == nil {
		return Event{}, missing("patchSet")
	}
	c, err := change(g.Change, g.PatchSet, "change", "patchSet")
	if err != nil {
		return Event{}, err
	}
	c.Current = ev.Type == PatchsetCreated || ev.Type == DraftPublished
	ev.Change = &c
	ev.Project, ev.Branch = c.Project, c.Branch
	ev.Account = account(who)
	if ev.Type == CommentAdded {
		ev.Comment = g.Comment
		for i := range g.Approvals {
			a, err := approval(&g.Approvals[i], fmt.Sprintf("approvals[%d]", i), ev.Account)
			if err != nil {
				return Event{}, err
			}
			ev.Approvals = append(ev.Approvals, a)
		}
	}
	return ev, nil
}

func refUpdated(ev Event, g *gEvent) (Event, error) {
	u := g.RefUpdate
	if u == nil {
		return Event{}, missing("refUpdate")
	}
	if err := validProject(u.Project); err != nil {
		return Event{}, &ParseError{Field: "refUpdate.project", Err: err}
	}
	name := u.RefName
	if name == "" {
		return Event{}, missing("refUpdate.refName")
	}
	if !strings.HasPrefix(name, "refs/") {
		name = "refs/heads/" + name
	}
	if err := validRefName(name); err != nil {
		return Event{}, &ParseError{Field: "refUpdate.refName", Err: err}
	}
	for _, r := range []struct{ field, v string }{{"refUpdate.oldRev", u.OldRev}, {"refUpdate.newRev", u.NewRev}} {
		if r.v == "" {
			return Event{}, missing(r.field)
		}
		if !isSHA1(r.v) {
			return Event{}, fieldErr(r.field, "%q is not a 40-hex commit id", r.v)
		}
	}
	ev.Project = u.Project
	ev.Branch, _ = strings.CutPrefix(name, "refs/heads/")
	if ev.Branch == name {
		ev.Branch = ""
	}
	ev.RefName, ev.OldRev, ev.NewRev = name, u.OldRev, u.NewRev
	ev.Account = account(g.Submitter)
	return ev, nil
}

// change builds a Change from a change attribute and one of its patch set
// attributes; cf and pf are their JSON paths, for errors.
func change(gc *gChange, ps *gPatchSet, cf, pf string) (Change, error) {
	var c Change
	if gc.Project == "" {
		return c, missing(path(cf, "project"))
	}
	if err := validProject(gc.Project); err != nil {
		return c, &ParseError{Field: path(cf, "project"), Err: err}
	}
	if gc.Branch == "" {
		return c, missing(path(cf, "branch"))
	}
	branch := strings.TrimPrefix(gc.Branch, "refs/heads/")
	if err := validRefName("refs/heads/" + branch); err != nil {
		return c, &ParseError{Field: path(cf, "branch"), Err: err}
	}
	n, err := number(gc.Number, path(cf, "number"), 1)
	if err != nil {
		return c, err
	}
	if gc.ID != "" && !isChangeID(gc.ID) {
		return c, fieldErr(path(cf, "id"), "%q is not a Change-Id (I and 40 hex digits)", gc.ID)
	}
	if gc.URL != "" {
		if u, err := url.Parse(gc.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fieldErr(path(cf, "url"), "%q is not an http(s) URL", gc.URL)
		}
	}
	if gc.Status != "" && !isUpperWord(gc.Status) {
		return c, fieldErr(path(cf, "status"), "%q is not a change status", gc.Status)
	}
	p, err := number(ps.Number, path(pf, "number"), 1)
	if err != nil {
		return c, err
	}
	if ps.Revision == "" {
		return c, missing(path(pf, "revision"))
	}
	if !isSHA1(ps.Revision) {
		return c, fieldErr(path(pf, "revision"), "%q is not a 40-hex commit id", ps.Revision)
	}
	if ps.Ref == "" {
		return c, missing(path(pf, "ref"))
	}
	if want := ChangeRef(n, p); ps.Ref != want {
		return c, fieldErr(path(pf, "ref"), "%q is not %s, the ref of change %d patch set %d", ps.Ref, want, n, p)
	}
	for i, par := range ps.Parents {
		if !isSHA1(par) {
			return c, fieldErr(fmt.Sprintf("%s.parents[%d]", pf, i), "%q is not a 40-hex commit id", par)
		}
	}
	c = Change{
		Project:  gc.Project,
		Branch:   branch,
		Number:   n,
		Patchset: p,
		Ref:      ps.Ref,
		Commit:   ps.Revision,
		ChangeID: gc.ID,
		URL:      gc.URL,
		Subject:  gc.Subject,
		Message:  gc.CommitMessage,
		Owner:    account(gc.Owner),
		Status:   gc.Status,
		Parents:  ps.Parents,
	}
	return c, nil
}

func approval(ga *gApproval, field string, by Account) (Approval, error) {
	if ga.Type == "" {
		return Approval{}, missing(field + ".type")
	}
	if !validLabel(ga.Type) {
		return Approval{}, fieldErr(field+".type", "%q is not a label name", ga.Type)
	}
	v, err := vote(ga.Value, field+".value")
	if err != nil {
		return Approval{}, err
	}
	a := Approval{Label: ga.Type, Value: v, By: by}
	if ga.By != nil {
		a.By = account(ga.By)
	}
	if len(ga.OldValue) > 0 && string(ga.OldValue) != "null" {
		old, err := vote(ga.OldValue, field+".oldValue")
		if err != nil {
			return Approval{}, err
		}
		a.Old = &old
	}
	return a, nil
}

func account(a *gAccount) Account {
	if a == nil {
		return Account{}
	}
	return Account{Name: a.Name, Email: a.Email, Username: a.Username}
}

// intText is the text of a JSON number or of a JSON string holding one.
func intText(raw json.RawMessage, field string) (string, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return "", missing(field)
	}
	if s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fieldErr(field, "bad string: %v", err)
		}
	}
	return s, nil
}

// number reads a change or patch set number: a positive int32, as a JSON
// number or (old Gerrit) a string.
func number(raw json.RawMessage, field string, min int) (int, error) {
	s, err := intText(raw, field)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < int64(min) || s[0] == '+' {
		return 0, fieldErr(field, "%q is not a number of at least %d", s, min)
	}
	return int(n), nil
}

// vote reads an approval value: "-2", "+1", "0" or a bare number.
func vote(raw json.RawMessage, field string) (int, error) {
	s, err := intText(raw, field)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 16)
	if err != nil {
		return 0, fieldErr(field, "%q is not a vote", s)
	}
	return int(n), nil
}

// QueryStats is the last line of `gerrit query --format json` output.
type QueryStats struct {
	RowCount    int
	MoreChanges bool // more changes match than the query returned
	RunningTime time.Duration
}

// queryRow is one change of a query output with the timestamps the SSH
// source's catch-up needs.
type queryRow struct {
	change Change
	raw    *gChange
}

// ParseQuery reads the output of `gerrit query --format json
// --current-patch-set [--all-approvals --dependencies --submit-records]`:
// one change attribute per line, then the stats line. Each change is its
// current patch set, with Current true, Approvals from
// currentPatchSet.approvals, Message from commitMessage and Parents from
// the patch set. An output without its stats line, or whose row count
// disagrees, is an error: it was cut short.
func ParseQuery(r io.Reader) ([]Change, QueryStats, error) {
	rows, st, err := parseQuery(r)
	if err != nil {
		return nil, st, err
	}
	out := make([]Change, len(rows))
	for i := range rows {
		out[i] = rows[i].change
	}
	return out, st, nil
}

func parseQuery(r io.Reader) ([]queryRow, QueryStats, error) {
	var (
		rows []queryRow
		st   QueryStats
		done bool
	)
	err := readLines(r, MaxQueryLineSize, func(n int, line []byte, tooLong bool) error {
		if tooLong {
			return fmt.Errorf("gerrit query: line %d: longer than %d bytes", n, MaxQueryLineSize)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		if done {
			return fmt.Errorf("gerrit query: line %d: output after the stats line", n)
		}
		var g gChange
		if err := decode(line, &g); err != nil {
			return fmt.Errorf("gerrit query: line %d: %w", n, err)
		}
		switch g.Type {
		case "":
		case "stats":
			rc, err := number(g.RowCount, "rowCount", 0)
			if err != nil {
				return fmt.Errorf("gerrit query: line %d: %w", n, err)
			}
			st = QueryStats{RowCount: rc, MoreChanges: g.MoreChanges, RunningTime: time.Duration(max(g.RunTimeMilliseconds, g.RunningTimeMilliseconds)) * time.Millisecond}
			done = true
			return nil
		case "error":
			return fmt.Errorf("gerrit query: %s", strings.TrimSpace(g.Message))
		default:
			return fmt.Errorf("gerrit query: line %d: %w", n, fieldErr("type", "unexpected %q", g.Type))
		}
		if len(rows) >= maxQueryRows {
			return fmt.Errorf("gerrit query: more than %d changes", maxQueryRows)
		}
		if g.CurrentPatchSet == nil {
			return fmt.Errorf("gerrit query: line %d: %w", n, missing("currentPatchSet"))
		}
		c, err := change(&g, g.CurrentPatchSet, "", "currentPatchSet")
		if err != nil {
			return fmt.Errorf("gerrit query: line %d: %w", n, err)
		}
		c.Current = true
		for i := range g.CurrentPatchSet.Approvals {
			a, err := approval(&g.CurrentPatchSet.Approvals[i], fmt.Sprintf("currentPatchSet.approvals[%d]", i), Account{})
			if err != nil {
				return fmt.Errorf("gerrit query: line %d: %w", n, err)
			}
			c.Approvals = append(c.Approvals, a)
		}
		rows = append(rows, queryRow{change: c, raw: &g})
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	if !done {
		return nil, st, errors.New("gerrit query: no stats line: output cut short")
	}
	if st.RowCount != len(rows) {
		return nil, st, fmt.Errorf("gerrit query: stats say %d changes, output has %d", st.RowCount, len(rows))
	}
	return rows, st, nil
}

// path joins a JSON path and a field name; a query row is the top level,
// with an empty path.
func path(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isSHA1(s string) bool { return len(s) == 40 && isHex(s) }

func isChangeID(s string) bool {
	return len(s) == 41 && s[0] == 'I' && isHex(s[1:])
}

func isUpperWord(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}

// validEventType: Gerrit's types are lower-case words joined by dashes;
// plugins add their own in the same shape.
func validEventType(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validLabel follows Gerrit's label names: letters, digits and dashes.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validProject checks a Gerrit project name before it names a repository
// (and so a directory): slash-separated path segments, none empty, "." or
// "..", no control characters, no backslash, no leading dash.
func validProject(p string) error {
	if p == "" {
		return errMissing
	}
	if len(p) > 255 {
		return fmt.Errorf("%d bytes long", len(p))
	}
	if p[0] == '-' {
		return fmt.Errorf("%q starts with a dash", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q has an empty, . or .. segment", p)
		}
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || r == 0xfffd {
			return fmt.Errorf("%q has a control character, backslash or invalid UTF-8", p)
		}
	}
	return nil
}

// validRefName applies git check-ref-format's rules to a full ref name.
func validRefName(name string) error {
	if len(name) > 1024 {
		return fmt.Errorf("%d bytes long", len(name))
	}
	bad := func(why string) error { return fmt.Errorf("%q: %s", name, why) }
	if !strings.HasPrefix(name, "refs/") || len(name) == len("refs/") {
		return bad("not under refs/")
	}
	if strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock") {
		return bad("ends with /, . or .lock")
	}
	if strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.Contains(name, "//") {
		return bad("contains .., @{ or //")
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasPrefix(seg, "-") {
			return bad("a component starts with . or -")
		}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return bad("has a control character or one of ' ~^:?*[\\'")
		}
	}
	return nil
}
