#!/usr/bin/env bash
# make run, part one: the sample source packages are committed into local
# git repositories, built with `sluice stage build` (dpkg-buildpackage and
# rpmbuild; build records under $RUNDIR/build), published into signed APT
# and RPM repositories, and verified; then it says how to point apt and dnf
# at them. Part two, the gating engine, is scripts/gate-demo.sh.
set -euo pipefail
: "${RUNDIR:?}" "${SLUICE:?}"
key=$RUNDIR/key
mkdir -p "$RUNDIR"
if [ ! -f "$key/signing-key.asc" ]; then
  "$SLUICE" key generate --name "sluice demo" --email demo@sluice.invalid --algo ed25519 --out "$key"
fi

go run ./internal/cmd/samples builder/testdata/src "$RUNDIR/src"
for src in "$RUNDIR"/src/*/; do
  p=$(basename "$src")
  out=$RUNDIR/build/$p
  [ -d "$out" ] && continue   # built by an earlier run
  # Debian's rpmdb does not describe the host: rpmbuild runs with --nodeps,
  # and the BuildRequires the host provides as Debian packages are named.
  "$SLUICE" stage build --project "$p" --url "$src" --ref refs/heads/main \
    --data-dir "$RUNDIR/data" --out "$out.tmp" \
    --rpm-nodeps --rpm-host-provides gcc,make >/dev/null
  mv "$out.tmp" "$out"
  echo "built $p: $(ls "$out"/*/*.deb "$out"/*/*.rpm | xargs -n1 basename | tr '\n' ' ')"
done

"$SLUICE" repo publish --format deb --out "$RUNDIR/repo/deb" --codename sluice-demo --key "$key/signing-key.asc" "$RUNDIR"/build/*/deb
"$SLUICE" repo publish --format rpm --out "$RUNDIR/repo/rpm" --key "$key/signing-key.asc" "$RUNDIR"/build/*/rpm
"$SLUICE" repo verify --keyring "$key/signing-key.pub.asc" "$RUNDIR/repo/deb"
"$SLUICE" repo verify --keyring "$key/signing-key.pub.asc" "$RUNDIR/repo/rpm"
echo
echo "Stage outcomes, as ResultsDB results (sluice results list --data-dir $RUNDIR/data):"
"$SLUICE" results list --data-dir "$RUNDIR/data" --testcase sluice.build
cat <<TXT

Built from git, published and verified. Build records: $RUNDIR/build/*/*/record.json
The same results over the ResultsDB v2.0 API: $SLUICE serve --data-dir $RUNDIR/data,
then http://127.0.0.1:5001/api/v2.0/results

To use the repositories on this machine:

apt: as root,
  echo "deb [signed-by=$RUNDIR/repo/deb/signing-key.pub.asc] file:$RUNDIR/repo/deb sluice-demo main" > /etc/apt/sources.list.d/sluice-demo.list
  apt-get update && apt-get install hello-c hello-sh

dnf: put this in /etc/yum.repos.d/sluice-demo.repo, then dnf install hello-c hello-sh
  [sluice-demo]
  name=sluice demo
  baseurl=file://$RUNDIR/repo/rpm
  gpgcheck=1
  repo_gpgcheck=1
  gpgkey=file://$RUNDIR/repo/rpm/signing-key.pub.asc
TXT
