# shellcheck shell=bash
# Shared helpers of the guest agent tests (guest_agent_*.sh): real TCG guests
# of the default image, started with spank-vm-provision and driven through
# agent_client (a minimal host end of the protocol). No Slurm is involved;
# libvirtd must run (the ctest fixture "cluster" starts it).
#
# ctest passes the programs' paths in the environment; by hand, BUILD_DIR
# (a configured and built tree) is enough:
#   BUILD_DIR=/path/to/build GUEST_PROVISION_ARGS=--no-hard-limit \
#       bash tests/integration/guest_agent_boot.sh
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$TESTS_DIR/../.." && pwd)"
# shellcheck source=../../slurm-conf/cluster.env
source "$ROOT_DIR/slurm-conf/cluster.env"
TEST_NAME="$(basename "$0" .sh)"

BUILD_DIR=${BUILD_DIR:-}
SPANK_VM_IMAGE=${SPANK_VM_IMAGE:-$BUILD_DIR/helpers/spank-vm-image}
SPANK_VM_AGENT=${SPANK_VM_AGENT:-$BUILD_DIR/helpers/spank-vm-agent}
SPANK_VM_PROVISION=${SPANK_VM_PROVISION:-$BUILD_DIR/helpers/spank-vm-provision}
AGENT_CLIENT=${AGENT_CLIENT:-$BUILD_DIR/tests/integration/agent_client}
GUEST_IMAGE_DIR=${GUEST_IMAGE_DIR:-$BUILD_DIR/tests/integration/guest_image}
# Extra options of `spank-vm-provision start` (e.g. --no-hard-limit where
# libvirtd lacks CAP_SYS_RESOURCE); the cluster's plugstack.conf says so too.
read -r -a GUEST_PROVISION_EXTRA <<<"${GUEST_PROVISION_ARGS:-}"
if [ -r "${PLUGSTACK_CONF:-}" ] && grep -q 'hard_limit=no' "$PLUGSTACK_CONF"; then
	GUEST_PROVISION_EXTRA+=(--no-hard-limit)
fi
# How long a guest may take from `start` to READY (TCG boots in seconds).
GUEST_READY_TIMEOUT=${GUEST_READY_TIMEOUT:-90}

# shellcheck source=assert_lib.sh
source "$TESTS_DIR/assert_lib.sh"

image_release() {
	local img
	img=$(find "$GUEST_IMAGE_DIR" -maxdepth 1 -name 'initrd-*.img' | sort -V | tail -1)
	[ -n "$img" ] || fail "no image in $GUEST_IMAGE_DIR (run guest_agent_image.sh first)"
	img=$(basename "$img" .img)
	echo "${img#initrd-}"
}

GUEST_NAME=""
GUEST_DIR=""
GUEST_SHARE=""
GUEST_SOCK=""

guest_cleanup() {
	if [ -n "$GUEST_NAME" ]; then
		"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null 2>&1 || true
	fi
	if [ -n "$GUEST_DIR" ] && [ -z "${KEEP_GUEST_DIR:-}" ]; then
		rm -rf "$GUEST_DIR"
	fi
	if [ -n "$GUEST_SHARE" ]; then
		rm -rf "$GUEST_SHARE"
	fi
}
trap guest_cleanup EXIT

# A directory owned by the test user (QEMU runs as that user).
user_dir() { # PREFIX
	local dir
	dir=$(mktemp -d "/tmp/$1.XXXXXX")
	chown "$TEST_USER:$TEST_USER" "$dir"
	chmod 0700 "$dir"
	echo "$dir"
}

domain_gone() {
	! virsh -c "$LIBVIRT_URI" domstate "$1" >/dev/null 2>&1
}

# guest_start [KERNEL ARGS]: starts svmdev-agent-<test> with the host's / and
# one share (a directory of the test user, the same path in the guest).
guest_start() {
	local release cmdline
	release=$(image_release)
	GUEST_NAME="svmdev-agent-${TEST_NAME//_/-}"
	[ -z "$GUEST_DIR" ] || rm -rf "$GUEST_DIR"
	[ -n "$GUEST_SHARE" ] || GUEST_SHARE=$(user_dir svmdev-agent-share)
	GUEST_DIR=$(user_dir svmdev-agent-guest)
	GUEST_SOCK="$GUEST_DIR/agent.sock"
	cmdline="${GUEST_KERNEL_ARGS:-console=ttyS0 quiet} ${1:-spank_vm.share=work:$GUEST_SHARE}"
	"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 0 >/dev/null 2>&1 || true
	"$SPANK_VM_PROVISION" start --cores 0-1 --mem 1G --hypervisor qemu --name "$GUEST_NAME" \
		--owner "$(id -u "$TEST_USER"):$(id -g "$TEST_USER")" \
		--kernel "$GUEST_IMAGE_DIR/vmlinuz-$release" \
		--initrd "$GUEST_IMAGE_DIR/initrd-$release.img" --cmdline "$cmdline" \
		--dir "$GUEST_DIR" --share /:hostroot:ro --share "$GUEST_SHARE:work" \
		"${GUEST_PROVISION_EXTRA[@]}" >/dev/null
}

# guest_boot: guest_start, then waits for READY (bounded); GUEST_READY holds
# its fields, GUEST_READY_S the seconds from start to READY.
guest_boot() {
	local start_ns
	start_ns=$(date +%s%N)
	guest_start "" # the default share
	wait_until 30 "the agent socket $GUEST_SOCK" test -S "$GUEST_SOCK"
	GUEST_READY=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --ready --timeout "$GUEST_READY_TIMEOUT") ||
		fail "no READY from the guest; console: $(tail -5 "$GUEST_DIR/console.log" 2>/dev/null)"
	# shellcheck disable=SC2034 # read by the tests
	GUEST_READY_S=$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
}

# guest_run [CLIENT OPTIONS] -- COMMAND...: runs COMMAND as the test user in
# the guest, in the share, with a minimal environment; stdout and stderr are
# the command's, the status is the command's (128 + signal if killed).
guest_run() {
	"$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 \
		--uid "$(id -u "$TEST_USER")" --gid "$(id -g "$TEST_USER")" --cwd "$GUEST_SHARE" \
		--env PATH=/usr/local/bin:/usr/bin:/bin --env HOME="$GUEST_SHARE" "$@"
}

# ready_field NAME: a field of the READY the guest sent.
ready_field() {
	sed -n "s/^$1=//p" <<<"$GUEST_READY"
}

# Programs run as the test user; uid 0 is refused (no allow_root).
assert_user_not_root() {
	local err rc=0
	assert_eq "$(id -u "$TEST_USER")" "$(guest_run -- id -u)" "uid in the guest"
	err=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid 0 --gid 0 -- id -u 2>&1) || rc=$?
	assert_eq 125 "$rc" "status when uid 0 is asked for"
	assert_contains "$err" "ERROR identity refused" "answer to uid 0"
}
