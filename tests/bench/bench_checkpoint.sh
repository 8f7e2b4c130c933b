#!/bin/bash
# Checkpoint costs, side by side in one run (prints figures, asserts only
# that each step worked): for site-image TCG guests of 256 MiB, 1 GiB and
# 4 GiB of RAM, half of it filled by a process in the guest,
#   - save: spank-vm-provision save (libvirt's save into the stage, then the
#     copy as the user into the checkpoint directory with its SHA-256), and
#     the checkpoint's size;
#   - restore: spank-vm-provision start --checkpoint (the verified copy in,
#     then libvirt's restore);
#   - the raw write speed of the same directory (dd, fsync) for as many
#     bytes, and the ratio of the checkpoint's write rate to it.
# Needs libvirtd and the default image (ctest fixtures cluster, guest_image).
source "$(dirname "$0")/../integration/guest_agent_lib.sh"

SIZES_MIB=${BENCH_CKPT_SIZES:-256 1024 4096}
RESERVE_MIB=256 # spank-vm-provision's default mem_reserve
IMAGES=$(mktemp -d /tmp/svmdev-bench-ckpt-images.XXXXXX)
STAGE=$(mktemp -d /tmp/svmdev-bench-ckpt-stage.XXXXXX)
CKPT=$(user_dir svmdev-bench-ckpt)
JOB=4343
release=$(image_release)
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
GUEST_NAME=svmdev-bench-ckpt
GUEST_DIR=""

cleanup() {
	guest_cleanup
	rm -rf "$IMAGES" "$STAGE" "$CKPT"
}
trap cleanup EXIT
chmod 0755 "$IMAGES"
mkdir -p "$IMAGES/content/var/tmp"
chmod 1777 "$IMAGES/content/var/tmp"
"$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --make-disk "$IMAGES/tiny.raw" --size 64M \
	--add "$IMAGES/content" >/dev/null
chmod 0644 "$IMAGES/tiny.raw"
printf 'disk=tiny.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' >"$IMAGES/tiny.image"
cp "$GUEST_IMAGE_DIR/initrd-$release.img" "$IMAGES/"
chmod 0644 "$IMAGES/initrd-$release.img"

grun() {
	"$AGENT_CLIENT" --socket "$GUEST_DIR/agent.sock" --timeout 120 --uid "$(id -u "$TEST_USER")" \
		--gid "$(id -g "$TEST_USER")" --cwd / --env PATH=/usr/bin:/bin "$@"
}
provision_start() { # MIB [OPTIONS...]
	local mib=$1
	shift
	"$SPANK_VM_PROVISION" start --cores 0-1 --mem "$((mib + RESERVE_MIB))M" --hypervisor qemu \
		--name "$GUEST_NAME" --owner "$owner" --dir "$GUEST_DIR" \
		--kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" --cmdline "console=ttyS0 quiet" \
		--image tiny --image-dir "$IMAGES" --checkpoint-stage "$STAGE" --job "$JOB" \
		--node bench "${GUEST_PROVISION_EXTRA[@]}" "$@"
}
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

printf '%-9s %10s %8s %8s %9s %10s %10s %7s\n' "guest" "ckpt MB" "save s" "copy s" "restore s" \
	"ckpt MB/s" "raw MB/s" "ratio"
for mib in $SIZES_MIB; do
	GUEST_DIR=$(user_dir svmdev-bench-ckpt-guest)
	provision_start "$mib" >/dev/null
	wait_until 30 "the agent socket" test -S "$GUEST_DIR/agent.sock"
	"$AGENT_CLIENT" --socket "$GUEST_DIR/agent.sock" --ready --timeout 120 >/dev/null ||
		fail "no READY from the $mib MiB guest"
	# Half the RAM held by a process: 1 MiB strings, none of them zero pages
	# (QEMU writes a zero page as a flag, which would flatter the figures).
	fill=$((mib / 2))
	# The starter waits for the fill to finish (awk has left its session by then).
	grun --timeout 600 -- sh -c "setsid awk 'BEGIN { s = \"x\"; for (i = 0; i < 20; i++) s = s s;
		for (i = 0; i < $fill; i++) a[i] = s i; print i > \"/var/tmp/filled\"; close(\"/var/tmp/filled\");
		while (1) system(\"sleep 1000\") }' </dev/null >/dev/null 2>&1 &
		while [ ! -s /var/tmp/filled ]; do sleep 0.2; done"
	out=$("$SPANK_VM_PROVISION" save --name "$GUEST_NAME" --owner "$owner" --dir "$GUEST_DIR" \
		--checkpoint-stage "$STAGE" --checkpoint "$CKPT") || fail "save of the $mib MiB guest"
	save_s=$(sed -n 's/.*save \([0-9.]*\) s.*/\1/p' <<<"$out")
	copy_s=$(sed -n 's/.*copy \([0-9.]*\) s.*/\1/p' <<<"$out")
	bytes=$(du -sb "$CKPT/spank_vm-job$JOB" | awk '{ print $1 }')
	wait_until 30 "the saved guest to go" domain_gone "$GUEST_NAME"
	t0=$(date +%s%N)
	provision_start "$mib" --checkpoint "$CKPT" | grep -q "^restored " || fail "restore of $mib MiB"
	restore_s=$(seconds "$t0" "$(date +%s%N)")
	grun -- test -s /var/tmp/filled || fail "the restored $mib MiB guest lost its process's file"
	"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null
	rm -rf "$GUEST_DIR"
	# The same bytes written by dd into the same directory, synced.
	t0=$(date +%s%N)
	dd if=/dev/zero of="$CKPT/raw" bs=1M count=$(((bytes + 1048575) / 1048576)) conv=fsync status=none
	raw_s=$(seconds "$t0" "$(date +%s%N)")
	rm -f "$CKPT/raw"
	awk -v mib="$mib" -v b="$bytes" -v s="$save_s" -v c="$copy_s" -v r="$restore_s" -v raw="$raw_s" 'BEGIN {
		mb = b / 1e6; rate = mb / (s + c); rawrate = mb / raw
		printf "%-9s %10.0f %8.2f %8.2f %9.2f %10.0f %10.0f %7.2f\n", mib " MiB", mb, s, c, r, rate, rawrate, rate / rawrate }'
	rm -rf "${CKPT:?}/spank_vm-job$JOB"
done
echo "TCG guests (hypervisor=qemu); ratio = checkpoint write rate (save + copy) / raw write rate"
