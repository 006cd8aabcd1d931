package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/zuul"
)

var labelRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)

// localSource opens the local source of the configuration on e.
func localSource(e *env) (*zuul.Local, error) {
	if len(e.cfg.Local.Projects) == 0 {
		return nil, fmt.Errorf("no local projects configured (local.projects in --config)")
	}
	return zuul.NewLocal(e.db, zuul.NewJournal(e.db), e.cfg.Local.Projects, zuul.MergeCommits)
}

func newChangeCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var as string
	cmd := &cobra.Command{
		Use:   "change",
		Short: "Gerrit's change workflow on the local source: propose, review, approve, show",
		Long: "Changes of the local source (the projects under local.projects in the configuration), as\n" +
			"Gerrit keeps them: each action journals the event Gerrit would send, which `sluice serve`\n" +
			"acts on (check, gate, post).",
	}
	sf.register(cmd.PersistentFlags())
	user := os.Getenv("USER")
	if user == "" {
		user = "local"
	}
	cmd.PersistentFlags().StringVar(&as, "as", user, "the account acting")
	open := func(cmd *cobra.Command) (*zuul.Local, func(), error) {
		e, err := sf.open(cmd, log)
		if err != nil {
			return nil, nil, err
		}
		l, err := localSource(e)
		if err != nil {
			e.close()
			return nil, nil, err
		}
		return l, e.close, nil
	}
	// onChange is the RunE of a command on change args[0].
	onChange := func(fn func(cmd *cobra.Command, l *zuul.Local, n int, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return fmt.Errorf("change %q: not a change number", args[0])
			}
			l, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			return fn(cmd, l, n, args[1:])
		}
	}

	var project, rev string
	propose := &cobra.Command{
		Use:   "propose --project P [--ref REV]",
		Short: "Make a commit of a local project a change (or a new patchset of the change with its Change-Id)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			ch, err := l.Propose(cmd.Context(), project, rev, zuul.Account{Username: as})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "change %d patchset %d: %s %s (%s)\n", ch.Number, ch.Patchset, ch.Project, ch.Ref, ch.Subject)
			return nil
		},
	}
	propose.Flags().StringVar(&project, "project", "", "local project (required)")
	propose.Flags().StringVar(&rev, "ref", "HEAD", "revision of the project's repository to propose")
	propose.MarkFlagRequired("project")

	review := func(use, short string, labels func(args []string) (map[string]int, string, error)) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.MinimumNArgs(1),
			RunE: onChange(func(cmd *cobra.Command, l *zuul.Local, n int, rest []string) error {
				votes, msg, err := labels(rest)
				if err != nil {
					return err
				}
				return l.Review(cmd.Context(), n, 0, zuul.Account{Username: as}, msg, votes, "")
			}),
		}
	}
	approve := review("approve N", "Vote Code-Review+2 and Workflow+1 on change N (what enters the gate)",
		func(args []string) (map[string]int, string, error) {
			if len(args) > 0 {
				return nil, "", fmt.Errorf("approve: one argument, the change number")
			}
			return map[string]int{"Code-Review": 2, "Workflow": 1}, "", nil
		})
	comment := review("comment N MESSAGE", "Comment on change N (\"recheck\" runs the check pipeline again)",
		func(args []string) (map[string]int, string, error) {
			msg := strings.Join(args, " ")
			if strings.TrimSpace(msg) == "" {
				return nil, "", fmt.Errorf("comment: the message is empty")
			}
			return nil, msg, nil
		})
	var voteFlags []string
	var message string
	vote := review("review N --label L=V...", "Vote on change N",
		func(args []string) (map[string]int, string, error) {
			votes := map[string]int{}
			for _, lv := range voteFlags {
				l, v, ok := strings.Cut(lv, "=")
				n, err := strconv.Atoi(v)
				if !ok || err != nil || n < -2 || n > 2 || !labelRE.MatchString(l) {
					return nil, "", fmt.Errorf("review: --label %q: want LABEL=VALUE, VALUE from -2 to 2", lv)
				}
				votes[l] = n
			}
			return votes, message, nil
		})
	vote.Flags().StringSliceVar(&voteFlags, "label", nil, "a vote, LABEL=VALUE (repeatable)")
	vote.Flags().StringVar(&message, "message", "", "a message with the votes")

	var reason string
	abandon := &cobra.Command{
		Use:   "abandon N",
		Short: "Abandon change N",
		Args:  cobra.ExactArgs(1),
		RunE: onChange(func(cmd *cobra.Command, l *zuul.Local, n int, _ []string) error {
			return l.Abandon(cmd.Context(), n, zuul.Account{Username: as}, reason)
		}),
	}
	abandon.Flags().StringVar(&reason, "message", "", "why")

	var asJSON bool
	show := &cobra.Command{
		Use:   "show N [--json]",
		Short: "Show change N: its patchset, status, votes and the reports on it",
		Args:  cobra.ExactArgs(1),
		RunE: onChange(func(cmd *cobra.Command, l *zuul.Local, n int, _ []string) error {
			ch, err := l.Change(cmd.Context(), n)
			if err != nil {
				return err
			}
			msgs, err := l.Messages(cmd.Context(), n)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"change": ch, "messages": msgs})
			}
			fmt.Fprintf(w, "change %d patchset %d  %s  %s\n", ch.Number, ch.Patchset, ch.Status, ch.Subject)
			fmt.Fprintf(w, "project %s branch %s\nref %s commit %s\nChange-Id %s\n", ch.Project, ch.Branch, ch.Ref, ch.Commit, ch.ChangeID)
			if len(ch.Approvals) > 0 {
				fmt.Fprintln(w, "votes:")
				for _, a := range ch.Approvals {
					fmt.Fprintf(w, "  %-12s %+d  %s\n", a.Label, a.Value, a.By.Username)
				}
			}
			for _, m := range msgs {
				var votes []string
				for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
					votes = append(votes, fmt.Sprintf("%s%+d", k, m.Labels[k]))
				}
				fmt.Fprintf(w, "\n%s  %s  patchset %d  %s\n", m.At.Format("2006-01-02 15:04:05"), m.By, m.Patchset, strings.Join(votes, " "))
				for _, line := range strings.Split(strings.TrimRight(m.Text, "\n"), "\n") {
					fmt.Fprintf(w, "  %s\n", line)
				}
			}
			return nil
		}),
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(propose, approve, comment, vote, abandon, show)
	return cmd
}

// newRetriggerCmd is `sluice retrigger`: one stage of a buildset again.
func newRetriggerCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var buildset, stage string
	cmd := &cobra.Command{
		Use:   "retrigger --buildset UUID --stage NAME",
		Short: "Run one stage of a buildset again, as a new attempt",
		Long: "Ask `sluice serve` to run one stage of a buildset again as a new attempt, with the stages\n" +
			"after it that its failure skipped; a run of it still going is cancelled first. The request is\n" +
			"journalled in the store and taken by the server; a buildset no longer in a pipeline (it was\n" +
			"reported) is left alone: comment \"recheck\" on the change to test it again.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			buildset = strings.ToLower(buildset)
			if !stageUUIDRE.MatchString(buildset) {
				return fmt.Errorf("retrigger: --buildset %q is not a buildset id", buildset)
			}
			if !stageNameRE.MatchString(stage) || len(stage) > 64 {
				return fmt.Errorf("retrigger: --stage %q is not a stage name (build.deb, publish...)", stage)
			}
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			id, err := zuul.NewJournal(e.db).AppendOne(cmd.Context(), "sluice",
				&zuul.Event{Type: zuul.Retrigger, Buildset: buildset, Stage: stage})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "retrigger of %s in buildset %s queued (event %d)\n", stage, buildset, id)
			return nil
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&buildset, "buildset", "", "the buildset (ZUUL_UUID)")
	cmd.Flags().StringVar(&stage, "stage", "", "the stage: build.deb, build.rpm, publish, release...")
	cmd.MarkFlagRequired("buildset")
	cmd.MarkFlagRequired("stage")
	return cmd
}
