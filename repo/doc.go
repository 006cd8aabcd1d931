// Package repo writes, signs, reads and checks package repositories: the
// APT and RPM (yum/dnf) repositories that sluice publishes built packages
// into.
//
// It provides:
//
//   - [APT]: an APT repository in Debian's archive layout (pool/ and
//     dists/<codename>/ with Packages indices, plain, gzip and xz, also
//     served under by-hash/ for Acquire-By-Hash), its Release file signed
//     as InRelease (clearsigned) and as Release.gpg (detached).
//     It follows the Debian repository format
//     (https://wiki.debian.org/DebianRepository/Format).
//   - [RPM]: a yum/dnf repository: each package re-signed with the
//     repository's key (the header and header-plus-payload signatures
//     rpmsign makes, which rpmkeys checks), and
//     repodata/ in the rpm-md layout that createrepo_c 0.17 writes
//     (checksum-named primary, filelists and other, and repomd.xml with
//     its detached signature repomd.xml.asc, which dnf checks under
//     repo_gpgcheck).
//   - [Key]: the OpenPGP signing key (RSA 4096 or Ed25519) and its
//     signatures, per OpenPGP (RFC 9580, and RFC 4880, which apt's and
//     rpm's verifiers read).
//   - Test repositories: [APT.Publish] and [RPM.Publish] add packages to
//     one repository directory, as the publish stage does for the
//     repository it makes for each buildset; a repository is extended in
//     place and its metadata written last and switched by rename, so that
//     a client sees the previous repository or the new one, never a part.
//   - Release repositories ([Release], [ReleaseDir]): a series of
//     immutable signed snapshots sharing a content-addressed pool, the live
//     one named by a symbolic link switched atomically; publishing under
//     the provenance rule ([Prover]: a package enters only if a build
//     record proves it), listing, diffing, rolling back, pruning and
//     auditing snapshots.
//   - [Verify]: reads a published repository as a client with a keyring
//     would and reports every problem: signatures, and the size and
//     checksums of every file the metadata names (and, for RPM, each
//     package's own signature).
//   - [Inspect]: reads a .deb or .rpm and checks it as a publish does.
//
// Every name taken from a package or a manifest is validated before it is
// used as a path. Syncing a repository to other hosts belongs to package
// mirror, not here.
package repo
