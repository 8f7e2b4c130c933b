#!/bin/bash
# policy=always: every job gets a VM request, --vm or not, and runs in the
# default guest; --vm-* alone is fine.
source "$(dirname "$0")/lib.sh"

restore() { cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"; }
trap 'restore; cancel_test_jobs' EXIT
sed 's|$| policy=always|' "$CLUSTER_DIR/etc/plugstack.conf.orig" >"$PLUGSTACK_CONF"

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o /dev/null --vm-debug "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
# The job did not ask, yet its script runs in the default guest.
guest_boot_id=$(as_user srun --jobid "$id" --overlap -n1 cat /proc/sys/kernel/random/boot_id)
[ -n "$guest_boot_id" ] && [ "$guest_boot_id" != "$(cat /proc/sys/kernel/random/boot_id)" ] ||
	fail "a step of job $id under policy=always ran on the host ($guest_boot_id)"
req=$(cat "$(job_dir "$id")/request")
assert_contains "$req" "image=host" "request under policy=always"
assert_contains "$req" "debug=1" "request under policy=always"
as_user touch "$dir/release"
wait_job_done "$id"
assert_eq COMPLETED "$(job_state "$id")" "job under policy=always"
runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
assert_nodes_healthy
pass
