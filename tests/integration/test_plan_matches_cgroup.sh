#!/bin/bash
# The extern step plans the guest from Slurm's abstract core list and the
# job's memory; its PUs are exactly the job's cpuset cgroup (the cores Slurm
# gave the job, in OS numbering), for jobs of 1 and 2 cores.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null

# job_cpus (lib.sh): the job's cpuset cgroup as task/cgroup made it on the
# node, read on the host (the job itself runs in its guest).
field() { # FILE KEY
	sed -n "s/^$2=//p" "$1"
}

check_plan() { # JOBID CORES
	local id=$1 cores=$2 plan
	wait_until 120 "job $id to start" test -e "$dir/started.$id"
	plan="$(job_dir "$id")/plan"
	wait_until 30 "the plan of job $id" test -e "$plan"
	assert_eq "$(job_cpus "$id")" "$(field "$plan" host_pus)" "job $id: plan PUs vs cpuset cgroup"
	assert_eq "$cores" "$(field "$plan" vcpus)" "job $id: vCPUs"
	assert_eq "$(job_cpus "$id")" "$(field "$plan" emulator_pus)" "job $id: emulator PUs"
	assert_eq 1024 "$(field "$plan" hard_limit_mib)" "job $id: hard limit = --mem"
	assert_eq 768 "$(field "$plan" guest_mib)" "job $id: guest RAM = --mem - mem_reserve"
}

for cores in 1 2; do
	id=$(submit -o /dev/null --vm -c "$cores" --mem 1G "$dir/held.sh")
	check_plan "$id" "$cores"
	as_user touch "$dir/release"
	wait_job_done "$id"
	as_user rm -f "$dir/release"
done

# Two 1-core jobs on one node get disjoint PUs.
a=$(submit -o /dev/null --vm -c 1 --mem 1G -w svm1 "$dir/held.sh")
b=$(submit -o /dev/null --vm -c 1 --mem 1G -w svm1 "$dir/held.sh")
check_plan "$a" 1
check_plan "$b" 1
pus_a=$(field "$(job_dir "$a")/plan" host_pus)
pus_b=$(field "$(job_dir "$b")/plan" host_pus)
[ "$pus_a" != "$pus_b" ] || fail "jobs $a and $b were both planned on PU $pus_a"
as_user touch "$dir/release"
wait_job_done "$a"
wait_job_done "$b"
runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
assert_nodes_healthy
pass "1-core and 2-core plans equal the job cpusets; concurrent 1-core jobs on PUs $pus_a and $pus_b"
