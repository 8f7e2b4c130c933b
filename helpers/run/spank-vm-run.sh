#!/bin/bash
# spank-vm-run: boots a spank_vm guest from a plan and runs commands in it,
# without Slurm, for developers, admins and the benchmarks. It composes the
# same programs a job uses: spank-vm-provision (plan + libvirt domain),
# spank-vm-mux (the guest's channel, run as the user) and spank-vm-exec (the
# proxy a task is replaced by), so what it shows is what a job gets.
#
#   spank-vm-run [BOOT OPTIONS] -- COMMAND...     boot, run, tear down
#   spank-vm-run up --dir DIR [BOOT OPTIONS]      boot, leave it running
#   spank-vm-run exec --dir DIR -- COMMAND...     run in a guest that is up
#   spank-vm-run down --dir DIR                   power off, remove everything
set -euo pipefail

PROG=spank-vm-run
HELPER_DIR_INSTALLED="@SPANK_VM_LIBEXECDIR@"
DEFAULT_IMAGE_DIR=/var/lib/spank_vm/images
NAME_PREFIX=svmrun-
# The state a guest started by `up` leaves in DIR (root 0711):
#   name       the libvirt domain's name
#   guest/     the user's (0700): agent.sock, console.log, mux.sock, mux.pid, mux.log
#   plan       what spank-vm-provision computed

usage() {
	cat <<EOF
usage: $PROG [BOOT OPTIONS] -- COMMAND...
       $PROG up --dir DIR [BOOT OPTIONS]
       $PROG exec --dir DIR [--wait-timeout S] -- COMMAND...
       $PROG down --dir DIR
Boots a spank_vm guest through libvirt and runs COMMAND in it as USER, with
its stdio, signals and exit status, as a --vm job's task would. Run as root.
BOOT OPTIONS:
  --user USER        who the guest's programs run as (default: \$SUDO_USER)
  --cores LIST       host cores the guest is pinned to (default: all)
  --mem SIZE         memory of the allocation (default: 1G)
  --hypervisor H     kvm, qemu or xen (default: kvm if /dev/kvm works, else qemu)
  --image NAME       a site image of the catalog (default: the built-in guest)
  --image-dir DIR    the catalog and default image (default: $DEFAULT_IMAGE_DIR)
  --kernel PATH      --initrd PATH: boot these instead of image-dir's
  --cmdline TEXT     the kernel's arguments (default: console=ttyS0 quiet panic=-1)
  --share DIR        DIR read-write at the same path in the guest (repeatable;
                     default: the current directory, if USER owns it)
  --ready-timeout S  how long the guest may take to come up (default: 90)
  --no-hard-limit    no memory hard limit (where libvirtd lacks CAP_SYS_RESOURCE)
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit "${2:-1}"
}

helper() { # NAME: the path of a spank_vm helper program
	local here
	here=$(dirname "$(readlink -f "$0")")
	if [ -x "$here/$1" ]; then
		echo "$here/$1"
	else
		echo "$HELPER_DIR_INSTALLED/$1"
	fi
}

uri() { echo "${LIBVIRT_DEFAULT_URI:-qemu:///system}"; }

# The guest directory's owner is the user (set at `up`).
guest_owner() { # DIR
	stat -c '%u:%g' "$1/guest" 2>/dev/null || die "no guest in $1 (run '$PROG up --dir $1' first)"
}

default_hypervisor() {
	if [ -w /dev/kvm ]; then echo kvm; else echo qemu; fi
}

cmd_up() {
	local dir="" user=${SUDO_USER:-} cores="" mem=1G hv="" image="" image_dir=$DEFAULT_IMAGE_DIR
	local ready_timeout=90 uid gid start_ns
	local -a boot=() shares=()
	while [ $# -gt 0 ]; do
		case "$1" in
		--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
		--user) user=${2:?--user needs a user}; shift 2 ;;
		--cores) cores=${2:?--cores needs a list}; shift 2 ;;
		--mem) mem=${2:?--mem needs a size}; shift 2 ;;
		--hypervisor) hv=${2:?--hypervisor needs kvm, qemu or xen}; shift 2 ;;
		--image) image=${2:?--image needs a name}; shift 2 ;;
		--image-dir) image_dir=${2:?--image-dir needs a directory}; shift 2 ;;
		--kernel | --initrd) boot+=("$1" "${2:?$1 needs a path}"); shift 2 ;;
		--cmdline) boot+=("$1" "${2:?--cmdline needs kernel arguments}"); shift 2 ;;
		--share) shares+=("$(readlink -f "${2:?--share needs a directory}")"); shift 2 ;;
		--ready-timeout) ready_timeout=${2:?--ready-timeout needs seconds}; shift 2 ;;
		--no-hard-limit) boot+=("$1"); shift ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -n "$dir" ] || die "up needs --dir DIR" 2
	[ -n "$user" ] || die "--user: give the user the guest's programs run as" 2
	[[ "$ready_timeout" =~ ^[1-9][0-9]{0,3}$ ]] || die "--ready-timeout: give 1..9999 seconds" 2
	uid=$(id -u "$user" 2>/dev/null) || die "--user: no user named '$user'" 2
	gid=$(id -g "$user")
	[ "$uid" -ne 0 ] || die "--user: root is not a job user" 2
	[ -n "$cores" ] || cores="0-$(($(nproc) - 1))"
	[ -n "$hv" ] || hv=$(default_hypervisor)
	[ -n "$image" ] && boot+=(--image "$image")
	if [ ${#shares[@]} -eq 0 ] && [ "$(stat -c %u .)" = "$uid" ]; then
		shares+=("$(pwd -P)")
	fi
	for share in "${shares[@]}"; do
		[ -d "$share" ] || die "--share: $share is not a directory" 2
		boot+=(--guest-share "$share")
	done
	mkdir -m 0711 "$dir" 2>/dev/null || die "--dir: cannot create $dir (it must not exist yet)" 2
	dir=$(readlink -f "$dir")
	install -d -m 0700 -o "$uid" -g "$gid" "$dir/guest"
	echo "$NAME_PREFIX$(basename "$dir" | tr -c 'A-Za-z0-9_.\n-' _)-$$" >"$dir/name"
	start_ns=$(date +%s%N)
	"$(helper spank-vm-provision)" start --cores "$cores" --mem "$mem" --hypervisor "$hv" \
		--name "$(cat "$dir/name")" --owner "$uid:$gid" --dir "$dir/guest" \
		--image-dir "$image_dir" --out "$dir/plan" --uri "$(uri)" "${boot[@]}" >/dev/null ||
		{ cmd_down --dir "$dir"; die "the guest could not be created"; }
	if ! "$(helper spank-vm-mux)" --uid "$uid" --gid "$gid" --agent-socket "$dir/guest/agent.sock" \
		--listen "$dir/guest/mux.sock" --pid-file "$dir/guest/mux.pid" \
		--ready-timeout "$ready_timeout" --log "$dir/guest/mux.log" \
		--console "$dir/guest/console.log"; then
		echo "$PROG: console: $(tail -3 "$dir/guest/console.log" 2>/dev/null)" >&2
		cmd_down --dir "$dir"
		die "the guest did not come up"
	fi
	awk -v a="$start_ns" -v b="$(date +%s%N)" -v d="$dir" -v h="$hv" \
		'BEGIN { printf "'"$PROG"': guest up in %.2f s (%s): %s\n", (b - a) / 1e9, h, d }' >&2
}

cmd_exec() {
	local dir="" wait_timeout=5 owner
	while [ $# -gt 0 ]; do
		case "$1" in
		--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
		--wait-timeout) wait_timeout=${2:?--wait-timeout needs seconds}; shift 2 ;;
		--) shift; break ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -n "$dir" ] && [ $# -gt 0 ] || die "exec needs --dir DIR -- COMMAND..." 2
	owner=$(guest_owner "$dir")
	# The proxy becomes this process: its status and signals are COMMAND's.
	exec setpriv --reuid "${owner%:*}" --regid "${owner#*:}" --init-groups \
		"$(helper spank-vm-exec)" --socket "$dir/guest/mux.sock" --wait-timeout "$wait_timeout" \
		-- "$@"
}

# The mux powers the guest off when it gets SIGTERM; its pid is the user's
# file, so it is believed only if it names a spank-vm-mux.
stop_mux() { # DIR
	local pid
	pid=$(cat "$1/guest/mux.pid" 2>/dev/null) || return 0
	[[ "$pid" =~ ^[0-9]+$ ]] || return 0
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(helper spank-vm-mux)")" ] ||
		return 0
	kill -TERM "$pid" 2>/dev/null || true
}

cmd_down() {
	local dir=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -n "$dir" ] && [ -f "$dir/name" ] || die "down needs --dir DIR of a guest made by '$PROG up'" 2
	stop_mux "$dir"
	"$(helper spank-vm-provision)" stop --name "$(cat "$dir/name")" --timeout 10 --uri "$(uri)" ||
		echo "$PROG: the domain $(cat "$dir/name") could not be stopped" >&2
	rm -rf --one-file-system "$dir"
}

# Boot, run, tear down; the status (or signal) is COMMAND's.
cmd_run() {
	local -a boot=()
	local dir status=0 sig
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		boot+=("$1")
		shift
	done
	[ $# -gt 1 ] || { usage >&2; exit 2; }
	shift
	dir=$(mktemp -u "${TMPDIR:-/tmp}/$PROG.XXXXXX")
	trap 'cmd_down --dir "$dir" >/dev/null 2>&1 || true' EXIT
	cmd_up --dir "$dir" "${boot[@]}"
	(cmd_exec --dir "$dir" -- "$@") || status=$?
	cmd_down --dir "$dir"
	trap - EXIT
	if ((status > 128)) && sig=$(kill -l "$status" 2>/dev/null); then
		trap - "$sig"
		kill -s "$sig" $$
	fi
	exit "$status"
}

main() {
	[ "$(id -u)" -eq 0 ] || die "run me as root (libvirt's system connection)"
	case "${1:-}" in
	up) shift; cmd_up "$@" ;;
	exec) shift; cmd_exec "$@" ;;
	down) shift; cmd_down "$@" ;;
	-h | --help | "") usage ;;
	*) cmd_run "$@" ;;
	esac
}

main "$@"
