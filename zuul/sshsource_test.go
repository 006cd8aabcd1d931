package zuul_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/zuul"
	"github.com/sluice-ci/sluice/zuul/gerrittest"
)

// fakeGerrit is the StreamBackend of these tests: changes with votes and
// messages, events published by hand, and the catch-up query answered
// from the changes' update times.
type fakeGerrit struct {
	mu         sync.Mutex
	subs       map[chan []byte]struct{}
	subscribed chan struct{}
	changes    []*fakeChange
	queries    [][]string
}

type fakeVote struct {
	label string
	value int
	by    zuul.Account
	at    time.Time
}

type fakeMessage struct {
	by   zuul.Account
	at   time.Time
	text string
}

type fakeChange struct {
	project, branch string
	number, ps      int
	created         time.Time // of the current patch set
	uploader        zuul.Account
	votes           []fakeVote
	messages        []fakeMessage
	updated         time.Time
}

var (
	alice = zuul.Account{Name: "Alice", Email: "alice@example.org", Username: "alice"}
	bob   = zuul.Account{Name: "Bob", Email: "bob@example.org", Username: "bob"}
	ci    = zuul.Account{Name: "CI", Email: "ci@example.org", Username: "ci"}
)

func newFakeGerrit() *fakeGerrit {
	return &fakeGerrit{subs: map[chan []byte]struct{}{}, subscribed: make(chan struct{}, 16)}
}

func (g *fakeGerrit) Subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 64)
	g.mu.Lock()
	g.subs[ch] = struct{}{}
	g.mu.Unlock()
	g.subscribed <- struct{}{}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			g.mu.Lock()
			delete(g.subs, ch)
			g.mu.Unlock()
		})
	}
}

// publish sends a stream-events line to every subscriber.
func (g *fakeGerrit) publish(line []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for ch := range g.subs {
		ch <- line
	}
}

var ageTerm = regexp.MustCompile(`^status:open -age:([0-9]+)s$`)

func (g *fakeGerrit) QueryJSON(args []string) ([][]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queries = append(g.queries, args)
	m := ageTerm.FindStringSubmatch(args[len(args)-1])
	if m == nil {
		return nil, fmt.Errorf("unsupported query %q", args)
	}
	secs, _ := strconv.Atoi(m[1])
	start := 0
	if i := slices.Index(args, "--start"); i >= 0 {
		start, _ = strconv.Atoi(args[i+1])
	}
	comments := slices.Contains(args, "--comments")
	cutoff := time.Now().Add(-time.Duration(secs) * time.Second)
	var found []*fakeChange
	for _, c := range g.changes {
		if !c.updated.Before(cutoff) {
			found = append(found, c)
		}
	}
	slices.SortStableFunc(found, func(a, b *fakeChange) int { return b.updated.Compare(a.updated) })
	found = found[min(start, len(found)):]
	var out [][]byte
	for _, c := range found {
		out = append(out, mustJSON(c.attribute(true, comments)))
	}
	return append(out, mustJSON(map[string]any{"type": "stats", "rowCount": len(found), "runTimeMilliseconds": 1, "moreChanges": false})), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func sha(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (c *fakeChange) changeID() string { return "I" + sha(fmt.Sprint("change", c.number)) }

// attribute is the change in json.txt's form; query adds what `gerrit
// query --current-patch-set [--comments]` adds.
func (c *fakeChange) attribute(query, comments bool) map[string]any {
	ps := map[string]any{
		"number": c.ps, "revision": sha(fmt.Sprint(c.number, "/", c.ps)), "parents": []string{sha("base")},
		"ref": zuul.ChangeRef(c.number, c.ps), "uploader": c.uploader, "createdOn": c.created.Unix(),
		"author": c.uploader, "kind": "REWORK",
	}
	attr := map[string]any{
		"project": c.project, "branch": c.branch, "id": c.changeID(), "number": c.number,
		"subject": "a change", "owner": c.uploader, "url": fmt.Sprintf("https://review.example.org/%d", c.number),
		"commitMessage": "a change\n\nChange-Id: " + c.changeID() + "\n", "status": "NEW",
	}
	if !query {
		return map[string]any{"change": attr, "patchSet": ps}
	}
	var approvals []map[string]any
	for _, v := range c.votes {
		approvals = append(approvals, map[string]any{"type": v.label, "description": v.label, "value": strconv.Itoa(v.value), "grantedOn": v.at.Unix(), "by": v.by})
	}
	ps["approvals"] = approvals
	attr["currentPatchSet"] = ps
	attr["lastUpdated"] = c.updated.Unix()
	attr["open"] = true
	if comments {
		var msgs []map[string]any
		for _, m := range c.messages {
			msgs = append(msgs, map[string]any{"timestamp": m.at.Unix(), "reviewer": m.by, "message": m.text})
		}
		attr["comments"] = msgs
	}
	return attr
}

// upload adds a change or a patch set to one, now, and returns its
// patchset-created event line.
func (g *fakeGerrit) upload(project string, number int, who zuul.Account) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	i := slices.IndexFunc(g.changes, func(c *fakeChange) bool { return c.number == number })
	if i < 0 {
		g.changes = append(g.changes, &fakeChange{project: project, branch: "main", number: number})
		i = len(g.changes) - 1
	}
	c := g.changes[i]
	c.ps++
	c.created, c.uploader, c.updated, c.votes = now, who, now, nil
	c.messages = append(c.messages, fakeMessage{by: who, at: now, text: fmt.Sprintf("Uploaded patch set %d.", c.ps)})
	ev := c.attribute(false, false)
	ev["type"], ev["uploader"], ev["eventCreatedOn"] = "patchset-created", who, now.Unix()
	return mustJSON(ev)
}

// review votes on the current patch set of change number, now, and
// returns the comment-added event line.
func (g *fakeGerrit) review(number int, who zuul.Account, text string, labels map[string]int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	c := g.changes[slices.IndexFunc(g.changes, func(c *fakeChange) bool { return c.number == number })]
	var approvals []map[string]any
	names := make([]string, 0, len(labels))
	for l := range labels {
		names = append(names, l)
	}
	slices.Sort(names)
	var votes []string
	for _, l := range names {
		c.votes = slices.DeleteFunc(c.votes, func(v fakeVote) bool { return v.label == l && v.by == who })
		c.votes = append(c.votes, fakeVote{label: l, value: labels[l], by: who, at: now})
		approvals = append(approvals, map[string]any{"type": l, "description": l, "value": strconv.Itoa(labels[l])})
		votes = append(votes, fmt.Sprintf("%s%+d", l, labels[l]))
	}
	msg := fmt.Sprintf("Patch Set %d:", c.ps)
	if len(votes) > 0 {
		msg += " " + strings.Join(votes, " ")
	}
	if text != "" {
		msg += "\n\n" + text
	}
	c.messages = append(c.messages, fakeMessage{by: who, at: now, text: msg})
	c.updated = now
	ev := c.attribute(false, false)
	ev["type"], ev["author"], ev["approvals"], ev["comment"], ev["eventCreatedOn"] = "comment-added", who, approvals, msg, now.Unix()
	return mustJSON(ev)
}

func (g *fakeGerrit) queryCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queries)
}

func newSigner(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// receive waits for the next event; the bound is a guard against a hang,
// not a timing the test depends on.
func receive(t *testing.T, out <-chan zuul.Event) zuul.Event {
	t.Helper()
	select {
	case ev := <-out:
		return ev
	case <-time.After(time.Hour): // fake time in a bubble
		t.Fatal("no event")
		return zuul.Event{}
	}
}

func waitSubscribed(t *testing.T, g *fakeGerrit) {
	t.Helper()
	select {
	case <-g.subscribed:
	case <-time.After(time.Hour):
		t.Fatal("no subscription")
	}
}

// TestSSHSourceStream runs the source against the fake daemon over TCP,
// with a key file and a known_hosts file: live events flow, lines that
// are not events are skipped, and the first connection runs no query.
func TestSSHSourceStream(t *testing.T) {
	t.Parallel()
	signer, priv := newSigner(t)
	g := newFakeGerrit()
	srv, err := gerrittest.NewSSHServer(g, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile, knownHosts := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knownHosts, []byte(srv.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := zuul.NewSSHSource(zuul.SSHConfig{
		User: "sluice", Addr: srv.Addr(), KeyFile: keyFile, KnownHostsFile: knownHosts,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan zuul.Event)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	waitSubscribed(t, g)

	g.publish(g.upload("rpms/curl", 12345, alice))
	g.publish([]byte(`{"type":"reviewer-added","change":{"project":"rpms/curl"}}`))
	g.publish([]byte(`{"type":"comment-added",`))
	g.publish(g.review(12345, bob, "Looks good.", map[string]int{"Code-Review": 2}))
	ev := receive(t, out)
	if ev.Type != zuul.PatchsetCreated || ev.Change.Key() != "rpms/curl~12345~1" || ev.Account != alice || ev.Synthetic {
		t.Errorf("first event %+v", ev)
	}
	ev = receive(t, out)
	if ev.Type != zuul.CommentAdded || len(ev.Approvals) != 1 || ev.Approvals[0].Value != 2 || ev.Account != bob {
		t.Errorf("second event %+v", ev)
	}
	if got := srv.Commands(); !slices.Equal(got, []string{"gerrit stream-events"}) {
		t.Errorf("commands before the drop %q", got)
	}

	// A vote whose event is lost, then the connection drops: the vote
	// comes from the catch-up query of the next connection, after the
	// events of the last two minutes (the margin) again. (Voting first
	// keeps the query from running before the vote exists.)
	g.review(12345, bob, "", map[string]int{"Workflow": 1})
	srv.DropConnections()
	for i := 0; ; i++ {
		ev := receive(t, out)
		if !ev.Synthetic {
			t.Fatalf("live event %+v while catching up", ev)
		}
		if w, ok := voted(ev, "Workflow"); ok && w == 1 {
			break
		}
		if i == 3 {
			t.Fatal("no Workflow+1 after 4 synthesized events")
		}
	}
	cmds := srv.Commands()
	if len(cmds) < 3 || cmds[1] != "gerrit stream-events" || !strings.HasPrefix(cmds[2], "gerrit query ") {
		t.Errorf("commands %q", cmds)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// voted is the value of label among the approvals of a comment-added event.
func voted(ev zuul.Event, label string) (int, bool) {
	for _, a := range ev.Approvals {
		if a.Label == label {
			return a.Value, true
		}
	}
	return 0, false
}

// sshTest runs fn in a synctest bubble against an in-memory fake daemon.
func sshTest(t *testing.T, cfg zuul.SSHConfig, fn func(t *testing.T, g *fakeGerrit, srv *gerrittest.SSHServer, out <-chan zuul.Event)) {
	synctest.Test(t, func(t *testing.T) {
		signer, _ := newSigner(t)
		g := newFakeGerrit()
		srv, err := gerrittest.NewUnstartedSSHServer(g, signer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		cfg.User, cfg.Addr, cfg.Signer, cfg.HostKey = "sluice", "review.example.org:29418", signer, srv.HostKey()
		if cfg.Dial == nil {
			cfg.Dial = srv.DialPipe
		}
		src, err := zuul.NewSSHSource(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		out := make(chan zuul.Event)
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, out) }()
		fn(t, g, srv, out)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestSSHSourceCatchUp drops the connection; while the source is away a
// patch set is uploaded and a vote cast, with no event: the catch-up query
// of the next connection brings both, and not the older vote. A
// dropped-output event starts the same catch-up.
func TestSSHSourceCatchUp(t *testing.T) {
	t.Parallel()
	cfg := zuul.SSHConfig{MinBackoff: time.Second, MaxBackoff: 10 * time.Second, CatchupMargin: time.Minute}
	sshTest(t, cfg, func(t *testing.T, g *fakeGerrit, srv *gerrittest.SSHServer, out <-chan zuul.Event) {
		g.upload("rpms/curl", 12345, alice)
		time.Sleep(10 * time.Minute)
		g.review(12345, bob, "", map[string]int{"Code-Review": 1}) // before the cut-off
		waitSubscribed(t, g)
		g.publish(g.review(12345, ci, "Build succeeded.", map[string]int{"Verified": 1}))
		if ev := receive(t, out); ev.Type != zuul.CommentAdded || ev.Synthetic {
			t.Fatalf("live event %+v", ev)
		}
		time.Sleep(5 * time.Minute) // keepalives go on
		dropped := time.Now()
		if n := srv.DropConnections(); n != 1 {
			t.Fatalf("dropped %d connections", n)
		}
		// Away: no subscriber sees these.
		g.upload("debs/hello", 7, bob)
		g.review(12345, bob, "Ship it.", map[string]int{"Workflow": 1, "Code-Review": 2})

		waitSubscribed(t, g)
		// Both happened in the same second: either may come first.
		evs := []zuul.Event{receive(t, out), receive(t, out)}
		slices.SortFunc(evs, func(a, b zuul.Event) int { return strings.Compare(string(b.Type), string(a.Type)) })
		ev := evs[0]
		if ev.Type != zuul.PatchsetCreated || !ev.Synthetic || ev.Change.Key() != "debs/hello~7~1" || ev.Account != bob || !ev.Change.Current {
			t.Errorf("synthesized patchset-created %+v", ev)
		}
		ev = evs[1]
		if ev.Type != zuul.CommentAdded || !ev.Synthetic || ev.Change.Key() != "rpms/curl~12345~1" || ev.Account != bob ||
			ev.Comment != "Patch Set 1: Code-Review+2 Workflow+1\n\nShip it." || len(ev.Approvals) != 2 {
			t.Errorf("synthesized comment-added %+v", ev)
		}
		for _, a := range ev.Approvals {
			if a.By != bob || a.Old != nil || (a.Label != "Workflow" || a.Value != 1) && (a.Label != "Code-Review" || a.Value != 2) {
				t.Errorf("approval %+v", a)
			}
		}
		if w, _ := ev.Change.Vote("Workflow"); w != 1 {
			t.Errorf("the change's votes: %+v", ev.Change.Approvals)
		}
		cmds := srv.Commands()
		if len(cmds) != 3 || cmds[0] != "gerrit stream-events" || cmds[1] != "gerrit stream-events" {
			t.Fatalf("commands %q", cmds)
		}
		m := regexp.MustCompile(`^gerrit query --format json --current-patch-set --all-approvals --comments --dependencies --submit-records 'status:open -age:([0-9]+)s'$`).FindStringSubmatch(cmds[2])
		if m == nil {
			t.Fatalf("catch-up query %q", cmds[2])
		}
		// The last sign of life was a keepalive at most 15s before the
		// drop; the wait before reconnecting at most MinBackoff.
		age, _ := strconv.Atoi(m[1])
		if lo, hi := 60, 60+15+1+1; age <= lo || age > hi {
			t.Errorf("catch-up looked back %ds, want (%d, %d]", age, lo, hi)
		}
		if away := time.Since(dropped); away > time.Second {
			t.Errorf("reconnected after %v", away)
		}

		// Live events flow again, then Gerrit drops output: whatever
		// happened since the last line is caught up.
		time.Sleep(5 * time.Minute)
		g.publish(g.review(12345, alice, "recheck", nil))
		if ev := receive(t, out); ev.Type != zuul.CommentAdded || ev.Synthetic || !strings.HasSuffix(ev.Comment, "recheck") {
			t.Errorf("live event after the reconnection %+v", ev)
		}
		time.Sleep(time.Minute)
		g.review(12345, ci, "", map[string]int{"Verified": -1}) // lost
		g.publish([]byte(`{"type":"dropped-output","eventCreatedOn":` + strconv.FormatInt(time.Now().Unix(), 10) + `}`))
		var got []zuul.Event
		for range 2 { // the recheck again (within the margin), then the vote
			got = append(got, receive(t, out))
		}
		if !got[0].Synthetic || !strings.HasSuffix(got[0].Comment, "recheck") ||
			!got[1].Synthetic || got[1].Account != ci || len(got[1].Approvals) != 1 || got[1].Approvals[0].Value != -1 {
			t.Errorf("after dropped-output: %+v", got)
		}
		if n := g.queryCount(); n != 2 {
			t.Errorf("%d queries", n)
		}
	})
}

// TestSSHSourceKeepalive silences the connection without closing it: the
// unanswered keepalive closes it and the source reconnects.
func TestSSHSourceKeepalive(t *testing.T) {
	t.Parallel()
	cfg := zuul.SSHConfig{KeepaliveInterval: 15 * time.Second, KeepaliveTimeout: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 4 * time.Second}
	sshTest(t, cfg, func(t *testing.T, g *fakeGerrit, srv *gerrittest.SSHServer, out <-chan zuul.Event) {
		waitSubscribed(t, g)
		time.Sleep(2 * time.Minute)
		start := time.Now()
		srv.Stall()
		waitSubscribed(t, g)
		synctest.Wait() // the catch-up query is done
		// Noticed by the second keepalive at the latest (one may be
		// answered already), 30s after it was sent; then a back-off
		// of at most 4s.
		if took := time.Since(start); took < 30*time.Second || took > 15*time.Second*2+30*time.Second+4*time.Second {
			t.Errorf("reconnected %v after the stall", took)
		}
		g.publish(g.upload("rpms/curl", 1, alice))
		if ev := receive(t, out); ev.Type != zuul.PatchsetCreated || ev.Synthetic {
			t.Errorf("event after the reconnection %+v", ev)
		}
	})
}

// TestSSHSourceBackoff counts the waits between failed connections: they
// double from MinBackoff up to MaxBackoff, each drawn from the upper half.
func TestSSHSourceBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var (
			mu     sync.Mutex
			dials  []time.Time
			enough = make(chan struct{})
		)
		signer, _ := newSigner(t)
		src, err := zuul.NewSSHSource(zuul.SSHConfig{
			User: "sluice", Addr: "review.example.org:29418", Signer: signer, HostKey: signer.PublicKey(),
			MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				mu.Lock()
				defer mu.Unlock()
				dials = append(dials, time.Now())
				if len(dials) == 9 {
					close(enough)
				}
				return nil, errors.New("connection refused")
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, make(chan zuul.Event)) }()
		<-enough
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, want := range []time.Duration{1, 2, 4, 8, 10, 10, 10, 10} {
			want *= time.Second
			if gap := dials[i+1].Sub(dials[i]); gap < want/2 || gap > want {
				t.Errorf("wait %d: %v, want within [%v, %v]", i, gap, want/2, want)
			}
		}
	})
}

// TestSSHSourceHostKey: a server whose key is not the expected one is
// refused and not retried; a source that cannot check the server is not
// made.
func TestSSHSourceHostKey(t *testing.T) {
	t.Parallel()
	signer, priv := newSigner(t)
	g := newFakeGerrit()
	srv, err := gerrittest.NewSSHServer(g, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	other, _ := newSigner(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherLine := strings.Replace(srv.KnownHostsLine(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey()))), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.PublicKey()))), 1)
	wrongHosts := write("wrong_hosts", otherLine+"\n")
	elsewhere := write("elsewhere_hosts", strings.Replace(srv.KnownHostsLine(), "[127.0.0.1]", "[192.0.2.1]", 1)+"\n")
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	locked := write("id_locked", string(pem.EncodeToMemory(block)))

	for _, tt := range []struct {
		name string
		cfg  zuul.SSHConfig
	}{
		{"known hosts has another key", zuul.SSHConfig{KnownHostsFile: wrongHosts}},
		{"pinned key differs", zuul.SSHConfig{HostKey: other.PublicKey()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.User, cfg.Addr, cfg.Signer = "sluice", srv.Addr(), signer
			src, err := zuul.NewSSHSource(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = src.Run(t.Context(), make(chan zuul.Event))
			if _, ok := errors.AsType[*zuul.HostKeyError](err); !ok {
				t.Fatalf("Run: %v, want a *HostKeyError", err)
			}
		})
	}
	for _, tt := range []struct {
		name, want string
		cfg        zuul.SSHConfig
	}{
		{"known hosts lacks the server", "known hosts has no key for", zuul.SSHConfig{KnownHostsFile: elsewhere, Signer: signer}},
		{"nothing to check the server with", "cannot be checked", zuul.SSHConfig{Signer: signer}},
		{"both", "not both", zuul.SSHConfig{Signer: signer, KnownHostsFile: wrongHosts, HostKey: other.PublicKey()}},
		{"locked key", "passphrase", zuul.SSHConfig{KeyFile: locked, HostKey: srv.HostKey()}},
		{"no key", "no private key", zuul.SSHConfig{HostKey: srv.HostKey()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.User, cfg.Addr = "sluice", srv.Addr()
			if _, err := zuul.NewSSHSource(cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSSHSource: %v, want an error with %q", err, tt.want)
			}
		})
	}
	if n := len(srv.Commands()); n != 0 {
		t.Errorf("%d commands ran", n)
	}
}

// gatedGerrit is the fake Gerrit of package gerrittest whose new
// subscriptions wait while the gate is held: events made meanwhile reach
// no stream.
type gatedGerrit struct {
	*gerrittest.Gerrit
	mu         sync.Mutex
	gate       chan struct{} // closed when open
	subscribed chan struct{}
}

func (g *gatedGerrit) Subscribe() (<-chan []byte, func()) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	<-gate
	lines, cancel := g.Gerrit.Subscribe()
	g.subscribed <- struct{}{}
	return lines, cancel
}

func (g *gatedGerrit) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedGerrit) release() {
	g.mu.Lock()
	close(g.gate)
	g.mu.Unlock()
}

// TestSSHSourceFakeGerrit runs the source against gerrittest's fake Gerrit
// (real git repositories, its own events and query answers) behind the
// fake daemon: live events, then a vote cast while the source is away,
// which the catch-up brings.
func TestSSHSourceFakeGerrit(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "git")
	signer, _ := newSigner(t)
	g := &gatedGerrit{Gerrit: gerrittest.NewGerrit(t), gate: make(chan struct{}), subscribed: make(chan struct{}, 4)}
	close(g.gate)
	g.CreateProject("rpms/curl", map[string]string{"curl.spec": "Name: curl\n"})
	srv, err := gerrittest.NewSSHServer(g, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	src, err := zuul.NewSSHSource(zuul.SSHConfig{
		User: "sluice", Addr: srv.Addr(), Signer: signer, HostKey: srv.HostKey(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan zuul.Event)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	<-g.subscribed

	c := g.Upload("rpms/curl", "master", map[string]string{"curl.spec": "Name: curl\nVersion: 8.5.0\n"}, "curl: update to 8.5.0")
	if ev := receive(t, out); ev.Type != zuul.PatchsetCreated || ev.Change.Key() != c.Key() || ev.Change.Commit != c.Commit || ev.Synthetic {
		t.Fatalf("live event %+v", ev)
	}
	g.Review(c, bob, map[string]int{"Code-Review": 2}, "Looks good.")
	if ev := receive(t, out); ev.Type != zuul.CommentAdded || ev.Synthetic {
		t.Fatalf("live event %+v", ev)
	} else if v, _ := voted(ev, "Code-Review"); v != 2 {
		t.Errorf("live approvals %+v", ev.Approvals)
	}

	g.hold()
	srv.DropConnections()
	g.Review(c, alice, map[string]int{"Workflow": 1}, "Ship it.")
	g.release()
	<-g.subscribed
	for i := 0; ; i++ {
		ev := receive(t, out)
		if !ev.Synthetic {
			t.Fatalf("live event %+v while catching up", ev)
		}
		if w, _ := voted(ev, "Workflow"); w == 1 {
			if ev.Account.Username != alice.Username || ev.Change.Key() != c.Key() || !strings.HasSuffix(ev.Comment, "Ship it.") {
				t.Errorf("synthesized vote %+v", ev)
			}
			break
		}
		if i == 3 {
			t.Fatal("no Workflow+1 in 4 synthesized events")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
