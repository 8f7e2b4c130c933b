#!/bin/bash
# The README's main command: on a fresh Debian 12 machine, as root, installs
# what is missing, builds spank_vm, starts the local cluster with the plugin,
# runs a plain job and a --vm job as the unprivileged test user, shows what the
# plugin recorded for the --vm job, and stops the cluster again.
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
say "starting the local cluster (munge, slurmctld, slurmd svm1 and svm2, libvirtd)"
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

say "a --vm job: sbatch --vm --vm-hypervisor=qemu --vm-debug"
cat <<EOS | as_user tee "$work/vm.sh" >/dev/null
#!/bin/bash
touch "$work/started"
for _ in \$(seq 1 600); do [ -e "$work/release" ] && break; sleep 0.1; done
echo "job \$SLURM_JOB_ID ran on \$SLURMD_NODENAME"
EOS
id=$(as_user sbatch --parsable -o "$work/vm.out" --vm --vm-hypervisor=qemu --vm-debug "$work/vm.sh")
deadline=$((SECONDS + 60))
until [ -e "$work/started" ]; do
	((SECONDS < deadline)) || { echo "spank_vm: job $id did not start" >&2; exit 1; }
	sleep 0.1
done
node=$(scontrol show job -o "$id" | sed -n 's/.*BatchHost=\([^ ]*\).*/\1/p')
say "what the prolog recorded for job $id on $node ($RUNTIME_DIR/$node/$id/request)"
ls -ld "$RUNTIME_DIR/$node/$id"
cat "$RUNTIME_DIR/$node/$id/request"
as_user touch "$work/release"
wait_done "$id"
cat "$work/vm.out"
say "after the job, the epilog removed it: $(ls -A "$RUNTIME_DIR/$node" | wc -l) entries in $RUNTIME_DIR/$node"

say "a bad option is refused before the job queues"
as_user sbatch --vm --vm-hypervisor=vmware --wrap true || echo "(sbatch exited with status $?)"
