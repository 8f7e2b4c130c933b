# shellcheck shell=bash
# What every test script here says and waits with: one line per failure or
# pass, named after the test, and bounded waits on a condition (never a fixed
# sleep). Sourced by lib.sh (Slurm tests) and guest_agent_lib.sh (guests
# without Slurm); TEST_NAME is the script's name.

fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

pass() {
	echo "PASS: $TEST_NAME${1:+: $1}"
}

assert_eq() { # expected actual what
	[ "$1" == "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_contains() { # haystack needle what
	[[ "$1" == *"$2"* ]] || fail "$3: '$2' not found in: $1"
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: polls CMD until it succeeds.
wait_until() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
		sleep 0.1
	done
}

# CHECKPOINT_DIR JOBID: a checkpoint of JOBID (DIR/spank_vm-jobID) whose
# files are the test user's alone.
assert_checkpoint_of() {
	local f ckpt="$1/spank_vm-job$2"
	for f in manifest memory disk.qcow2; do
		assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$ckpt/$f")" "owner and mode of $ckpt/$f"
	done
	assert_contains "$(cat "$ckpt/manifest")" "job=$2" "the manifest of $ckpt"
}
