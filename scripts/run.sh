#!/usr/bin/env bash
# make run: the main job on the embedded default. For now: a signing key,
# sample packages, and signed APT and RPM repositories published from them
# and verified, with how to point apt and dnf at them.
set -euo pipefail
: "${RUNDIR:?}" "${SLUICE:?}"
key=$RUNDIR/key
mkdir -p "$RUNDIR"
if [ ! -f "$key/signing-key.asc" ]; then
  "$SLUICE" key generate --name "sluice demo" --email demo@sluice.invalid --algo ed25519 --out "$key"
fi
go run ./internal/cmd/samples "$RUNDIR/samples"
"$SLUICE" repo publish --format deb --out "$RUNDIR/repo/deb" --codename sluice-demo --key "$key/signing-key.asc" "$RUNDIR/samples/deb"
"$SLUICE" repo publish --format rpm --out "$RUNDIR/repo/rpm" --key "$key/signing-key.asc" "$RUNDIR/samples/rpm"
"$SLUICE" repo verify --keyring "$key/signing-key.pub.asc" "$RUNDIR/repo/deb"
"$SLUICE" repo verify --keyring "$key/signing-key.pub.asc" "$RUNDIR/repo/rpm"
cat <<TXT

Published and verified. To use the repositories on this machine:

apt: as root,
  echo "deb [signed-by=$RUNDIR/repo/deb/signing-key.pub.asc] file:$RUNDIR/repo/deb sluice-demo main" > /etc/apt/sources.list.d/sluice-demo.list
  apt-get update && apt-get install sluice-hello

dnf: put this in /etc/yum.repos.d/sluice-demo.repo, then dnf install sluice-hello
  [sluice-demo]
  name=sluice demo
  baseurl=file://$RUNDIR/repo/rpm
  gpgcheck=1
  repo_gpgcheck=1
  gpgkey=file://$RUNDIR/repo/rpm/signing-key.pub.asc
TXT
