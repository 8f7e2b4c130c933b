#!/bin/bash
# A job without --vm runs exactly as before and leaves no trace of spank_vm.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o "$dir/out" "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
runtime_dir_empty || fail "a job without --vm got $(find "$RUNTIME_DIR" -mindepth 2)"
as_user touch "$dir/release"
wait_job_done "$id"
assert_eq COMPLETED "$(job_state "$id")" "plain batch job"

out=$(as_user srun -N2 -n2 --chdir "$dir" bash -c 'echo "$SLURM_PROCID $(id -un)"' | sort)
assert_eq "$(printf '0 %s\n1 %s' "$TEST_USER" "$TEST_USER")" "$out" "srun -N2 output"
rc=0
as_user srun --chdir "$dir" bash -c 'exit 7' || rc=$?
assert_eq 7 "$rc" "srun exit status"
runtime_dir_empty || fail "$RUNTIME_DIR is not empty: $(ls -A "$RUNTIME_DIR")"
pass
