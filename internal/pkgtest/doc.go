// Package pkgtest makes small, valid Debian and RPM packages for tests and benchmarks.
//
// A [Deb] is a binary package in the format of deb(5): an ar archive holding
// debian-binary, control.tar and data.tar, with the control file laid out as
// in Debian Policy §5.3. An [RPM] is a binary package in the RPM v3 file
// format that rpm 4 reads, built with github.com/google/rpmpack.
//
// Output is deterministic: the same description gives the same bytes, so
// packages can back golden files and benchmarks can be repeated. [NeedTool]
// lets tests run the real dpkg-deb, rpm or apt where they are installed.
package pkgtest
