package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/systest"
)

func TestParseAge(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"20d": 20 * 24 * time.Hour, "36h": 36 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "0d", "x", "-5h", "0s", "1e9d"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"20d", "36h", "0d", "-1h", "9999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseAge(s)
		if err == nil && d <= 0 {
			t.Fatalf("%q: %v accepted", s, d)
		}
	})
}

// TestEnvPrune prunes a base prepared long ago and keeps a recent one,
// with `sluice env prune` and `env list`.
func TestEnvPrune(t *testing.T) {
	t.Parallel()
	data, bases := t.TempDir(), t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "systest:\n  bases_dir: "+bases+"\n  bases:\n  - name: old\n    suite: bookworm\n  - name: new\n    suite: trixie\n")
	for name, created := range map[string]time.Time{"old": time.Now().Add(-30 * 24 * time.Hour), "new": time.Now().Add(-time.Hour)} {
		spec := systest.BaseSpec{Name: name, Suite: "bookworm"}
		if name == "new" {
			spec.Suite = "trixie"
		}
		dir := filepath.Join(bases, name+"-"+spec.Key())
		if err := os.MkdirAll(filepath.Join(dir, "root", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		meta, _ := json.Marshal(systest.Base{Spec: spec, Key: spec.Key(), Created: created.UTC(), Size: 1})
		writeTestFile(t, filepath.Join(dir, "meta.json"), string(meta))
	}
	out, err := sluice(t, "env", "list", "--config", conf, "--data-dir", data)
	if err != nil || !strings.Contains(out, "old") || !strings.Contains(out, "new") || strings.Contains(out, "not prepared\nold") {
		t.Fatalf("env list: %v\n%s", err, out)
	}
	if _, err := sluice(t, "env", "prune", "--older-than", "nope", "--config", conf, "--data-dir", data); err == nil {
		t.Error("a bad age was accepted")
	}
	out, err = sluice(t, "env", "prune", "--older-than", "20d", "--config", conf, "--data-dir", data)
	if err != nil || !strings.Contains(out, "removed base old") || strings.Contains(out, "new") {
		t.Fatalf("env prune: %v\n%s", err, out)
	}
	out, err = sluice(t, "env", "list", "--config", conf, "--data-dir", data)
	if err != nil || !strings.Contains(out, "not prepared") || !strings.Contains(out, "prepared") {
		t.Fatalf("env list after prune: %v\n%s", err, out)
	}
	if _, err := sluice(t, "env", "prepare", "nosuch", "--config", conf, "--data-dir", data); err == nil {
		t.Error("an undefined base was prepared")
	}
}

// TestEnvShell keeps an environment as a failed test would, and runs a
// command in it with `sluice env shell`.
func TestEnvShell(t *testing.T) {
	needEnvironments(t)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "systest:\n  bases_dir: "+testBasesDir(t)+"\n  bases:\n  - name: sluice-test\n    suite: bookworm\n    rpm: true\n")
	out, err := sluice(t, "env", "prepare", "sluice-test", "--config", conf, "--data-dir", data)
	if err != nil {
		t.Fatalf("env prepare: %v\n%s", err, out)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := systest.NewBases(testBasesDir(t), log).Get(systest.BaseSpec{Name: "sluice-test", Suite: "bookworm", RPM: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := envChroot(data, log).StartChroot(t.Context(), systest.EnvOptions{Base: b, Keep: true,
		Files: []systest.File{{Path: "/root/why", Data: []byte("it failed here\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	id := e.ID()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	out, err = sluice(t, "env", "list", "--config", conf, "--data-dir", data)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "sluice-test") {
		t.Fatalf("env list: %v\n%s", err, out)
	}
	out, err = sluice(t, "env", "shell", id, "cat", "/root/why", "--config", conf, "--data-dir", data)
	if err != nil || out != "it failed here\n" {
		t.Fatalf("env shell: %v\n%q", err, out)
	}
	if _, err := sluice(t, "env", "shell", id, "false", "--config", conf, "--data-dir", data); err == nil {
		t.Error("a failing command in env shell was a success")
	}
}
