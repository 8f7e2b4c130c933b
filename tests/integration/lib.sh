# shellcheck shell=bash
# Shared helpers of the integration tests: the real local cluster of
# slurm-conf/, jobs submitted as the unprivileged test user, and bounded waits
# on states and files (never fixed sleeps).
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$TESTS_DIR/../.." && pwd)"
# shellcheck source=../../slurm-conf/cluster.env
source "$ROOT_DIR/slurm-conf/cluster.env"
export SLURM_CONF
CLUSTER="$ROOT_DIR/slurm-conf/cluster.sh"
TEST_NAME="$(basename "$0" .sh)"

# A test that stops half-way must not leave its jobs to the next one.
cancel_test_jobs() {
	local deadline=$((SECONDS + 60))
	scancel -u "$TEST_USER" 2>/dev/null || true
	while [ -n "$(squeue -h -u "$TEST_USER" 2>/dev/null)" ] && ((SECONDS < deadline)); do
		sleep 0.1
	done
}
trap cancel_test_jobs EXIT

# shellcheck source=assert_lib.sh
source "$TESTS_DIR/assert_lib.sh"

# as_user CMD...: CMD as the test user, in its home, with the cluster's SLURM_CONF.
as_user() {
	"$CLUSTER" run-as-user "$@"
}

# The installed helper program NAME (helper_dir of the cluster's plugstack.conf).
helper_path() {
	local dir
	dir=$(tr ' ' '\n' <"$CLUSTER_DIR/etc/plugstack.conf.orig" | sed -n 's/^helper_dir=//p')
	echo "$dir/$1"
}

user_home() {
	getent passwd "$TEST_USER" | cut -d: -f6
}

# A fresh directory owned by the test user, for one test's files.
# A fresh directory in the test user's home; the last run's (kept to look at
# after a failure) goes now, so runs do not pile up.
user_workdir() {
	rm -rf "$(user_home)/${TEST_NAME}".??????
	as_user mktemp -d "$(user_home)/${TEST_NAME}.XXXXXX"
}

assert_not_contains() { # haystack needle what
	[[ "$1" != *"$2"* ]] || fail "$3: '$2' unexpectedly found in: $1"
}

job_state() {
	scontrol show job -o "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}

job_field() { # JOBID FIELD
	scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}

job_is_done() {
	case "$(job_state "$1")" in
	COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
	*) return 1 ;;
	esac
}

wait_job_done() { # JOBID [TIMEOUT]
	wait_until "${2:-120}" "job $1 to finish" job_is_done "$1"
}

# submit ARGS...: sbatch --parsable as the test user; prints the job id.
submit() {
	as_user sbatch --parsable "$@" | cut -d';' -f1
}

# The id the controller will give the next job: proves no job was created.
next_job_id() {
	local id
	id=$(submit --wrap true -o /dev/null)
	wait_job_done "$id" 60
	echo $((id + 1))
}

nodes_all_idle() {
	local states
	states=$(sinfo -h -N -o '%t' | sort -u | tr '\n' ' ')
	[ "$states" == "idle " ]
}

assert_nodes_healthy() {
	wait_until 30 "every node to be idle (sinfo: $(sinfo -h -N -o '%N %t %E' | tr '\n' ';'))" nodes_all_idle
}

# The plugin's runtime_dir is per node (runtime_dir=.../%n in plugstack.conf):
# two slurmd share this host.
node_runtime_dir() { # NODE
	echo "$RUNTIME_DIR/$1"
}

job_dir() { # JOBID [NODE]: NODE defaults to the job's batch host
	local node=${2:-}
	[ -n "$node" ] || node=$(job_field "$1" BatchHost)
	[ -n "$node" ] || fail "job $1 has no batch host (not started?)"
	echo "$(node_runtime_dir "$node")/$1"
}

# JOBID: the cpuset of the job's cgroup on its batch host.
job_cpus() {
	local node
	node=$(job_field "$1" BatchHost)
	cat "/sys/fs/cgroup/cpuset/slurm_$node/uid_$(id -u "$TEST_USER")/job_$1/cpuset.cpus"
}

# "0-2,5" -> "0,1,2,5"
expand_list() {
	local part
	for part in ${1//,/ }; do
		seq "${part%-*}" "${part#*-}"
	done | sort -n | paste -sd,
}

# DOMAIN: the host PUs its vCPUs are pinned to, sorted, comma-separated.
domain_pins() {
	virsh -c "$LIBVIRT_URI" vcpupin "$1" | awk '$1 ~ /^[0-9]+$/ { print $2 }' | sort -n | paste -sd,
}

runtime_dir_empty() {
	[ -z "$(find "$RUNTIME_DIR" -mindepth 2 -print -quit 2>/dev/null)" ]
}

# A job script that signals it is running, then waits (bounded) to be released:
# lets a test look at the node while the job holds its allocation.
held_job_script() { # DIR
	cat <<EOS
#!/bin/bash
touch "$1/started.\$SLURM_JOB_ID"
for _ in \$(seq 1 1200); do [ -e "$1/release" ] && exit 0; sleep 0.1; done
exit 3
EOS
}

# checkpoint_test_setup IMAGE: for a test of --vm-checkpoint jobs, a small
# site image IMAGE whose init is the agent (the default guest's 9p root cannot
# be saved). When the test exits, its jobs are cancelled and the image goes.
checkpoint_test_setup() {
	checkpoint_image=$1
	checkpoint_content=$(mktemp -d /tmp/svmdev-ckpt-content.XXXXXX)
	trap 'cancel_test_jobs; rm -rf "$checkpoint_content"; rm -f "$IMAGE_DIR/$checkpoint_image".{raw,image}' EXIT
	mkdir -p "$checkpoint_content/var/tmp" "$checkpoint_content/tmp"
	chmod 1777 "$checkpoint_content/var/tmp" "$checkpoint_content/tmp"
	"$(helper_path spank-vm-image)" --agent "$(helper_path spank-vm-agent)" \
		--make-disk "$IMAGE_DIR/$1.raw" --size 64M --add "$checkpoint_content" >/dev/null
	chmod 0644 "$IMAGE_DIR/$1.raw"
	printf 'disk=%s.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' "$1" \
		>"$IMAGE_DIR/$1.image"
}

# write_count_script FILE N: a job script (the test user's) that says
# "start on <the guest's boot id>", then "count 1" .. "count N", two a second.
write_count_script() {
	# shellcheck disable=SC2016 # expanded in the guest
	printf '%s\n' '#!/bin/sh' 'echo "start on $(cat /proc/sys/kernel/random/boot_id)"' 'i=0' \
		"while [ \"\$i\" -lt $2 ]; do" '	i=$((i + 1))' '	echo "count $i"' '	sleep 0.5' 'done' |
		as_user tee "$1" >/dev/null
	as_user chmod +x "$1"
}
