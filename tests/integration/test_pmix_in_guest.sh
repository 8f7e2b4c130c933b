#!/bin/bash
# Open MPI over PMIx in guests: `srun --vm --mpi=pmix` runs the ranks in the
# job's guests; their PMIx client reaches slurmstepd's PMIx server at the
# loopback address of PMIX_SERVER_URI* through the guest's host call port
# (helpers/exec/forward.c), with the shared-memory data store off in the
# guest. One node, and two nodes over the job network, each with Open MPI's
# default transports: on this host the two slurmd "nodes" share one kernel,
# where Open MPI's shared-memory segments of the two nodes collide
# (notes/mpi.md); in separate guests they cannot.
source "$(dirname "$0")/lib.sh"

trap cancel_test_jobs EXIT
dir=$(user_workdir)
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
mpicc.openmpi -O2 -o "$dir/mpi_ranks" "$TESTS_DIR/mpi_ranks.c"
chown "$TEST_USER:" "$dir/mpi_ranks"

check_ranks() { # OUTPUT NTASKS NGUESTS WHAT
	local out=$1 n=$2 guests=$3 what=$4 sum=$(($2 * ($2 + 1) / 2)) rank ids
	assert_eq "$n" "$(grep -c '^rank=' <<<"$out")" "$what: ranks that reported (output: $out)"
	for ((rank = 0; rank < n; rank++)); do
		assert_contains "$(grep "^rank=$rank " <<<"$out")" "size=$n sum=$sum" \
			"$what: rank $rank's world and MPI_Allreduce"
	done
	assert_contains "$(grep '^rank=0 ' <<<"$out")" "ring=$sum" "$what: the token around the ring"
	ids=$(sed 's/.*boot_id=//' <<<"$out" | sort -u)
	assert_eq "$guests" "$(wc -l <<<"$ids")" "$what: guest kernels of the ranks"
	grep -qx "$host_boot_id" <<<"$ids" && fail "$what: a rank ran on the host kernel"
	return 0
}

out=$(as_user timeout 300 srun --vm --mpi=pmix -K -N1 -n2 -c1 --mem 1G -D "$dir" \
	"$dir/mpi_ranks" | sort) || fail "srun --vm --mpi=pmix -N1 -n2: $out"
check_ranks "$out" 2 1 "one node"

out=$(as_user timeout 300 srun --vm --vm-net=cluster --mpi=pmix -K -N2 -n4 -c1 --mem 1G \
	-D "$dir" "$dir/mpi_ranks" | sort) || fail "srun --vm --vm-net=cluster --mpi=pmix -N2 -n4: $out"
check_ranks "$out" 4 2 "two nodes"

# The control: the same two-node job on the bare host, default transports.
rc=0
as_user timeout 120 srun --mpi=pmix -K -N2 -n4 -c1 --mem 1G -D "$dir" "$dir/mpi_ranks" \
	>"$dir/bare.out" 2>&1 || rc=$?
((rc != 0)) || fail "without --vm the two nodes' shared-memory segments did not collide (notes/mpi.md)"
echo "without --vm: exit $rc, $(grep -c 'Segmentation fault' "$dir/bare.out") segfault lines"

wait_until 30 "the jobs' directories to go" runtime_dir_empty
leftover=$(pgrep -u "$TEST_USER" -f 'spank-vm-hostcall|spank_vm-connect' || true)
[ -z "$leftover" ] || fail "host call processes remain: $leftover"
assert_nodes_healthy
pass "Open MPI over PMIx: 2 ranks in one guest, 4 ranks in two guests"
