// Package systest provides the test environments of sluice's install and
// system tests, and the install test itself.
//
// A [Base] is a prepared Debian system root (mmdebstrap from Debian's
// packages), cached by [Bases] under a directory and keyed by a hash of its
// definition, so that a changed definition is prepared again. An [Env] is a
// disposable system started from a base by a [Backend]:
//
//   - [Chroot] (the default) mounts an overlayfs over the base (or, where the
//     kernel refuses, makes a reflink-or-plain copy of it) and enters it with
//     util-linux's unshare in new mount, PID, network, UTS and IPC
//     namespaces, with /proc, a minimal /dev and a tmpfs /tmp. Commands run
//     in it through nsenter. Closing the environment kills the namespace's
//     init, which takes every process in it, and with the last process the
//     mount namespace and every mount in it go too: the host's mount table
//     holds the environment's mounts only for the moment it starts.
//     What runs inside has a capability bounding set without sys_admin,
//     sys_chroot, mknod, sys_module, sys_rawio, sys_ptrace and their
//     like (set with the base's setpriv), and /proc/sys and the kernel's
//     other global knobs are read-only: a maintainer script cannot mount,
//     leave the root, make a disk's device node or reach the host's
//     processes. If sluice itself dies, the holder of the namespaces is
//     killed with it (PR_SET_PDEATHSIG) and takes the environment along;
//     only its directory stays, for `sluice env prune`.
//   - [SSH] runs commands on an existing host with golang.org/x/crypto/ssh,
//     for sites that test on real machines (Fedora or RHEL hosts for RPMs).
//
// [InstallTest] installs one binary package from a buildset's signed test
// repository into a fresh environment with the distribution's own tool
// (apt-get with signed-by and a pin of 1001; dnf with gpgcheck, repo_gpgcheck
// and priority 1), checks it (dpkg --verify or rpm -V, or the project's
// script), removes it (dpkg --remove; dnf remove) and purges it (apt-get
// purge --autoremove), and reports what was left behind: the paths new
// in the environment's changes since before the install, outside the
// package tools' own directories and logs. A failed maintainer script or
// scriptlet fails its step (rpm only warns of a failed %post, and dnf
// exits 0: the install test reads their output).
//
// What the RPM side proves, and what it does not: the base carries Debian's
// rpm and dnf, and its rpmdb holds one generated package,
// sluice-base-provides, that provides what the base holds (the sonames and
// symbol versions of its shared libraries, as rpm's own elfdeps reads them,
// and the paths of its programs). So an RPM's automatic dependencies on
// libraries and interpreters resolve honestly against files that exist, its
// scriptlets run under a real /bin/sh, and rpm -V checks its files. It does
// not prove that the package installs on Fedora or RHEL: dependencies on
// their package names (Requires: glibc, systemd) do not resolve, and their
// library versions differ. A site with Fedora or RHEL machines tests there
// with the [SSH] back-end.
//
// The environments are offline by default: a fresh network namespace
// holds only a loopback interface, so apt and dnf install from the test
// repository and from what the base already holds, and a dependency
// outside both fails the install with the tool's own message (the fix:
// add it to the base's package list). Tests are thus repeatable and never
// depend on the network once the base is prepared. Where that is too
// strict, [Proxy] (InstallOptions.Mirror) opens one door: an HTTP proxy
// listening on the environment's own loopback, in its namespace, that
// fetches GET and HEAD of the allowed hosts only (the base's Debian
// mirror) from the host's network; apt is set to use it. A base keeps
// the APT lists of its mirror from the time it was prepared, for this: a
// base older than the mirror's last point release may name files the
// mirror no longer has, so bases are pruned and prepared again (env
// prune) rather than kept for ever.
package systest
