#!/bin/bash
# The guest is part of the job: its QEMU process, every thread, runs in the
# extern step's task cgroups (cpuset, memory, cpuacct; not Slurm's freezer,
# which signals the step at its end before the guest could be saved), from
# its first guest instruction on. So Slurm accounts it: a guest burning 2
# CPUs for 20 s adds about 40 s of CPU to the job's extern step
# (jobacct_gather/cgroup), in sstat while the job runs and in sacct
# (slurmdbd) after it, with the guest's memory as the step's MaxRSS. Its
# vCPUs stay pinned one to one to the job's PUs (virsh and each thread's
# Cpus_allowed_list), and the job's cgroup directories are gone after the
# job. A job whose extern slurmstepd is
# SIGKILLed still loses its guest by its end (the epilog).
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
uid=$(id -u "$TEST_USER")
# The burn waits for "go", burns 2 CPUs for 20 s, reports the guest's own
# count of the burners' CPU time (bash's `times`, its second line: the
# children's user and system; not in a pipeline, whose subshell has no
# children), then waits for "end".
as_user tee "$dir/burn.sh" >/dev/null <<EOS
#!/bin/bash
touch "$dir/ready"
while [ ! -e "$dir/go" ]; do sleep 0.2; done
for i in 1 2; do timeout 20 sh -c 'while :; do :; done' & done
wait
times >"$dir/times.all" && mv "$dir/times.all" "$dir/times"
while [ ! -e "$dir/end" ]; do sleep 0.2; done
EOS
as_user chmod +x "$dir/burn.sh"
id=$(submit -o "$dir/burn.out" --vm -c 2 --mem 1G "$dir/burn.sh")
wait_until 180 "job $id's script to start in its guest" test -e "$dir/ready"
node=$(job_field "$id" BatchHost)
name="spank_vm-$node-$id"
qemu=$(cat "/run/libvirt/qemu/$name.pid")
cg=$(cat "/proc/$qemu/cgroup")
echo "$cg"
job="/slurm_$node/uid_$uid/job_$id/step_extern"
for c in memory cpuacct; do
	assert_contains "$cg" ":$c:$job/task_0" "QEMU's $c cgroup"
done
assert_contains "$cg" ":cpuset:$job" "QEMU's cpuset cgroup"
assert_not_contains "$(grep ':freezer:' <<<"$cg")" "job_$id" "QEMU's freezer cgroup"
# Every thread (libvirt keeps its own cpu groups per vCPU, which Slurm does
# not manage here).
joined() { grep -E ':(memory|cpuset|cpuacct):' "$1"; }
for tid in /proc/"$qemu"/task/*; do
	assert_eq "$(joined "/proc/$qemu/cgroup")" "$(joined "$tid/cgroup")" \
		"the job cgroups of QEMU thread ${tid##*/}"
done
# One vCPU thread per PU of the job, as virsh says.
cpus=$(expand_list "$(job_cpus "$id")")
assert_eq "$cpus" "$(expand_list "$(domain_pins "$name")")" "vCPU pins vs the job's cpuset"
threads=$(grep -l '^CPU [0-9]*/' /proc/"$qemu"/task/*/comm | while read -r f; do
	sed -n 's/^Cpus_allowed_list:\t*//p' "${f%/comm}/status"
done | sort -n | paste -sd,)
assert_eq "$cpus" "$threads" "the vCPU threads' Cpus_allowed_list"

# Slurm's [D-][HH:]MM:SS[.mmm] in seconds.
seconds() {
	awk '{ d = 0; t = $0; if (i = index(t, "-")) { d = substr(t, 1, i - 1); t = substr(t, i + 1) }
		n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print d * 86400 + s }' <<<"$1"
}
# extern_cpu: the extern step's CPU time so far, in seconds (sstat's AveCPU
# of its one task; Slurm polls the task's cgroup when asked).
extern_cpu() {
	local t
	t=$(sstat -n -P -a -j "$id" -o JobID,AveCPU | sed -n "s/^$id\.extern|//p")
	[ -n "$t" ] || fail "sstat has no extern step for job $id"
	seconds "$t"
}
before=$(extern_cpu)
as_user touch "$dir/go"
wait_until 120 "the guest's burn to end" test -s "$dir/times"
# The guest goes idle after the burn: the accounted time settles.
last=-1
settled() {
	local now
	now=$(extern_cpu)
	[ "$now" == "$last" ] && return 0
	last=$now
	return 1
}
wait_until 60 "the extern step's CPU time to settle" settled
after=$last
guest=$(awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } print s }' \
	<<<"$(tail -1 "$dir/times" | tr -d 's')")
delta=$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')
echo "guest burn: ${guest} s of CPU; job's extern step: ${before} s before, ${after} s after"
awk -v d="$delta" -v g="$guest" 'BEGIN { exit !(d >= 0.8 * g && d <= 1.2 * g) }' ||
	fail "the job accounted $delta s for a guest burn of $guest s (not within 20 %)"
as_user touch "$dir/end"
wait_job_done "$id" 120
assert_eq COMPLETED "$(job_state "$id")" "the burn job"

# sacct: slurmctld hands the records to slurmdbd as they come, and the extern
# step's comes last (its slurmstepd stops the guest first). Its TRESUsageInTot
# cpu= is the extern task cgroup's user + system time, which jobacct_gather/
# cgroup read one last time when the step ended (TotalCPU is the same time,
# but with user and system each cut to whole seconds).
sacct_extern() {
	sacct -n -P -j "$id" -o JobID,State,TRESUsageInTot,MaxRSS | grep "^$id\.extern|"
}
extern_recorded() {
	local rec
	rec=$(sacct_extern) || return 1
	[[ $rec == *cpu=* && $rec != *"|RUNNING|"* ]]
}
wait_until 60 "sacct to have job $id's extern step" extern_recorded
IFS='|' read -r _ state tres maxrss <<<"$(sacct_extern)"
echo "sacct: $(sacct -n -P -j "$id" -o JobID,User,State,TotalCPU,TRESUsageInTot,MaxRSS | tr '\n' ' ')"
assert_eq "$id|$TEST_USER|COMPLETED" "$(sacct -n -P -j "$id" -o JobID,User,State | grep "^$id|")" \
	"sacct's record of the burn job"
assert_eq COMPLETED "$state" "sacct's state of the extern step"
acct=$(seconds "$(tr ',' '\n' <<<"$tres" | sed -n 's/^cpu=//p')")
acct_delta=$(awk -v a="$acct" -v b="$before" 'BEGIN { print a - b }')
echo "guest burn: ${guest} s of CPU; sacct: extern step ${acct} s in all, ${acct_delta} s since the burn began (sstat said ${after} s after it)"
awk -v d="$acct_delta" -v g="$guest" 'BEGIN { exit !(d >= 0.8 * g && d <= 1.2 * g) }' ||
	fail "sacct accounts $acct_delta s to the extern step for a guest burn of $guest s (not within 20 %)"
# MaxRSS is the memory cgroup's resident anonymous memory: QEMU with the
# guest's touched RAM, more than 100 MiB for a booted guest, at most the
# job's 1 GiB.
rss_mib=$(awk '{ v = $0 + 0; u = substr($0, length($0)); f = 1 / 1048576
	if (u == "K") f = 1 / 1024; else if (u == "M") f = 1; else if (u == "G") f = 1024; else if (u == "T") f = 1048576
	printf "%d", v * f }' <<<"$maxrss")
echo "sacct: the extern step's MaxRSS is $maxrss (${rss_mib} MiB)"
((rss_mib >= 100 && rss_mib <= 1024)) ||
	fail "the extern step's MaxRSS in sacct is $maxrss: not the guest's (100 MiB to 1 GiB)"
wait_until 60 "job $id's guest to go" runtime_dir_empty
[ -z "$(find /sys/fs/cgroup/*/"slurm_$node/uid_$uid" -maxdepth 1 -name "job_$id" 2>/dev/null)" ] ||
	fail "job $id's cgroup directories remain: $(find /sys/fs/cgroup/*/"slurm_$node/uid_$uid" -maxdepth 1 -name "job_$id")"
assert_nodes_healthy

# The extern step killed outright: no teardown from it; the epilog still
# ends the guest, and nothing of it remains.
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o /dev/null --vm --mem 1G "$dir/held.sh")
wait_until 180 "job $id to start in its guest" test -e "$dir/started.$id"
node=$(job_field "$id" BatchHost)
qemu=$(cat "/run/libvirt/qemu/spank_vm-$node-$id.pid")
stepd=$(pgrep -f "^slurmstepd: \[$id\.extern\]")
[ -n "$stepd" ] || fail "no extern slurmstepd for job $id"
kill -KILL "$stepd"
as_user touch "$dir/release"
wait_job_done "$id" 120
wait_until 60 "job $id's QEMU to be gone" test ! -e "/proc/$qemu"
wait_until 60 "job $id's runtime directory to go" runtime_dir_empty
assert_not_contains "$(virsh -c "$LIBVIRT_URI" list --all --name)" "spank_vm-$node-$id" "libvirt's domains"
assert_nodes_healthy
pass "QEMU in the job's cgroups, accounted (sstat $delta s, sacct $acct_delta s for a $guest s burn; MaxRSS $maxrss), pinned; gone after a killed extern step"
