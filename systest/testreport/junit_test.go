package testreport

import (
	"strings"
	"testing"
	"time"
)

const surefire = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="all" tests="5">
  <testsuite name="net" tests="3" time="1.5">
    <properties><property name="host" value="node1"/></properties>
    <testcase classname="net.Client" name="connects" time="0.25"/>
    <testcase classname="net.Client" name="retries" time="1,000.5">
      <failure message="expected 3 retries" type="AssertionError">at Client.java:12
more</failure>
      <system-out>dialing 10.213.0.2</system-out>
    </testcase>
    <testcase name="ipv6"><skipped message="no ipv6"/></testcase>
    <testsuite name="nested">
      <testcase classname="n" name="boom"><error type="Panic">stack</error><system-err>oops</system-err></testcase>
    </testsuite>
    <system-out>suite output</system-out>
  </testsuite>
  <testsuite name="db">
    <testcase classname="db" name="empty" time=""><skipped/></testcase>
  </testsuite>
</testsuites>
`

func TestJUnit(t *testing.T) {
	t.Parallel()
	rep, err := ParseJUnit(strings.NewReader(surefire))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Name: "net.Client.connects", Suite: "net", Outcome: Pass, Duration: 250 * time.Millisecond},
		{Name: "net.Client.retries", Suite: "net", Outcome: Fail, Duration: 1000500 * time.Millisecond, Message: "AssertionError: expected 3 retries",
			Details: "at Client.java:12\nmore\nsystem-out:\ndialing 10.213.0.2"},
		{Name: "ipv6", Suite: "net", Outcome: Skip, Message: "no ipv6"},
		{Name: "n.boom", Suite: "nested", Outcome: Error, Message: "Panic: stack", Details: "stack\nsystem-err:\noops"},
		{Name: "db.empty", Suite: "db", Outcome: Skip},
	}
	if len(rep.Tests) != len(want) {
		t.Fatalf("%d tests: %+v", len(rep.Tests), rep.Tests)
	}
	for i := range want {
		if rep.Tests[i] != want[i] {
			t.Errorf("test %d:\n got %+v\nwant %+v", i, rep.Tests[i], want[i])
		}
	}
}

func TestJUnitSuiteRoot(t *testing.T) {
	t.Parallel()
	rep, err := ParseJUnit(strings.NewReader(`<testsuite name="pytest"><testcase classname="t" name="a" time="0.001"/></testsuite>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tests) != 1 || rep.Tests[0].Name != "t.a" || rep.Tests[0].Suite != "pytest" || !rep.Passed() {
		t.Fatalf("%+v", rep)
	}
	// Some tools put testcases straight under testsuites.
	rep, err = ParseJUnit(strings.NewReader(`<testsuites><testcase name="bare"><failure/></testcase></testsuites>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tests) != 1 || rep.Tests[0].Name != "bare" || rep.Tests[0].Suite != "" || rep.Tests[0].Outcome != Fail {
		t.Fatalf("%+v", rep)
	}
}

func TestJUnitErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"empty", "", "no root element"},
		{"wrong root", "<?xml version=\"1.0\"?>\n<html/>", "line 2: root element <html>"},
		{"unterminated", "<testsuites>\n<testsuite name=\"a\">\n<testcase name=\"x\"/>\n", "unexpected EOF"},
		{"mismatched", "<testsuites>\n<testsuite>\n</testsuites>", "line 3"},
		{"no name", "<testsuite>\n\n<testcase classname=\"c\"/></testsuite>", "line 3: testcase without a name"},
		{"bad time", "<testsuite>\n<testcase name=\"x\" time=\"soon\"/></testsuite>", `line 2: testcase "x": time "soon"`},
		{"negative time", "<testsuite><testcase name=\"x\" time=\"-1\"/></testsuite>", "time"},
		{"second root", "<testsuite></testsuite>\n<testsuite></testsuite>", "line 2: element <testsuite> after the root"},
		{"text after root", "<testsuite></testsuite>junk", "text after the root"},
		{"long name", "<testsuite>\n<testcase name=\"" + strings.Repeat("n", MaxName+1) + "\"/></testsuite>", "line 2: testcase name of 4097 bytes"},
		{"entity", "<!DOCTYPE x [<!ENTITY a \"b\">]><testsuite><testcase name=\"&a;\"/></testsuite>", "entity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseJUnit(strings.NewReader(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestJUnitLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", MaxDetails)
	rep, err := ParseJUnit(strings.NewReader(`<testsuite><testcase name="x"><failure message="m">` + long + `</failure></testcase></testsuite>`))
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Tests[0].Details
	if len(d) > MaxDetails || !strings.HasSuffix(d, "[truncated]") || !strings.HasPrefix(d, "éé") {
		t.Fatalf("details of %d bytes, ends %q", len(d), d[len(d)-20:])
	}
	// The input limit (MaxInput) is shared with TAP and tested there, where
	// 64 MiB are read ten times faster.
	l := &limitedReader{r: strings.NewReader("<testsuite><testcase name=\"x\"/></testsuite>"), n: 20, name: "junit"}
	_, err = ParseJUnit(l)
	if err == nil || !strings.Contains(err.Error(), "junit report larger than") {
		t.Fatalf("oversized report: %v", err)
	}
}

func FuzzJUnit(f *testing.F) {
	f.Add(surefire)
	f.Add(`<testsuite name="s"><testcase name="a"/></testsuite>`)
	f.Add(`<testsuites><testsuite><testcase name="a" time="1e3"><skipped/></testcase></testsuite></testsuites>`)
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := ParseJUnit(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "testreport: junit: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		checkReport(t, rep)
	})
}
