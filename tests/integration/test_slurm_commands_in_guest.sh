#!/bin/bash
# Slurm's commands inside a --vm batch script: the guest has no network and
# no munge, so srun, squeue, ... are stand-ins that run the host's command
# in the job, as the user, through the guest's host call port
# (helpers/hostcall/README.md). srun's steps then run in the same guest, as
# every step of a --vm job does. Anything but a Slurm command is refused.
source "$(dirname "$0")/lib.sh"

trap cancel_test_jobs EXIT

dir=$(user_workdir)
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
exec_helper=$(helper_path spank-vm-exec)

# shellcheck disable=SC2016 # expanded by the job
as_user tee "$dir/calls.sh" >/dev/null <<'EOS'
#!/bin/bash
out=$PWD/calls.$SLURM_JOB_ID
{
	echo "batch_boot=$(cat /proc/sys/kernel/random/boot_id)"
	echo "srun_is=$(head -c 200 "$(command -v srun)" | grep -c '^# spank_vm: ')"
	echo "step_boots=$(srun -n 2 cat /proc/sys/kernel/random/boot_id | sort -u | paste -sd,)"
	echo "ranks=$(srun -n 2 printenv SLURM_PROCID | sort -n | paste -sd,)"
	srun -n 1 sh -c 'exit 7'
	echo "srun_rc=$?"
	echo "stdin=$(echo piped | srun -n 1 cat)"
	echo "squeue=$(squeue -h -j "$SLURM_JOB_ID" -o %i)"
	echo "scontrol=$(scontrol show job "$SLURM_JOB_ID" | grep -c "JobId=$SLURM_JOB_ID ")"
	"$1" --socket /run/spank_vm/hostcall.sock -- id -u 2>"$out.refused"
	echo "refused_rc=$?"
	"$1" --socket /run/spank_vm/hostcall.sock -- /usr/bin/srun true 2>>"$out.refused"
	echo "path_rc=$?"
} >"$out.tmp" 2>"$out.err"
mv "$out.tmp" "$out"
EOS
as_user chmod +x "$dir/calls.sh"

id=$(submit -D "$dir" --vm -n 2 --mem 1G -o "$dir/out.%j" "$dir/calls.sh" "$exec_helper")
wait_job_done "$id" 300
[ -e "$dir/calls.$id" ] || fail "the script left no results; stderr: $(cat "$dir/calls.$id.err" 2>/dev/null)"
facts=$(cat "$dir/calls.$id")
field() { sed -n "s/^$1=//p" <<<"$facts"; }
batch_boot=$(field batch_boot)

[ -n "$batch_boot" ] && [ "$batch_boot" != "$host_boot_id" ] ||
	fail "the script ran on the host kernel (boot id $batch_boot)"
assert_eq 1 "$(field srun_is)" "srun in the guest is spank_vm's stand-in"
assert_eq "$batch_boot" "$(field step_boots)" "boot ids of srun -n 2's tasks (the job's guest)"
assert_eq "0,1" "$(field ranks)" "SLURM_PROCID of srun -n 2's tasks"
assert_eq 7 "$(field srun_rc)" "srun's exit status for a task's exit 7"
assert_eq piped "$(field stdin)" "srun's stdin from the guest's pipe"
assert_eq "$id" "$(field squeue)" "squeue run in the guest"
assert_eq 1 "$(field scontrol)" "scontrol show job run in the guest"
assert_eq 126 "$(field refused_rc)" "status of a request for a non-Slurm command"
assert_eq 126 "$(field path_rc)" "status of a request for a Slurm command by path"
refused=$(cat "$dir/calls.$id.refused")
assert_contains "$refused" "'id' is not a Slurm command" "the refusal's message"
assert_contains "$refused" "'/usr/bin/srun' is not a Slurm command" "the refusal of a path"
assert_eq COMPLETED "$(job_state "$id")" "state of job $id"
wait_until 30 "the job's directory to go" runtime_dir_empty
leftover=$(pgrep -u "$TEST_USER" -f 'spank-vm-hostcall|srun' || true)
[ -z "$leftover" ] || fail "processes of the job's host calls remain: $leftover"

# scancel while the guest's srun runs a step: the host's srun, the server
# and the guest go; nothing of theirs remains.
# shellcheck disable=SC2016 # expanded by the job
as_user tee "$dir/long.sh" >/dev/null <<'EOS'
#!/bin/bash
srun -n 1 sleep 600
EOS
as_user chmod +x "$dir/long.sh"
id=$(submit -D "$dir" --vm -n 1 --mem 1G -o /dev/null "$dir/long.sh")
step_running() { squeue -h -s -j "$id" -o %i 2>/dev/null | grep -qx "$id\.0"; }
wait_until 180 "job $id's step started from the guest" step_running
pgrep -u "$TEST_USER" -x srun >/dev/null || fail "no srun of job $id on the host"
scancel "$id"
wait_job_done "$id" 120
assert_eq CANCELLED "$(job_state "$id")" "state of the cancelled job $id"
wait_until 30 "the cancelled job's directory to go" runtime_dir_empty
no_host_calls() { ! pgrep -u "$TEST_USER" -f 'spank-vm-hostcall|srun' >/dev/null; }
wait_until 30 "the cancelled job's srun and server to go" no_host_calls
assert_nodes_healthy
pass "srun, squeue and scontrol in the guest ran on the host; steps in guest $batch_boot"
