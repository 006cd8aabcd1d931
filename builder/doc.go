// Package builder turns a change's sources into packages: it checks the
// sources out of git (go-git, with one bare cache per project), works out
// the version a test build carries, and keeps build outputs in a
// content-addressed artifact store. Build back-ends (dpkg-buildpackage,
// rpmbuild) and build records come next (see the builder issue).
package builder
