#!/bin/bash
# A command run in a real guest through the whole host side (spank-vm-run:
# spank-vm-provision, spank-vm-mux as the user, spank-vm-exec) behaves as the
# command would on the host: exit codes and terminating signals, signals sent
# to the proxy, 64 MiB byte-exact on stdout, stderr and stdin, hostile argv
# and environment, cwd and identity, 32 concurrent sessions, what the share
# lets through; a guest whose kernel panics or that is destroyed fails every
# open session with a clear error within seconds; faulty frames sent to the
# mux get errors and harm nobody.
source "$(dirname "$0")/guest_agent_lib.sh"

SPANK_VM_RUN=${SPANK_VM_RUN:-$BUILD_DIR/helpers/spank-vm-run}
UID_N=$(id -u "$TEST_USER")
RUN_DIR=""
WORK=""
KERNEL_ARGS="console=ttyS0 quiet unknown_nmi_panic"

cleanup() {
	[ -z "$RUN_DIR" ] || "$SPANK_VM_RUN" down --dir "$RUN_DIR" >/dev/null 2>&1 || true
	[ -z "$WORK" ] || rm -rf "$WORK"
}
trap cleanup EXIT

up() { # boots a guest sharing WORK (the cwd); RUN_DIR is its state
	local release
	release=$(image_release)
	RUN_DIR=$(mktemp -u /tmp/svmdev-run.XXXXXX)
	("$SPANK_VM_RUN" up --dir "$RUN_DIR" --user "$TEST_USER" --cores 0-1 --mem 1G \
		--hypervisor qemu --kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" \
		--initrd "$GUEST_IMAGE_DIR/initrd-$release.img" --cmdline "$KERNEL_ARGS" \
		--ready-timeout "$GUEST_READY_TIMEOUT" "${GUEST_PROVISION_EXTRA[@]}") ||
		fail "the guest did not come up"
}

down() {
	"$SPANK_VM_RUN" down --dir "$RUN_DIR"
	RUN_DIR=""
}

# vm [ARGS...]: runs ARGS in the guest, in WORK, as the test user. In the
# background, vm's pid would be a subshell's: `$VM ARGS... &` is the proxy's.
vm() {
	"$SPANK_VM_RUN" exec --dir "$RUN_DIR" -- "$@"
}

status_of() { # ARGS...: the status vm ARGS exits with
	local rc=0
	vm "$@" >/dev/null 2>&1 </dev/null || rc=$?
	echo "$rc"
}

WORK=$(user_dir svmdev-exec-work)
cd "$WORK"
up
VM=("$SPANK_VM_RUN" exec --dir "$RUN_DIR" --)
mux_sock="$RUN_DIR/guest/mux.sock"
[ -S "$mux_sock" ] || fail "no mux socket after up"
assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$mux_sock")" "the mux socket's owner and mode"
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
guest_boot_id=$(vm cat /proc/sys/kernel/random/boot_id)
[ -n "$guest_boot_id" ] && [ "$guest_boot_id" != "$host_boot_id" ] ||
	fail "the command did not run in the guest (boot id '$guest_boot_id')"

# Exit codes and terminating signals.
for code in 0 1 42 255; do
	assert_eq "$code" "$(status_of sh -c "exit $code")" "status of 'exit $code'"
done
assert_eq $((128 + 11)) "$(status_of sh -c 'kill -SEGV $$')" "status of a program killed by SIGSEGV"
assert_eq $((128 + 9)) "$(status_of sh -c 'kill -KILL $$')" "status of a program killed by SIGKILL"

# Signals sent to the proxy reach the program: SIGUSR1 is trapped (the
# program exits 7), SIGTERM is not (the proxy dies of it, as the program).
signal_case() { # SIGNAL EXPECTED_STATUS
	local ready="$WORK/ready.$1" out="$WORK/out.$1" pid rc=0
	rm -f "$ready"
	# shellcheck disable=SC2016 # expanded in the guest
	"${VM[@]}" sh -c 'trap "echo got-$1; exit 7" USR1; touch "$0"; while :; do sleep 0.1; done' \
		"$ready" "$1" >"$out" 2>&1 &
	pid=$!
	wait_until 60 "the guest program to start" test -e "$ready"
	kill -s "$1" "$pid"
	wait "$pid" || rc=$?
	assert_eq "$2" "$rc" "status after SIG$1 to the proxy"
	# The signal goes to the program's process group, as a terminal's would:
	# the shell may also report its `sleep` killed by it.
	[ "$1" != USR1 ] || assert_eq "got-USR1" "$(tail -1 "$out")" "what the program printed on SIGUSR1"
}
signal_case USR1 7
signal_case TERM $((128 + 15))

# 64 MiB of random bytes on stdout and 16 MiB of other bytes on stderr at
# the same time; the guest writes the digests of what it sent to the share.
# shellcheck disable=SC2016 # expanded in the guest
vm bash -c 'head -c 67108864 /dev/urandom >/tmp/o && sha256sum </tmp/o >out.sum &&
	head -c 16777216 /dev/urandom >/tmp/e && sha256sum </tmp/e >err.sum &&
	{ cat /tmp/o & cat /tmp/e >&2; wait; }' \
	>"$WORK/out.host" 2>"$WORK/err.host" || fail "the 64 MiB output command failed"
wait_until 30 "the guest's digests" test -s "$WORK/err.sum" -a -s "$WORK/out.sum"
assert_eq "$(cut -d' ' -f1 "$WORK/out.sum")" "$(sha256sum <"$WORK/out.host" | cut -d' ' -f1)" \
	"sha256 of 64 MiB of stdout"
assert_eq "$(cut -d' ' -f1 "$WORK/err.sum")" "$(sha256sum <"$WORK/err.host" | cut -d' ' -f1)" \
	"sha256 of 16 MiB of stderr"
assert_eq 67108864 "$(stat -c %s "$WORK/out.host")" "bytes of stdout"
rm -f "$WORK"/*.host

# 64 MiB into stdin, with EOF.
head -c 67108864 /dev/urandom >"$WORK/in.bin"
in_sum=$(sha256sum <"$WORK/in.bin" | cut -d' ' -f1)
assert_eq "$in_sum  -" "$(vm sha256sum <"$WORK/in.bin")" "sha256 of 64 MiB through stdin"
rm -f "$WORK/in.bin"

# argv: spaces, quotes, newlines, empty strings, bytes that are not UTF-8.
args=('a b' "it's" '"q"' $'two\nlines' '' $'\xff\xfe\x80' '--' '*')
vm printf '[%s]\n' "${args[@]}" >"$WORK/argv.guest"
printf '[%s]\n' "${args[@]}" >"$WORK/argv.host"
cmp -s "$WORK/argv.host" "$WORK/argv.guest" || fail "argv differs: $(od -c "$WORK/argv.guest" | head)"

# Environment values with '=' and newlines; the working directory; identity.
odd=$'a=b\nc=d'
assert_eq "$odd" "$(ODD="$odd" vm printenv ODD)" "an environment value with = and a newline"
assert_eq "$WORK" "$(vm pwd)" "the working directory"
assert_eq "$UID_N $(id -g "$TEST_USER") $(id -G "$TEST_USER")" "$(vm sh -c 'echo $(id -u) $(id -g) $(id -G)')" \
	"id -u, -g, -G"

# The share: what the user may read, not what only root may; a file written
# in the job directory is the user's on the host.
assert_eq "$(sha256sum </etc/passwd)" "$(vm sha256sum </dev/null /etc/passwd | sed 's| /etc/passwd| -|')" \
	"/etc/passwd read in the guest"
shadow_rc=$(status_of cat /etc/shadow)
[ "$shadow_rc" -ne 0 ] || fail "the guest read /etc/shadow"
vm sh -c 'echo written-in-guest >made-in-guest'
assert_eq "written-in-guest" "$(cat "$WORK/made-in-guest")" "a file written in the guest"
assert_eq "$TEST_USER" "$(stat -c %U "$WORK/made-in-guest")" "its owner on the host"

# 32 concurrent sessions: each waits (bounded) until all 32 have started,
# which ends only if they run at the same time.
mkdir "$WORK/barrier"
chown "$TEST_USER" "$WORK/barrier"
pids=()
# shellcheck disable=SC2016 # expanded in the guest
barrier='touch "$0/$1"; i=0; while [ "$(ls "$0" | wc -l)" -lt 32 ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.3; done; echo "session $1"'
for i in $(seq 1 32); do
	"${VM[@]}" sh -c "$barrier" "$WORK/barrier" "$i" >"$WORK/session.$i" 2>&1 </dev/null &
	pids+=($!)
done
for i in $(seq 1 32); do
	rc=0
	wait "${pids[$((i - 1))]}" || rc=$?
	assert_eq "0 session $i" "$rc $(cat "$WORK/session.$i")" "concurrent session $i"
done

# Faulty frames to the mux: an ERROR each, the mux keeps serving.
for fault in "flags:malformed" "oversize:too large" "version:version"; do
	set +e
	bad=$(setpriv --reuid "$UID_N" --regid "$(id -g "$TEST_USER")" --init-groups \
		"$AGENT_CLIENT" --socket "$mux_sock" --timeout 30 --bad-frame "${fault%%:*}" 2>&1)
	set -e
	assert_contains "$bad" "ERROR ${fault#*:} on session 0" "the mux's answer to a ${fault%%:*} fault"
done
assert_eq 0 "$(status_of true)" "a session after the faulty frames"

# A kernel panic (an NMI with unknown_nmi_panic): the guest stops answering,
# the mux's heartbeat notices; both open sessions end with a clear error.
lost_case() { # WHAT COMMAND...
	local what=$1 start pid1 pid2 rc1=0 rc2=0
	shift
	rm -f "$WORK"/lost.*
	"${VM[@]}" sh -c 'touch "$0"; exec sleep 1000' "$WORK/lost.1" >/dev/null 2>"$WORK/lost.err1" </dev/null &
	pid1=$!
	"${VM[@]}" sh -c 'touch "$0"; exec sleep 1000' "$WORK/lost.2" >/dev/null 2>"$WORK/lost.err2" </dev/null &
	pid2=$!
	wait_until 60 "two sessions to run" test -e "$WORK/lost.1" -a -e "$WORK/lost.2"
	start=$SECONDS
	"$@"
	wait "$pid1" || rc1=$?
	wait "$pid2" || rc2=$?
	((SECONDS - start <= 15)) || fail "$what: the sessions took $((SECONDS - start)) s to end"
	assert_eq "76 76" "$rc1 $rc2" "$what: the proxies' statuses"
	assert_contains "$(cat "$WORK/lost.err1")" "spank_vm: " "$what: the error line"
	echo "$what: sessions ended in $((SECONDS - start)) s: $(head -1 "$WORK/lost.err1")"
}
lost_case "kernel panic" virsh -c "$LIBVIRT_URI" inject-nmi "$(cat "$RUN_DIR/name")"
wait_until 30 "the panic on the console" grep -q "Kernel panic" "$RUN_DIR/guest/console.log"
down

# The guest destroyed under running sessions (QEMU gone, the channel closes).
up
VM=("$SPANK_VM_RUN" exec --dir "$RUN_DIR" --)
lost_case "guest destroyed" virsh -c "$LIBVIRT_URI" destroy "$(cat "$RUN_DIR/name")"
down
pass
