#!/bin/bash
# The one spank_vm.so loads in every context: slurmd, slurmstepd (extern,
# batch and task steps), the prolog and epilog, and srun/sbatch/salloc
# (their --help lists the options: test_options_help.sh).
source "$(dirname "$0")/lib.sh"

for node in $NODES; do
	log="$CLUSTER_DIR/log/slurmd.$node.log"
	grep -q "spank_vm: version .*, built for Slurm 22.05" "$log" ||
		fail "slurmd $node did not load spank_vm ($log)"
done
dir=$(user_workdir)
id=$(submit -o "$dir/out" --vm --wrap 'true')
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "job $id"
# --vm-debug: one line when the guest answers (size, pinning, boot time).
err=$(as_user srun --vm --vm-debug --chdir "$dir" true 2>&1 >/dev/null)
assert_contains "$err" "spank_vm: guest ready: 1 vCPU (1x1x1) on PUs" "the --vm-debug line"
assert_contains "$err" "boot " "the --vm-debug line"
step_job=$(( $(next_job_id) - 2 ))
logs=$(cat "$CLUSTER_DIR"/log/slurmd.*.log)
for kind in extern batch; do
	assert_contains "$logs" "spank_vm: loaded in slurmstepd for job $id ($kind step)" "slurmd log"
done
assert_contains "$logs" "spank_vm: loaded in slurmstepd for job $step_job (task step)" "slurmd log"
assert_contains "$logs" "spank_vm: job $id: recorded VM request" "prolog in the slurmd log"
pass
