// Package scenario reads the system test scenarios that projects keep in
// their repositories: YAML files (decoded strictly: an unknown key is an
// error) that name the nodes of a test, each a fresh environment from a
// prepared base with packages from the buildset's test repository
// installed, and the steps to run on them with what each must give.
//
//	name: client-server            # the result is sluice.systest.client-server
//	timeout: 10m                   # the whole scenario (default 30m)
//	nodes:
//	  - name: server               # a DNS label: the node's host name on the lab network
//	    base: bookworm             # a prepared base (sluice env prepare)
//	    packages: [hello-server]   # installed from the test repository
//	  - name: client
//	    base: bookworm
//	    packages: [hello-client]
//	steps:
//	  - node: server
//	    run: [hello-server, --listen, "0.0.0.0:8080"]
//	    background: true           # left running until the scenario ends
//	  - node: client
//	    run: [hello-client, --retry, "10", "server:8080"]
//	    timeout: 1m                # default 5m, never past the scenario's
//	    expect:
//	      exit: 0                  # the default
//	      stdout: "^hello from server$"   # RE2, matched per line (multi-line mode)
//	      files: [/var/lib/hello-client/last]
//	  - node: client
//	    run: [hello-client-tests, --junit, /tmp/report.xml]
//	    report: {format: junit, path: /tmp/report.xml}   # junit, tap or subunit
//
// A step's command is an argument vector, never a shell string: run:
// "ls -l" is refused. A scenario that needs a shell says so explicitly,
// run: [sh, -c, "..."]; scenarios are written by the project's maintainers
// and reviewed like its code, but the text is still never built from
// outside data (package names, versions, branch names) by sluice. To set
// environment variables, use env(1): run: [env, LANG=C.UTF-8, my-test].
//
// Every error names the file and the line, and the step or node:
// "scenario.yaml:12: step 3: node "db" is not declared". Parse returns
// every problem it finds at once, as an *Error.
package scenario
