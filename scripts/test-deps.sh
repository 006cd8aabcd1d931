#!/usr/bin/env bash
# Installs the Debian packages that `make test` and `make bench` use, when
# they are missing. Idempotent, and quiet when everything is present.
set -euo pipefail

need=(
  apt-utils      # apt-ftparchive: parity test and benchmark
  createrepo-c   # createrepo_c: parity test and benchmark
  rpm            # rpmkeys, rpmbuild, rpm2archive
  dnf            # reads the published RPM repository
  dpkg-dev       # dpkg-buildpackage
  debhelper      # dh, for the sample source packages
  build-essential
  gpgv           # apt's signature check
  postgresql     # the store's tests run against PostgreSQL too (a throwaway cluster)
  xz-utils
  lintian        # the lint stage
  rpmlint
  git            # the merger's corpus is checked against git merge; make run commits changes
  mmdebstrap     # prepares the base systems of test environments
  debootstrap    # the benchmark's reference for a fresh base system
  iproute2       # ip netns / veth for multi-node system tests
  openssh-server # sshd on loopback: the ssh back-end of test environments
  rsync          # mirror targets: rsync --daemon on loopback
  gearman-job-server # gearmand, for distributed stage execution
  gearman-tools  # the gearman command-line client (Zuul v2-style jobs to a worker)
  subunit        # subunit-1to2, tap2subunit, subunit2junitxml: streams from the real tools for the report parsers
  python3-junitxml # what subunit2junitxml needs
)

missing=()
for pkg in "${need[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
