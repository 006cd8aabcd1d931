package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

func newResultsCmd(log *slog.Logger) *cobra.Command {
	var dataDir, dsn string
	cmd := &cobra.Command{Use: "results", Short: "List and show stage outcomes (ResultsDB results) from the store"}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "sluice's data directory (the SQLite database)")
	cmd.PersistentFlags().StringVar(&dsn, "db", "", "database: postgres://... (default: SQLite in the data directory)")
	open := func(cmd *cobra.Command) (*results.Store, func(), error) {
		d := dsn
		if d == "" {
			d = "sqlite://" + filepath.Join(dataDir, "sluice.db")
			if _, err := os.Stat(filepath.Join(dataDir, "sluice.db")); err != nil {
				return nil, nil, fmt.Errorf("results: no database in %s (run sluice serve or a stage first, or give --db)", dataDir)
			}
		}
		db, err := store.Open(cmd.Context(), d, log)
		if err != nil {
			return nil, nil, err
		}
		return results.NewStore(db, results.Config{}), func() { db.Close() }, nil
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
	cmd.AddCommand(list, show)
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
