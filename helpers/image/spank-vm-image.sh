#!/bin/bash
# spank-vm-image: builds the default guest's initramfs from what this host has
# installed: the static spank-vm-agent as /init, the kernel modules the agent
# loads (with their dependencies, from modules.dep) and busybox-static under
# /bin for debugging in the guest.
#
# The archive is reproducible: the same inputs give the same bytes (entries
# sorted, every mtime fixed, owner 0:0, `cpio --reproducible -H newc`,
# `gzip -n`), so a site can compare digests across nodes.
set -euo pipefail

PROG=spank-vm-image
# What the agent loads at boot (wanted_modules in helpers/agent/boot.c: the
# virtio transport and console, 9p, overlayfs, the ACPI power button and
# its input device); their dependencies come from modules.dep.
AGENT_MODULES=(virtio_pci virtio_console 9pnet_virtio 9p overlay button evdev)
FIXED_MTIME=0
STAGE="" # the staging directory, removed on exit

usage() {
	cat <<EOF
usage: $PROG --out DIR [--kernel PATH] [--agent PATH] [--busybox PATH]
Builds DIR/initrd-<kernel release>.img for the default spank_vm guest and links
DIR/vmlinuz-<kernel release> to the kernel it belongs to.
  --kernel PATH   default: the newest /boot/vmlinuz-* whose modules have 9p
  --agent PATH    default: spank-vm-agent next to this program
  --busybox PATH  default: /bin/busybox (busybox-static)
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

# The release a /boot/vmlinuz-RELEASE belongs to.
kernel_release() {
	local name
	name=$(basename "$1")
	[[ "$name" == vmlinuz-* ]] || die "cannot tell the release of kernel '$1' (expected vmlinuz-RELEASE)"
	echo "${name#vmlinuz-}"
}

has_9p() {
	grep -q '/9p\.ko[^:]*:' "/lib/modules/$1/modules.dep" 2>/dev/null
}

default_kernel() {
	local k
	while read -r k; do
		if has_9p "$(kernel_release "$k")"; then
			echo "$k"
			return 0
		fi
	done < <(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V -r)
	die "no /boot/vmlinuz-* has 9p modules (install linux-image-amd64; the cloud kernel lacks 9p)"
}

# module_paths RELEASE NAME...: the module files NAME need, dependencies
# included, as paths relative to /lib/modules/RELEASE (one per line, unsorted).
module_paths() {
	local dep=/lib/modules/$1/modules.dep name file line
	shift
	for name in "$@"; do
		# modules.dep spells files with '-' or '_' as the source did.
		line=$(grep -E "(^|/)${name//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$dep" | head -1 || true)
		if [ -z "$line" ]; then
			grep -qE "/${name//[-_]/[-_]}\.ko" "/lib/modules/$1/modules.builtin" ||
				die "module $name is neither in $dep nor built in"
			continue
		fi
		for file in ${line/:/}; do
			echo "$file"
		done
	done
}

build_tree() { # STAGE RELEASE AGENT BUSYBOX
	local stage=$1 release=$2 agent=$3 busybox=$4 mods=/lib/modules/$2 file
	mkdir -p "$stage"/{bin,dev,proc,sys,run,"lib/modules/$release"}
	install -m 0755 "$agent" "$stage/init"
	install -m 0755 "$busybox" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	mapfile -t files < <(module_paths "$release" "${AGENT_MODULES[@]}" | sort -u)
	for file in "${files[@]}"; do
		install -D -m 0644 "$mods/$file" "$stage/lib/modules/$release/$file"
	done
	# Only the lines of the modules shipped: the agent resolves the load
	# order from this file.
	for file in "${files[@]}"; do
		grep -E "^${file//./\\.}:" "$mods/modules.dep"
	done | sort >"$stage/lib/modules/$release/modules.dep"
	cp "$mods/modules.builtin" "$stage/lib/modules/$release/modules.builtin"
}

pack() { # STAGE OUT
	(
		cd "$1"
		find . -mindepth 1 -exec touch -h -d "@$FIXED_MTIME" {} +
		find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
			cpio --quiet -o -H newc --reproducible --owner=0:0
	) | gzip -n -9 >"$2"
}

main() {
	local out="" kernel="" agent="" busybox=/bin/busybox
	agent="$(dirname "$(readlink -f "$0")")/spank-vm-agent"
	while [ $# -gt 0 ]; do
		case "$1" in
		--out) out=${2:?--out needs a directory}; shift 2 ;;
		--kernel) kernel=${2:?--kernel needs a path}; shift 2 ;;
		--agent) agent=${2:?--agent needs a path}; shift 2 ;;
		--busybox) busybox=${2:?--busybox needs a path}; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -n "$out" ] || { usage >&2; exit 2; }
	[ -n "$kernel" ] || kernel=$(default_kernel)
	[ -f "$kernel" ] || die "no kernel at $kernel"
	[ -x "$agent" ] || die "no agent at $agent (build spank-vm-agent or pass --agent)"
	[ -x "$busybox" ] || die "no busybox at $busybox (install busybox-static)"
	local release img
	release=$(kernel_release "$kernel")
	has_9p "$release" || die "/lib/modules/$release has no 9p module"
	mkdir -p "$out"
	STAGE=$(mktemp -d "${TMPDIR:-/tmp}/$PROG.XXXXXX")
	trap 'rm -rf "$STAGE"' EXIT
	build_tree "$STAGE/root" "$release" "$agent" "$busybox"
	img="$out/initrd-$release.img"
	pack "$STAGE/root" "$img.tmp"
	chmod 0644 "$img.tmp"
	mv -f "$img.tmp" "$img"
	ln -sfn "$(readlink -f "$kernel")" "$out/vmlinuz-$release"
	echo "$img $(stat -c %s "$img") bytes (kernel: $out/vmlinuz-$release -> $(readlink -f "$kernel"))"
}

main "$@"
