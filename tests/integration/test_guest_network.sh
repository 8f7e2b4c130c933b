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
# MPICH 4.0.2 can deadlock in MPI_Finalize after every rank printed its line
# (README, "Known problems"; pmodels/mpich#6596): some ranks block reading
# PMI_FD in the PMI barrier while the others spin closing their UCX
# endpoints. An attempt that hangs is looked at inside the guests: that
# signature is reported as the known MPICH bug and the job runs again (four
# attempts in all); any other hang fails the test.
srun_out=$(mktemp /tmp/svmdev-net-srun.XXXXXX)
srun_err=$(mktemp /tmp/svmdev-net-srun.XXXXXX)
EXEC=$(helper_path spank-vm-exec)

# One line per rank of the job's guest on NODE: "pmi" when it blocks reading
# its PMI_FD, "busy" otherwise.
rank_states() { # JOBID NODE
	# shellcheck disable=SC2016 # expanded in the guest
	as_user "$EXEC" --socket "$(node_runtime_dir "$2")/$1/guest/mux.sock" -- sh -c '
		for p in $(pgrep -x mpi_ranks); do
			fd=$(tr "\0" "\n" </proc/$p/environ | sed -n "s/^PMI_FD=//p")
			set -- $(cat /proc/$p/syscall)
			if [ "$1" = 0 ] && [ "$(($2))" = "$fd" ]; then echo pmi; else echo busy; fi
		done'
}
printed_all() { [ "$(grep -c '^rank=' "$srun_out")" = 4 ]; }
mpi_attempt() { # ATTEMPT: 0 when the job ended, 1 after the known MPICH hang
	local pid id states rc=0
	as_user timeout 300 srun --vm --vm-net=cluster --mpi=pmi2 -K -N2 -n4 -c1 --mem 1G \
		-D "$dir" "$dir/mpi_ranks" >"$srun_out" 2>"$srun_err" &
	pid=$!
	wait_until 180 "the MPI job to print its 4 results (srun: $(tail -3 "$srun_err"))" \
		printed_all
	# A normal finalize takes a few seconds under TCG; 60 s is a hang.
	if wait_until_soft 60 gone "$pid"; then
		wait "$pid" || rc=$?
		((rc == 0)) || fail "the MPI job failed ($rc): $(cat "$srun_out" "$srun_err")"
		return 0
	fi
	id=$(squeue -h -u "$TEST_USER" -o %i | head -1)
	states=$(rank_states "$id" svm1; rank_states "$id" svm2)
	if ! grep -q pmi <<<"$states" || ! grep -q busy <<<"$states"; then
		fail "attempt $1: the MPI job hung after its results, not in MPICH's finalize deadlock (ranks: $(paste -sd, <<<"$states"); srun: $(tail -5 "$srun_err" | paste -sd'|'))"
	fi
	echo "KNOWN MPICH BUG: attempt $1 deadlocked in MPI_Finalize (ranks: $(paste -sd, <<<"$states")); running it again" >&2
	scancel "$id"
	wait "$pid" || true
	return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_until_soft() { # TIMEOUT CMD...: like wait_until, but false at the timeout
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}
for attempt in 1 2 3 4; do
	mpi_attempt "$attempt" && break
	[ "$attempt" -lt 4 ] || fail "MPICH's finalize deadlock four times in a row"
done
out=$(sort "$srun_out")
rm -f "$srun_out" "$srun_err"
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
