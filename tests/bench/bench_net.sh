#!/bin/bash
# The job network's cost for MPI, side by side in one run: an Open MPI
# ping-pong between two ranks on the two nodes, in two guests over
# --vm-net=cluster (default transports) vs on the bare host. Prints the
# median one-way latency of 8-byte messages and the bandwidth of 4 MiB
# messages, and the ratios. Here the guests are TCG-emulated, so the ratios
# say what emulation costs, not what KVM would. On the bare host the two
# "nodes" share a kernel, where Open MPI's shared-memory segments of the two
# nodes collide (notes/mpi.md): that side runs with OMPI_MCA_btl=self,tcp.
# -c2: both local "nodes" have the same two host cores, and with -c1 both
# ranks land on the same core, where each waits for the other's time slice
# (4 ms latency, the scheduler tick, measured).
source "$(dirname "$0")/../integration/lib.sh"

trap cancel_test_jobs EXIT
dir=$(user_workdir)
mpicc.openmpi -O2 -o "$dir/pingpong" "$(dirname "$0")/pingpong.c"
chown "$TEST_USER:" "$dir/pingpong"

run() { # LABEL BTL SRUN-ARGS... (BTL: Open MPI's btl list, "" for its default)
	local label=$1 btl=$2 out
	shift 2
	out=$(as_user env ${btl:+OMPI_MCA_btl=$btl} timeout 600 srun --mpi=pmix -K -N2 -n2 -c2 \
		--mem 1G -D "$dir" "$@" "$dir/pingpong") || fail "$label: the ping-pong failed: $out"
	grep '^latency_us=' <<<"$out" || fail "$label: no figures in: $out"
}

bare=$(run "bare host" self,tcp)
vm=$(run "guests" "" --vm --vm-net=cluster)
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
printf 'bench.net: ping-pong rank 0 (svm1) <-> rank 1 (svm2), Open MPI over PMIx, TCG guests\n'
printf '  bare host (btl self,tcp):     latency %8s us  bandwidth %8s MB/s\n' \
	"$(field latency_us "$bare")" "$(field bandwidth_mbs "$bare")"
printf '  guests (--vm-net=cluster):    latency %8s us  bandwidth %8s MB/s\n' \
	"$(field latency_us "$vm")" "$(field bandwidth_mbs "$vm")"
awk -v bl="$(field latency_us "$bare")" -v vl="$(field latency_us "$vm")" \
	-v bb="$(field bandwidth_mbs "$bare")" -v vb="$(field bandwidth_mbs "$vm")" \
	'BEGIN { printf "  ratios guest/bare: latency %.1fx, bandwidth %.3f\n", vl / bl, vb / bb }'
assert_nodes_healthy
pass "figures above"
