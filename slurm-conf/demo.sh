#!/bin/bash
# The README's main command: on a fresh Debian 12 machine, as root, installs
# what is missing, builds spank_vm, starts the local cluster with the plugin
# and the default guest image, and as the unprivileged test user runs a plain
# job, a `sbatch --vm` job (showing from inside its guest that it ran there,
# and from the host its vCPU pins), an MPI job in a guest and a refused bad
# option; then stops the cluster. KVM is used where it works, TCG elsewhere.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPANK_VM_BUILD_DIR:-$ROOT/build}/release"
# shellcheck source=cluster.env
source "$ROOT/slurm-conf/cluster.env"
export SLURM_CONF
CLUSTER="$ROOT/slurm-conf/cluster.sh"

say() { printf '\n== %s\n' "$*"; }
as_user() { "$CLUSTER" run-as-user "$@"; }

[ "$(id -u)" -eq 0 ] || { echo "spank_vm: demo.sh must run as root" >&2; exit 1; }
bash "$ROOT/slurm-conf/install-deps.sh"
say "building spank_vm"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
say "starting the local cluster (munge, slurmdbd and MariaDB, slurmctld, slurmd svm1 and svm2, libvirtd)"
bash "$CLUSTER" up --build "$BUILD"
trap 'say "stopping the local cluster"; bash "$CLUSTER" down' EXIT
sinfo

home=$(getent passwd "$TEST_USER" | cut -d: -f6)
work=$(as_user mktemp -d "$home/demo.XXXXXX")

wait_done() { # JOBID
	local deadline=$((SECONDS + 120))
	until scontrol show job -o "$1" | grep -qE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT)'; do
		((SECONDS < deadline)) || { echo "spank_vm: job $1 did not finish" >&2; exit 1; }
		sleep 0.2
	done
}

say "a plain job: sbatch --wrap 'hostname; id -un; nproc'"
id=$(as_user sbatch --parsable -o "$work/plain.out" --wrap 'hostname; id -un; nproc')
wait_done "$id"
cat "$work/plain.out"

# KVM where it works, TCG where it does not: /dev/kvm may exist while nested
# KVM hangs guests, so boot the host kernel under KVM to its panic (no root:
# panic=-1 and -no-reboot end QEMU) within a bound.
kvm_works() {
	local kernel log
	[ -w /dev/kvm ] || return 1
	kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
	log=$(mktemp)
	timeout 15 qemu-system-x86_64 -accel kvm -m 256 -display none -no-reboot -nodefaults \
		-kernel "$kernel" -append "console=ttyS0 panic=-1" -serial "file:$log" 2>/dev/null &&
		grep -q "Kernel panic" "$log"
	local rc=$?
	rm -f "$log"
	return "$rc"
}
if kvm_works; then
	hv=kvm
	say "KVM works here: guests use hypervisor kvm"
else
	hv=qemu
	say "KVM does not work here (no /dev/kvm, or a KVM guest did not run within 15 s): guests use TCG (hypervisor qemu)"
fi

say "a --vm job: sbatch --vm --vm-hypervisor=$hv --vm-debug -c 2 --mem 1G"
cat <<'EOS' | as_user tee "$work/vm.sh" >/dev/null
#!/bin/bash
echo "inside the guest of job $SLURM_JOB_ID on $SLURMD_NODENAME:"
echo "  boot id  $(cat /proc/sys/kernel/random/boot_id)"
echo "  kernel   $(uname -r), $(nproc) vCPUs, $(awk '/^MemTotal/ { print $2 " " $3 }' /proc/meminfo) of memory"
echo "  user     $(id -un) (uid $(id -u)), in $PWD"
touch started
for _ in $(seq 1 600); do [ -e release ] && break; sleep 0.1; done
EOS
id=$(as_user sbatch --parsable -D "$work" -o "$work/vm.out" --vm --vm-hypervisor="$hv" --vm-debug \
	-c 2 --mem 1G "$work/vm.sh")
deadline=$((SECONDS + 120))
until [ -e "$work/started" ]; do
	((SECONDS < deadline)) || { echo "spank_vm: job $id did not start" >&2; exit 1; }
	sleep 0.1
done
node=$(scontrol show job -o "$id" | sed -n 's/.*BatchHost=\([^ ]*\).*/\1/p')
say "on the host: job $id's guest spank_vm-$node-$id, its vCPU pins and the job's cores"
echo "host boot id $(cat /proc/sys/kernel/random/boot_id)"
virsh -c "$LIBVIRT_URI" vcpupin "spank_vm-$node-$id"
echo "the job's cpuset: $(cat "/sys/fs/cgroup/cpuset/slurm_$node/uid_$(id -u "$TEST_USER")/job_$id/cpuset.cpus")"
grep '^describe=' "$RUNTIME_DIR/$node/$id/plan"
as_user touch "$work/release"
wait_done "$id"
say "the job's output"
cat "$work/vm.out"
say "after the job: $(virsh -c "$LIBVIRT_URI" list --name | grep -c "^spank_vm-" || true) guests, $(ls -A "$RUNTIME_DIR/$node" | wc -l) entries in $RUNTIME_DIR/$node"

say "MPI in a guest: srun --vm --vm-hypervisor=$hv --mpi=pmi2 -n 2 (MPICH, MPI_Allreduce and a ring)"
mpicc.mpich -O2 -o "$work/mpi_ranks" "$ROOT/tests/integration/mpi_ranks.c"
chown "$TEST_USER:" "$work/mpi_ranks"
as_user srun --vm --vm-hypervisor="$hv" --mpi=pmi2 -N1 -n2 -c1 --mem 1G -D "$work" "$work/mpi_ranks" |
	sort

say "a bad option is refused before the job queues"
as_user sbatch --vm --vm-hypervisor=vmware --wrap true || echo "(sbatch exited with status $?)"
