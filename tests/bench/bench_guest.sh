#!/bin/bash
# What the guest costs, side by side in one run, on real TCG guests of the
# default image (prints figures; the targets are printed, not asserted):
#   1. boot to READY through libvirt (spank-vm-provision) vs a bare
#      qemu-system-x86_64 with the same kernel, initramfs, vCPUs, memory and
#      devices, both to the agent's READY on its channel (target <= 1.15);
#   2. the round trip of `true` through spank-vm-exec + spank-vm-mux vs the
#      same `true` started by a shell in the guest (target <= 5 ms added);
#   3. stdout throughput through the proxy vs a pipe in the guest moving the
#      same bytes (target >= 0.5).
# Needs libvirtd and the default image (ctest fixtures cluster, guest_image).
source "$(dirname "$0")/../integration/guest_agent_lib.sh"

SPANK_VM_RUN=${SPANK_VM_RUN:-$BUILD_DIR/helpers/spank-vm-run}
SPANK_VM_EXEC=${SPANK_VM_EXEC:-$BUILD_DIR/helpers/spank-vm-exec}
BOOTS=${BENCH_BOOTS:-3}
EXECS=${BENCH_EXECS:-40}
STREAM_MIB=${BENCH_STREAM_MIB:-64}
RELEASE=$(image_release)
KERNEL="$GUEST_IMAGE_DIR/vmlinuz-$RELEASE"
INITRD="$GUEST_IMAGE_DIR/initrd-$RELEASE.img"
CMDLINE="console=ttyS0 quiet panic=-1"
UID_N=$(id -u "$TEST_USER")
GID_N=$(id -g "$TEST_USER")
LIBVIRT_NAME=svmdev-bench-boot
BARE_PID=""
RUN_DIR=""
SCRATCH=$(user_dir svmdev-bench)

cleanup() {
	"$SPANK_VM_PROVISION" stop --name "$LIBVIRT_NAME" --timeout 0 >/dev/null 2>&1 || true
	[ -z "$BARE_PID" ] || kill -KILL "$BARE_PID" 2>/dev/null || true
	[ -z "$RUN_DIR" ] || "$SPANK_VM_RUN" down --dir "$RUN_DIR" >/dev/null 2>&1 || true
	rm -rf "$SCRATCH"
}
trap cleanup EXIT

as_user() {
	setpriv --reuid "$UID_N" --regid "$GID_N" --init-groups "$@"
}

now_ns() { date +%s%N; }

seconds_since() { # START_NS: seconds from START_NS to now, 3 decimals
	awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

median() { # numbers...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

await_ready() { # SOCKET
	wait_until 60 "the agent socket $1" test -S "$1"
	"$AGENT_CLIENT" --socket "$1" --ready --timeout "$GUEST_READY_TIMEOUT" >/dev/null ||
		fail "no READY on $1"
}

# A libvirt boot of the plan spank-vm-provision makes for 2 cores and 1 GiB.
boot_libvirt() {
	local dir="$SCRATCH/libvirt" start
	rm -rf "$dir"
	as_user mkdir "$dir"
	start=$(now_ns)
	"$SPANK_VM_PROVISION" start --cores 0-1 --mem 1G --hypervisor qemu --name "$LIBVIRT_NAME" \
		--owner "$UID_N:$GID_N" --kernel "$KERNEL" --initrd "$INITRD" --cmdline "$CMDLINE" \
		--dir "$dir" --out "$SCRATCH/plan" "${GUEST_PROVISION_EXTRA[@]}" >/dev/null
	await_ready "$dir/agent.sock"
	seconds_since "$start"
	"$SPANK_VM_PROVISION" stop --name "$LIBVIRT_NAME" --timeout 0 >/dev/null
}

# The same guest without libvirt: what libvirt runs (see its domain log),
# less what only libvirt needs (monitor, secrets, sandbox, NUMA binding).
boot_bare() {
	local dir="$SCRATCH/bare" start mem_mib
	rm -rf "$dir"
	as_user mkdir "$dir"
	mem_mib=$(sed -n 's/^guest_mib=//p' "$SCRATCH/plan")
	start=$(now_ns)
	# Not through as_user: BARE_PID must be QEMU's own pid, not a subshell's.
	# The 64 MiB translation cache of the domain's <tcg><tb-cache>: like for like.
	setpriv --reuid "$UID_N" --regid "$GID_N" --init-groups qemu-system-x86_64 -machine q35,usb=off -accel tcg,tb-size=64 -cpu max -m "${mem_mib:-768}" \
		-smp 2,sockets=1,cores=2,threads=1 -display none -no-user-config -nodefaults \
		-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" \
		-device virtio-serial-pci,id=vs0 \
		-fsdev local,security_model=passthrough,id=fsroot,path=/,readonly=on \
		-device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot \
		-chardev "file,id=con,path=$dir/console.log" -device isa-serial,chardev=con \
		-chardev "socket,id=agent,path=$dir/agent.sock,server=on,wait=off" \
		-device virtserialport,bus=vs0.0,nr=1,chardev=agent,name=org.spank_vm.agent.0 \
		2>"$dir/qemu.log" &
	BARE_PID=$!
	await_ready "$dir/agent.sock"
	seconds_since "$start"
	kill -TERM "$BARE_PID"
	wait "$BARE_PID" 2>/dev/null || true
	BARE_PID=""
}

bench_boot() {
	local libvirt=() bare=() i l b
	for ((i = 0; i < BOOTS; i++)); do # interleaved: drifts hit both alike
		libvirt+=("$(boot_libvirt)")
		bare+=("$(boot_bare)")
	done
	l=$(median "${libvirt[@]}")
	b=$(median "${bare[@]}")
	echo "bench.guest: boot to READY (TCG, 2 vCPUs, median of $BOOTS): libvirt $l s" \
		"(${libvirt[*]}), bare qemu $b s (${bare[*]}), ratio" \
		"$(awk -v l="$l" -v b="$b" 'BEGIN { printf "%.3f", l / b }') (target <= 1.15)"
}

# In the guest: NAME SECONDS lines from the guest's own clock.
guest_floor() {
	# shellcheck disable=SC2016 # expanded in the guest
	as_user "$SPANK_VM_EXEC" --socket "$RUN_DIR/guest/mux.sock" -- bash -c '
		t0=$(date +%s%N); for ((i = 0; i < $0; i++)); do /bin/true; done; t1=$(date +%s%N)
		head -c $(($1 << 20)) /dev/zero | cat >/dev/null; t2=$(date +%s%N)
		echo "exec $(((t1 - t0) / $0))"; echo "pipe $((t2 - t1))"' "$EXECS" "$STREAM_MIB"
}

bench_exec() {
	local floor start proxy_exec proxy_stream exec_ns pipe_ns
	# The programs run in the guest in the proxy's cwd: one the guest shares.
	cd "$SCRATCH"
	RUN_DIR=$(mktemp -u /tmp/svmdev-bench-run.XXXXXX)
	"$SPANK_VM_RUN" up --dir "$RUN_DIR" --user "$TEST_USER" --cores 0-1 --mem 1G \
		--hypervisor qemu --kernel "$KERNEL" --initrd "$INITRD" --share "$SCRATCH" \
		"${GUEST_PROVISION_EXTRA[@]}" 2>/dev/null
	as_user "$SPANK_VM_EXEC" --socket "$RUN_DIR/guest/mux.sock" -- true # warm the caches
	floor=$(guest_floor)
	exec_ns=$(sed -n 's/^exec //p' <<<"$floor")
	pipe_ns=$(sed -n 's/^pipe //p' <<<"$floor")
	# shellcheck disable=SC2016 # expanded by the user's shell
	proxy_exec=$(as_user bash -c 't0=$(date +%s%N); for ((i = 0; i < $1; i++)); do
		"$0" --socket "$2" -- /bin/true; done; echo $((($(date +%s%N) - t0) / $1))' \
		"$SPANK_VM_EXEC" "$EXECS" "$RUN_DIR/guest/mux.sock")
	start=$(now_ns)
	as_user "$SPANK_VM_EXEC" --socket "$RUN_DIR/guest/mux.sock" -- \
		head -c $((STREAM_MIB << 20)) /dev/zero >/dev/null
	proxy_stream=$(($(now_ns) - start))
	awk -v g="$exec_ns" -v p="$proxy_exec" -v n="$EXECS" 'BEGIN {
		printf "bench.guest: exec round trip of true (mean of %d): in-guest shell %.2f ms, " \
			"through the proxy %.2f ms, added %.2f ms (target <= 5 ms)\n",
			n, g / 1e6, p / 1e6, (p - g) / 1e6 }'
	awk -v g="$pipe_ns" -v p="$proxy_stream" -v m="$STREAM_MIB" 'BEGIN {
		printf "bench.guest: stdout throughput of %d MiB: in-guest pipe %.1f MB/s, " \
			"through the proxy %.1f MB/s, ratio %.2f (target >= 0.5)\n",
			m, m * 1.048576e3 / (g / 1e6), m * 1.048576e3 / (p / 1e6), g / p }'
	"$SPANK_VM_RUN" down --dir "$RUN_DIR"
	RUN_DIR=""
}

bench_boot
bench_exec
