package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/results"
)

func newResultsCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{Use: "results", Short: "List and show stage outcomes (ResultsDB results) from the store"}
	sf.register(cmd.PersistentFlags())
	open := func(cmd *cobra.Command) (*results.Store, func(), error) {
		_, dataDir, dsn, err := sf.load(cmd)
		if err != nil {
			return nil, nil, err
		}
		if path, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
			if _, err := os.Stat(path); err != nil {
				return nil, nil, fmt.Errorf("results: no database in %s (run sluice serve or a stage first, or give --db)", dataDir)
			}
		}
		e, err := sf.open(cmd, log)
		if err != nil {
			return nil, nil, err
		}
		return e.results, e.close, nil
	}

	var item, testcase, since, outcome string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--item X] [--testcase Y] [--since T] [--outcome O]",
		Short: "List results, newest first (a table; JSON with --json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := results.Query{Limit: limit}
			if item != "" {
				q.Data = append(q.Data, results.DataFilter{Key: "item", Values: []string{item}})
			}
			if testcase != "" {
				q.Testcases = []string{testcase}
			}
			if outcome != "" {
				q.Outcomes = strings.Split(strings.ToUpper(outcome), ",")
			}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					if t, err = time.Parse(time.DateOnly, since); err != nil {
						return fmt.Errorf("results list: --since %q: want RFC 3339 or YYYY-MM-DD", since)
					}
				}
				q.Since = &t
			}
			s, closeDB, err := open(cmd)
			if err != nil {
				return err
			}
			defer closeDB()
			rs, _, err := s.Results(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUBMITTED (UTC)\tOUTCOME\tTESTCASE\tITEM")
			for _, r := range rs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.SubmitTime.Format("2006-01-02 15:04:05"), r.Outcome,
					r.Testcase.Name, strings.Join(r.Data["item"], ","))
			}
			return tw.Flush()
		},
	}
	f := list.Flags()
	f.StringVar(&item, "item", "", "only results whose data item is X")
	f.StringVar(&testcase, "testcase", "", "only results of this testcase")
	f.StringVar(&since, "since", "", "only results submitted since T (RFC 3339 or YYYY-MM-DD)")
	f.StringVar(&outcome, "outcome", "", "only these outcomes (comma-separated)")
	f.IntVar(&limit, "limit", 20, "at most this many results")
	f.BoolVar(&asJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one result with all its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("results show: %q is not a result id", args[0])
			}
			s, closeDB, err := open(cmd)
			if err != nil {
				return err
			}
			defer closeDB()
			r, err := s.Result(cmd.Context(), id)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "id:        %d\ntestcase:  %s\noutcome:   %s\nsubmitted: %s\n", r.ID, r.Testcase.Name, r.Outcome, r.SubmitTime.Format(time.RFC3339Nano))
			if r.Note != "" {
				fmt.Fprintf(w, "note:      %s\n", r.Note)
			}
			if r.RefURL != "" {
				fmt.Fprintf(w, "ref_url:   %s\n", r.RefURL)
			}
			if len(r.Groups) > 0 {
				fmt.Fprintf(w, "groups:    %s\n", strings.Join(r.Groups, " "))
			}
			keys := make([]string, 0, len(r.Data))
			for k := range r.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "data %s: %s\n", k, strings.Join(r.Data[k], ", "))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var pushTimeout time.Duration
	push := &cobra.Command{
		Use:   "push [--timeout D]",
		Short: "Deliver the results queued for the external ResultsDB of the configuration",
		Long: "Deliver what the outbox holds to the external ResultsDB named by the configuration file\n" +
			"(results.external), each result once; what fails stays queued with a back-off. `sluice serve`\n" +
			"does this continuously; this is for stage hosts that run no server.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			if e.sender == nil {
				return fmt.Errorf("results push: no external ResultsDB configured (results.external in --config)")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), pushTimeout)
			defer cancel()
			n, err := e.sender.Flush(ctx)
			fmt.Fprintf(cmd.OutOrStdout(), "delivered %d\n", n)
			if err != nil {
				return fmt.Errorf("results push: %w", err)
			}
			left, err := e.sender.Pending(cmd.Context())
			if err != nil {
				return err
			}
			if left > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d results still queued (the external ResultsDB refused or did not answer; see the log)\n", left)
				return exitError(1)
			}
			return nil
		},
	}
	push.Flags().DurationVar(&pushTimeout, "timeout", 5*time.Minute, "give up after this long")
	cmd.AddCommand(list, show, push)
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
