#!/bin/bash
# --vm-net=cluster: every guest of a job gets a NIC on the site's bridge
# (svmbr0 here, shared by the two local nodes), the address .(i+1) of the
# job's /24 (from the job id), the node's name as hostname and /etc/hosts
# with every node of the job. A job's guests reach each other across nodes
# (MPICH over PMI2, and plain TCP by name); nothing else reaches them: the
# libvirt nwfilter spank_vm-job drops frames from outside the job's /24
# (proven from the host, which can send from any address), and another job's
# guest cannot connect. After the jobs no tap, bridge port or filter binding
# of theirs remains. Without --vm-net a guest has no NIC at all.
source "$(dirname "$0")/lib.sh"

BRIDGE=svmbr0
host_addrs=()
cleanup() {
	local a
	for a in "${host_addrs[@]}"; do ip addr del "$a" dev "$BRIDGE" 2>/dev/null || true; done
	cancel_test_jobs
}
trap cleanup EXIT

dir=$(user_workdir)
mpicc.mpich -O2 -o "$dir/mpi_ranks" "$TESTS_DIR/mpi_ranks.c"
chown "$TEST_USER:" "$dir/mpi_ranks"
subnet_of() { echo "10.200.$(($1 % 256))"; } # JOBID: its /24 in the default net_cidr

# 1. Two nodes, one job: MPICH across the guests, names, TCP by name.
# An open bug (README, "Known problems"): now and then this job hangs in
# MPI_Barrier/MPI_Finalize after every rank printed its line, until the
# timeout. Such an attempt is reported with what srun said and the job runs
# again, at most three times in all.
srun_err=$(mktemp /tmp/svmdev-net-srun.XXXXXX)
mpi_job() {
	as_user timeout 150 srun --vm --vm-net=cluster --mpi=pmi2 -K -N2 -n4 -c1 --mem 1G \
		-D "$dir" "$dir/mpi_ranks" 2>"$srun_err" | sort
}
for attempt in 1 2 3; do
	out=$(mpi_job) && break
	echo "KNOWN BUG: attempt $attempt of the -N2 -n4 MPI job hung (output: $out; srun: $(tail -5 "$srun_err" | paste -sd'|'))" >&2
	[ "$attempt" -lt 3 ] || fail "srun --vm --vm-net=cluster --mpi=pmi2 -N2 -n4 hung three times"
done
rm -f "$srun_err"
assert_eq 4 "$(grep -c '^rank=' <<<"$out")" "ranks that reported (output: $out)"
for rank in 0 1 2 3; do
	assert_contains "$(grep "^rank=$rank " <<<"$out")" "size=4 sum=10" "rank $rank's world and sum"
done
assert_contains "$(grep '^rank=0 ' <<<"$out")" "ring=10" "the token around the 4-rank ring"
ids=$(sed 's/.*boot_id=//' <<<"$out" | sort -u)
assert_eq 2 "$(wc -l <<<"$ids")" "guest kernels of the ranks (output: $out)"

# shellcheck disable=SC2016 # expanded in the guests
as_user tee "$dir/net.sh" >/dev/null <<'EOS'
#!/bin/bash
echo "$SLURM_PROCID host=$(hostname) svm1=$(getent hosts svm1 | cut -d' ' -f1) svm2=$(getent hosts svm2 | cut -d' ' -f1) nics=$(ls /sys/class/net | paste -sd,)"
if [ "$SLURM_PROCID" = 0 ]; then
	busybox nc -l -p 5001 >"got.$SLURM_JOB_ID"
else
	for _ in $(seq 1 300); do
		cat /proc/sys/kernel/random/boot_id >/dev/tcp/svm1/5001 2>/dev/null && exit 0
		sleep 0.1
	done
	exit 1
fi
EOS
as_user chmod +x "$dir/net.sh"
id=$(next_job_id)
out=$(as_user timeout 300 srun --vm --vm-net=cluster -K -N2 -n2 -c1 --mem 1G -D "$dir" \
	"$dir/net.sh" | sort) ||
	fail "the two guests did not connect: $out"
net=$(subnet_of "$id")
assert_eq "0 host=svm1 svm1=$net.1 svm2=$net.2 nics=eth0,lo" "$(sed -n 1p <<<"$out")" "guest 0's view"
assert_eq "1 host=svm2 svm1=$net.1 svm2=$net.2 nics=eth0,lo" "$(sed -n 2p <<<"$out")" "guest 1's view"
[ -s "$dir/got.$id" ] || fail "nothing arrived over TCP from svm2's guest to svm1's"

# 2. Without --vm-net: no NIC.
nics=$(as_user srun --vm -N1 -n1 --mem 1G -D "$dir" ls /sys/class/net | paste -sd,)
assert_eq lo "$nics" "network interfaces of a guest without --vm-net"

# 3. Isolation: job A serves on svm1; job B on svm2 cannot reach it; the
# host reaches it only from an address inside A's /24.
# shellcheck disable=SC2016 # expanded in the guest
as_user tee "$dir/serve.sh" >/dev/null <<'EOS'
#!/bin/bash
printf '#!/bin/sh\necho served-by-%s\n' "$(hostname)" >"$PWD/reply.$SLURM_JOB_ID"
chmod +x "$PWD/reply.$SLURM_JOB_ID"
busybox nc -ll -p 5002 -e "$PWD/reply.$SLURM_JOB_ID" &
touch "serving.$SLURM_JOB_ID"
for _ in $(seq 1 3000); do [ -e "release.$SLURM_JOB_ID" ] && exit 0; sleep 0.1; done
EOS
as_user chmod +x "$dir/serve.sh"
a=$(submit -D "$dir" --vm --vm-net=cluster -w svm1 -N1 -n1 --mem 1G -o /dev/null "$dir/serve.sh")
wait_until 180 "job $a's guest to serve" test -e "$dir/serving.$a"
a_addr="$(subnet_of "$a").1"
# shellcheck disable=SC2016 # expanded in the guest
b_out=$(as_user srun --vm --vm-net=cluster -w svm2 -N1 -n1 --mem 1G -D "$dir" bash -c \
	"timeout 5 bash -c 'exec 3<>/dev/tcp/$a_addr/5002 && cat <&3' 2>/dev/null || echo unreachable")
assert_eq unreachable "$b_out" "job B's guest connecting to job A's guest $a_addr"

foreign="$(subnet_of $((a + 1))).250"
ip addr add "$foreign/16" dev "$BRIDGE" && host_addrs+=("$foreign/16")
got=$(timeout 10 busybox nc -w 3 "$a_addr" 5002 2>/dev/null || true)
assert_eq "" "$got" "a connection to job A from $foreign (outside its /24)"
ip addr del "$foreign/16" dev "$BRIDGE"
inside="$(subnet_of "$a").250"
ip addr add "$inside/24" dev "$BRIDGE" && host_addrs+=("$inside/24")
got=$(timeout 10 busybox nc -w 3 "$a_addr" 5002 2>/dev/null || true)
assert_eq "served-by-svm1" "$got" "a connection to job A from $inside (inside its /24)"
ip addr del "$inside/24" dev "$BRIDGE"
host_addrs=()
as_user touch "$dir/release.$a"
wait_job_done "$a" 120
assert_eq COMPLETED "$(job_state "$a")" "state of job A"

wait_until 30 "the jobs' directories to go" runtime_dir_empty
taps=$(ip -o link show | awk -F': ' '$2 ~ /^vnet/ { print $2 }')
[ -z "$taps" ] || fail "tap devices left: $taps"
ports=$(ls "/sys/class/net/$BRIDGE/brif")
[ -z "$ports" ] || fail "ports left on $BRIDGE: $ports"
bindings=$(virsh -c "$LIBVIRT_URI" nwfilter-binding-list --name 2>/dev/null | grep . || true)
[ -z "$bindings" ] || fail "nwfilter bindings left: $bindings"
assert_nodes_healthy
pass "MPICH -N2 -n4 over the job network; job A at $a_addr isolated"
