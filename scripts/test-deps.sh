#!/usr/bin/env bash
# Installs the Debian packages that `make test` and `make bench` use, when
# they are missing. Idempotent, and quiet when everything is present.
set -euo pipefail

# package:command that shows it is installed
need=(
  apt-utils:apt-ftparchive
  createrepo-c:createrepo_c
  rpm:rpmkeys
  dnf:dnf
  dpkg-dev:dpkg-scanpackages
  gpgv:gpgv
  xz-utils:xz
)

missing=()
for n in "${need[@]}"; do
  pkg=${n%%:*} cmd=${n#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
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
