// Package testreport parses the test reports that system test steps leave
// behind into per-test results: JUnit XML (the Ant/Surefire dialect, with
// a testsuites or a testsuite root), TAP (testanything.org: 12, which has
// no version line, 13 and 14) and subunit version 2 (the binary protocol
// of testing-cabal/subunit, described in the "Version 2" section of its
// README; SubunitDecoder reads its packets one by one).
//
// Every parser reads untrusted bytes: it validates what it reads, bounds
// the memory it uses (MaxInput, MaxTests, MaxName, MaxDetails, MaxPacket)
// and returns an error that names the line or byte offset where the input
// went wrong. Text kept from a report (messages, tracebacks, attachments)
// is truncated, never refused, when it passes the limits, and is made
// valid UTF-8 without NUL bytes. Collect reads a report from inside an
// environment's root without following links out of it.
package testreport
