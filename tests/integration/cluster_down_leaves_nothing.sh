#!/bin/bash
# Brings the cluster down and proves nothing of it or of spank_vm remains:
# no daemon (Slurm's, munged, the accounting's slurmdbd and MariaDB), no node
# drained on the way, no runtime state, no libvirt domain.
source "$(dirname "$0")/lib.sh"
trap - EXIT # no controller to ask once the cluster is down

if pgrep -x slurmctld >/dev/null; then
	assert_nodes_healthy
	runtime_dir_empty || fail "runtime_dir not empty before down: $(find "$RUNTIME_DIR" -mindepth 1)"
fi
"$CLUSTER" down
# Zombies are dead already: PID 1 here reaps orphans late.
left=$(ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^(slurmctld|slurmd|slurmstepd|slurmdbd|munged)$/')
[ -z "$left" ] || fail "processes left: $left"
# The cluster's MariaDB (the host may run one of its own): its server runs
# with our config file and, like every daemon of the cluster, marked.
for pid in $(ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^(mariadbd|mysqld)$/ { print $1 }'); do
	if grep -qF "$CLUSTER_DIR/" "/proc/$pid/cmdline" 2>/dev/null ||
		grep -qzxF "SPANK_VM_CLUSTER_OF=$CLUSTER_DIR" "/proc/$pid/environ" 2>/dev/null; then
		fail "the cluster's MariaDB was left: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	fi
done
[ ! -e "$RUNTIME_DIR" ] || fail "$RUNTIME_DIR left behind"
[ ! -e "$CLUSTER_DIR" ] || fail "$CLUSTER_DIR left behind"
cgroups=$(find /sys/fs/cgroup -maxdepth 2 -name 'slurm_*' 2>/dev/null || true)
[ -z "$cgroups" ] || fail "cgroups left: $cgroups"
if ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "libvirtd" { found = 1 } END { exit !found }'; then
	doms=$(virsh -c qemu:///system list --all --name | grep '^spank_vm-' || true)
	[ -z "$doms" ] || fail "libvirt domains left: $doms"
fi
! ip link show svmbr0 >/dev/null 2>&1 || fail "the guest bridge svmbr0 was left"
taps=$(ip -o link show | awk -F': ' '$2 ~ /^vnet/ { print $2 }')
[ -z "$taps" ] || fail "tap devices left: $taps"
[ ! -e /etc/libvirt/nwfilter/spank_vm-job.xml ] || fail "the nwfilter spank_vm-job was left"
pass
