#!/bin/bash
# The extern step starts the job's guest on its node and its end destroys it:
# normal completion, scancel, and an extern step killed with SIGKILL (the
# epilog then cleans up) leave no domain, disk or directory behind. A job
# without --vm starts nothing.
source "$(dirname "$0")/lib.sh"

restore() { cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"; }
trap 'restore; cancel_test_jobs' EXIT

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null

domain_of() { # JOBID
	echo "spank_vm-$(job_field "$1" BatchHost)-$1"
}

domain_running() {
	[ "$(virsh -c "$LIBVIRT_URI" domstate "$1" 2>/dev/null | head -1)" == running ]
}

domain_gone() {
	! virsh -c "$LIBVIRT_URI" domstate "$1" >/dev/null 2>&1
}

# The job's mux (its socket path names the job's directory), not a zombie.
mux_gone() { # JOBID
	local procs
	procs=$(ps -eo stat=,args= | awk '$1 !~ /^Z/')
	! grep -q "[s]pank-vm-mux.*/$1/guest/" <<<"$procs"
}

start_vm_job() { # -> job id; waits for its guest to run
	local id
	id=$(submit -o /dev/null --vm -c 1 --mem 1G "$dir/held.sh")
	wait_until 120 "job $id to start" test -e "$dir/started.$id"
	wait_until 120 "the guest of job $id" domain_running "$(domain_of "$id")"
	echo "$id"
}

# Normal completion.
id=$(start_vm_job)
dom=$(domain_of "$id")
jd=$(job_dir "$id")
plan_pus=$(sed -n 's/^vcpu_pus=//p' "$jd/plan")
pins=$(virsh -c "$LIBVIRT_URI" vcpupin "$dom" | awk '$1 ~ /^[0-9]+$/ { print $2 }' | paste -sd,)
assert_eq "$plan_pus" "$pins" "vCPU pins of $dom"
assert_eq "$TEST_USER" "$(ps -o user= -p "$(pgrep -f "guest=$dom" | head -1)")" "QEMU's user"
assert_eq "$TEST_USER 700" "$(stat -c '%U %a' "$jd/guest")" "the guest directory"
as_user touch "$dir/release"
wait_job_done "$id"
wait_until 30 "$dom to be destroyed" domain_gone "$dom"
wait_until 30 "the job directory to go" test ! -e "$jd"
as_user rm -f "$dir/release"

# scancel while the guest runs.
id=$(start_vm_job)
dom=$(domain_of "$id")
scancel "$id"
wait_job_done "$id"
wait_until 30 "$dom to be destroyed after scancel" domain_gone "$dom"
wait_until 30 "job $id's mux to exit after scancel" mux_gone "$id"
runtime_dir_empty || fail "scancel left $(find "$RUNTIME_DIR" -mindepth 2)"

# The extern step is killed: the epilog destroys the guest.
id=$(start_vm_job)
dom=$(domain_of "$id")
pkill -KILL -f "slurmstepd: \[$id.extern\]" || fail "no extern step for job $id"
as_user touch "$dir/release"
wait_job_done "$id"
wait_until 60 "$dom to be destroyed by the epilog" domain_gone "$dom"
wait_until 30 "job $id's mux to exit" mux_gone "$id"
wait_until 30 "the epilog to clean up" runtime_dir_empty
as_user rm -f "$dir/release"

# A job without --vm starts no guest.
id=$(submit -o /dev/null "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
doms=$(virsh -c "$LIBVIRT_URI" list --all --name | grep '^spank_vm-' || true)
[ -z "$doms" ] || fail "a job without --vm has domains: $doms"
as_user touch "$dir/release"
wait_job_done "$id"
assert_nodes_healthy
pass
