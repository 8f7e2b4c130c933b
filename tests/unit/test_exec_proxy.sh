#!/bin/bash
# spank-vm-exec through spank-vm-mux and the fake agent, end to end: what a
# task sees (exit status, signals, stdio, argv, env, cwd) and what happens when
# a peer misbehaves or disappears. Waits are on files and processes, bounded.
set -euo pipefail

EXEC="$1"
MUX="$2"
AGENT="$3"
STATUS="$4"
TEST_UID=1001 # svmtest

WORK="$(mktemp -d /tmp/svm-exec-test.XXXXXX)"
chmod 0711 "$WORK"
PIDS=()
FAILED=0

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	FAILED=1
}

pass() {
	echo "ok ($SECONDS s): $*"
}

# wait_for CONDITION-COMMAND... : polls for at most 10 s.
wait_for() {
	local i
	for ((i = 0; i < 200; i++)); do
		if "$@"; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

gone() {
	! kill -0 "$1" 2>/dev/null
}

# start_guest NAME [mux options...]: a fake agent (with AGENT_EXTRA's options)
# and a mux on $WORK/NAME.
AGENT_EXTRA=()
start_guest() {
	local name="$1"
	shift
	local dir="$WORK/$name"
	mkdir -p "$dir"
	chmod 0711 "$dir"
	"$AGENT" --listen "$dir/agent.sock" --ready-file "$dir/agent.ready" "${AGENT_EXTRA[@]}" \
		>"$dir/agent.out" 2>&1 &
	PIDS+=("$!")
	echo "$!" >"$dir/agent.pid"
	wait_for test -e "$dir/agent.ready"
	"$MUX" --agent-socket "$dir/agent.sock" --listen "$dir/mux.sock" --log "$dir/mux.log" \
		--pid-file "$dir/mux.pid" --ready-timeout 10 "$@"
	PIDS+=("$(cat "$dir/mux.pid")")
}

run() {
	"$EXEC" --socket "$WORK/main/mux.sock" --wait-timeout 5 -- "$@"
}

expect_eq() {
	if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected '$3', got '$2'"; fi
}

start_guest main --heartbeat 0.5 --heartbeat-timeout 3

# ---- Exit status --------------------------------------------------------------
for code in 0 1 42 255; do
	rc=0
	run sh -c "exit $code" || rc=$?
	expect_eq "exit code $code" "$rc" "$code"
done
expect_eq "SIGSEGV re-raised" "$("$STATUS" "$EXEC" --socket "$WORK/main/mux.sock" -- sh -c 'kill -SEGV $$')" "signaled 11"
expect_eq "SIGKILL re-raised" "$("$STATUS" "$EXEC" --socket "$WORK/main/mux.sock" -- sh -c 'kill -KILL $$')" "signaled 9"

rc=0
run /nonexistent/program 2>"$WORK/nx.err" || rc=$?
expect_eq "a program the guest cannot exec: 126" "$rc" 126
grep -q '^spank_vm: exec failed: ' "$WORK/nx.err" && pass "exec failure message" ||
	fail "exec failure message: $(cat "$WORK/nx.err")"

# ---- Signals reach the program --------------------------------------------------
signal_test() {
	local sig="$1" code="$2"
	rm -f "$WORK/trap.ready"
	# shellcheck disable=SC2016 # expanded by the guest's shell
	"$EXEC" --socket "$WORK/main/mux.sock" -- \
		sh -c 'trap "echo got-$1; exit $2" "$1"; : > "$3"; while :; do sleep 0.05; done' \
		sh "$sig" "$code" "$WORK/trap.ready" >"$WORK/trap.out" &
	local proxy=$!
	wait_for test -e "$WORK/trap.ready" || fail "$sig: the program did not start"
	kill -s "$sig" "$proxy"
	rc=0
	wait "$proxy" || rc=$?
	expect_eq "SIG$sig reaches the program" "$(cat "$WORK/trap.out"):$rc" "got-$sig:$code"
}
signal_test TERM 7
signal_test USR1 9
signal_test INT 3
signal_test HUP 4
# SIGTSTP is forwarded; the proxy itself does not stop (or it would never exit).
signal_test TSTP 5

# ---- Stdio, byte-exact ---------------------------------------------------------
head -c 64M /dev/urandom >"$WORK/blob"
head -c 3M /dev/urandom >"$WORK/blob2"
start=$SECONDS
run sh -c 'cat "$1" >&2 & cat "$2"; wait' sh "$WORK/blob2" "$WORK/blob" \
	>"$WORK/out" 2>"$WORK/err"
expect_eq "64 MiB stdout byte-exact" "$(sha256sum <"$WORK/out")" "$(sha256sum <"$WORK/blob")"
expect_eq "stderr separate and byte-exact" "$(sha256sum <"$WORK/err")" "$(sha256sum <"$WORK/blob2")"
echo "  (64 MiB out + 3 MiB err in $((SECONDS - start)) s)"
expect_eq "64 MiB stdin with EOF" "$(run sha256sum <"$WORK/blob")" "$(sha256sum <"$WORK/blob")"
expect_eq "no stdin: /dev/null" "$(run wc -c </dev/null)" "0"
expect_eq "closed stdin" "$(run wc -c <&-)" "0"

# ---- argv, env, cwd, umask ------------------------------------------------------
args=("a b" "'single'" '"double"' $'two\nlines' "" $'\xff\xfe bytes' '$HOME *')
# shellcheck disable=SC2016
dump='for a in "$@"; do printf "%s\0" "$a"; done'
sh -c "$dump" sh "${args[@]}" >"$WORK/argv.direct"
run sh -c "$dump" sh "${args[@]}" >"$WORK/argv.proxy"
cmp -s "$WORK/argv.direct" "$WORK/argv.proxy" && pass "argv byte-exact" || fail "argv differs"

env -i PATH="$PATH" A='x=y=z' B=$'line1\nline2' C= env -0 | sort -z >"$WORK/env.direct"
env -i PATH="$PATH" A='x=y=z' B=$'line1\nline2' C= "$EXEC" --socket "$WORK/main/mux.sock" \
	-- env -0 | sort -z >"$WORK/env.proxy"
cmp -s "$WORK/env.direct" "$WORK/env.proxy" && pass "environment exact" || fail "environment differs"

mkdir -p "$WORK/a dir"
expect_eq "cwd" "$(cd "$WORK/a dir" && run pwd)" "$WORK/a dir"
expect_eq "umask" "$(umask 027 && run sh -c umask)" "0027"

# ---- The extra stream (PMI_FD) ---------------------------------------------------
# shellcheck disable=SC2016
"$EXEC" --socket "$WORK/main/mux.sock" --extra-fd 5 -- sh -c 'echo pmi-out >&5' \
	5> >(cat >"$WORK/extra.out")
wait_for grep -q pmi-out "$WORK/extra.out" && pass "extra fd: guest to host" ||
	fail "extra fd: guest to host"
printf 'cmd=init\n' >"$WORK/extra.in"
expect_eq "extra fd: host to guest" \
	"$("$EXEC" --socket "$WORK/main/mux.sock" --extra-fd 5 -- sh -c 'head -n1 <&5' 5<"$WORK/extra.in")" \
	"cmd=init"

# ---- The batch step: the script travels on the session --------------------------------
# Task mode as slurmstepd starts a batch step on 22.05: argv[0] replaced, the
# script (here in a directory the "guest" could read too) shipped on the
# extra stream and run from a private copy with its arguments.
printf '#!/bin/sh\necho "script $# [$1] [$2]"; case "$0" in */slurm_script.*) echo copied;; esac\n' \
	>"$WORK/batch.sh"
chmod +x "$WORK/batch.sh"
expect_eq "batch script shipped over the session" \
	"$(SPANK_VM_TASK=1 SPANK_VM_SHIP_SCRIPT=1 SPANK_VM_ARGV0="$WORK/batch.sh" \
		SPANK_VM_SOCKET="$WORK/main/mux.sock" "$EXEC" one 'two words' </dev/null)" \
	"$(printf 'script 2 [one] [two words]\ncopied')"
rc=0
SPANK_VM_TASK=1 SPANK_VM_SHIP_SCRIPT=1 SPANK_VM_ARGV0="$WORK/no-such-script" \
	SPANK_VM_SOCKET="$WORK/main/mux.sock" "$EXEC" </dev/null 2>"$WORK/batch.err" || rc=$?
expect_eq "an unreadable batch script: 64 and why" \
	"$rc $(cat "$WORK/batch.err")" \
	"64 spank_vm: cannot read the batch script $WORK/no-such-script: No such file or directory"

# ---- Many sessions, and a client that stops reading ---------------------------------
for i in $(seq 1 32); do
	"$EXEC" --socket "$WORK/main/mux.sock" -- sh -c 'echo "session $1"; exit "$1"' sh "$i" \
		>"$WORK/many.$i" &
	echo "$!" >"$WORK/many.$i.pid"
done
ok=1
for i in $(seq 1 32); do
	rc=0
	wait "$(cat "$WORK/many.$i.pid")" || rc=$?
	[ "$rc" == "$i" ] && [ "$(cat "$WORK/many.$i")" == "session $i" ] || ok=0
done
[ "$ok" == 1 ] && pass "32 concurrent sessions" || fail "32 concurrent sessions"

mkfifo "$WORK/stuck"
exec 7<>"$WORK/stuck" # held open, never read
# shellcheck disable=SC2016
"$EXEC" --socket "$WORK/main/mux.sock" -- sh -c 'echo $$ > "$1"; exec cat /dev/zero' \
	sh "$WORK/stuck.pid" >"$WORK/stuck" &
stuck_proxy=$!
wait_for test -s "$WORK/stuck.pid"
start=$SECONDS
expect_eq "a stalled reader does not stall others" \
	"$(head -c 16M /dev/zero | run sha256sum)" "$(head -c 16M /dev/zero | sha256sum)"
[ $((SECONDS - start)) -lt 10 ] || fail "the other session took $((SECONDS - start)) s"
# The proxy's loss is the task's death: the guest program must not outlive it.
kill -KILL "$stuck_proxy"
wait_for gone "$(cat "$WORK/stuck.pid")" && pass "SIGKILLed proxy: program killed" ||
	fail "the program outlived its proxy"
exec 7<&-

# ---- Who may connect -----------------------------------------------------------------
chmod 0666 "$WORK/main/mux.sock"
rc=0
setpriv --reuid "$TEST_UID" --regid "$TEST_UID" --clear-groups \
	"$EXEC" --socket "$WORK/main/mux.sock" -- true 2>"$WORK/peer.err" || rc=$?
expect_eq "another uid is refused (77)" "$rc" 77
grep -q '^spank_vm: .*identity refused' "$WORK/peer.err" && pass "refusal message" ||
	fail "refusal message: $(cat "$WORK/peer.err")"

# A mux started by root for the test user runs as that user and refuses root.
mkdir -p "$WORK/user"
chmod 0777 "$WORK/user"
"$AGENT" --listen "$WORK/user/agent.sock" --ready-file "$WORK/user/agent.ready" \
	>/dev/null 2>&1 &
PIDS+=("$!")
wait_for test -e "$WORK/user/agent.ready"
chmod 0666 "$WORK/user/agent.sock"
"$MUX" --uid "$TEST_UID" --gid "$TEST_UID" --agent-socket "$WORK/user/agent.sock" \
	--listen "$WORK/user/mux.sock" --pid-file "$WORK/user/mux.pid" --ready-timeout 10
PIDS+=("$(cat "$WORK/user/mux.pid")")
expect_eq "the mux dropped to the job user" "$(stat -c %u "/proc/$(cat "$WORK/user/mux.pid")")" "$TEST_UID"
expect_eq "its socket: job user, 0600" "$(stat -c %u:%a "$WORK/user/mux.sock")" "$TEST_UID:600"
chmod 0666 "$WORK/user/mux.sock"
rc=0
"$EXEC" --socket "$WORK/user/mux.sock" -- true 2>/dev/null || rc=$?
expect_eq "root is refused by the user's mux" "$rc" 77
expect_eq "the job user is served" "$(cd / && setpriv --reuid "$TEST_UID" --regid "$TEST_UID" \
	--clear-groups "$EXEC" --socket "$WORK/user/mux.sock" -- id -u)" "$TEST_UID"

# ---- Readiness, and guests that fail ----------------------------------------------------
rc=0
"$EXEC" --socket "$WORK/nowhere.sock" --wait-timeout 0.3 -- true 2>"$WORK/nowhere.err" || rc=$?
expect_eq "no guest socket: 69" "$rc" 69
grep -q '^spank_vm: the job.s guest is not reachable' "$WORK/nowhere.err" && pass "unreachable message" ||
	fail "unreachable message: $(cat "$WORK/nowhere.err")"

mkdir -p "$WORK/noready"
"$AGENT" --listen "$WORK/noready/agent.sock" --no-ready --ready-file "$WORK/noready/agent.ready" \
	>/dev/null 2>&1 &
PIDS+=("$!")
wait_for test -e "$WORK/noready/agent.ready"
rc=0
"$MUX" --foreground --agent-socket "$WORK/noready/agent.sock" --listen "$WORK/noready/mux.sock" \
	--ready-timeout 0.5 --ready-fd 3 3>"$WORK/noready/line" 2>/dev/null || rc=$?
expect_eq "a guest that never gets ready: mux exits 1" "$rc" 1
grep -q '^error: .*READY' "$WORK/noready/line" && pass "ready fd says why" ||
	fail "ready fd: $(cat "$WORK/noready/line")"
[ ! -e "$WORK/noready/mux.sock" ] && pass "no socket without READY" || fail "socket without READY"

start_guest dying --heartbeat 0.3 --heartbeat-timeout 1.5
# shellcheck disable=SC2016
"$EXEC" --socket "$WORK/dying/mux.sock" -- sh -c ': > "$1"; exec sleep 30' sh "$WORK/dying.started" \
	2>"$WORK/dying.err" &
dying_proxy=$!
wait_for test -e "$WORK/dying.started"
dying_mux="$(cat "$WORK/dying/mux.pid")"
kill -KILL "$(cat "$WORK/dying/agent.pid")"
start=$SECONDS
rc=0
wait "$dying_proxy" || rc=$?
expect_eq "agent killed mid-session: proxy exits 76" "$rc" 76
[ $((SECONDS - start)) -le 5 ] || fail "the error took $((SECONDS - start)) s"
grep -q '^spank_vm: ' "$WORK/dying.err" && pass "agent loss message: $(cat "$WORK/dying.err")" ||
	fail "agent loss message: $(cat "$WORK/dying.err")"
wait_for gone "$dying_mux" && pass "the mux exits with its guest" ||
	fail "the mux outlived its guest"

start_guest hung --heartbeat 0.3 --heartbeat-timeout 1.5
# shellcheck disable=SC2016
"$EXEC" --socket "$WORK/hung/mux.sock" -- sh -c ': > "$1"; exec sleep 30' sh "$WORK/hung.started" \
	2>"$WORK/hung.err" &
hung_proxy=$!
wait_for test -e "$WORK/hung.started"
kill -STOP "$(cat "$WORK/hung/agent.pid")"
start=$SECONDS
rc=0
wait "$hung_proxy" || rc=$?
kill -KILL "$(cat "$WORK/hung/agent.pid")"
expect_eq "agent hung: heartbeat fails the session (76)" "$rc" 76
[ $((SECONDS - start)) -le 5 ] || fail "the heartbeat took $((SECONDS - start)) s"
grep -q 'HEARTBEAT' "$WORK/hung.err" && pass "heartbeat message: $(cat "$WORK/hung.err")" ||
	fail "heartbeat message: $(cat "$WORK/hung.err")"

# A guest too busy to answer HEARTBEATs (MPI ranks spinning on every vCPU)
# lives while its frames come; only silence past the timeout fails it.
AGENT_EXTRA=(--no-heartbeat)
start_guest busy --heartbeat 0.3 --heartbeat-timeout 1.5
AGENT_EXTRA=()
start=$SECONDS
rc=0
# shellcheck disable=SC2016 # expanded by the guest's shell
"$EXEC" --socket "$WORK/busy/mux.sock" -- \
	sh -c 'i=0; while [ $i -lt 15 ]; do echo $i; i=$((i + 1)); sleep 0.2; done; exec sleep 30' \
	>"$WORK/busy.out" 2>"$WORK/busy.err" || rc=$?
expect_eq "unanswered HEARTBEATs, output flowing for 3 s (twice the timeout): all of it arrives" \
	"$(wc -l <"$WORK/busy.out")" 15
expect_eq "then silence past the timeout fails the session (76)" "$rc" 76
[ $((SECONDS - start)) -le 8 ] || fail "the silence took $((SECONDS - start)) s to notice"
grep -q 'HEARTBEAT' "$WORK/busy.err" && pass "silence message: $(cat "$WORK/busy.err")" ||
	fail "silence message: $(cat "$WORK/busy.err")"

start_guest off
# shellcheck disable=SC2016
"$EXEC" --socket "$WORK/off/mux.sock" -- sh -c ': > "$1"; exec sleep 30' sh "$WORK/off.started" \
	2>"$WORK/off.err" &
off_proxy=$!
wait_for test -e "$WORK/off.started"
kill -TERM "$(cat "$WORK/off/mux.pid")"
wait_for gone "$(cat "$WORK/off/agent.pid")" && pass "SIGTERM to the mux powers the guest off" ||
	fail "POWEROFF did not reach the agent"
rc=0
wait "$off_proxy" || rc=$?
expect_eq "a session at poweroff fails (76)" "$rc" 76

if [ "$FAILED" != 0 ]; then
	echo "test_exec_proxy: FAILED" >&2
	exit 1
fi
echo "test_exec_proxy: all passed"
