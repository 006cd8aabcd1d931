package main

// The Gerrit connection of `sluice serve`: events from `gerrit
// stream-events` over SSH and from the webhooks plugin are journalled;
// votes, submits and queries go to Gerrit's REST API. Adapters only.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/zuul"
)

// gerritConfig is the gerrit section: one Gerrit server.
type gerritConfig struct {
	// URL is Gerrit's web root, for the REST API.
	URL  string `yaml:"url"`
	User string `yaml:"user"`
	// PasswordFile or PasswordEnv holds the account's HTTP password.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// GitURL is where the projects' repositories are fetched from:
	// GitURL/<project>; by default URL.
	GitURL string `yaml:"git_url"`
	// SSH, when set, is the `gerrit stream-events` connection.
	SSH *gerritSSHConfig `yaml:"ssh"`
	// WebhookSecretFile, when set, enables POST /webhooks/gerrit for the
	// webhooks plugin, with this shared secret as bearer token.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// Projects are the projects sluice gates, with Zuul's defaults
	// (both formats, shared queue "integrated"), unless pipeline.config
	// describes them.
	Projects []string `yaml:"projects"`
}

type gerritSSHConfig struct {
	Address    string `yaml:"address"` // host:port, 29418 by Gerrit's default
	User       string `yaml:"user"`
	KeyFile    string `yaml:"key_file"`
	KnownHosts string `yaml:"known_hosts"`
}

// Validate checks the gerrit section.
func (g *gerritConfig) Validate() error {
	if err := checkHTTPURL(g.URL); err != nil {
		return fmt.Errorf("gerrit: url: %w", err)
	}
	if g.User == "" {
		return errors.New("gerrit: user: missing")
	}
	if (g.PasswordFile == "") == (g.PasswordEnv == "") {
		return errors.New("gerrit: give exactly one of password_file and password_env")
	}
	if g.SSH != nil && (g.SSH.Address == "" || g.SSH.User == "" || g.SSH.KeyFile == "" || g.SSH.KnownHosts == "") {
		return errors.New("gerrit: ssh: address, user, key_file and known_hosts are required")
	}
	for _, p := range g.Projects {
		if !stageNameRE.MatchString(p) || strings.Contains(p, "..") {
			return fmt.Errorf("gerrit: projects: %q is not a project name", p)
		}
	}
	return nil
}

// readSecret reads a secret from a file or an environment variable.
func readSecret(what, file, envName string) ([]byte, error) {
	if envName != "" {
		v := strings.TrimSpace(os.Getenv(envName))
		if v == "" {
			return nil, fmt.Errorf("%s: $%s is empty", what, envName)
		}
		return []byte(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" || strings.ContainsAny(v, "\r\n") {
		return nil, fmt.Errorf("%s: %s: want one secret on one line", what, file)
	}
	return []byte(v), nil
}

// changeSource is what the gating engine needs of a source of changes.
type changeSource struct {
	name      string // the journal's source name
	query     pipeline.ChangeQuery
	reporter  pipeline.Reporter
	submitter pipeline.Submitter
	// repoURL is a project's own repository.
	repoURL func(project string) string
	// projects are the gated projects when no pipeline.config says.
	projects func() ([]pipeline.Project, error)
	// start runs the event feeders (nil: events are journalled by
	// others, the CLI of the local source).
	start func(ctx context.Context, g *errgroup.Group, j *zuul.Journal)
	// handlers are HTTP endpoints to serve (the webhook).
	handlers map[string]http.Handler
}

// gerritSource is the Gerrit connection as a changeSource.
func gerritSource(ctx context.Context, e *env, log *slog.Logger) (*changeSource, error) {
	gc := e.cfg.Gerrit
	pass, err := readSecret("gerrit password", gc.PasswordFile, gc.PasswordEnv)
	if err != nil {
		return nil, err
	}
	client, err := zuul.NewGerritClient(zuul.GerritConfig{BaseURL: gc.URL, User: gc.User, Password: string(pass)}, log)
	if err != nil {
		return nil, err
	}
	gitURL := gc.GitURL
	if gitURL == "" {
		gitURL = gc.URL
	}
	cs := &changeSource{
		name:      "gerrit",
		query:     gerritQuery{client},
		reporter:  gerritReporter{c: client, user: gc.User, serverURL: e.cfg.Server.URL},
		submitter: gerritSubmitter{c: client, serverURL: e.cfg.Server.URL},
		repoURL:   func(project string) string { return strings.TrimSuffix(gitURL, "/") + "/" + project },
		projects: func() ([]pipeline.Project, error) {
			var ps []pipeline.Project
			for _, name := range gc.Projects {
				ps = append(ps, pipeline.Project{Name: name, Queue: "integrated", Formats: []string{"deb", "rpm"}, Stages: []string{}, Attempts: 3})
			}
			return ps, nil
		},
		handlers: map[string]http.Handler{},
	}
	var feeders []zuul.Source
	if gc.SSH != nil {
		// After a restart, catch up from the last event journalled: what
		// Gerrit sent while sluice was down is asked for again.
		since, err := zuul.NewJournal(e.db).LastReceived(ctx, "gerrit")
		if err != nil {
			return nil, err
		}
		src, err := zuul.NewSSHSource(zuul.SSHConfig{User: gc.SSH.User, Addr: gc.SSH.Address, KeyFile: gc.SSH.KeyFile,
			KnownHostsFile: gc.SSH.KnownHosts, Since: since}, log)
		if err != nil {
			return nil, err
		}
		feeders = append(feeders, src)
	}
	if gc.WebhookSecretFile != "" {
		secret, err := readSecret("gerrit webhook secret", gc.WebhookSecretFile, "")
		if err != nil {
			return nil, err
		}
		// The event is journalled before Gerrit gets its 202.
		journal := zuul.NewJournal(e.db)
		hook, err := zuul.NewWebhook(secret, 0, func(ctx context.Context, ev zuul.Event) error {
			_, err := journal.AppendOne(ctx, "gerrit", &ev)
			return err
		}, log)
		if err != nil {
			return nil, err
		}
		cs.handlers["POST /webhooks/gerrit"] = hook
	}
	cs.start = func(ctx context.Context, g *errgroup.Group, j *zuul.Journal) {
		events := make(chan zuul.Event, 256)
		for _, f := range feeders {
			g.Go(func() error { return f.Run(ctx, events) })
		}
		g.Go(func() error { return journalEvents(ctx, j, "gerrit", events, log) })
	}
	return cs, nil
}

// journalEvents writes the events of the feeders into the journal, where
// the scheduler takes them.
func journalEvents(ctx context.Context, j *zuul.Journal, source string, events <-chan zuul.Event, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if _, err := j.AppendOne(ctx, source, &ev); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, zuul.ErrDuplicateEvent) {
					log.Debug("caught-up event journalled already", "type", ev.Type, "project", ev.Project)
					continue
				}
				// The store is down: the event is lost to sluice, as
				// it would be if Gerrit had sent it a moment later.
				log.Error("event not journalled", "type", ev.Type, "project", ev.Project, "err", err)
			}
		}
	}
}

var (
	_ pipeline.PostedChecker = gerritReporter{}
	_ pipeline.PostedChecker = localReporter{}
)

// gerritQuery is Gerrit's REST query as the scheduler's ChangeQuery.
type gerritQuery struct{ c *zuul.GerritClient }

func (q gerritQuery) Query(ctx context.Context, query string) ([]zuul.Change, error) {
	found, _, err := q.c.Query(ctx, query, 100)
	if err != nil {
		return nil, err
	}
	out := make([]zuul.Change, 0, len(found))
	for _, c := range found {
		out = append(out, *c)
	}
	return out, nil
}

// gerritReporter posts reports as Gerrit reviews.
type gerritReporter struct {
	c         *zuul.GerritClient
	user      string // the account sluice posts as
	serverURL string
}

func (r gerritReporter) Report(ctx context.Context, rep pipeline.Report) error {
	zr := reportOf(rep, rep.Pipeline, rep.Buildset, r.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return err
	}
	c := rep.Change
	err = r.c.Review(ctx, &c, in)
	if ge, ok := errors.AsType[*zuul.GerritError](err); ok && ge.Status == http.StatusConflict && len(in.Labels) > 0 {
		// Votes on a closed change are refused: the message alone.
		in.Labels = nil
		err = r.c.Review(ctx, &c, in)
	}
	if ge, ok := errors.AsType[*zuul.GerritError](err); ok && ge.Status >= 400 && ge.Status < 500 && ge.Status != http.StatusTooManyRequests {
		return fmt.Errorf("%w: %w", pipeline.ErrReportRefused, err)
	}
	return err
}

// Posted says whether a report like rep, by sluice, reached the change
// since a post of it began (see pipeline.PostedChecker).
func (r gerritReporter) Posted(ctx context.Context, rep pipeline.Report, since time.Time) (bool, error) {
	zr := reportOf(rep, rep.Pipeline, rep.Buildset, r.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return false, err
	}
	msgs, err := r.c.Messages(ctx, rep.Change.Number)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if m.Tag == in.Tag && m.Author.Username == r.user && !m.Date.Before(since.Add(-postedSkew)) &&
			strings.HasSuffix(strings.TrimRight(m.Message, "\n"), strings.TrimRight(in.Message, "\n")) {
			return true, nil
		}
	}
	return false, nil
}

// postedSkew is how far Gerrit's clock may be behind sluice's when a
// report's post is looked for.
const postedSkew = 2 * time.Second

// gerritSubmitter posts the success votes, then submits.
type gerritSubmitter struct {
	c         *zuul.GerritClient
	serverURL string
}

func (s gerritSubmitter) Submit(ctx context.Context, sub pipeline.Submit) (bool, error) {
	zr := reportOf(pipeline.Report{Pipeline: sub.Pipeline, Action: "success", Votes: sub.Votes, Stages: sub.Stages},
		sub.Pipeline, sub.Buildset, s.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return false, err
	}
	c := sub.Change
	if cur, err := s.c.Change(ctx, c.Number); err == nil && cur.Status == "MERGED" {
		return true, nil // a submit sent again after a restart: votes and merge are there
	}
	if err := s.c.Review(ctx, &c, in); err != nil {
		return false, err
	}
	err = s.c.Submit(ctx, &c)
	if se, ok := errors.AsType[*zuul.SubmitError](err); ok && se.AlreadyMerged() {
		return true, nil // a submit sent again after a restart or a lost answer
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
