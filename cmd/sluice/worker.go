package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/jobs"
)

// newWorkerCmd is `sluice worker`: stage runs from Gearman job servers,
// run with the same stage functions as the server's in-process pool.
func newWorkerCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var servers, stageNames []string
	var capacity int
	var id string
	var zuulJobs map[string]string
	var opts gateOptions
	cmd := &cobra.Command{
		Use:   "worker --gearman HOST:PORT[,HOST:PORT] [--stages build.deb,...] [--capacity N]",
		Short: "Run stage runs handed out by Gearman job servers (dispatch: gearman)",
		Long: "Register the stages' functions (sluice:<stage>) with the Gearman job servers and run what they hand out,\n" +
			"at most --capacity at once, with the same stage functions as the server's in-process pool. The worker\n" +
			"reads and writes the data directory and the database of its config: on several hosts, a shared\n" +
			"PostgreSQL and a data directory the server reads (the buildsets' packages and repositories).\n" +
			"SIGTERM stops it; runs under way go back to the job servers for another worker.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(servers) == 0 {
				return fmt.Errorf("worker: --gearman: give the job servers")
			}
			if err := checkGearmanServers(servers); err != nil {
				return fmt.Errorf("worker: --gearman: %w", err)
			}
			if capacity < 1 || capacity > 256 {
				return fmt.Errorf("worker: --capacity %d: want 1 to 256", capacity)
			}
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			stg, err := newStages(e, opts.timeout, opts.rpmNoDeps, opts.rpmHostProvides, log)
			if err != nil {
				return err
			}
			all := stg.funcs()
			funcs := map[string]jobs.StageFunc{}
			if len(stageNames) == 0 {
				funcs = all
			}
			for _, n := range stageNames {
				f, ok := all[n]
				if !ok {
					names := slices.Sorted(maps.Keys(all))
					return fmt.Errorf("worker: --stages: no stage %q (stages: %s)", n, strings.Join(names, ", "))
				}
				funcs[n] = f
			}
			host, _ := os.Hostname()
			id = cmp.Or(id, fmt.Sprintf("%s-%d", cmp.Or(host, "worker"), os.Getpid()))
			log.Info("worker started", "id", id, "gearman", strings.Join(servers, ","), "stages", len(funcs), "capacity", capacity)
			for job, stage := range zuulJobs {
				if _, ok := funcs[stage]; !ok || job == "" || strings.ContainsAny(job, " \x00") {
					return fmt.Errorf("worker: --zuul-job %s=%s: not a job name and a stage of this worker", job, stage)
				}
			}
			return jobs.NewGearmanWorker(servers, id, capacity, funcs, zuulJobs, log).Run(cmd.Context())
		},
	}
	sf.register(cmd.Flags())
	f := cmd.Flags()
	f.StringSliceVar(&servers, "gearman", nil, "Gearman job servers, host:port, comma-separated (required)")
	f.StringSliceVar(&stageNames, "stages", nil, "the stages this worker runs, comma-separated; all when not given")
	f.IntVar(&capacity, "capacity", 2, "how many stage runs at once")
	f.StringVar(&id, "id", "", "the worker's name at the job servers (unique); HOST-PID when not given")
	f.StringToStringVar(&zuulJobs, "zuul-job", nil, "Zuul v2 jobs this worker takes as build:JOB, JOB=STAGE, comma-separated")
	f.DurationVar(&opts.timeout, "build-timeout", time.Hour, "time limit of one build")
	f.BoolVar(&opts.rpmNoDeps, "rpm-nodeps", false, "rpm: pass --nodeps to rpmbuild, for hosts whose rpmdb does not describe the system (Debian)")
	f.StringSliceVar(&opts.rpmHostProvides, "rpm-host-provides", nil, "rpm: BuildRequires the host provides outside the rpmdb (e.g. gcc,make on Debian)")
	return cmd
}
