#!/bin/bash
# A guest saved and restored by spank-vm-provision (save, start --checkpoint),
# no Slurm: a site-image guest (no 9p share: QEMU cannot migrate one) counts
# seconds in a process of its own. `save --keep-running` writes a checkpoint
# and the guest runs on; `save` stops it; `start --checkpoint` on the other
# core restores it: the same kernel (boot id), the count going on from where
# it was, the vCPU pinned to the new core. A session streaming through a
# checkpoint (PAUSE, save, RESUME) loses no byte, with the agent client and with
# spank-vm-mux (SIGUSR1, save, SIGUSR2). The checkpoint's files are the
# user's; a truncated or altered one, or one that does not fit the new
# allocation, is refused with the reason and leaves no guest and no state
# file; a guest with a host share cannot be made checkpointable.
source "$(dirname "$0")/guest_agent_lib.sh"

IMAGES=$(mktemp -d /tmp/svmdev-ckpt-images.XXXXXX)
STAGE=$(mktemp -d /tmp/svmdev-ckpt-stage.XXXXXX) # root's, 0700
CKPT=$(user_dir svmdev-ckpt)
cleanup() {
	guest_cleanup
	rm -rf "$IMAGES" "$STAGE" "$CKPT"
}
trap cleanup EXIT
chmod 0755 "$IMAGES"

JOB=4242
release=$(image_release)
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
mkdir -p "$IMAGES/content/var/tmp"
chmod 1777 "$IMAGES/content/var/tmp"
"$SPANK_VM_IMAGE" --agent "$SPANK_VM_AGENT" --make-disk "$IMAGES/tiny.raw" --size 64M \
	--add "$IMAGES/content" >/dev/null
cp "$GUEST_IMAGE_DIR/initrd-$release.img" "$IMAGES/"
chmod 0644 "$IMAGES/initrd-$release.img" "$IMAGES/tiny.raw"
printf 'disk=tiny.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' >"$IMAGES/tiny.image"

GUEST_NAME="svmdev-agent-${TEST_NAME//_/-}"
GUEST_DIR=$(user_dir svmdev-ckpt-guest)
GUEST_SOCK="$GUEST_DIR/agent.sock"
# Runs a command as the test user in the guest, at /.
grun() {
	"$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid "$(id -u "$TEST_USER")" \
		--gid "$(id -g "$TEST_USER")" --cwd / --env PATH=/usr/bin:/bin:/usr/sbin:/sbin "$@"
}

# provision_start CORES MEM [OPTIONS...]: the guest of job $JOB on CORES.
provision_start() {
	local cores=$1 mem=$2
	shift 2
	"$SPANK_VM_PROVISION" start --cores "$cores" --mem "$mem" --hypervisor qemu \
		--name "$GUEST_NAME" --owner "$owner" --dir "$GUEST_DIR" \
		--kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" --cmdline "console=ttyS0 quiet" \
		--image tiny --image-dir "$IMAGES" --checkpoint-stage "$STAGE" --job "$JOB" \
		--node svm1 "${GUEST_PROVISION_EXTRA[@]}" "$@"
}
save() { # [--keep-running]
	"$SPANK_VM_PROVISION" save --name "$GUEST_NAME" --owner "$owner" --dir "$GUEST_DIR" \
		--checkpoint-stage "$STAGE" --checkpoint "$CKPT" "$@"
}
# The counter renames each value into place: a read never sees it half-written.
count() { grun -- cat /var/tmp/count 2>/dev/null || echo 0; }
count_above() { [ "$(count)" -gt "$1" ]; }
pins() { virsh -c "$LIBVIRT_URI" vcpupin "$GUEST_NAME" | awk '$1 == "0" { print $2 }'; }

provision_start 0 1G >/dev/null
wait_until 30 "the agent socket" test -S "$GUEST_SOCK"
"$AGENT_CLIENT" --socket "$GUEST_SOCK" --ready --timeout "$GUEST_READY_TIMEOUT" >/dev/null ||
	fail "no READY; console: $(tail -5 "$GUEST_DIR/console.log")"
assert_eq 0 "$(pins)" "the vCPU's pin at start"
boot_id=$(grun -- cat /proc/sys/kernel/random/boot_id)
# The counter runs in a session of its own, so it outlives the agent's
# session that started it (whose process group goes when it ends): the
# starter waits for the first count, written after setsid.
grun -- sh -c 'setsid sh -c "i=0; while :; do i=\$((i+1)); echo \$i >/var/tmp/count.new; mv /var/tmp/count.new /var/tmp/count; sleep 1; done" </dev/null >/dev/null 2>&1 &
	while [ ! -s /var/tmp/count ]; do sleep 0.1; done'
wait_until 60 "the guest's count to pass 2" count_above 2

# A checkpoint of a running guest, which runs on.
out=$(save --keep-running) || fail "save --keep-running failed"
echo "$out"
assert_contains "$out" "saved $GUEST_NAME to $CKPT/spank_vm-job$JOB" "what save prints"
ckpt="$CKPT/spank_vm-job$JOB"
assert_checkpoint_of "$CKPT" "$JOB"
[ ! -e "$STAGE/memory" ] || fail "the state file stayed in the stage"
wait_until 60 "the guest to answer after its checkpoint" test -S "$GUEST_SOCK"
before=$(count)
wait_until 60 "the count to go on after the checkpoint" count_above "$before"
assert_eq "$boot_id" "$(grun -- cat /proc/sys/kernel/random/boot_id)" "boot id after save --keep-running"

# A session streaming through a checkpoint: the client PAUSEs the channel
# (the agent answers PAUSED after all it had queued), hangs up, the guest is
# saved and resumed, the client connects again and RESUMEs the session: its
# stdout arrives whole, in order, and its exit status follows.
errs="$IMAGES/stream.err"
rc=0
streamed=$(grun --timeout 180 --pause-after 100000 \
	--pause-run "$SPANK_VM_PROVISION save --name $GUEST_NAME --owner $owner --dir $GUEST_DIR --checkpoint-stage $STAGE --checkpoint $CKPT --keep-running >/dev/null" \
	-- sh -c 'seq 1 200000; exit 3' 2>"$errs" | sha256sum) || rc=$?
assert_eq "$(seq 1 200000 | sha256sum)" "$streamed" "stdout of a session across PAUSE, save, RESUME"
assert_eq 3 "$rc" "the exit status of the session across the checkpoint"
assert_contains "$(cat "$errs")" "resumed on boot id $boot_id" "the client's reconnect"
assert_eq 3 "$(grun --timeout 180 --pause-after 1 --pause-run true -- sh -c 'echo x; exit 3' \
	>/dev/null 2>&1; echo $?)" "a session paused and resumed at once (no save)"

# The same through spank-vm-mux, as a job's tasks see it: SIGUSR1 makes the
# mux pause the channel and hang up (mux.sock.paused appears), the guest is
# saved and runs on, SIGUSR2 makes the mux reconnect and RESUME. The proxy's
# session, halfway through its output and waiting for a line of stdin,
# goes on: all its output, byte-exact, and exit 3.
uid=$(id -u "$TEST_USER")
gid=$(id -g "$TEST_USER")
MUX_SOCK="$GUEST_DIR/mux.sock"
helpers=$(dirname "$SPANK_VM_PROVISION")
"$helpers/spank-vm-mux" --uid "$uid" --gid "$gid" --agent-socket "$GUEST_SOCK" \
	--listen "$MUX_SOCK" --pid-file "$GUEST_DIR/mux.pid" --log "$GUEST_DIR/mux.log" \
	--ready-timeout 60 --heartbeat-timeout 60 || fail "the mux did not start"
mux_pid=$(cat "$GUEST_DIR/mux.pid")
mkfifo "$IMAGES/stdin"
exec 7<>"$IMAGES/stdin"
# as_task ARGS...: spank-vm-exec ARGS as the test user, from / (the guest's
# working directory is the proxy's; the site image has no /work).
as_task() {
	cd / && exec setpriv --reuid "$uid" --regid "$gid" --init-groups \
		"$helpers/spank-vm-exec" --socket "$MUX_SOCK" -- "$@"
}
# shellcheck disable=SC2016 # expanded in the guest
(as_task sh -c 'seq 1 100000; read -r line; seq 100001 200000; exit 3') \
	<&7 >"$IMAGES/mux.out" 2>"$IMAGES/mux.err" &
proxy=$!
lines_at_least() { [ "$(wc -l <"$IMAGES/mux.out")" -ge "$1" ]; }
wait_until 120 "the session's first 100000 lines ($(cat "$IMAGES/mux.err"))" \
	lines_at_least 100000
kill -USR1 "$mux_pid"
wait_until 60 "the mux to detach ($(tail -2 "$GUEST_DIR/mux.log"))" test -e "$MUX_SOCK.paused"
save --keep-running >/dev/null || fail "save --keep-running under a paused mux failed"
kill -USR2 "$mux_pid"
wait_until 60 "the mux to resume ($(tail -2 "$GUEST_DIR/mux.log"))" test ! -e "$MUX_SOCK.paused"
echo go >&7
rc=0
wait "$proxy" || rc=$?
exec 7>&-
assert_eq 3 "$rc" "the exit status of a proxy's session across pause, save and resume"
assert_eq "$(seq 1 200000 | sha256sum)" "$(sha256sum <"$IMAGES/mux.out")" \
	"the proxy's stdout across pause, save and resume"
assert_contains "$(cat "$GUEST_DIR/mux.log")" "resumed: the same guest (boot id $boot_id)" \
	"the mux's log"
assert_eq "$boot_id" "$(as_task cat /proc/sys/kernel/random/boot_id)" \
	"a new session through the resumed mux"
# SIGKILL: SIGTERM would power the guest off; the agent ends the mux's sessions.
kill -KILL "$mux_pid"

# Saved and stopped, then restored on the other core.
save >/dev/null || fail "save failed"
wait_until 30 "the saved guest's domain to go" domain_gone "$GUEST_NAME"
cp -a "$ckpt" "$IMAGES/good"

out=$(provision_start 1 1G --checkpoint "$CKPT") || fail "restore failed: $out"
assert_contains "$out" "restored $GUEST_NAME from the checkpoint saved on svm1" "what start prints"
assert_eq 1 "$(pins)" "the restored vCPU's pin"
assert_eq "$boot_id" "$(grun -- cat /proc/sys/kernel/random/boot_id)" "boot id after restore"
now=$(count)
[ "$now" -ge "${before}" ] || fail "the count restarted: $now after restore, $before before the save"
wait_until 60 "the count to go on after restore" count_above "$now"
[ ! -e "$STAGE/memory" ] || fail "the state file stayed in the stage after restore"
echo "count before the save: $before, after restore: $now"
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null

# refused CHECKPOINT-DIR FRAGMENT [START ARGS...]: the restore fails with
# FRAGMENT in its message and leaves no guest and no state file.
refused() {
	local dir=$1 fragment=$2 err rc=0
	shift 2
	rm -rf "$ckpt"
	cp -a "$dir" "$ckpt"
	err=$(provision_start "$@" --checkpoint "$CKPT" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -ne 0 ] || fail "a restore that should fail ($fragment) started"
	assert_contains "$err" "$fragment" "the refusal's message"
	domain_gone "$GUEST_NAME" || fail "a refused restore left domain $GUEST_NAME"
	[ ! -e "$STAGE/memory" ] || fail "a refused restore left the state file"
	echo "refused: $(tail -1 <<<"$err")"
}
cp -a "$IMAGES/good" "$IMAGES/truncated"
truncate -s 4096 "$IMAGES/truncated/memory"
refused "$IMAGES/truncated" "checkpoint file memory has 4096 bytes" 1 1G
cp -a "$IMAGES/good" "$IMAGES/altered"
printf 'X' | dd of="$IMAGES/altered/disk.qcow2" bs=1 seek=100 conv=notrunc status=none
refused "$IMAGES/altered" "checkpoint file disk.qcow2 does not match its checksum" 1 1G
refused "$IMAGES/good" "this allocation leaves the guest 256 MiB" 1 512M
sed -i 's/^image_digest=.*/image_digest=0000000000000000000000000000000000000000000000000000000000000000/' \
	"$IMAGES/good/manifest"
refused "$IMAGES/good" "image tiny has changed since the checkpoint was saved" 1 1G

# No checkpoint: a fresh boot; a host share: not checkpointable.
rm -rf "$ckpt"
out=$(provision_start 1 1G --checkpoint "$CKPT") || fail "a start without a checkpoint failed"
assert_contains "$out" "started $GUEST_NAME" "start when the directory holds no checkpoint"
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null
rc=0
err=$(provision_start 1 1G --guest-share "$CKPT" 2>&1) || rc=$?
assert_eq 1 "$rc" "start of a checkpointable guest with a share"
assert_contains "$err" "a guest with host shares (9p) cannot be checkpointed" "the refusal"
pass "saved, kept running, restored on core 1 with count $now >= $before; damaged checkpoints refused"
