#!/bin/bash
# spank-vm-ctl checkpoint on a running --vm-checkpoint batch job: the job's
# guest (a site image: the default guest's 9p root cannot be saved) is saved
# into the user's checkpoint directory while its script counts, and the job
# runs on: every count arrives once and in order, the job completes (its end
# saves nothing), the checkpoint's files are the user's. A job requeued by
# Slurm is saved as it is taken away, its script never signalled, and goes
# on from that checkpoint, on its node or on the other one (re-pinned to its
# cores there): the batch step takes over the running script, whose output
# continues in the job's output file; back on its node too soon for slurmd it
# never runs on the host. A cancelled job is not saved; a job of two nodes is
# refused. A job without --vm-checkpoint is refused by ctl.
source "$(dirname "$0")/lib.sh"

image="ckpt-tiny"
checkpoint_test_setup "$image"
dir=$(user_workdir)
as_user mkdir "$dir/ck"
# shellcheck disable=SC2016 # expanded in the guest
as_user tee "$dir/count.sh" >/dev/null <<'EOS'
#!/bin/sh
i=0
while [ "$i" -lt 40 ]; do
	i=$((i + 1))
	echo "count $i"
	sleep 0.5
done
EOS
as_user chmod +x "$dir/count.sh"
id=$(submit -D / -o "$dir/out" --mem 512M --vm="$image" --vm-checkpoint="$dir/ck" "$dir/count.sh")
counted() { grep -q "^count $1\$" "$dir/out" 2>/dev/null; }
wait_until 180 "job $id to count to 5 in its guest" counted 5
node=$(job_field "$id" BatchHost)
ctl_bin=$(find "$CLUSTER_DIR/stage" -name spank-vm-ctl -type f | head -1)
ctl() { "$ctl_bin" --plugstack "$PLUGSTACK_CONF" --node "$node" "$@"; }
out=$(ctl checkpoint "$id" 2>&1) || fail "spank-vm-ctl checkpoint $id: $out"
echo "$out"
assert_contains "$out" "job $id: checkpoint written to $dir/ck; the job runs on" "ctl's report"
assert_checkpoint_of "$dir/ck" "$id"
assert_contains "$(cat "$(job_dir "$id")/guest/mux.log")" "resumed: the same guest" "the mux's log"
saved_at=$(stat -c %Y.%y "$dir/ck/spank_vm-job$id/manifest")
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "job $id after its checkpoint"
assert_eq "$saved_at" "$(stat -c %Y.%y "$dir/ck/spank_vm-job$id/manifest")" \
	"the checkpoint after the job completed (only a requeue saves at the end)"
assert_eq "$(seq 1 40 | sed 's/^/count /')" "$(cat "$dir/out")" "the job's output across the checkpoint"
[ -e "$dir/ck/spank_vm-job$id/manifest" ] || fail "the finished job's checkpoint was removed"

# A requeued job is saved as Slurm takes it away (its mux holds the tasks'
# SIGTERM back and pauses the guest, the extern step's end saves it) and goes
# on from that checkpoint: the guest comes back as it was, its vCPUs pinned to
# the job's new cpuset, and the new batch step takes over the script that was
# running, so the count goes on in the same output file, never restarted.
# Requeued again, by its own --vm-checkpoint-signal this time, it goes on on
# the other node in the same guest: the guest keeps its name there, and only
# that node counts it as its own.
write_count_script "$dir/resume.sh" 40
id=$(submit -D / -o "$dir/resume.out" --open-mode=append --requeue --mem 512M --vm="$image" \
	--vm-checkpoint="$dir/ck" --vm-checkpoint-signal=USR1 "$dir/resume.sh")
resumed_to() { grep -q "^count $1\$" "$dir/resume.out" 2>/dev/null; }
last_count() { grep '^count ' "$dir/resume.out" | tail -1 | cut -d' ' -f2; }
# Lines of progress: counts, or what went wrong (a proxy killed late may say
# the job is being requeued: that is neither).
progress() { grep '^count \|spank_vm: ' "$dir/resume.out" | grep -vc 'is being requeued' || true; }
wait_until 180 "job $id to count to 5" resumed_to 5
from=$(job_field "$id" BatchHost)
other=$(tr ' ' '\n' <<<"$NODES" | grep -vx "$from")
[ ! -e "$dir/ck/spank_vm-job$id" ] || fail "job $id has a checkpoint before its requeue"
# requeue_on NODE [now [signal]]: job $id requeued to run on NODE, after
# Slurm's 2 minutes of requeue delay or at once; by scontrol requeuehold, or
# by the batch step's --vm-checkpoint-signal (USR1, as --signal=B:USR1@T
# sends it); saved_count: its count by then.
requeue_on() {
	local before
	if [ "${3:-}" == signal ]; then
		scancel --signal=USR1 --batch "$id"
	else
		scontrol requeuehold "$id"
	fi
	wait_until 120 "job $id's guest to go" runtime_dir_empty
	saved_count=$(last_count)
	before=$(progress)
	scontrol update jobid="$id" ExcNodeList="$(tr ' ' '\n' <<<"$NODES" | grep -vx "$1")"
	[ "${2:-}" != now ] || scontrol update jobid="$id" StartTime=now
	[ "${3:-}" == signal ] || scontrol release "$id"
	wait_until 240 "job $id to go on on $1" went_on "$before"
}
went_on() { [ "$(progress)" -gt "$1" ]; }
# The script was never started again: one start, and every count once, in order.
assert_went_on() {
	assert_eq 1 "$(grep -c '^start on ' "$dir/resume.out")" "starts of the script"
	assert_eq "$(seq 1 "$(last_count)")" "$(grep '^count ' "$dir/resume.out" | cut -d' ' -f2)" \
		"the counts across the requeue"
	assert_eq "$(expand_list "$(job_cpus "$id")")" \
		"$(expand_list "$(domain_pins "spank_vm-$from-$id")")" \
		"the vCPU pins of the guest restored on $1 vs the job's cpuset there"
}
requeue_on "$from"
assert_checkpoint_of "$dir/ck" "$id"
assert_eq "$from" "$(job_field "$id" BatchHost)" "the node of the requeued job"
assert_went_on "$from"
echo "requeued on $from at count $saved_count: went on at $(last_count)"

wait_until 120 "job $id to count to $((saved_count + 3))" resumed_to $((saved_count + 3))
requeue_on "$other" now signal
assert_contains "$(cat "$dir/resume.out")" \
	"signal 10 (--vm-checkpoint-signal): job $id is requeued; its VM is saved" "the job's output"
assert_eq "$other" "$(job_field "$id" BatchHost)" "the node of the job requeued elsewhere"
assert_went_on "$other"
assert_contains "$(node=$other ctl list)" "$id" "ctl list on $other"
assert_not_contains "$(node=$from ctl list | sed 1d)" "$id" "ctl list on $from"
assert_not_contains "$(node=$from ctl gc --dry-run)" "job $id" "ctl gc on $from"
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "the job requeued to $other"
assert_eq "$(seq 1 40)" "$(grep '^count ' "$dir/resume.out" | cut -d' ' -f2)" \
	"every count, once and in order, across the guest's life on two nodes"
echo "requeued to $other at count $saved_count: completed at 40"
assert_nodes_healthy

# Back on its first node at once, slurmd may skip the prolog (and so the
# guest): whatever happens, the script never runs on the host.
requeue_on "$from" now
wait_until 180 "job $id to end" job_is_done "$id"
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
assert_not_contains "$(cat "$dir/resume.out")" "on $host_boot_id" "a --vm job's output"
[ "$(job_state "$id")" == COMPLETED ] ||
	assert_contains "$(tail -4 "$dir/resume.out")" "this node has no guest for it" \
		"why the job failed"
echo "back on $from at once: $(job_state "$id"), $(tail -1 "$dir/resume.out")"
assert_nodes_healthy

# A cancelled --vm-checkpoint job is not saved: only a requeue is.
id=$(submit -D / -o /dev/null --mem 512M --vm="$image" --vm-checkpoint="$dir/ck" "$dir/count.sh")
guest_ready() {
	local node
	node=$(job_field "$1" BatchHost)
	[ -n "$node" ] && [ -e "$(node_runtime_dir "$node")/$1/guest/ready" ]
}
wait_until 180 "job $id's guest to be ready" guest_ready "$id"
scancel "$id"
wait_job_done "$id" 120
wait_until 120 "job $id's guest to go" runtime_dir_empty
[ ! -e "$dir/ck/spank_vm-job$id" ] || fail "the cancelled job $id was saved"

# A job of two nodes cannot be checkpointed (one checkpoint per job): its
# prolog refuses the request, and its tasks fail with the reason.
id=$(submit -N 2 -D / -o "$dir/two.out" --mem 512M --vm="$image" --vm-checkpoint="$dir/ck" \
	"$dir/count.sh")
wait_job_done "$id" 120
assert_eq FAILED "$(job_state "$id")" "a two-node --vm-checkpoint job"
assert_contains "$(cat "$dir/two.out")" \
	"--vm-checkpoint: only a job of one node can be checkpointed" "the two-node job's output"
wait_until 60 "job $id's runtime directories to go" runtime_dir_empty

# A job that did not ask for checkpoints.
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o /dev/null --vm --mem 512M "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
node=$(job_field "$id" BatchHost)
out=$(ctl checkpoint "$id" 2>&1) && fail "ctl checkpoint of a job without --vm-checkpoint: $out"
assert_eq "spank_vm: spank-vm-ctl: job $id did not ask for checkpoints (--vm-checkpoint=DIR)" \
	"$out" "ctl's refusal"
as_user touch "$dir/release"
wait_job_done "$id"
assert_nodes_healthy
pass "ctl checkpoint: the job ran on, 40 counts in order; requeued twice (the second time to $other), its script went on to 40"
