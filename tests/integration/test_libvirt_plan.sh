#!/bin/bash
# A real libvirtd accepts the qemu (TCG) domain XML of a plan, the guest
# starts with QEMU running as the job's user, and virsh reports exactly the
# planned vCPU pins, emulator pins and NUMA binding. Stopping leaves nothing.
source "$(dirname "$0")/lib.sh"

provision=$(helper_path spank-vm-provision)
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
# Debian's own initramfs: these tests look at the domain, not at the guest.
initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}
[ -n "$kernel" ] || fail "no kernel in /boot"
name=spank_vm-test-plan
rm -rf "$(user_home)"/libvirt-plan.??????
gdir=$(as_user mktemp -d "$(user_home)/libvirt-plan.XXXXXX")
owner="$(id -u "$TEST_USER"):$(id -g "$TEST_USER")"
extra=()
grep -q 'hard_limit=no' "$PLUGSTACK_CONF" && extra+=(--no-hard-limit)
cleanup() { "$provision" stop --name "$name" --timeout 0 >/dev/null 2>&1 || true; }
trap 'cleanup; cancel_test_jobs' EXIT

field() { sed -n "s/^$2=//p" <<<"$1"; }

for cores in 1 0-1; do
	alloc=(--cores "$cores" --mem 1G --hypervisor qemu)
	plan=$("$provision" plan "${alloc[@]}")
	"$provision" start "${alloc[@]}" --name "$name" --owner "$owner" --kernel "$kernel" --initrd "$initrd" \
		--cmdline console=ttyS0 --dir "$gdir" "${extra[@]}" >/dev/null
	# vcpupin: "0      1" per vCPU -> comma list of host PUs in vCPU order.
	pins=$(virsh -c "$LIBVIRT_URI" vcpupin "$name" | awk '$1 ~ /^[0-9]+$/ { print $2 }' | paste -sd,)
	assert_eq "$(field "$plan" vcpu_pus)" "$pins" "vcpupin with --cores $cores"
	emu=$(virsh -c "$LIBVIRT_URI" emulatorpin "$name" | awk '$1 == "*:" { print $2 }')
	assert_eq "$(field "$plan" emulator_pus)" "$emu" "emulatorpin with --cores $cores"
	numa=$(virsh -c "$LIBVIRT_URI" numatune "$name")
	assert_contains "$numa" "numa_mode      : strict" "numatune"
	assert_eq "$(field "$plan" host_nodes)" "$(awk '/numa_nodeset/ { print $3 }' <<<"$numa")" "numatune nodeset"
	qemu_user=$(ps -o user= -p "$(pgrep -f "guest=$name" | head -1)")
	assert_eq "$TEST_USER" "$qemu_user" "QEMU's user"
	assert_eq "root" "$(stat -c %U "$kernel")" "kernel owner while the guest runs"
	"$provision" stop --name "$name" --timeout 0
	! virsh -c "$LIBVIRT_URI" domstate "$name" >/dev/null 2>&1 || fail "$name still exists after stop"
done
"$provision" stop --name "$name" --timeout 0 # stopping twice is fine
pass
