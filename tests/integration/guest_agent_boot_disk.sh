#!/bin/bash
# A site image that boots itself (catalog boot=disk): spank-vm-image
# --make-disk --bootable puts the host's kernel, its Debian initramfs, the
# agent's modules and extlinux into a small ext4 image whose bootloader
# passes init=/sbin/spank-vm-agent. spank-vm-provision boots the disk (no
# kernel, initrd or command line in the domain) and hands the agent its
# configuration in QEMU's fw_cfg. In the guest the command line is the
# image's, the image's files are at /, PID 1 is the image's agent, the job's
# shares (one with a hostile name) are mounted at their paths, jobs run as
# the job user and never as root (no allow_root); the image stays unchanged
# and the overlay is the user's.
source "$(dirname "$0")/guest_agent_lib.sh"

IMAGES=$(mktemp -d /tmp/svmdev-boot-disk.XXXXXX)
chmod 0755 "$IMAGES" # QEMU runs as the test user and opens the image
ODD_SHARE=""
cleanup() {
	guest_cleanup
	rm -rf "$IMAGES"
	if [ -n "$ODD_SHARE" ]; then
		rm -rf "$ODD_SHARE"
	fi
}
trap cleanup EXIT

release=$(image_release)
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
marker="boot disk $$ $(date +%s%N)"
# Boot through the Debian initramfs under TCG takes longer than the
# default guest's.
BOOT_DISK_READY_TIMEOUT=${BOOT_DISK_READY_TIMEOUT:-120}

# The image: busybox, the agent, a marker, the kernel of the default image.
mkdir -p "$IMAGES/content"
printf '%s\n' "$marker" >"$IMAGES/content/boot-disk-marker"
out=$("$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --make-disk "$IMAGES/bootable.raw" --bootable \
	--kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" --add "$IMAGES/content")
echo "$out"
assert_contains "$out" "boots $release with extlinux" "what --make-disk --bootable prints"
conf=$(debugfs -R 'cat /boot/extlinux/extlinux.conf' "$IMAGES/bootable.raw" 2>/dev/null)
assert_contains "$conf" "APPEND root=/dev/vda init=/sbin/spank-vm-agent console=ttyS0 quiet" \
	"the image's extlinux.conf"
debugfs -R "stat /lib/modules/$release/modules.dep" "$IMAGES/bootable.raw" 2>&1 |
	grep -q '^Inode:' || fail "the image has no modules.dep for $release"

printf 'disk=bootable.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=disk\n' >"$IMAGES/bootdisk.image"
before=$(sha256sum <"$IMAGES/bootable.raw")

# A second share whose name percent-encoding, fw_cfg and XML all have to
# carry: blanks, a comma (QEMU's option separator), '%', '&' and quotes.
ODD_SHARE=$(user_dir "svmdev-boot-disk odd,dir%41&'\"")
printf 'odd share\n' >"$ODD_SHARE/file"
chown "$TEST_USER:$TEST_USER" "$ODD_SHARE/file"

GUEST_NAME="svmdev-agent-${TEST_NAME//_/-}"
GUEST_SHARE=$(user_dir svmdev-agent-share)
GUEST_DIR=$(user_dir svmdev-agent-guest)
GUEST_SOCK="$GUEST_DIR/agent.sock"
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null 2>&1 || true
start_ns=$(date +%s%N)
"$SPANK_VM_PROVISION" start --cores 0-1 --mem 1G --hypervisor qemu --name "$GUEST_NAME" \
	--owner "$owner" --dir "$GUEST_DIR" --image bootdisk --image-dir "$IMAGES" \
	--guest-share "$GUEST_SHARE" --guest-share "$ODD_SHARE" \
	"${GUEST_PROVISION_EXTRA[@]}" >/dev/null

# The domain boots the disk: no host kernel, the words in fw_cfg.
xml=$(virsh -c "$LIBVIRT_URI" dumpxml "$GUEST_NAME")
assert_contains "$xml" "<boot dev='hd'/>" "the domain's boot device"
[[ "$xml" != *"<kernel>"* && "$xml" != *"<cmdline>"* ]] || fail "the domain has a kernel: $xml"
assert_contains "$xml" "<entry name='opt/org.spank_vm/config'>spank_vm.share=share0:" \
	"the fw_cfg entry"
[[ "$xml" != *spank_vm.root* ]] || fail "spank_vm.root in the domain of a boot=disk image"

wait_until 30 "the agent socket $GUEST_SOCK" test -S "$GUEST_SOCK"
# shellcheck disable=SC2034 # read by ready_field
GUEST_READY=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --ready --timeout "$BOOT_DISK_READY_TIMEOUT") ||
	fail "no READY from the boot=disk image; console: $(tail -20 "$GUEST_DIR/console.log" 2>/dev/null)"
ready_s=$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
echo "boot=disk image to READY: ${ready_s}s"
assert_eq "$release" "$(ready_field kernel)" "READY's kernel release (the image's kernel)"

# Booted by the image's bootloader, its kernel's root, its agent as PID 1.
cmdline=$(guest_run -- cat /proc/cmdline)
assert_contains "$cmdline" "init=/sbin/spank-vm-agent" "the guest's command line"
assert_contains "$cmdline" "BOOT_IMAGE=/boot/vmlinuz-$release" "the guest's command line"
[[ "$cmdline" != *spank_vm.* ]] || fail "spank_vm words on the command line: $cmdline"
assert_eq "$marker" "$(guest_run -- cat /boot-disk-marker)" "the image's marker at /"
# /proc/1/exe is root's to read; argv[0] is the init= the kernel ran.
assert_eq "/sbin/spank-vm-agent" "$(guest_run -- sh -c 'tr "\0" "\n" </proc/1/cmdline | head -1')" \
	"PID 1's program"
assert_eq "$(sha256sum <"$SPANK_VM_AGENT" | cut -d' ' -f1)" \
	"$(guest_run -- sha256sum /sbin/spank-vm-agent | cut -d' ' -f1)" "the image's agent"
assert_eq "-rwxr-xr-x 0 0" "$(guest_run -- ls -ln /sbin/spank-vm-agent | awk '{ print $1, $3, $4 }')" \
	"the agent in the image"
root_mount=$(guest_run -- awk '$2 == "/" { print $1, $3, substr($4, 1, 2) }' /proc/mounts)
assert_eq "/dev/vda ext4 rw" "$root_mount" "the root's device, type and mode"
grep -aq "spank_vm-agent: configuration from fw_cfg opt/org.spank_vm/config" \
	"$GUEST_DIR/console.log" || fail "the console does not say the configuration came from fw_cfg"
grep -aq "spank_vm-agent: root: the kernel's (mounted before the agent started)" \
	"$GUEST_DIR/console.log" ||
	fail "the agent did not keep the kernel's root"

# The shares from fw_cfg, mounted at their paths.
mounts=$(guest_run -- cat /proc/mounts)
grep -q "^share0 $GUEST_SHARE 9p rw,.*nosuid,nodev" <<<"$mounts" ||
	fail "the job's share is not mounted: $mounts"
assert_eq "odd share" "$(guest_run -- cat "$ODD_SHARE/file")" "a file in the oddly named share"
guest_run -- sh -c 'echo from-guest >"$HOME/written"' || fail "cannot write to the share"
assert_eq "from-guest" "$(cat "$GUEST_SHARE/written")" "the guest's write, on the host"

# The job user, not root (the catalog does not allow it).
assert_user_not_root

# Stop: the image unchanged, the overlay the user's and backed by it.
overlay="$GUEST_DIR/disk.qcow2"
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 60
domain_gone "$GUEST_NAME" || fail "$GUEST_NAME still exists after stop"
assert_eq "$before" "$(sha256sum <"$IMAGES/bootable.raw")" "the site image after the guest"
assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$overlay")" "overlay owner and mode"
assert_contains "$(qemu-img info -U "$overlay")" "backing file: $IMAGES/bootable.raw" "overlay backing"
pass "READY after ${ready_s}s"
