#!/bin/bash
# A site image boots with the host's kernel and the default initramfs, its
# disk as the root: spank-vm-image makes a small ext4 image (no download)
# and installs the agent into it; the catalog entry (boot=host-kernel) makes
# spank-vm-provision attach a per-job qcow2 overlay and tell the agent
# spank_vm.root=/dev/vda. In the guest the image's files are at /, the
# host's are not, writes land in the overlay and never in the image, jobs
# run as the job user (as root only where the catalog says allow_root=yes),
# and a root device that does not exist powers the guest off with the
# reason on its console.
source "$(dirname "$0")/guest_agent_lib.sh"

IMAGES=$(mktemp -d /tmp/svmdev-site-images.XXXXXX)
chmod 0755 "$IMAGES" # QEMU runs as the test user and opens the image
cleanup() {
	guest_cleanup
	rm -rf "$IMAGES"
}
trap cleanup EXIT

release=$(image_release)
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
marker="site image $$ $(date +%s%N)"

# The default initramfs in image_dir: a catalog image boots it by default.
cp "$GUEST_IMAGE_DIR/initrd-$release.img" "$IMAGES/"
chmod 0644 "$IMAGES/initrd-$release.img"

# The image: busybox, the agent, a marker, made from a staged directory.
mkdir -p "$IMAGES/content/var/tmp"
chmod 1777 "$IMAGES/content/var/tmp"
printf '%s\n' "$marker" >"$IMAGES/content/site-image-marker"
out=$("$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --make-disk "$IMAGES/site.raw" --size 64M \
	--add "$IMAGES/content")
assert_contains "$out" "$IMAGES/site.raw 67108864 bytes" "what --make-disk prints"
echo "$out"

# --install-agent: into an image without the agent, and over an old one.
agent_stat() { # DISK: mode and owner of /sbin/spank-vm-agent in DISK
	debugfs -R 'stat /sbin/spank-vm-agent' "$1" 2>/dev/null |
		awk '/^Inode:/ { m = $6 } /^User:/ { u = $2 ":" $4 } END { print m, u }'
}
debugfs -w -R 'rm /sbin/spank-vm-agent' "$IMAGES/site.raw" >/dev/null 2>&1
assert_eq " " "$(agent_stat "$IMAGES/site.raw")" "the agent after removing it"
"$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --install-agent "$IMAGES/site.raw" >/dev/null
"$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --install-agent "$IMAGES/site.raw" >/dev/null
assert_eq "0755 0:0" "$(agent_stat "$IMAGES/site.raw")" "the agent installed by --install-agent"
assert_eq "644" "$(stat -c %a "$IMAGES/site.raw")" "the image's mode after --install-agent"
qemu-img convert -O qcow2 "$IMAGES/site.raw" "$IMAGES/copy.qcow2"
"$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --install-agent "$IMAGES/copy.qcow2" >/dev/null
assert_contains "$(qemu-img info "$IMAGES/copy.qcow2")" "file format: qcow2" "a qcow2 image after --install-agent"
rm -f "$IMAGES/copy.qcow2"

entry() { # NAME [KEY=VALUE]...
	local name=$1
	shift
	printf 'disk=site.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' >"$IMAGES/$name.image"
	printf '%s\n' "$@" >>"$IMAGES/$name.image"
}
entry site agent=yes
entry siteroot allow_root=yes
entry sitebad root=/dev/vdb
before=$(sha256sum <"$IMAGES/site.raw")

# site_start IMAGE: starts it as the lib's guest, with the lib's share
# (--guest-share, as the plugin gives a job its directories).
site_start() {
	GUEST_NAME="svmdev-agent-${TEST_NAME//_/-}"
	[ -z "$GUEST_DIR" ] || rm -rf "$GUEST_DIR"
	[ -n "$GUEST_SHARE" ] || GUEST_SHARE=$(user_dir svmdev-agent-share)
	GUEST_DIR=$(user_dir svmdev-agent-guest)
	GUEST_SOCK="$GUEST_DIR/agent.sock"
	"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null 2>&1 || true
	"$SPANK_VM_PROVISION" start --cores 0-1 --mem 1G --hypervisor qemu --name "$GUEST_NAME" \
		--owner "$owner" --kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" \
		--cmdline "${GUEST_KERNEL_ARGS:-console=ttyS0 quiet}" --dir "$GUEST_DIR" \
		--image "$1" --image-dir "$IMAGES" --guest-share "$GUEST_SHARE" \
		"${GUEST_PROVISION_EXTRA[@]}" >/dev/null
}

site_boot() { # IMAGE: site_start, then READY (bounded); GUEST_READY_S as guest_boot
	local start_ns
	start_ns=$(date +%s%N)
	site_start "$1"
	wait_until 30 "the agent socket $GUEST_SOCK" test -S "$GUEST_SOCK"
	GUEST_READY=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --ready --timeout "$GUEST_READY_TIMEOUT") ||
		fail "no READY from image $1; console: $(tail -5 "$GUEST_DIR/console.log" 2>/dev/null)"
	GUEST_READY_S=$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
}

site_boot site
ready_s=$GUEST_READY_S
echo "site image boot to READY: ${ready_s}s"

# The overlay: the job user's, backed by the image, which stays untouched.
overlay="$GUEST_DIR/disk.qcow2"
assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$overlay")" "overlay owner and mode"
assert_contains "$(qemu-img info -U "$overlay")" "backing file: $IMAGES/site.raw" "overlay backing"

# The root is the image's disk, read-write, with the image's files.
assert_eq "$marker" "$(guest_run -- cat /site-image-marker)" "the image's marker at /"
assert_contains "$(guest_run -- cat /proc/cmdline)" "spank_vm.root=/dev/vda" "the guest's command line"
root_mount=$(guest_run -- awk '$2 == "/" { print $3, substr($4, 1, 2) }' /proc/mounts)
assert_eq "ext4 rw" "$root_mount" "the root's type and mode"
assert_eq "-rwxr-xr-x 0 0" "$(guest_run -- ls -ln /sbin/spank-vm-agent | awk '{ print $1, $3, $4 }')" \
	"the agent in the image"
grep -q "spank_vm-agent: root: /dev/vda, read-write" "$GUEST_DIR/console.log" ||
	fail "the console does not name the root device"

# Nothing of the host's root: no hostroot share, none of its files.
guest_run -- test -e /etc/debian_version && fail "the host's /etc/debian_version is visible"
guest_run -- test -e "$SPANK_VM_PROVISION" && fail "the host's $SPANK_VM_PROVISION is visible"
mounts=$(guest_run -- cat /proc/mounts)
[[ "$mounts" != *hostroot* ]] || fail "the host's root is mounted: $mounts"
grep -q "^share0 $GUEST_SHARE 9p rw,.*nosuid,nodev" <<<"$mounts" ||
	fail "the job's share is not mounted: $mounts"

# The job user, not root (allow_root is not set for this image).
assert_user_not_root

# A write to the root goes to the overlay: on the disk in the guest, in the
# overlay once the guest is gone, never in the image.
written="written in the guest $$"
guest_run -- sh -c "echo '$written' >/var/tmp/from-guest && sync" || fail "cannot write to the root"
guest_run -- sh -c 'echo x >/from-guest' 2>/dev/null && fail "the job user wrote to the image's /"
"$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 30 --poweroff
wait_until 30 "domain $GUEST_NAME to go away after POWEROFF" domain_gone "$GUEST_NAME"
assert_eq "$before" "$(sha256sum <"$IMAGES/site.raw")" "the site image after the guest"
qemu-img convert -O raw "$overlay" "$IMAGES/after.raw"
e2fsck -fy "$IMAGES/after.raw" >/dev/null 2>&1 || true # replays the journal
assert_eq "$written" "$(debugfs -R 'cat /var/tmp/from-guest' "$IMAGES/after.raw" 2>/dev/null)" \
	"the guest's write, read from the overlay"
debugfs -R 'stat /var/tmp/from-guest' "$IMAGES/site.raw" 2>&1 | grep -q "not found" ||
	fail "the guest's write is in the image"
rm -f "$IMAGES/after.raw"

# allow_root=yes in the catalog: spank_vm.allow_root=1, and root may run.
site_boot siteroot
assert_contains "$(guest_run -- cat /proc/cmdline)" "spank_vm.allow_root=1" "siteroot's command line"
assert_eq 0 "$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid 0 --gid 0 -- id -u)" \
	"uid 0 in an allow_root=yes image"
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 60
domain_gone "$GUEST_NAME" || fail "$GUEST_NAME still exists after stop"

# A root device the guest does not have: the reason on the console, then off.
site_start sitebad
wait_until 90 "domain $GUEST_NAME to power off without its root device" domain_gone "$GUEST_NAME"
console=$(grep -a 'spank_vm-agent:' "$GUEST_DIR/console.log" || true)
assert_contains "$console" "spank_vm-agent: fatal: root device /dev/vdb did not appear within 10 s" \
	"the console without the root device"
assert_contains "$console" "powering off" "the console without the root device"
assert_eq "$before" "$(sha256sum <"$IMAGES/site.raw")" "the site image after three guests"
pass "READY after ${ready_s}s"
