package builder

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A test build's version is the release version with the suffix
// "~c<change>.p<patchset>". Debian (dpkg) and RPM (rpmvercmp) both sort a
// tilde below anything, the end of the string included, so the suffix makes
// the version sort below the release it is added to and above every earlier
// release, while the numbers after it order the test builds of one base by
// change and then by patchset. A test repository therefore never shadows a
// release. The one release it can fall below is a tilde pre-release that
// the release extends: after "2.0~rc1", the test build "2.0~c7.p1" of
// native "2.0" compares "c" with "rc" and sorts below it.

// testSuffix returns the suffix that names a change and patchset.
func testSuffix(change, patchset int) (string, error) {
	if change <= 0 {
		return "", fmt.Errorf("change %d: not positive", change)
	}
	if patchset <= 0 {
		return "", fmt.Errorf("patchset %d: not positive", patchset)
	}
	return "~c" + strconv.Itoa(change) + ".p" + strconv.Itoa(patchset), nil
}

var (
	// debUpstream and debRevision are the parts of a Debian version
	// (Debian Policy §5.6.12). Which of ':' and '-' the upstream part may
	// hold follows from where the version is split.
	debUpstream = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]*$`)
	debRevision = regexp.MustCompile(`^[A-Za-z0-9.+~]+$`)
)

// DebTestVersion returns the version of a test build of change and
// patchset whose release would carry the Debian version release: the
// suffix "~c<change>.p<patchset>" is added to the Debian revision, or to
// the upstream version of a native package ("1:1.2-3" gives
// "1:1.2-3~c12345.p2", "1.2" gives "1.2~c12345.p2").
func DebTestVersion(release string, change, patchset int) (string, error) {
	if err := checkDebVersion(release); err != nil {
		return "", fmt.Errorf("builder: debian version %q: %w", release, err)
	}
	suffix, err := testSuffix(change, patchset)
	if err != nil {
		return "", fmt.Errorf("builder: test version of %q: %w", release, err)
	}
	// Appended at the very end, the suffix lands in the revision if there
	// is one and in the upstream version otherwise.
	return release + suffix, nil
}

// checkDebVersion checks v the way dpkg parses a version, but strictly:
// no surrounding space and no empty part.
func checkDebVersion(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	rest := v
	if epoch, after, ok := strings.Cut(v, ":"); ok {
		if _, err := strconv.ParseUint(epoch, 10, 31); err != nil {
			return fmt.Errorf("epoch %q: not a number below 2^31", epoch)
		}
		rest = after
	}
	upstream, revision := rest, ""
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		upstream, revision = rest[:i], rest[i+1:]
		if !debRevision.MatchString(revision) {
			return fmt.Errorf("revision %q: empty or not made of [A-Za-z0-9.+~]", revision)
		}
	}
	if !debUpstream.MatchString(upstream) {
		return fmt.Errorf("upstream version %q: empty, not starting with a digit or not made of [A-Za-z0-9.+~:-]", upstream)
	}
	return nil
}

// rpmRelease is a Release as written in a spec file: the characters
// rpmbuild accepts in a release, and plain macro references such as
// %{?dist}, starting with a literal.
var rpmRelease = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~^]*(?:%\{\??[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9._+~^])*$`)

// RPMTestRelease returns the Release of a test build of change and
// patchset whose release build would carry the RPM Release release, as
// written in a spec file ("3%{?dist}") or as built ("3.el9").
//
// The suffix "~c<change>.p<patchset>" goes at the very end, after the
// dist tag: "3%{?dist}" gives "3%{?dist}~c12345.p2", which rpmbuild
// expands to "3.el9~c12345.p2". rpmvercmp compares segment by segment and
// sorts a tilde below anything, so the test build sorts right below its
// release and above every release that sorts below it. Before the dist tag
// ("3~c12345.p2.el9") it would also sort below "3.el9", but it would fall
// below the previous release too whenever the two differ only in or after
// the dist tag, as z-stream updates do: "27~c12345.p2.el9_4.1" < "27.el9".
// The price of the end is that the dist tag is not the last segment of a
// test build's Release.
func RPMTestRelease(release string, change, patchset int) (string, error) {
	if release == "" {
		return "", fmt.Errorf("builder: rpm release %q: empty", release)
	}
	if !rpmRelease.MatchString(release) {
		return "", fmt.Errorf("builder: rpm release %q: not starting with [A-Za-z0-9] or not made of [A-Za-z0-9._+~^] and macros like %%{?dist}", release)
	}
	suffix, err := testSuffix(change, patchset)
	if err != nil {
		return "", fmt.Errorf("builder: test release of %q: %w", release, err)
	}
	return release + suffix, nil
}
