#!/bin/bash
# `cpack -G DEB` produces a .deb that holds the plugin, the man page and the
# example plugstack.conf, and that dpkg would install on this machine.
set -euo pipefail
BUILD="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$BUILD" && cpack -G DEB -B "$out" >/dev/null)
deb=$(find "$out" -maxdepth 1 -name 'spank-vm_*.deb' | head -1)
[ -n "$deb" ] || { echo "FAIL: no .deb produced" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
for f in /usr/lib/x86_64-linux-gnu/slurm-wlm/spank_vm.so /usr/share/man/man8/spank_vm.8 \
	/usr/share/doc/spank_vm/plugstack.conf.example; do
	grep -q "\.$f\$" <<<"$contents" || { echo "FAIL: $f missing from $deb" >&2; exit 1; }
done
dpkg --dry-run -i "$deb" >/dev/null
echo "PASS: $(basename "$deb") ($(stat -c %s "$deb") bytes) installs"
