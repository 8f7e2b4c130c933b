#!/bin/bash
# The default guest boots to READY with spank-vm-agent as PID 1: a kernel of
# its own (another boot id), the host's / readable through 9p with the job
# user's rights only (QEMU runs as that user), a writable overlay whose writes
# stay in the guest, the job's share written through to the host as the job
# user, and POWEROFF ends the domain. A malformed spank_vm.share powers the
# guest off with the reason on its console.
source "$(dirname "$0")/guest_agent_lib.sh"

guest_boot
echo "boot to READY: ${GUEST_READY_S}s"

host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
guest_boot_id=$(guest_run -- cat /proc/sys/kernel/random/boot_id)
assert_eq "$(ready_field boot_id)" "$guest_boot_id" "READY's boot id"
[ "$guest_boot_id" != "$host_boot_id" ] || fail "the guest has the host's boot id"
assert_eq "$(image_release)" "$(ready_field kernel)" "READY's kernel release"
assert_eq 2 "$(ready_field vcpus)" "READY's vCPUs (--cores 0-1)"
assert_eq 2 "$(guest_run -- nproc)" "CPUs online in the guest"
mem=$(ready_field memory_kib)
((mem > 512 * 1024 && mem <= 768 * 1024)) || fail "READY's memory: ${mem} KiB for a 768 MiB guest"

assert_eq "$(id -u "$TEST_USER")" "$(guest_run -- id -u)" "uid in the guest"
assert_eq "$(id -g "$TEST_USER")" "$(guest_run -- id -g)" "gid in the guest"
assert_eq "1" "$(guest_run -- sh -c 'cat /proc/1/cmdline | tr "\0" "\n" | wc -l')" "PID 1's argv"

# The host's root, read-only below, with the job user's rights.
assert_eq "$(cat /etc/hostname)" "$(guest_run -- cat /etc/hostname)" "/etc/hostname in the guest"
set +e
shadow=$(guest_run -- cat /etc/shadow 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "the guest read the host's /etc/shadow"
assert_contains "$shadow" "Permission denied" "reading /etc/shadow"

# Writes to the root land in the guest's overlay, never on the host.
marker="svmdev-agent-overlay-$$"
guest_run -- sh -c "echo in-guest >/var/tmp/$marker && cat /var/tmp/$marker" >/dev/null ||
	fail "cannot write to the guest's overlay"
[ ! -e "/var/tmp/$marker" ] || fail "a write to the guest's root reached the host"

# The share: written in the guest, on the host, owned by the job user.
guest_run -- sh -c 'echo from-the-guest >result.txt' || fail "cannot write into the share"
assert_eq "from-the-guest" "$(cat "$GUEST_SHARE/result.txt")" "the share's file on the host"
assert_eq "$TEST_USER:$TEST_USER" "$(stat -c %U:%G "$GUEST_SHARE/result.txt")" "its owner"
mounts=$(guest_run -- cat /proc/mounts)
grep -q "^work $GUEST_SHARE 9p rw,.*nosuid,nodev" <<<"$mounts" ||
	fail "the share is not mounted rw,nosuid,nodev: $mounts"
assert_contains "$mounts" "overlay / overlay" "the root overlay"

# POWEROFF: the guest powers off and the domain (on_poweroff=destroy) is gone.
"$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 30 --poweroff
wait_until 30 "domain $GUEST_NAME to go away after POWEROFF" domain_gone "$GUEST_NAME"
grep -q "spank_vm-agent: power off requested" "$GUEST_DIR/console.log" ||
	fail "the console does not show the agent's power off"
ready_s=$GUEST_READY_S

# A share path the agent refuses ("..") on the kernel command line: the guest
# says why on its console and powers off instead of leaving the host waiting.
guest_start "spank_vm.share=work:/var/../etc"
wait_until 60 "domain $GUEST_NAME to power off after a bad spank_vm.share" domain_gone "$GUEST_NAME"
console=$(grep -a 'spank_vm-agent:' "$GUEST_DIR/console.log" || true)
assert_contains "$console" "spank_vm-agent: fatal: share path '/var/../etc' has an empty, . or .. component; powering off" \
	"the console after a bad share"
pass "READY after ${ready_s}s"
