package zuul

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// gitEnv is the environment the reference git runs in: no user or system
// configuration (merge.conflictStyle=diff3 would change what conflicts),
// fixed identities and dates.
func gitEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ref Git", "GIT_AUTHOR_EMAIL=ref@example.org", "GIT_AUTHOR_DATE=1700000000 +0000",
		"GIT_COMMITTER_NAME=Ref Git", "GIT_COMMITTER_EMAIL=ref@example.org", "GIT_COMMITTER_DATE=1700000000 +0000",
	}
}

// runGit runs git in dir and returns its stdout and exit status; an error
// only when it could not run.
func runGit(ctx context.Context, t testing.TB, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := proc.Command(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, stderr.String())
	}
	return out.String(), 0
}

// gitMergeFile runs `git merge-file -p ours base theirs` and returns the
// result and whether it was clean.
func gitMergeFile(ctx context.Context, t testing.TB, dir string, base, ours, theirs []byte) ([]byte, bool) {
	t.Helper()
	for name, b := range map[string][]byte{"base": base, "ours": ours, "theirs": theirs} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runGit(ctx, t, dir, "merge-file", "-p", "ours", "base", "theirs")
	return []byte(out), code == 0
}

func TestMerge3Cases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		base, ours, theirs string
		want               string // "" with conflict set
		conflict, binary   bool
	}{
		{name: "disjoint", base: "a\nb\nc\nd\ne\n", ours: "A\nb\nc\nd\ne\n", theirs: "a\nb\nc\nd\nE\n", want: "A\nb\nc\nd\nE\n"},
		{name: "adjacent", base: "a\nb\nc\nd\n", ours: "a\nB\nc\nd\n", theirs: "a\nb\nC\nd\n", conflict: true},
		{name: "same change", base: "a\nb\nc\n", ours: "a\nX\nc\n", theirs: "a\nX\nc\n", want: "a\nX\nc\n"},
		{name: "overlap differs", base: "a\nb\nc\n", ours: "a\nX\nc\n", theirs: "a\nY\nc\n", conflict: true},
		{name: "one side only", base: "a\n", ours: "a\n", theirs: "b\n", want: "b\n"},
		{name: "no trailing newline", base: "a\nb", ours: "a\nb\n", theirs: "A\nb", conflict: true},
		{name: "insert both ends", base: "m\n", ours: "s\nm\n", theirs: "m\ne\n", want: "s\nm\ne\n"},
		{name: "binary", base: "a\x00", ours: "b\x00", theirs: "c\x00", binary: true},
		{name: "empty base", base: "", ours: "a\n", theirs: "a\n", want: "a\n"},
		{name: "both empty result", base: "a\n", ours: "", theirs: "", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, outcome, err := merge3([]byte(tc.base), []byte(tc.ours), []byte(tc.theirs))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.binary:
				if outcome != mergeBinary {
					t.Fatalf("outcome %d, want binary", outcome)
				}
			case tc.conflict:
				if outcome != mergeConflict {
					t.Fatalf("outcome %d (%q), want conflict", outcome, got)
				}
			case outcome != mergeClean || string(got) != tc.want:
				t.Fatalf("got %q (%d), want %q", got, outcome, tc.want)
			}
		})
	}
}

// randomText makes a small file from a few distinct lines, so that diffs
// have many equally short alignments to choose from.
func randomText(r *rand.Rand, n int) []string {
	alphabet := []string{"a\n", "b\n", "c\n", "d\n", "\n", "}\n", "x\r\n", "a"}
	lines := make([]string, n)
	for i := range lines {
		lines[i] = alphabet[r.IntN(len(alphabet)-1)]
	}
	if n > 0 && r.IntN(6) == 0 {
		lines[n-1] = strings.TrimSuffix(lines[n-1], "\n")
	}
	return lines
}

// randomEdit changes a few lines of base: replacements, insertions and
// deletions.
func randomEdit(r *rand.Rand, base []string) []string {
	out := append([]string(nil), base...)
	for range r.IntN(4) {
		pos := 0
		if len(out) > 0 {
			pos = r.IntN(len(out) + 1)
		}
		add := randomText(r, r.IntN(3))
		for i := range add {
			add[i] = strings.TrimSuffix(add[i], "\n") + "\n"
		}
		del := 0
		if pos < len(out) {
			del = r.IntN(min(3, len(out)-pos) + 1)
		}
		out = append(out[:pos], append(add, out[pos+del:]...)...)
	}
	// Only the last line may lack its newline.
	for i := 0; i < len(out)-1; i++ {
		if !strings.HasSuffix(out[i], "\n") {
			out[i] += "\n"
		}
	}
	if len(out) > 0 && r.IntN(8) == 0 {
		out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], "\n")
	}
	return out
}

// TestMerge3AgainstGit merges many random small files with merge3 and with
// `git merge-file` and wants the same outcome: the same content when clean,
// a conflict in both otherwise.
func TestMerge3AgainstGit(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "git")
	ctx := t.Context()
	const n = 600
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 27))
	clean, conflicts := 0, 0
	for i := range n {
		base := randomText(r, r.IntN(14))
		ours, theirs := randomEdit(r, base), randomEdit(r, base)
		b, o, th := []byte(strings.Join(base, "")), []byte(strings.Join(ours, "")), []byte(strings.Join(theirs, ""))
		want, wantClean := gitMergeFile(ctx, t, dir, b, o, th)
		got, outcome, err := merge3(b, o, th)
		if err != nil {
			t.Fatal(err)
		}
		if wantClean {
			clean++
		} else {
			conflicts++
		}
		switch {
		case wantClean != (outcome == mergeClean):
			t.Errorf("case %d: git clean=%v, merge3 outcome %d\nbase   %q\nours   %q\ntheirs %q\ngit    %q", i, wantClean, outcome, b, o, th, want)
		case wantClean && !bytes.Equal(got, want):
			t.Errorf("case %d: merged differently\nbase   %q\nours   %q\ntheirs %q\ngit    %q\nmerge3 %q", i, b, o, th, want, got)
		}
	}
	t.Logf("%d random merges: %d clean, %d conflicts, all as git merge-file", n, clean, conflicts)
}

// TestMerge3LargeAgainstGit merges bigger files, where xdiff's cost
// heuristics and discarding of frequent lines come into play.
func TestMerge3LargeAgainstGit(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "git")
	ctx := t.Context()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(11, 3))
	for i := range 40 {
		base := randomText(r, 200+r.IntN(1500))
		ours, theirs := base, base
		for range 1 + r.IntN(30) {
			ours = randomEdit(r, ours)
		}
		for range 1 + r.IntN(30) {
			theirs = randomEdit(r, theirs)
		}
		b, o, th := []byte(strings.Join(base, "")), []byte(strings.Join(ours, "")), []byte(strings.Join(theirs, ""))
		want, wantClean := gitMergeFile(ctx, t, dir, b, o, th)
		got, outcome, err := merge3(b, o, th)
		if err != nil {
			t.Fatal(err)
		}
		if wantClean != (outcome == mergeClean) || (wantClean && !bytes.Equal(got, want)) {
			t.Errorf("case %d (%d lines): git clean=%v, merge3 outcome %d, same result %v", i, len(base), wantClean, outcome, bytes.Equal(got, want))
		}
	}
}

// FuzzMerge3 checks properties of the content merge on any input: no
// panic, merging a change with no change gives the change, and merging a
// change with itself gives it.
func FuzzMerge3(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), []byte("a\nB\nc\n"), []byte("a\nb\nC\n"))
	f.Add([]byte(""), []byte("x"), []byte("y\n"))
	f.Add([]byte("a\r\nb\r\n"), []byte("a\r\nb"), []byte("b\r\n"))
	f.Add([]byte("a\nb\na\nb\na\n"), []byte("b\na\nb\n"), []byte("a\na\na\n"))
	f.Fuzz(func(t *testing.T, base, x, y []byte) {
		if isBinary(base) || isBinary(x) || isBinary(y) {
			return
		}
		for _, c := range []struct {
			name    string
			b, o, t []byte
			want    []byte
		}{
			{"x with itself", base, x, x, x},
			{"x with base", base, x, base, x},
			{"base with x", base, base, x, x},
			{"all x", x, x, x, x},
		} {
			got, outcome, err := merge3(c.b, c.o, c.t)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if outcome != mergeClean || !bytes.Equal(got, c.want) {
				t.Fatalf("%s: got %q (%d), want %q", c.name, got, outcome, c.want)
			}
		}
		if _, _, err := merge3(base, x, y); err != nil {
			t.Fatal(err)
		}
		if _, _, err := merge3(base, y, x); err != nil {
			t.Fatal(err)
		}
	})
}
