#!/bin/bash
# spank-vm-image builds the default guest's initramfs in seconds, and builds it
# reproducibly: twice from the same inputs gives the same bytes. The result,
# readable by the test user (QEMU runs as that user), is the image the other
# guest_agent_* tests boot (ctest fixture guest_image).
source "$(dirname "$0")/guest_agent_lib.sh"

again=$(mktemp -d)
trap 'rm -rf "$again"' EXIT
rm -rf "$GUEST_IMAGE_DIR"
start=$SECONDS
out=$("$SPANK_VM_IMAGE" --out "$GUEST_IMAGE_DIR" --agent "$SPANK_VM_AGENT")
((SECONDS - start <= 30)) || fail "building the image took $((SECONDS - start))s"
"$SPANK_VM_IMAGE" --out "$again" --agent "$SPANK_VM_AGENT" >/dev/null
release=$(image_release)
img="$GUEST_IMAGE_DIR/initrd-$release.img"
assert_contains "$out" "$img" "what spank-vm-image prints"
assert_eq "$(sha256sum <"$img")" "$(sha256sum <"$again/initrd-$release.img")" "sha256 of two builds"

listing=$(gzip -dc "$img" | cpio -it --quiet)
for entry in init bin/busybox bin/sh "lib/modules/$release/modules.dep"; do
	grep -qx "$entry" <<<"$listing" || fail "the image has no $entry"
done
for module in virtio_console 9pnet_virtio 9p overlay virtio_pci; do
	grep -q "/$module\.ko" <<<"$listing" || fail "the image lacks module $module"
done
owners=$(gzip -dc "$img" | cpio -itv --quiet | awk '{ print $3 ":" $4 }' | sort -u)
assert_eq "root:root" "$owners" "owners of the entries"
[ -r "$GUEST_IMAGE_DIR/vmlinuz-$release" ] || fail "no kernel link next to the image"

chmod 0755 "$GUEST_IMAGE_DIR"
chmod 0644 "$img"
# QEMU runs as the test user: it must reach the kernel and the image.
runuser -u "$TEST_USER" -- test -r "$img" -a -r "$GUEST_IMAGE_DIR/vmlinuz-$release" ||
	fail "$TEST_USER cannot read $img or its kernel (a parent directory of $GUEST_IMAGE_DIR is closed?)"
pass "$(basename "$img"): $(stat -c %s "$img") bytes, sha256 $(sha256sum <"$img" | cut -c1-16)... twice"
