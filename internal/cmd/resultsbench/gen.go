package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// The shapes of the generated results: what sluice records for its stages.
const (
	// resultsPerBuildset is how many results one buildset records.
	resultsPerBuildset = 10
	// spacing is the time between two loaded results' submit times: a
	// million of them span about a year.
	spacing = 30 * time.Second
)

// stages are the testcases every buildset records; scenarios, the
// system tests of which each buildset runs a few. Together: 20 testcases.
var (
	stages    = []string{"sluice.build", "sluice.publish", "sluice.install", "sluice.lint"}
	scenarios = []string{"fresh", "upgrade", "downgrade", "ha", "fips", "selinux", "network", "storage",
		"ipv6", "rollback", "multipath", "kdump", "cockpit", "container", "nfs", "ldap"}
	arches = []string{"x86_64", "aarch64", "noarch"}
)

// testcases returns the name and ref_url of every testcase the
// generated results name.
func testcases() [][2]string {
	var out [][2]string
	for _, s := range stages {
		out = append(out, [2]string{s, testcaseURL(s[len("sluice."):])})
	}
	for _, s := range scenarios {
		out = append(out, [2]string{"sluice.systest." + s, testcaseURL("systest." + s)})
	}
	return out
}

func testcaseURL(stage string) string { return "https://sluice.example.org/docs/stages#" + stage }

// loadEpoch is the submit time of the first loaded result.
var loadEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// result is one generated result, as a POST body carries it and as
// results.Store.Create writes it.
type result struct {
	testcase, testcaseURL string
	outcome               string
	refURL                string
	group                 string // the buildset's UUID
	submit                time.Time
	data                  [][2]string // key, value; in the order Create writes them (keys sorted)
}

// gen generates the results of buildsets: each buildset is one item's
// change, a group of resultsPerBuildset results (the four stages and six
// system tests). Buildset b is of item b modulo items, so every item has
// results once there are items buildsets.
type gen struct {
	items int
	rng   *rand.Rand
}

func newGen(items int, seed uint64) *gen {
	return &gen{items: items, rng: rand.New(rand.NewPCG(seed, 0x736c75696365))}
}

// item returns the NVR of item k.
func item(k int) string {
	return fmt.Sprintf("pkg%05d-%d.%d-%d.fc41", k, 1+k%7, k%13, 1+k%3)
}

// itemType returns the ResultsDB item type of item k: most are Koji
// builds, as Greenwave gates them.
func itemType(k int) string {
	switch k % 10 {
	case 7:
		return "brew-build"
	case 8, 9:
		return "sluice-change"
	}
	return "koji_build"
}

// buildsetUUID returns a UUID that names buildset b.
func buildsetUUID(b int) string {
	return fmt.Sprintf("%08x-5bd1-4c3e-9a1f-%012x", uint32(b*2654435761), b)
}

// buildset returns the results of buildset b, each time after the one
// before it from submit on (zero: left to the server).
func (g *gen) buildset(b int, submit time.Time) []result {
	k := b % g.items
	uuid := buildsetUUID(b)
	pipeline := "check"
	switch r := g.rng.IntN(10); {
	case r >= 9:
		pipeline = "post"
	case r >= 6:
		pipeline = "gate"
	}
	change := strconv.Itoa(100000 + k*7 + b/g.items%5)
	patchset := strconv.Itoa(1 + b/g.items%4)
	tcs := append([]string(nil), stages...)
	for _, i := range g.rng.Perm(len(scenarios))[:resultsPerBuildset-len(stages)] {
		tcs = append(tcs, "sluice.systest."+scenarios[i])
	}
	rs := make([]result, len(tcs))
	for i, tc := range tcs {
		outcome := "PASSED"
		switch r := g.rng.IntN(100); {
		case r >= 97:
			outcome = "ERROR"
		case r >= 85:
			outcome = "FAILED"
		}
		arch := arches[g.rng.IntN(len(arches))]
		stage := tc[len("sluice."):]
		data := [][2]string{
			{"arch", arch},
			{"buildset", uuid},
			{"change", change},
			{"item", item(k)},
			{"patchset", patchset},
			{"pipeline", pipeline},
		}
		if i >= len(stages) {
			data = append(data, [2]string{"scenario", stage[len("systest."):]})
		}
		data = append(data, [2]string{"type", itemType(k)})
		rs[i] = result{
			testcase:    tc,
			testcaseURL: testcaseURL(stage),
			outcome:     outcome,
			refURL:      "https://sluice.example.org/logs/" + uuid + "/" + stage + "/1/",
			group:       uuid,
			data:        data,
		}
		if !submit.IsZero() {
			rs[i].submit = submit.Add(time.Duration(i) * spacing)
		}
	}
	return rs
}
