#!/bin/bash
# A site image (catalog entry + disk in image_dir) boots through a per-job
# qcow2 overlay owned by the job's user; the image itself is never written,
# and an unknown or unsuitable image is refused with the reason.
source "$(dirname "$0")/lib.sh"

provision=$(helper_path spank-vm-provision)
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
# Debian's own initramfs: these tests look at the domain, not at the guest.
initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}
name=spank_vm-test-image
images=$(mktemp -d "$CLUSTER_DIR/tmp/images.XXXXXX")
chmod 0755 "$images"
rm -rf "$(user_home)"/site-image.??????
gdir=$(as_user mktemp -d "$(user_home)/site-image.XXXXXX")
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
extra=()
grep -q 'hard_limit=no' "$PLUGSTACK_CONF" && extra+=(--no-hard-limit)
cleanup() {
	"$provision" stop --name "$name" --timeout 0 >/dev/null 2>&1 || true
	rm -rf "$images"
}
trap 'cleanup; cancel_test_jobs' EXIT

# A small ext4 image made here from a directory, no download.
mkdir "$images/content"
echo "made by $TEST_NAME" >"$images/content/hello"
mke2fs -q -t ext4 -d "$images/content" -L svmtest "$images/small.raw" 16M >/dev/null
chmod 0644 "$images/small.raw"
printf 'disk=small.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' >"$images/small.image"
printf 'disk=small.raw\nformat=raw\nhypervisors=xen\n' >"$images/xenonly.image"
before=$(sha256sum <"$images/small.raw")

start() { # IMAGE
	"$provision" start --cores 0 --mem 512M --reserve 128M --hypervisor qemu --name "$name" \
		--owner "$owner" --kernel "$kernel" --initrd "$initrd" --cmdline console=ttyS0 --dir "$gdir" \
		--image "$1" --image-dir "$images" "${extra[@]}"
}

start small >/dev/null
disk=$(virsh -c "$LIBVIRT_URI" domblklist "$name" | awk '$1 == "vda" { print $2 }')
assert_eq "$gdir/disk.qcow2" "$disk" "the guest's disk"
assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$disk")" "overlay owner and mode"
assert_contains "$(qemu-img info -U "$disk")" "backing file: $images/small.raw" "overlay backing"
"$provision" stop --name "$name" --timeout 0
assert_eq "$before" "$(sha256sum <"$images/small.raw")" "the site image after the guest"

out=$(start nosuch 2>&1) && fail "an unknown image started: $out"
assert_contains "$out" "no image named 'nosuch' in this site's catalog" "unknown image"
out=$(start xenonly 2>&1) && fail "a xen-only image started under qemu: $out"
assert_contains "$out" "image xenonly cannot boot under qemu" "hypervisor mismatch"
out=$(start ../small 2>&1) && fail "a path was taken as an image name: $out"
assert_contains "$out" "is not valid" "image name with a path"
pass
