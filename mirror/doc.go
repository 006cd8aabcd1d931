// Package mirror syncs release snapshots to mirrors, one transaction per
// release repository and format. A sync verifies the snapshot itself with
// repo.Verify (signatures, sizes, checksums; RPM package signatures) and
// puts it on each target; each target is then checked against the
// snapshot and switched to it only once both pass. A target that still
// fails after a retry (which compares every file by content), or whose
// snapshot does not verify, is put back on the snapshot it served before,
// checked, and reported. Every sync writes a manifest (the snapshot, each
// target's outcome, the packages added and removed) and records a
// sluice.mirror.sync result per target.
//
// Its input is a snapshot as package repo publishes release repositories:
// ROOT/snapshots/ID/ an immutable, signed repository tree, ROOT/current a
// symbolic link to the live one ([Release]).
//
// Two kinds of target:
//
//   - [Local], a directory on this host or a mounted share: the snapshot
//     is copied to DIR/snapshots/ID (hard links where the file system
//     allows), checked there (every file the snapshot's own inode, or the
//     same bytes), and DIR/current is switched to it by one rename. A
//     reader that resolves current once sees the old snapshot or the new
//     one, never a mix; the previous snapshots stay (three by default) for
//     readers still on them and for rollbacks.
//
//   - [Rsync], any rsync destination (daemon or SSH), in the order of
//     Debian's ftpsync: a lock file; the content-addressed files (packages,
//     APT by-hash indices, checksum-named repodata) that the served
//     snapshot did not have, without deleting anything; a dry run of the
//     whole sync, which lists every content file of the target that
//     differs from the snapshot (by checksum: the target reads all it
//     holds; in quick mode by size and mtime) and what the target holds
//     beyond it, while the snapshot is being verified; once it verified,
//     the plain-named APT indices, then the entry files (InRelease,
//     Release, Release.gpg; repomd.xml and repomd.xml.asc) last, each
//     group renamed into place at its end (--delay-updates); a dry run by
//     checksum of those and of what this sync wrote; deletion of what
//     neither the new snapshot nor the one served before holds; the trace
//     file project/trace/NAME last; the lock file removed. A target that
//     holds the snapshot's bytes, of a snapshot that passes repo.Verify,
//     passes repo.Verify: that is the check. `sluice mirror verify`
//     (Target.Verify) reads a target back whole and runs repo.Verify on
//     what it read.
//
// What the rsync order guarantees, and what it does not: an rsync target
// has no single switch. A client that reads the entry file first and
// fetches the rest by the checksums it names (apt with Acquire-By-Hash,
// which sluice's Release files enable; dnf, whose repodata file names
// carry their checksum) sees a consistent repository at every moment of a
// sync, and after a sync killed at any point: every file an entry file
// names is on the target before the entry file is, and stays until the
// sync after next. A client that reads the plain index names (no
// by-hash) can, for the moment between two renames, read a new index with
// an old Release; and the detached signatures (Release.gpg,
// repomd.xml.asc) are files apart from what they sign, so a reader of
// repomd.xml with repo_gpgcheck can meet a new repomd.xml beside the old
// signature for that moment (dnf fails and retries), and until the next
// sync if the sync is killed between the two renames. A package file
// replaced under the same name (repo publish --replace) is replaced
// before the metadata that names it. Local targets have none of these
// windows.
//
// The state of each repository and format (which snapshot each target
// serves, when it was last verified, the last manifest) is a JSON file
// under the Syncer's state directory, NAME/FORMAT/state.json, written
// atomically under a lock that also keeps two syncs of one repository
// and format from running at once; the manifests are kept beside it in
// NAME/FORMAT/manifests/ and handed to an artifact store.
package mirror
