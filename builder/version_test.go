package builder

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"pault.ag/go/debian/version"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// versionOrder is a pair of versions that must sort lower < higher.
type versionOrder struct {
	why, lower, higher string
}

var debTestVersionCases = []struct {
	name             string
	release          string
	change, patchset int
	want             string
	previous         string // an earlier release of the package
}{
	{"epoch and revision", "1:1.2-3", 12345, 2, "1:1.2-3~c12345.p2", "1:1.2-2"},
	{"revision", "1.2-3", 12345, 2, "1.2-3~c12345.p2", "1.2-2"},
	{"native", "1.2", 12345, 2, "1.2~c12345.p2", "1.1"},
	{"native with epoch", "2:1.2", 7, 1, "2:1.2~c7.p1", "2:1.1.9"},
	{"release candidate", "2.0~rc1-1", 7, 1, "2.0~rc1-1~c7.p1", "2.0~beta2-1"},
	{"backport", "1.2-3~bpo12+1", 12345, 2, "1.2-3~bpo12+1~c12345.p2", "1.2-2~bpo12+1"},
	{"stable update", "1.2-3+deb12u1", 12345, 2, "1.2-3+deb12u1~c12345.p2", "1.2-3"},
	{"hyphen in upstream", "1:2.3.4+dfsg-rc1-1.1", 99, 4, "1:2.3.4+dfsg-rc1-1.1~c99.p4", "1:2.3.4+dfsg-rc1-1"},
	{"ubuntu", "1.2.3-0ubuntu1", 12345, 2, "1.2.3-0ubuntu1~c12345.p2", "1.2.2-0ubuntu1"},
	{"patchset ten", "1.2-3", 12345, 10, "1.2-3~c12345.p10", "1.2-2"},
	{"change with more digits next", "1.2-3", 999, 3, "1.2-3~c999.p3", "1.2-2"},
}

// debOrders returns the orders a test build of release must keep.
func debOrders(t *testing.T, release, previous string, change, patchset int, got string) []versionOrder {
	t.Helper()
	deb := func(release string, change, patchset int) string {
		t.Helper()
		v, err := DebTestVersion(release, change, patchset)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	o := []versionOrder{
		{"below the release", got, release},
		{"above the previous release", previous, got},
		{"above a test build of the previous release", deb(previous, change, patchset), got},
		{"a later change is above", got, deb(release, change+1, 1)},
	}
	if patchset > 1 {
		o = append(o, versionOrder{"above an earlier patchset", deb(release, change, patchset-1), got})
	}
	return o
}

func TestDebTestVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range debTestVersionCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DebTestVersion(tc.release, tc.change, tc.patchset)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("DebTestVersion(%q, %d, %d) = %q, want %q", tc.release, tc.change, tc.patchset, got, tc.want)
			}
			parsed, err := version.Parse(got)
			if err != nil {
				t.Fatalf("version.Parse(%q): %v", got, err)
			}
			if s := parsed.String(); s != got {
				t.Errorf("version.Parse(%q).String() = %q", got, s)
			}
			rel, _ := version.Parse(tc.release)
			if parsed.IsNative() != rel.IsNative() {
				t.Errorf("%q native = %v, %q native = %v", got, parsed.IsNative(), tc.release, rel.IsNative())
			}
			for _, o := range debOrders(t, tc.release, tc.previous, tc.change, tc.patchset, got) {
				lo, err := version.Parse(o.lower)
				if err != nil {
					t.Fatalf("%s: version.Parse(%q): %v", o.why, o.lower, err)
				}
				hi, err := version.Parse(o.higher)
				if err != nil {
					t.Fatalf("%s: version.Parse(%q): %v", o.why, o.higher, err)
				}
				if c := version.Compare(lo, hi); c >= 0 {
					t.Errorf("%s: version.Compare(%q, %q) = %d, want < 0", o.why, o.lower, o.higher, c)
				}
			}
		})
	}
}

// TestDebTestVersionDpkg confirms the orders with dpkg itself.
func TestDebTestVersionDpkg(t *testing.T) {
	t.Parallel()
	dpkg := pkgtest.NeedTool(t, "dpkg")
	for _, tc := range debTestVersionCases[:4] {
		got, err := DebTestVersion(tc.release, tc.change, tc.patchset)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range debOrders(t, tc.release, tc.previous, tc.change, tc.patchset, got) {
			cmd := proc.Command(t.Context(), dpkg, "--compare-versions", o.lower, "lt", o.higher)
			cmd.Env = versionToolEnv(t)
			out, err := cmd.CombinedOutput()
			exit, isExit := errors.AsType[*exec.ExitError](err)
			switch {
			case isExit && exit.ExitCode() == 1 && len(out) == 0:
				t.Errorf("%s: %s: dpkg --compare-versions %s lt %s is false", tc.name, o.why, o.lower, o.higher)
			case err != nil:
				t.Fatalf("dpkg --compare-versions %s lt %s: %v: %s", o.lower, o.higher, err, out)
			}
		}
	}
}

func TestDebTestVersionInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		release          string
		change, patchset int
		inError          string // the value the error must name
	}{
		{"empty", "", 1, 1, `""`},
		{"leading space", " 1.2-3", 1, 1, `" 1.2-3"`},
		{"trailing newline", "1.2-3\n", 1, 1, `"1.2-3\n"`},
		{"letter first", "a1.2-3", 1, 1, `"a1.2-3"`},
		{"empty revision", "1.2-", 1, 1, `"1.2-"`},
		{"empty upstream", "-3", 1, 1, `"-3"`},
		{"empty epoch", ":1.2-3", 1, 1, `":1.2-3"`},
		{"letter epoch", "x:1.2-3", 1, 1, `"x:1.2-3"`},
		{"huge epoch", "99999999999:1.2-3", 1, 1, `"99999999999:1.2-3"`},
		{"underscore", "1.2_3-1", 1, 1, `"1.2_3-1"`},
		{"slash", "1.2-3/../4", 1, 1, `"1.2-3/../4"`},
		{"shell", "1.2-3;rm", 1, 1, `"1.2-3;rm"`},
		{"colon without epoch in revision", "1:1.2-3:4", 1, 1, `"1:1.2-3:4"`},
		{"change zero", "1.2-3", 0, 1, "change 0"},
		{"negative change", "1.2-3", -5, 1, "change -5"},
		{"patchset zero", "1.2-3", 1, 0, "patchset 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DebTestVersion(tc.release, tc.change, tc.patchset)
			if err == nil {
				t.Fatalf("DebTestVersion(%q, %d, %d) = %q, want an error", tc.release, tc.change, tc.patchset, got)
			}
			if !strings.Contains(err.Error(), tc.inError) {
				t.Errorf("error %q does not name %s", err, tc.inError)
			}
		})
	}
}

var rpmTestReleaseCases = []struct {
	name             string
	release          string // as written in a spec file
	change, patchset int
	want             string
	previous         string
}{
	{"dist macro", "3%{?dist}", 12345, 2, "3%{?dist}~c12345.p2", "2%{?dist}"},
	{"dist macro without question mark", "3%{dist}", 12345, 2, "3%{dist}~c12345.p2", "2%{dist}"},
	{"undefined dist", "3%{?nodist}", 12345, 2, "3%{?nodist}~c12345.p2", "2%{?nodist}"},
	{"z-stream after the dist macro", "27%{?dist}.1", 12345, 2, "27%{?dist}.1~c12345.p2", "27%{?dist}"},
	{"literal dist", "3.el9", 12345, 2, "3.el9~c12345.p2", "2.el9"},
	{"literal z-stream dist", "3.el9_4", 12345, 2, "3.el9_4~c12345.p2", "3.el9_3"},
	{"dist bumped over a minor release", "3.el9_4", 12345, 2, "3.el9_4~c12345.p2", "3.el9"},
	{"fedora", "1.fc40", 7, 1, "1.fc40~c7.p1", "0.9.fc40"},
	{"dotted release", "3.1.el9", 12345, 2, "3.1.el9~c12345.p2", "3.el9"},
	{"no dist", "3", 12345, 2, "3~c12345.p2", "2"},
	{"pre-release", "0.1.rc1", 7, 3, "0.1.rc1~c7.p3", "0.1.beta2"},
	{"snapshot", "0.1.20240101git1a2b3c%{?dist}", 7, 1, "0.1.20240101git1a2b3c%{?dist}~c7.p1", "0.1.20231201git0f0f0f%{?dist}"},
	{"caret", "3^20240101", 7, 1, "3^20240101~c7.p1", "3"},
	{"tilde in release", "0~rc2%{?dist}", 7, 1, "0~rc2%{?dist}~c7.p1", "0~rc1%{?dist}"},
	{"patchset ten", "3%{?dist}", 12345, 10, "3%{?dist}~c12345.p10", "2%{?dist}"},
	{"change with more digits next", "3%{?dist}", 999, 3, "3%{?dist}~c999.p3", "2%{?dist}"},
}

// rpmOrders returns the orders a test build of release must keep.
func rpmOrders(t *testing.T, release, previous string, change, patchset int, got string) []versionOrder {
	t.Helper()
	test := func(release string, change, patchset int) string {
		t.Helper()
		v, err := RPMTestRelease(release, change, patchset)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	o := []versionOrder{
		{"below the release", got, release},
		{"above the previous release", previous, got},
		{"above a test build of the previous release", test(previous, change, patchset), got},
		{"a later change is above", got, test(release, change+1, 1)},
	}
	if patchset > 1 {
		o = append(o, versionOrder{"above an earlier patchset", test(release, change, patchset-1), got})
	}
	return o
}

// TestRPMTestReleaseVersionOrder checks every order with rpm's own
// comparison, in one rpm run: a Lua chunk expands both sides as rpmbuild
// would (with dist set to .el9) and prints rpm.vercmp of each pair, then
// of each pair as the release of a full EVR.
func TestRPMTestReleaseVersionOrder(t *testing.T) {
	t.Parallel()
	type check struct {
		name        string
		o           versionOrder
		a, b        string // Lua expressions
		want        int
		description string
	}
	var checks []check
	add := func(name string, o versionOrder, want int) {
		a, b := "rpm.expand("+strconv.Quote(o.lower)+")", "rpm.expand("+strconv.Quote(o.higher)+")"
		checks = append(checks,
			check{name, o, a, b, want, "release"},
			check{name, o, `"1:1.2-"..` + a, `"1:1.2-"..` + b, want, "EVR"})
	}
	for _, tc := range rpmTestReleaseCases {
		got, err := RPMTestRelease(tc.release, tc.change, tc.patchset)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("RPMTestRelease(%q, %d, %d) = %q, want %q", tc.release, tc.change, tc.patchset, got, tc.want)
			continue
		}
		for _, o := range rpmOrders(t, tc.release, tc.previous, tc.change, tc.patchset, got) {
			add(tc.name, o, -1)
		}
	}
	// Why the tilde goes at the end: before the dist tag, a z-stream test
	// build would sort below the release it updates.
	add("before the dist tag", versionOrder{"below the previous release", "27~c12345.p2.el9_4.1", "27.el9"}, -1)

	rpm := pkgtest.NeedTool(t, "rpm")
	var lua strings.Builder
	lua.WriteString("%{lua: local r = {}\n")
	for _, c := range checks {
		lua.WriteString("r[#r+1] = rpm.vercmp(" + c.a + ", " + c.b + ")\n")
	}
	lua.WriteString(`print(table.concat(r, "\n"))}`)
	cmd := proc.Command(t.Context(), rpm, "--define", "dist .el9", "--eval", lua.String())
	cmd.Env = versionToolEnv(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(checks) {
		t.Fatalf("rpm printed %d results for %d comparisons: %q", len(lines), len(checks), out)
	}
	for i, c := range checks {
		if got, err := strconv.Atoi(lines[i]); err != nil || got != c.want {
			t.Errorf("%s: %s: rpm.vercmp of %s %q and %q = %s, want %d", c.name, c.o.why, c.description, c.o.lower, c.o.higher, lines[i], c.want)
		}
	}
}

func TestRPMTestReleaseVersionInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		release          string
		change, patchset int
		inError          string
	}{
		{"empty", "", 1, 1, `""`},
		{"hyphen", "3-1", 1, 1, `"3-1"`},
		{"space", "3 .el9", 1, 1, `"3 .el9"`},
		{"macro first", "%{?dist}", 1, 1, `"%{?dist}"`},
		{"dot first", ".el9", 1, 1, `".el9"`},
		{"shell macro", "3%(rm -rf /)", 1, 1, `"3%(rm -rf /)"`},
		{"conditional macro body", "3%{?dist:.x}", 1, 1, `"3%{?dist:.x}"`},
		{"unclosed macro", "3%{?dist", 1, 1, `"3%{?dist"`},
		{"bare percent", "3%dist", 1, 1, `"3%dist"`},
		{"slash", "3/../el9", 1, 1, `"3/../el9"`},
		{"newline", "3\n", 1, 1, `"3\n"`},
		{"change zero", "3%{?dist}", 0, 1, "change 0"},
		{"patchset negative", "3%{?dist}", 1, -2, "patchset -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := RPMTestRelease(tc.release, tc.change, tc.patchset)
			if err == nil {
				t.Fatalf("RPMTestRelease(%q, %d, %d) = %q, want an error", tc.release, tc.change, tc.patchset, got)
			}
			if !strings.Contains(err.Error(), tc.inError) {
				t.Errorf("error %q does not name %s", err, tc.inError)
			}
		})
	}
}

// versionToolEnv is the environment of the tools a test runs: no settings
// of the user's (such as ~/.rpmmacros) and messages in English.
func versionToolEnv(t *testing.T) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "LC_ALL=C"}
}
