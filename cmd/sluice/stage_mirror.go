package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/mirror"
)

// mirror is the post pipeline's mirror stage, after release: it syncs the
// current snapshots of the release repositories of the buildset's branch
// to their mirror targets. The syncer records sluice.mirror.sync per
// target; the stage records sluice.mirror, with the sync's log as an
// artifact. A target left on its previous snapshot fails the stage; a
// branch none of whose release repositories has mirrors fails it too, since
// the project asked for the stage.
func (s *stages) mirror(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage mirror: %w", err)
	}
	branch, err := postBranch(sp)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage mirror: %w", err)
	}
	start := time.Now()
	res := stageResult(sp, "mirror", r.Attempt, start, "", nil)
	res.Data["branch"] = []string{branch}
	outcome, notes := jobs.Passed, []string(nil)
	var out bytes.Buffer
	synced := 0
	for _, rc := range s.env.cfg.Releases.releasesFor(sp.Project, branch) {
		data := make(map[string][]string, len(res.Data))
		for k, v := range res.Data {
			data[k] = v
		}
		delete(data, "duration")
		ok, err := syncReleaseMirrors(ctx, s.env, rc.Name, data, []string{sp.UUID}, &out, s.log)
		if !ok {
			continue
		}
		synced++
		res.Data["release"] = append(res.Data["release"], rc.Name)
		if se, isSync := errors.AsType[*mirror.SyncError](err); isSync {
			outcome = jobs.Failed
			notes = append(notes, fmt.Sprintf("%s: %v", rc.Name, se))
		} else if err != nil {
			return jobs.Result{}, fmt.Errorf("stage mirror: release %s: %w", rc.Name, err)
		} else {
			notes = append(notes, rc.Name+": synced")
		}
	}
	if synced == 0 {
		outcome = jobs.Failed
		notes = append(notes, fmt.Sprintf("no release repository of %s %s has mirror targets (mirrors: in the config)", sp.Project, branch))
	}
	a, err := s.arts.Put(ctx, &out)
	if err != nil {
		return jobs.Result{}, err
	}
	res.Outcome = outcome
	if res.Note = strings.Join(notes, "; "); len(res.Note) > 4000 {
		res.Note = res.Note[:4000]
	}
	res.Data["duration"] = []string{fmt.Sprintf("%.3f", time.Since(start).Seconds())}
	res.Data["log_sha256"] = []string{a.SHA256}
	if link := artifactURL(s.env.cfg.Server.URL); link != nil {
		res.RefURL = link(a)
		res.Data["log_url"] = []string{res.RefURL}
	}
	if err := s.record(ctx, res); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome, LogURL: res.RefURL}, nil
}
