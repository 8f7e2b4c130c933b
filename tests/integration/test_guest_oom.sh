#!/bin/bash
# The job's memory limit holds for its guest, which gets the job's memory
# on the node less mem_reserve (256M here):
# - a job whose --mem leaves the guest less than min_guest_mem (128M) fails
#   with that reason, before its script runs, and the node stays up;
# - a process in the guest that allocates past the guest's RAM meets the
#   guest's out-of-memory killer, and the job ends OUT_OF_MEMORY as Slurm
#   ends an OOM task: Slurm's own "Detected 1 oom-kill event(s)" line, ours
#   saying why, the script going on after its killed child (the guest
#   survives it), the node healthy, nothing left. An srun step does the
#   same: srun reports "Out Of Memory" and exits 1;
# - a guest that outgrows the job's memory cgroup itself (here with a
#   mem_reserve of 16M, too small for QEMU's own memory) is ended by the
#   cgroup's OOM killer, and its job too ends OUT_OF_MEMORY, saying why.
source "$(dirname "$0")/lib.sh"

restore() { cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"; }
trap 'restore; cancel_test_jobs' EXIT

dir=$(user_workdir)

assert_nothing_left() { # JOBID
	wait_until 30 "job $1's runtime directory to go" runtime_dir_empty
	[ -z "$(virsh -c "$LIBVIRT_URI" list --all --name | grep "^spank_vm-.*-$1$" || true)" ] ||
		fail "job $1 left its domain"
	local cgroups
	cgroups=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "job_$1" 2>/dev/null || true)
	[ -z "$cgroups" ] || fail "job $1 left cgroups: $cgroups"
	assert_nodes_healthy
}

# sacct_says JOBID STEP STATE: slurmdbd has STEP (JOBID, JOBID.batch, ...) in STATE.
sacct_says() {
	[ "$(sacct -n -P -a -j "$1" -o JobID,State | sed -n "s/^$2|//p")" == "$3" ]
}

# 1. Too little memory for a guest: refused with the sizes, the node up.
id=$(submit -D "$dir" -o "$dir/small.out" -e "$dir/small.err" --vm -c 1 --mem 300M \
	--wrap 'echo ran')
wait_job_done "$id" 120
assert_eq FAILED "$(job_state "$id")" "state of job $id (--mem 300M)"
assert_contains "$(cat "$dir/small.err")" \
	"spank_vm: the job's guest did not come up: spank-vm-provision: guest RAM of 44 MiB (job memory 300 MiB - reserve 256 MiB) is below the minimum of 128 MiB; ask for more memory (--mem)" \
	"job $id's stderr"
[ ! -s "$dir/small.out" ] || fail "job $id's script ran: $(cat "$dir/small.out")"
assert_nothing_left "$id"
echo "--mem 300M: $(grep -m1 'spank_vm:' "$dir/small.err")"

# 2. A batch script whose child outgrows the guest (tail buffers one endless
# line of /dev/zero until the guest's OOM killer ends it).
as_user tee "$dir/grow.sh" >/dev/null <<'EOS'
#!/bin/bash
echo "guest RAM: $(sed -n 's/^MemTotal: *//p' /proc/meminfo)"
tail /dev/zero
echo "tail ended with $?; the script goes on"
EOS
as_user chmod +x "$dir/grow.sh"
id=$(submit -D "$dir" -o "$dir/grow.out" --vm -c 1 --mem 512M "$dir/grow.sh")
wait_job_done "$id" 240
out=$(cat "$dir/grow.out")
echo "$out"
assert_eq OUT_OF_MEMORY "$(job_state "$id")" "state of job $id"
assert_contains "$out" "tail ended with 137; the script goes on" "job $id's output"
assert_contains "$out" "spank_vm: out of memory: the guest's out-of-memory killer ended a process of this task; the guest has 256 MiB" \
	"job $id's output"
assert_contains "$out" "Detected 1 oom-kill event(s) in StepId=$id.batch" "job $id's output"
wait_until 60 "sacct to show job $id.batch OUT_OF_MEMORY" sacct_says "$id" "$id.batch" OUT_OF_MEMORY
sacct_says "$id" "$id" OUT_OF_MEMORY || fail "sacct: job $id is not OUT_OF_MEMORY"
sacct_says "$id" "$id.extern" COMPLETED || fail "sacct: the guest of job $id was not fine"
assert_nothing_left "$id"

# 3. An srun step in its own job.
rc=0
out=$(as_user srun --vm -N1 -n1 -c1 --mem 512M -D "$dir" \
	bash -c 'tail /dev/zero; echo "tail ended with $?"' 2>&1) || rc=$?
echo "$out"
assert_eq 1 "$rc" "srun's exit status"
assert_contains "$out" "tail ended with 137" "srun's output"
assert_contains "$out" "task 0: Out Of Memory" "srun's output"
assert_contains "$out" "spank_vm: out of memory: the guest's out-of-memory killer" "srun's output"
id=$(sed -n 's/.*StepId=\([0-9]*\)\.0.*/\1/p' <<<"$out" | head -1)
[ -n "$id" ] || fail "srun's output names no step"
wait_job_done "$id" 60
assert_eq OUT_OF_MEMORY "$(job_state "$id")" "state of srun's job $id"
assert_nothing_left "$id"

# 4. QEMU itself over the job's limit: 496 MiB of guest RAM and QEMU's own
# memory do not fit in 512M.
sed 's|$| mem_reserve=16M|' "$CLUSTER_DIR/etc/plugstack.conf.orig" >"$PLUGSTACK_CONF"
id=$(submit -D "$dir" -o "$dir/qemu.out" --vm -c 1 --mem 512M "$dir/grow.sh")
wait_job_done "$id" 240
restore
out=$(cat "$dir/qemu.out")
echo "$out"
assert_eq OUT_OF_MEMORY "$(job_state "$id")" "state of job $id (mem_reserve=16M)"
assert_contains "$out" "guest lost" "job $id's output"
assert_contains "$out" "spank_vm: out of memory: the job's memory cgroup ended the guest: its 496 MiB of RAM" \
	"job $id's output"
assert_not_contains "$out" "the script goes on" "job $id's output"
# The kernel ended QEMU in the extern step: Slurm's count there too.
wait_until 60 "sacct to show job $id.extern OUT_OF_MEMORY" sacct_says "$id" "$id.extern" OUT_OF_MEMORY
assert_nothing_left "$id"
pass
