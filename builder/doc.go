// Package builder turns a change's sources into packages: it checks the
// sources out of git (go-git, with one bare cache per project), builds them
// with a back-end per format (dpkg-buildpackage, rpmbuild; chroot back-ends
// can come later behind the same interface), gives test builds a version
// that sorts below the release, keeps every output in a content-addressed
// artifact store, and writes a build record that says where each package
// came from.
package builder
