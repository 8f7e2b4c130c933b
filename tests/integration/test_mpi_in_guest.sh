#!/bin/bash
# Single-node MPI in the guest: a program built against the host's MPICH,
# `srun --vm --mpi=pmi2 -n 2`: both ranks run in the job's guest and wire up
# through PMI_FD, relayed over each session's extra stream; the world is
# SLURM_NTASKS ranks (MPICH would run singletons silently if PMI failed),
# MPI_Allreduce and a point-to-point ring give the right sums. A rank that
# dies (MPI_Abort, SIGSEGV) ends the job as it would without --vm.
source "$(dirname "$0")/lib.sh"

trap cancel_test_jobs EXIT
dir=$(user_workdir)
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
mpicc.mpich -O2 -o "$dir/mpi_ranks" "$TESTS_DIR/mpi_ranks.c"
chown "$TEST_USER:" "$dir/mpi_ranks"

out=$(as_user srun --vm --mpi=pmi2 -N1 -n2 -c1 --mem 1G -D "$dir" "$dir/mpi_ranks" | sort) ||
	fail "srun --vm --mpi=pmi2 failed: $out"
assert_eq 2 "$(grep -c '^rank=' <<<"$out")" "ranks that reported (output: $out)"
for rank in 0 1; do
	line=$(grep "^rank=$rank " <<<"$out")
	assert_contains "$line" "size=2 sum=3" "rank $rank's world and MPI_Allreduce"
done
assert_contains "$(grep '^rank=0 ' <<<"$out")" "ring=3" "the token around the ring"
ids=$(sed 's/.*boot_id=//' <<<"$out" | sort -u)
assert_eq 1 "$(wc -l <<<"$ids")" "kernels the ranks ran on (output: $out)"
[ "$ids" != "$host_boot_id" ] || fail "the ranks ran on the host kernel"

# A rank that dies ends the job as it would without --vm: MPI_Abort (the PMI
# abort reaches slurmstepd through the relayed PMI_FD) and a rank killed by
# SIGSEGV under --kill-on-bad-exit; the other rank waits in MPI_Recv.
mpicc.mpich -O2 -o "$dir/mpi_abort" "$TESTS_DIR/mpi_abort.c"
chown "$TEST_USER:" "$dir/mpi_abort"
end_of() { # HOW SRUN-ARGS...: "<srun's status> <what srun said of the tasks>"
	local how=$1 rc=0 err
	shift
	err=$(as_user timeout 240 srun --mpi=pmi2 -K -N1 -n2 -c1 --mem 1G -D "$dir" "$@" \
		"$dir/mpi_abort" "$how" 2>&1 >/dev/null) || rc=$?
	echo "$rc $(grep -oE 'task 1: [A-Za-z ]+|exit code [0-9]+' <<<"$err" | sort -u | paste -sd,)"
}
for how in abort segv; do
	bare=$(end_of "$how")
	vm=$(end_of "$how" --vm)
	[ "${bare%% *}" != 124 ] || fail "$how: the bare job did not end within 240 s"
	assert_eq "$bare" "$vm" "srun's status and report for a rank that dies ($how), without and with --vm"
	echo "$how: $vm"
done
wait_until 30 "the jobs' directories to go" runtime_dir_empty
assert_nodes_healthy
pass "2 ranks in guest $ids; a dying rank ends the job as without --vm"
