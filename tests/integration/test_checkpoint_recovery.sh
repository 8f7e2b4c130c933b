#!/bin/bash
# What a --vm-checkpoint job does when its guest cannot simply go on.
# 1. Its guest dies (QEMU destroyed, as a crash or the host's OOM killer
#    would) after `spank-vm-ctl checkpoint`: the batch step requeues the job,
#    which goes on from that checkpoint: its script is not started again, the
#    counts after the loss go on from the checkpoint's, not from zero.
# 2. --vm-checkpoint-interval saves the running guest again and again while
#    the job runs on (every count once, in order).
# 3. A checkpoint that does not fit the job's new allocation (less memory) is
#    refused: the job fails with the reason and its checkpoint stays; with
#    --vm-checkpoint-fallback=fresh the guest boots afresh instead, the
#    script starts again and says why.
source "$(dirname "$0")/lib.sh"

image="ckpt-recovery"
checkpoint_test_setup "$image"
dir=$(user_workdir)
as_user mkdir "$dir/ck"
ctl_bin=$(find "$CLUSTER_DIR/stage" -name spank-vm-ctl -type f | head -1)
ctl() { "$ctl_bin" --plugstack "$PLUGSTACK_CONF" --node "$node" "$@"; }
# OUT's counts, its last count, and its lines after the first matching PATTERN.
counted() { grep -q "^count $2\$" "$1" 2>/dev/null; }
last_count() { grep '^count ' "$1" | tail -1 | cut -d' ' -f2; }
counts_after() { sed -n "/$2/,\$p" "$1" | grep '^count ' | cut -d' ' -f2; }
requeued() { [ "$(job_state "$1")" == PENDING ]; }
# start_now JOBID NODE: a requeued job starts without Slurm's requeue delay,
# so not on NODE, where it ran (back there so soon, slurmd would skip its
# prolog).
start_now() {
	wait_until 60 "job $1 to be requeued" requeued "$1"
	scontrol update jobid="$1" ExcNodeList="$2" StartTime=now
}

# 1. The guest dies after a checkpoint.
write_count_script "$dir/lost.sh" 40
id=$(submit -D / -o "$dir/lost.out" --open-mode=append --requeue --mem 512M --vm="$image" \
	--vm-checkpoint="$dir/ck" "$dir/lost.sh")
wait_until 180 "job $id to count to 5" counted "$dir/lost.out" 5
node=$(job_field "$id" BatchHost)
before=$(last_count "$dir/lost.out")
out=$(ctl checkpoint "$id" 2>&1) || fail "spank-vm-ctl checkpoint $id: $out"
after=$(last_count "$dir/lost.out")
wait_until 60 "job $id to count past its checkpoint" counted "$dir/lost.out" $((after + 3))
virsh -c "$LIBVIRT_URI" destroy "spank_vm-$node-$id" >/dev/null
lost="job $id is requeued; it goes on from its checkpoint of"
wait_until 60 "job $id's batch step to requeue it" grep -q "$lost" "$dir/lost.out"
start_now "$id" "$node"
wait_job_done "$id" 300
assert_eq COMPLETED "$(job_state "$id")" "job $id, its guest lost after a checkpoint"
assert_contains "$(cat "$dir/lost.out")" "spank_vm: guest lost: the job's guest is gone" "the job's output"
assert_eq 1 "$(grep -c '^start on ' "$dir/lost.out")" "starts of the script"
first=$(counts_after "$dir/lost.out" "$lost" | head -1)
if [ "$first" -le "$before" ] || [ "$first" -gt $((after + 1)) ]; then
	fail "after the loss the count went on at $first, not from its checkpoint (taken between counts $before and $after)"
fi
assert_eq "$(seq "$first" 40)" "$(counts_after "$dir/lost.out" "$lost")" \
	"the counts from the checkpoint on"
echo "checkpoint at count $before..$after, guest lost at $((after + 3))+: went on at $first"
wait_until 120 "job $id's guest to go" runtime_dir_empty
assert_nodes_healthy

# 2 and 3. Periodic checkpoints; then a requeue into less memory. saved_at
# JOBID: the time of its checkpoint.
saved_at() { stat -c %Y.%y "$dir/ck/spank_vm-job$1/manifest" 2>/dev/null; }
saved_again() { [ "$(saved_at "$1")" != "$2" ]; }
# requeue_smaller JOBID OUT: requeued at count 5 (saved), restarted with
# 448M (its guest would get 192 MiB of the 256 it was saved with).
requeue_smaller() {
	wait_until 180 "job $1 to count to 5" counted "$2" 5
	local node
	node=$(job_field "$1" BatchHost)
	scontrol requeuehold "$1"
	wait_until 120 "job $1's guest to go" runtime_dir_empty
	assert_checkpoint_of "$dir/ck" "$1"
	scontrol update jobid="$1" MinMemoryNode=448 ExcNodeList="$node" StartTime=now
	scontrol release "$1"
}
misfit="the checkpoint's guest has 256 MiB of RAM, this allocation leaves the guest 192 MiB"

write_count_script "$dir/every.sh" 100
id=$(submit -D / -o "$dir/every.out" --open-mode=append --requeue --mem 512M --vm="$image" \
	--vm-checkpoint="$dir/ck" --vm-checkpoint-interval=10s "$dir/every.sh")
# saved_times N: job $id's checkpointer has written N checkpoints.
saved_times() {
	[ "$(grep -c 'checkpoint written in' "$(job_dir "$id")/checkpointer.log" 2>/dev/null)" -ge "$1" ]
}
wait_until 180 "job $id's first periodic checkpoint" saved_times 1
first_save=$(saved_at "$id")
wait_until 120 "job $id's second periodic checkpoint" saved_times 2
saved_again "$id" "$first_save" || fail "the second periodic checkpoint left the manifest as it was"
log=$(cat "$(job_dir "$id")/checkpointer.log")
echo "$log"
assert_contains "$log" "a checkpoint every 10 s into $dir/ck" "the checkpointer's log"
# One copy for both reads: the job counts on meanwhile.
cp "$dir/every.out" "$dir/every.snapshot"
assert_eq "$(seq 1 "$(last_count "$dir/every.snapshot")")" \
	"$(counts_after "$dir/every.snapshot" '^start on ')" "the counts across periodic checkpoints"
requeue_smaller "$id" "$dir/every.out"
wait_job_done "$id" 180
assert_eq FAILED "$(job_state "$id")" "a job whose checkpoint does not fit"
assert_contains "$(cat "$dir/every.out")" \
	"the job's checkpoint cannot be restored: $misfit (with --vm-checkpoint-fallback=fresh the guest would boot afresh)" \
	"the job's output"
assert_checkpoint_of "$dir/ck" "$id"
wait_until 120 "job $id's runtime directories to go" runtime_dir_empty
assert_nodes_healthy

write_count_script "$dir/fresh.sh" 20
id=$(submit -D / -o "$dir/fresh.out" --open-mode=append --requeue --mem 512M --vm="$image" \
	--vm-checkpoint="$dir/ck" --vm-checkpoint-fallback=fresh "$dir/fresh.sh")
requeue_smaller "$id" "$dir/fresh.out"
wait_job_done "$id" 240
assert_eq COMPLETED "$(job_state "$id")" "a job that boots afresh when its checkpoint does not fit"
assert_contains "$(cat "$dir/fresh.out")" \
	"spank_vm: the checkpoint in $dir/ck was not restored ($misfit): the guest boots afresh (--vm-checkpoint-fallback=fresh)" \
	"the job's output"
assert_eq 2 "$(grep -c '^start on ' "$dir/fresh.out")" "starts of the script"
assert_eq "$(seq 1 20)" "$(sed -n '/--vm-checkpoint-fallback=fresh/,$p' "$dir/fresh.out" | grep '^count ' | cut -d' ' -f2)" \
	"the counts of the fresh start"
wait_until 120 "job $id's guest to go" runtime_dir_empty
assert_nodes_healthy
pass "a lost guest went on from its checkpoint; periodic checkpoints; a misfit checkpoint failed the job, or booted afresh when asked"
