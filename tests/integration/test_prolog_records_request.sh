#!/bin/bash
# With --vm (or its environment default), the prolog records the validated
# request under runtime_dir/<jobid>/, root-owned; the epilog removes it.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null

check_recorded() { # JOBDIR EXPECTED_LINE...
	local jd=$1 req
	shift
	[ "$(stat -c '%U %a' "$jd")" == "root 711" ] || fail "$jd: $(stat -c '%U %a' "$jd")"
	[ "$(stat -c '%U %a' "$jd/request")" == "root 600" ] ||
		fail "$jd/request: $(stat -c '%U %a' "$jd/request")"
	req=$(cat "$jd/request")
	for line in "$@"; do
		assert_contains "$req" "$line" "request of job $id"
	done
}

release_and_check_gone() { # JOBID
	as_user touch "$dir/release"
	wait_job_done "$1"
	assert_eq COMPLETED "$(job_state "$1")" "job $1"
	runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
	as_user rm -f "$dir/release"
}

# sbatch with options; the batch job spans one node.
id=$(submit -o /dev/null --vm --vm-hypervisor=qemu --vm-debug "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
check_recorded "$(job_dir "$id")" "image=host" "hypervisor=qemu" "debug=1" "net=unset"
release_and_check_gone "$id"

# Environment default instead of --vm.
id=$(as_user env SPANK_VM_IMAGE=host sbatch --parsable -o /dev/null "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
check_recorded "$(job_dir "$id")" "image=host"
release_and_check_gone "$id"

# srun creating its own two-node allocation: recorded on both nodes' prolog runs.
dir=$(user_workdir)
as_user srun -N2 --vm=host --vm-net=cluster --chdir "$dir" bash -c \
	'touch started.$SLURM_JOB_ID.$SLURM_PROCID; for _ in $(seq 1 1200); do [ -e release ] && exit 0; sleep 0.1; done; exit 3' &
srun_pid=$!
wait_until 120 "srun job to start" compgen -G "$dir/started.*.1"
id=$(basename "$(compgen -G "$dir/started.*.1")" | cut -d. -f2)
for node in $NODES; do
	check_recorded "$(job_dir "$id" "$node")" "image=host" "net=cluster"
done
as_user touch "$dir/release"
wait "$srun_pid" || fail "srun --vm job failed"
wait_job_done "$id"
runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"

# salloc: the allocation's prolog records the request too.
dir=$(user_workdir)
as_user salloc --vm --vm-hugepages bash -c "$(held_job_script "$dir")" &
salloc_pid=$!
wait_until 120 "salloc job to start" compgen -G "$dir/started.*"
id=$(basename "$(compgen -G "$dir/started.*")" | cut -d. -f2)
check_recorded "$(job_dir "$id" "$(job_field "$id" NodeList)")" "image=host" "hugepages=2M"
as_user touch "$dir/release"
wait "$salloc_pid" || fail "salloc --vm failed"
wait_job_done "$id"
runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"

# An image the site's catalog does not have, submitted from where the catalog
# cannot be seen (a login node without image_dir: here the catalog is made
# unreadable to the user, so sbatch cannot refuse it): the job fails with the
# reason on its stderr (the guest cannot be made), and the node stays idle.
dir=$(user_workdir)
chmod 0700 "$IMAGE_DIR"
trap 'chmod 0755 "$IMAGE_DIR"; cancel_test_jobs' EXIT
id=$(submit -o "$dir/out" --vm=nosuch --wrap true)
chmod 0755 "$IMAGE_DIR"
wait_job_done "$id" 180
assert_eq FAILED "$(job_state "$id")" "job with an unknown image"
assert_contains "$(cat "$dir/out")" "no image named 'nosuch' in this site's catalog" "its output"
runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
assert_nodes_healthy
pass
