package results

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseResultBody feeds POST /results bodies to the parser: it must
// refuse or return a result whose fields the store accepts as shapes
// (no panic, keys without ':', a testcase name).
func FuzzParseResultBody(f *testing.F) {
	f.Add(`{"outcome": "passed", "testcase": "sluice.build", "data": {"item": ["a", 1, 2.5]}, "submit_time": 1700000000000}`)
	f.Add(`{"outcome": "FAILED", "testcase": {"name": "a/b", "ref_url": "x"}, "groups": ["u", {"description": "d"}], "submit_time": "2024-05-01T12:00:00.123"}`)
	f.Add(`{"outcome": "x", "data": {"a:b": "c"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var b resultBody
		if json.Unmarshal([]byte(body), &b) != nil {
			return
		}
		res, _, err := parseResult(b)
		if err != nil {
			return
		}
		if res.Testcase.Name == "" {
			t.Fatalf("no testcase name accepted from %q", body)
		}
		for k := range res.Data {
			if strings.Contains(k, ":") {
				t.Fatalf("data key %q accepted from %q", k, body)
			}
		}
	})
}

// FuzzParseSince feeds the since parameter to its parser.
func FuzzParseSince(f *testing.F) {
	f.Add("2024-05-01T12:00:00.123456,2024-05-02")
	f.Add("2024-05-01")
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseSince(s)
		if err == nil && start == nil {
			t.Fatalf("since %q parsed to no start", s)
		}
		if err == nil && end != nil && end.Before(*start) {
			// Not an error upstream either: the range is empty.
			return
		}
	})
}
