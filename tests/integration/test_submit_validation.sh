#!/bin/bash
# A bad option value makes sbatch, srun and salloc fail before the job queues,
# with one line that names the option and the accepted values.
source "$(dirname "$0")/lib.sh"

expect_refused() { # EXPECTED_TEXT [VAR=VALUE...] OPTIONS...: runs "$cmd OPTIONS... $program"
	local expected=$1 out rc=0 lines
	shift
	local envs=()
	while [[ ${1:-} == *=* && ${1:-} != -* ]]; do
		envs+=("$1")
		shift
	done
	# shellcheck disable=SC2086 # $cmd and $program are words on purpose
	set -- "${envs[@]}" $cmd "$@" $program
	out=$(as_user env "$@" 2>&1 </dev/null) || rc=$?
	[ "$rc" -ne 0 ] || fail "'$*' succeeded; output: $out"
	assert_contains "$out" "$expected" "'$*'"
	lines=$(grep -c 'spank_vm:' <<<"$out" || true)
	assert_eq 1 "$lines" "spank_vm lines from '$*' (output: $out)"
	assert_not_contains "$out" "Submitted batch job" "'$*'"
	assert_not_contains "$out" "Granted job allocation" "'$*'"
}

first=$(next_job_id)
for cmd in sbatch srun salloc; do
	program=true
	[ "$cmd" != sbatch ] || program=--wrap=true
	expect_refused "--vm-hypervisor: unknown value 'vmware' (accepted: kvm, qemu, xen)" \
		--vm --vm-hypervisor=vmware
	expect_refused "--vm-hugepages: unknown value '3M' (accepted: none, 2M, 1G)" \
		--vm --vm-hugepages=3M
	expect_refused "--vm: image name '../etc' is not valid (accepted: 1 to 64 characters" \
		--vm=../etc
	expect_refused "--vm: image name 'a/b' is not valid" --vm=a/b
	expect_refused "--vm: no image named 'nosuch' in this site's catalog; accepted: host (the default guest)" \
		--vm=nosuch
	expect_refused "--vm-net: unknown value 'bridged' (accepted: none, cluster)" \
		--vm --vm-net=bridged
	expect_refused "--vm-checkpoint: path 'ck' is not absolute" --vm --vm-checkpoint=ck
	expect_refused "--vm-checkpoint: the default guest (--vm=host) shares the host's root over 9p, which QEMU cannot save; accepted: --vm=IMAGE of the site catalog" \
		--vm --vm-checkpoint=/tmp/ck
	expect_refused "--vm-checkpoint-signal: expected USR1 or USR2, got 'HUP'" \
		--vm --vm-checkpoint-signal=HUP
	expect_refused "--vm-checkpoint-signal needs --vm-checkpoint=DIR (where the job's guest is saved)" \
		--vm --vm-checkpoint-signal=USR1
	expect_refused "--vm-checkpoint-interval: expected a time from 10s to 168h (SECONDS, or N with s, m or h), got '5s'" \
		--vm --vm-checkpoint-interval=5s
	expect_refused "--vm-checkpoint-interval needs --vm-checkpoint=DIR" \
		--vm --vm-checkpoint-interval=1h
	expect_refused "--vm-checkpoint-fallback: expected fail or fresh, got 'retry'" \
		--vm --vm-checkpoint-fallback=retry
	expect_refused "--vm-checkpoint-fallback needs --vm-checkpoint=DIR" \
		--vm --vm-checkpoint-fallback=fresh
	expect_refused "--vm-debug needs --vm" --vm-debug
	expect_refused "--vm-net needs --vm" --vm-net=cluster
	expect_refused "--vm-hypervisor: unknown value 'bogus'" \
		SPANK_VM_HYPERVISOR=bogus --vm
	expect_refused "(from the environment variable SPANK_VM_IMAGE)" \
		SPANK_VM_IMAGE=../x
done
# Not one job was created by any of the refused commands.
assert_eq "$((first + 1))" "$(next_job_id)" "next job id after refused submissions"
assert_nodes_healthy
pass
