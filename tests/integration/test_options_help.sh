#!/bin/bash
# The user options are registered in srun, sbatch and salloc and visible in --help.
source "$(dirname "$0")/lib.sh"

for cmd in srun sbatch salloc; do
	help=$(as_user "$cmd" --help 2>&1)
	for opt in "--vm=[IMAGE]" "--vm-hypervisor=kvm|qemu|xen" "--vm-hugepages=[2M|1G|none]" \
		"--vm-net=none|cluster" "--vm-checkpoint=DIR" "--vm-checkpoint-signal=USR1|USR2" \
		"--vm-checkpoint-interval=TIME" "--vm-checkpoint-fallback=fail|fresh" \
		"--vm-debug" "SPANK_VM_IMAGE"; do
		assert_contains "$help" "$opt" "$cmd --help"
	done
done
pass
