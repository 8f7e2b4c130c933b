#!/bin/bash
# Brings the cluster down and proves nothing of it or of spank_vm remains:
# no daemon, no node drained on the way, no runtime state, no libvirt domain.
source "$(dirname "$0")/lib.sh"

if pgrep -x slurmctld >/dev/null; then
	assert_nodes_healthy
	runtime_dir_empty || fail "runtime_dir not empty before down: $(find "$RUNTIME_DIR" -mindepth 1)"
fi
"$CLUSTER" down
left=$(pgrep -a -x 'slurmctld|slurmd|slurmstepd|munged' || true)
[ -z "$left" ] || fail "processes left: $left"
[ ! -e "$RUNTIME_DIR" ] || fail "$RUNTIME_DIR left behind"
[ ! -e "$CLUSTER_DIR" ] || fail "$CLUSTER_DIR left behind"
cgroups=$(find /sys/fs/cgroup -maxdepth 2 -name 'slurm_*' 2>/dev/null || true)
[ -z "$cgroups" ] || fail "cgroups left: $cgroups"
if pgrep -x libvirtd >/dev/null; then
	doms=$(virsh -c qemu:///system list --all --name | grep '^spank_vm-' || true)
	[ -z "$doms" ] || fail "libvirt domains left: $doms"
fi
pass
