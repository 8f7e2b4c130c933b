#!/bin/bash
# Preemption (PreemptMode=REQUEUE): a --vm-checkpoint job in the low partition
# is preempted by a job of the urgent one on its node. Its guest is saved as
# Slurm takes the job away, and when the job starts again (on the other node)
# its script goes on where it was: one start, every count once and in order.
source "$(dirname "$0")/lib.sh"

image="ckpt-preempt"
checkpoint_test_setup "$image"
dir=$(user_workdir)
as_user mkdir "$dir/ck"
write_count_script "$dir/count.sh" 30
id=$(submit -D / -o "$dir/out" --open-mode=append --requeue --mem 512M --vm="$image" \
	--vm-checkpoint="$dir/ck" "$dir/count.sh")
counted() { grep -q "^count $1\$" "$dir/out" 2>/dev/null; }
wait_until 180 "job $id to count to 5 in its guest" counted 5
node=$(job_field "$id" BatchHost)
other=$(tr ' ' '\n' <<<"$NODES" | grep -vx "$node")

# The urgent job wants the whole node: Slurm preempts (requeues) job $id.
urgent=$(submit -p urgent -w "$node" --exclusive -o /dev/null --wrap "sleep 3")
wait_until 120 "job $id to be preempted" runtime_dir_empty
assert_checkpoint_of "$dir/ck" "$id"
saved=$(grep '^count ' "$dir/out" | tail -1 | cut -d' ' -f2)
wait_job_done "$urgent" 120
scontrol update jobid="$id" ExcNodeList="$node" StartTime=now
went_on() { [ "$(grep -c '^count ' "$dir/out")" -gt "$saved" ]; }
wait_until 240 "job $id to go on on $other" went_on
assert_eq "$other" "$(job_field "$id" BatchHost)" "the node of the preempted job"
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "the preempted job"
assert_eq 1 "$(grep -c '^start on ' "$dir/out")" "starts of its script"
assert_eq "$(seq 1 30)" "$(grep '^count ' "$dir/out" | cut -d' ' -f2)" \
	"every count, once and in order, across the preemption"
assert_nodes_healthy
pass "preempted at count $saved on $node, went on to 30 on $other"
