package zuul

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	testUUID   = "55820fcebdae4c4291e95f01d4b3f987"
	testCommit = "c28d0377ea56884905e57cf81ca422cac07ece98"
)

func changeParams() *Params {
	return &Params{
		UUID:     testUUID,
		Pipeline: "gate",
		Project:  "mediawiki/extensions/MobileFrontend",
		URL:      "file:///var/lib/sluice/merger",
		Ref:      SpeculativeRef("gate", testUUID),
		Commit:   testCommit,
		Job:      "build",
		Branch:   "master",
		Change:   545967,
		Patchset: 1,
		Changes: []ParamChange{
			{Project: "mediawiki/core", Branch: "master", Number: 545001, Patchset: 3, Ref: ChangeRef(545001, 3)},
			{Project: "mediawiki/extensions/MobileFrontend", Branch: "master", Number: 545967, Patchset: 1, Ref: ChangeRef(545967, 1)},
		},
	}
}

func refParams() *Params {
	return &Params{
		UUID:     "0f0e0d0c-0b0a-4908-8706-050403020100",
		Pipeline: "post",
		Project:  "pkg/hello",
		URL:      "https://merger.example.org/p",
		Ref:      "refs/heads/master",
		Commit:   "123456789abcdef123456789abcdef1234567890",
		RefName:  "refs/heads/master",
		OldRev:   zeroRev,
		NewRev:   "123456789abcdef123456789abcdef1234567890",
	}
}

func TestParamsEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		p    *Params
		want []string
	}{
		{"change", changeParams(), []string{
			"ZUUL_UUID=" + testUUID,
			"ZUUL_PIPELINE=gate",
			"ZUUL_PROJECT=mediawiki/extensions/MobileFrontend",
			"ZUUL_URL=file:///var/lib/sluice/merger",
			"ZUUL_REF=refs/sluice/gate/" + testUUID,
			"ZUUL_COMMIT=" + testCommit,
			"ZUUL_BRANCH=master",
			"ZUUL_CHANGE=545967",
			"ZUUL_PATCHSET=1",
			"ZUUL_CHANGES=mediawiki/core:master:refs/changes/01/545001/3^mediawiki/extensions/MobileFrontend:master:refs/changes/67/545967/1",
			"ZUUL_CHANGE_IDS=545001,3 545967,1",
			"BASE_LOG_PATH=67/545967/1",
			"LOG_PATH=67/545967/1/gate/build/55820fc",
		}},
		{"ref updated", refParams(), []string{
			"ZUUL_UUID=0f0e0d0c-0b0a-4908-8706-050403020100",
			"ZUUL_PIPELINE=post",
			"ZUUL_PROJECT=pkg/hello",
			"ZUUL_URL=https://merger.example.org/p",
			"ZUUL_REF=refs/heads/master",
			"ZUUL_COMMIT=123456789abcdef123456789abcdef1234567890",
			"ZUUL_REFNAME=refs/heads/master",
			"ZUUL_OLDREV=" + zeroRev,
			"ZUUL_NEWREV=123456789abcdef123456789abcdef1234567890",
			"ZUUL_SHORT_OLDREV=0000000",
			"ZUUL_SHORT_NEWREV=1234567",
			"BASE_LOG_PATH=12/123456789abcdef123456789abcdef1234567890",
		}},
		{"periodic", &Params{UUID: testUUID, Pipeline: "periodic", Project: "p", URL: "git://h/p", Job: "lint"}, []string{
			"ZUUL_UUID=" + testUUID,
			"ZUUL_PIPELINE=periodic",
			"ZUUL_PROJECT=p",
			"ZUUL_URL=git://h/p",
			"BASE_LOG_PATH=",
			"LOG_PATH=periodic/lint/55820fc",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := tc.p.Env()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(env, tc.want) {
				t.Fatalf("env:\n%s\nwant:\n%s", strings.Join(env, "\n"), strings.Join(tc.want, "\n"))
			}
			// Back from an environment with other variables too.
			back, err := ParseParams(append([]string{"PATH=/bin", "ZUUL_VOTING=1", "HOME=/x"}, env...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.p) {
				t.Fatalf("parsed back %+v, want %+v", back, tc.p)
			}
		})
	}
}

func TestParseParamsZuulForms(t *testing.T) {
	t.Parallel()
	env, err := changeParams().Env()
	if err != nil {
		t.Fatal(err)
	}
	// The caret-separated ZUUL_CHANGE_IDS is read too, and LOG_PATH may
	// be absent.
	var alt []string
	for _, e := range env {
		switch {
		case strings.HasPrefix(e, "ZUUL_CHANGE_IDS="):
			alt = append(alt, strings.ReplaceAll(e, " ", "^"))
		case strings.HasPrefix(e, "LOG_PATH="):
		default:
			alt = append(alt, e)
		}
	}
	p, err := ParseParams(alt)
	if err != nil {
		t.Fatal(err)
	}
	want := changeParams()
	want.Job = ""
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v", p)
	}
	// A short ref name, as older Gerrits send for branches.
	rp := refParams()
	rp.RefName, rp.Ref = "master", "master"
	if env, err := rp.Env(); err != nil {
		t.Fatal(err)
	} else if back, err := ParseParams(env); err != nil || !reflect.DeepEqual(back, rp) {
		t.Fatalf("short ref name: %+v, %v", back, err)
	}
}

func TestParseParamsRejects(t *testing.T) {
	t.Parallel()
	good, err := changeParams().Env()
	if err != nil {
		t.Fatal(err)
	}
	set := func(k, v string) []string {
		out := slices.Clone(good)
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i] = k + "=" + v
				return out
			}
		}
		return append(out, k+"="+v)
	}
	drop := func(k string) []string {
		return slices.DeleteFunc(slices.Clone(good), func(e string) bool { return strings.HasPrefix(e, k+"=") })
	}
	for _, tc := range []struct {
		name string
		env  []string
		v    string // the variable the error names
	}{
		{"uuid", set("ZUUL_UUID", "not-a-uuid"), "ZUUL_UUID"},
		{"uuid upper case", set("ZUUL_UUID", strings.ToUpper(testUUID)), "ZUUL_UUID"},
		{"no uuid", drop("ZUUL_UUID"), "ZUUL_UUID"},
		{"pipeline with slash", set("ZUUL_PIPELINE", "a/b"), "ZUUL_PIPELINE"},
		{"project escapes", set("ZUUL_PROJECT", "../etc"), "ZUUL_PROJECT"},
		{"url with password", set("ZUUL_URL", "https://u:pw@h/p"), "ZUUL_URL"},
		{"url with shell", set("ZUUL_URL", "file:///x;rm"), "ZUUL_URL"},
		{"url scheme", set("ZUUL_URL", "ftp://h/p"), "ZUUL_URL"},
		{"ref", set("ZUUL_REF", "refs/a..b"), "ZUUL_REF"},
		{"commit short", set("ZUUL_COMMIT", "c28d037"), "ZUUL_COMMIT"},
		{"no commit", drop("ZUUL_COMMIT"), "ZUUL_REF"},
		{"change sign", set("ZUUL_CHANGE", "+545967"), "ZUUL_CHANGE"},
		{"change leading zero", set("ZUUL_CHANGE", "0545967"), "ZUUL_CHANGE"},
		{"change too big", set("ZUUL_CHANGE", "99999999999"), "ZUUL_CHANGE"},
		{"patchset zero", set("ZUUL_PATCHSET", "0"), "ZUUL_PATCHSET"},
		{"branch", set("ZUUL_BRANCH", "a b"), "ZUUL_BRANCH"},
		{"change ids count", set("ZUUL_CHANGE_IDS", "545967,1"), "ZUUL_CHANGE_IDS"},
		{"change ids shape", set("ZUUL_CHANGE_IDS", "545001-3 545967,1"), "ZUUL_CHANGE_IDS"},
		{"changes shape", set("ZUUL_CHANGES", "a^b"), "ZUUL_CHANGES"},
		{"last change not this one", set("ZUUL_CHANGE_IDS", "545967,1 545001,3"), "ZUUL_CHANGES"},
		{"no changes", drop("ZUUL_CHANGES"), "ZUUL_CHANGES"},
		{"patchset without change", append(drop("ZUUL_CHANGE"), "ZUUL_CHANGE_X=1"), "ZUUL_PATCHSET"},
		{"base log path", set("BASE_LOG_PATH", "x/545967/1"), "BASE_LOG_PATH"},
		{"log path", set("LOG_PATH", "67/545967/1/gate/../55820fc"), "LOG_PATH"},
		{"twice", append(slices.Clone(good), "ZUUL_PIPELINE=check"), "ZUUL_PIPELINE"},
		{"newline", set("ZUUL_PROJECT", "a\nb"), "ZUUL_PROJECT"},
		{"refname for a change", append(slices.Clone(good), "ZUUL_REFNAME=refs/heads/master"), "ZUUL_REFNAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParseParams(tc.env)
			pe, ok := errors.AsType[*ParamsError](err)
			if !ok {
				t.Fatalf("got %+v, %v; want a *ParamsError", p, err)
			}
			if pe.Var != tc.v {
				t.Fatalf("error names %s, want %s: %v", pe.Var, tc.v, err)
			}
		})
	}
}

func TestParamsEnvRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Params)
	}{
		{"last change differs", func(p *Params) { p.Changes = p.Changes[:1] }},
		{"no changes", func(p *Params) { p.Changes = nil }},
		{"job with slash", func(p *Params) { p.Job = "a/b" }},
		{"ref update and change", func(p *Params) { p.RefName = "refs/heads/master" }},
	} {
		p := changeParams()
		tc.edit(p)
		if env, err := p.Env(); err == nil {
			t.Errorf("%s: got %v", tc.name, env)
		}
	}
	p := refParams()
	p.Commit = p.OldRev
	if _, err := p.Env(); err == nil {
		t.Error("ref update whose ZUUL_COMMIT is not ZUUL_NEWREV accepted")
	}
}

// FuzzParseParams: whatever parses writes back to an environment that
// parses to the same parameters, with every variable it read.
func FuzzParseParams(f *testing.F) {
	for _, p := range []*Params{changeParams(), refParams()} {
		env, err := p.Env()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.Join(env, "\n"))
	}
	f.Add("ZUUL_UUID=" + testUUID + "\nZUUL_PIPELINE=p\nZUUL_PROJECT=a\nZUUL_URL=file:///m\nBASE_LOG_PATH=")
	f.Add("ZUUL_CHANGE_IDS=1,1^2,2\nZUUL_CHANGES=a:b:refs/c^d:e:refs/f")
	f.Fuzz(func(t *testing.T, s string) {
		env := strings.Split(s, "\n")
		p, err := ParseParams(env)
		if err != nil {
			if _, ok := errors.AsType[*ParamsError](err); !ok {
				t.Fatalf("error %v is not a *ParamsError", err)
			}
			return
		}
		out, err := p.Env()
		if err != nil {
			t.Fatalf("parsed %+v but Env fails: %v", p, err)
		}
		back, err := ParseParams(out)
		if err != nil {
			t.Fatalf("Env %q does not parse: %v", out, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip: %+v, want %+v", back, p)
		}
	})
}
