#!/bin/bash
# spank-vm-image: builds the default guest's initramfs from what this host has
# installed: the static spank-vm-agent as /init, the kernel modules the agent
# loads (with their dependencies, from modules.dep) and busybox-static under
# /bin for debugging in the guest.
#
# The archive is reproducible: the same inputs give the same bytes (entries
# sorted, every mtime fixed, owner 0:0, `cpio --reproducible -H newc`,
# `gzip -n`), so a site can compare digests across nodes.
#
# Two more modes serve site images (catalog entries, --vm=NAME):
#   --install-agent DISK  writes the agent as /sbin/spank-vm-agent (0755,
#                         root) into the ext2/3/4 file system of DISK with
#                         debugfs, never mounting it; the result replaces
#                         DISK by rename, so guests still running on the old
#                         file keep it
#   --make-disk OUT       a small ext4 site image from the default image's
#                         content (busybox and its applets, the agent), no
#                         download: for tests and as a starting point
#   --make-disk OUT --bootable
#                         the same, plus what an image that boots itself
#                         (catalog boot=disk) carries: a kernel, an
#                         initramfs, the modules the agent loads and extlinux
#                         booting them with init=/sbin/spank-vm-agent. For
#                         tests and as an example: sites make their real
#                         images with their own tools
set -euo pipefail

PROG=spank-vm-image
# What the agent loads at boot (wanted_modules in helpers/agent/boot.c: the
# virtio transport and console, 9p, overlayfs, the ACPI power button and
# its input device; then disk_root_modules, only for a site image's disk as
# the root: virtio_blk, crc32c_generic that ext4 and jbd2 look up by name,
# and ext4; virtio_net only for a job network, agent/net.c); their
# dependencies come from modules.dep.
# qemu_fw_cfg shows the host's fw_cfg files, where an image that boots
# itself finds the agent's configuration.
AGENT_MODULES=(virtio_pci virtio_console 9pnet_virtio 9p overlay button evdev qemu_fw_cfg
	virtio_blk crc32c_generic ext4 virtio_net)
FIXED_MTIME=0
# Where the agent lives in a site image (its bootloader's init=).
AGENT_IN_IMAGE=/sbin/spank-vm-agent
# The fixed identity of the file systems --make-disk writes.
DISK_UUID=5a7e0000-5a7e-4000-8000-000000000001
# The kernel arguments of --bootable: the root is the whole disk (no
# partition table), as the catalog's default root=/dev/vda says.
BOOT_APPEND="root=/dev/vda init=$AGENT_IN_IMAGE console=ttyS0 quiet panic=-1"
STAGE=""   # the staging directory, removed on exit
MOUNTED="" # a mount point of ours, unmounted on exit

usage() {
	cat <<EOF
usage: $PROG --out DIR [--kernel PATH] [--agent PATH] [--busybox PATH]
       $PROG --install-agent DISK [--format raw|qcow2] [--agent PATH]
       $PROG --make-disk OUT.raw [--size SIZE] [--add DIR] [--agent PATH] [--busybox PATH]
             [--bootable [--kernel PATH] [--initrd PATH]]
Builds DIR/initrd-<kernel release>.img for the default spank_vm guest and links
DIR/vmlinuz-<kernel release> to the kernel it belongs to.
  --kernel PATH   default: the newest /boot/vmlinuz-* whose modules have 9p
  --agent PATH    default: spank-vm-agent next to this program
  --busybox PATH  default: /bin/busybox (busybox-static)
--install-agent writes the agent as $AGENT_IN_IMAGE (0755, root:root) into the
ext2/3/4 file system that fills DISK (not one on a partition), without mounting
it, and replaces DISK atomically.
  --format F      raw or qcow2; default: what qemu-img says DISK is
--make-disk makes an ext4 raw disk holding busybox (every applet linked), the
agent as $AGENT_IN_IMAGE and the usual directories. As root.
  --size SIZE     the disk's size, as mke2fs reads it; default 64M (128M
                  with --bootable)
  --add DIR       DIR's content goes into the disk's / as well
  --bootable      the disk boots itself (catalog boot=disk): the kernel as
                  /boot/vmlinuz-<release>, the initramfs as
                  /boot/initrd.img-<release>, the agent's modules under
                  /lib/modules/<release>, and extlinux (packages extlinux,
                  syslinux-common) in the file system's boot sector, booting
                  "$BOOT_APPEND".
                  Needs loop devices (extlinux installs into a mounted file
                  system). An example and a test image: sites build real
                  images with their own tools.
  --kernel PATH   with --bootable: as above
  --initrd PATH   with --bootable: an initramfs of that kernel able to mount
                  an ext4 root on virtio-blk; default /boot/initrd.img-<release>
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

# The modules the agent loads, their dependencies, the lines of modules.dep
# that name them and modules.builtin, under STAGE/lib/modules/RELEASE.
stage_modules() { # STAGE RELEASE
	local stage=$1 release=$2 mods=/lib/modules/$2 file
	mkdir -p "$stage/lib/modules/$release"
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

build_tree() { # STAGE RELEASE AGENT BUSYBOX
	local stage=$1 release=$2 agent=$3 busybox=$4
	mkdir -p "$stage"/{bin,dev,proc,sys,run}
	install -m 0755 "$agent" "$stage/init"
	install -m 0755 "$busybox" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	stage_modules "$stage" "$release"
}

pack() { # STAGE OUT
	(
		cd "$1"
		find . -mindepth 1 -exec touch -h -d "@$FIXED_MTIME" {} +
		find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
			cpio --quiet -o -H newc --reproducible --owner=0:0
	) | gzip -n -9 >"$2"
}

# ---- site images ----

need_tool() { # TOOL PACKAGE
	command -v "$1" >/dev/null || die "$1 not found (install $2)"
}

# The directory /sbin resolves to in the image: merged-/usr images have
# /sbin -> usr/sbin, and debugfs does not write through a symlink.
image_sbin() { # RAW
	local info dest
	info=$(debugfs -R 'stat /sbin' "$1" 2>/dev/null || true)
	case "$info" in
	*"Type: directory"*) echo /sbin ;;
	*"Type: symlink"*)
		dest=$(sed -n 's/^Fast link dest: "\(.*\)"$/\1/p' <<<"$info")
		[[ "$dest" =~ ^/?[A-Za-z0-9._/-]+$ && "$dest" != *..* ]] ||
			die "cannot follow the image's /sbin symlink ('$dest')"
		echo "/${dest#/}"
		;;
	"") echo "" ;; # no /sbin yet
	*) die "the image's /sbin is neither a directory nor a symlink" ;;
	esac
}

# Writes the agent into RAW's file system. debugfs exits 0 even when one of
# its commands fails, so the result is read back and compared.
install_into_raw() { # RAW AGENT
	local raw=$1 agent=$2 dir check=$STAGE/agent.check
	e2fsck -fn "$raw" >/dev/null 2>&1 ||
		die "no clean ext2/3/4 file system fills the disk (partitioned, or in need of fsck?)"
	dir=$(image_sbin "$raw")
	if [ -z "$dir" ]; then
		debugfs -w -R 'mkdir /sbin' "$raw" >/dev/null 2>&1
		dir=/sbin
	fi
	debugfs -w -f - "$raw" >/dev/null 2>&1 <<EOF
rm $dir/spank-vm-agent
write $agent $dir/spank-vm-agent
sif $dir/spank-vm-agent mode 0100755
sif $dir/spank-vm-agent uid 0
sif $dir/spank-vm-agent gid 0
EOF
	debugfs -R "dump $dir/spank-vm-agent $check" "$raw" >/dev/null 2>&1 || true
	cmp -s "$agent" "$check" || die "writing the agent into the disk failed"
	debugfs -R "stat $dir/spank-vm-agent" "$raw" 2>/dev/null |
		grep -qE '^Inode: .*Mode: +0755' || die "the agent in the disk is not mode 0755"
	e2fsck -fn "$raw" >/dev/null 2>&1 || die "the disk fails fsck after writing the agent"
}

disk_format() { # DISK
	qemu-img info -U --output=json "$1" | sed -n 's/^ *"format": "\([a-z0-9]*\)",*$/\1/p' | head -1
}

install_agent() { # DISK FORMAT AGENT
	local disk=$1 format=$2 agent=$3 work
	[ -f "$disk" ] || die "no disk at $disk"
	need_tool debugfs e2fsprogs
	need_tool qemu-img qemu-utils
	# debugfs reads its commands split at blanks.
	[[ "$agent$disk" != *[[:space:]\"]* ]] || die "the paths of the agent and the disk may hold no blanks or quotes"
	[ -n "$format" ] || format=$(disk_format "$disk")
	case "$format" in
	raw | qcow2) ;;
	*) die "$disk: cannot install into format '$format' (raw or qcow2)" ;;
	esac
	# Temporary files next to DISK, so that the last step is a rename.
	STAGE=$(mktemp -d "$(dirname "$disk")/.$PROG.XXXXXX")
	trap 'rm -rf "$STAGE"' EXIT
	work=$STAGE/disk.raw
	if [ "$format" = raw ]; then
		cp --sparse=always "$disk" "$work"
	else
		qemu-img convert -f qcow2 -O raw "$disk" "$work"
	fi
	install_into_raw "$work" "$agent"
	if [ "$format" = qcow2 ]; then
		qemu-img convert -f raw -O qcow2 "$work" "$STAGE/disk.qcow2"
		work=$STAGE/disk.qcow2
	fi
	chmod --reference="$disk" "$work"
	chown --reference="$disk" "$work"
	mv -f "$work" "$disk"
	echo "$disk: $AGENT_IN_IMAGE installed ($(stat -c %s "$agent") bytes, $format)"
}

# The image's tree: busybox with each applet where busybox says it lives,
# the agent, and the directories a root file system is expected to have.
make_disk_tree() { # STAGE AGENT BUSYBOX ADD
	local stage=$1 agent=$2 busybox=$3 add=$4 applet
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,home,mnt}
	install -d -m 1777 "$stage/tmp" "$stage/var/tmp"
	install -d -m 0700 "$stage/root"
	install -m 0755 "$busybox" "$stage/bin/busybox"
	install -m 0755 "$agent" "$stage$AGENT_IN_IMAGE"
	while read -r applet; do
		[ -e "$stage/$applet" ] || [ -L "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
	done < <("$busybox" --list-full)
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
		>"$stage/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
	if [ -n "$add" ]; then
		cp -a "$add/." "$stage/"
	fi
}

# What an image that boots itself adds: its kernel, its initramfs, the
# modules the agent loads from the image's root (the kernel's root is
# already mounted when the agent starts, so nothing else brings them), and
# the bootloader's configuration.
make_boot_tree() { # STAGE KERNEL INITRD RELEASE
	local stage=$1 kernel=$2 initrd=$3 release=$4
	install -D -m 0644 "$kernel" "$stage/boot/vmlinuz-$release"
	install -D -m 0644 "$initrd" "$stage/boot/initrd.img-$release"
	stage_modules "$stage" "$release"
	mkdir -p "$stage/boot/extlinux"
	cat >"$stage/boot/extlinux/extlinux.conf" <<EOF
# spank-vm-image --bootable: the image's kernel and initramfs, the agent as
# init (catalog boot=disk). The host's configuration reaches the agent
# through QEMU's fw_cfg, not this command line.
DEFAULT spank-vm
PROMPT 0
TIMEOUT 0
LABEL spank-vm
	LINUX /boot/vmlinuz-$release
	INITRD /boot/initrd.img-$release
	APPEND $BOOT_APPEND
EOF
}

# extlinux writes its boot sector into the file system's first sector, the
# disk's first with no partition table (the firmware boots it as a
# "superfloppy"), and ldlinux.sys, whose blocks that sector names, next to
# the configuration; it works on a mounted file system only.
install_extlinux() { # RAW
	local raw=$1
	MOUNTED=$STAGE/mnt
	mkdir -p "$MOUNTED"
	if ! mount -o loop "$raw" "$MOUNTED"; then
		MOUNTED=""
		die "cannot loop-mount $raw (--bootable needs loop devices)"
	fi
	extlinux --install "$MOUNTED/boot/extlinux" >"$STAGE/extlinux.log" 2>&1 ||
		die "extlinux failed: $(cat "$STAGE/extlinux.log")"
	umount "$MOUNTED"
	MOUNTED=""
	e2fsck -fn "$raw" >/dev/null 2>&1 || die "the disk fails fsck after installing extlinux"
}

cleanup_stage() {
	if [ -n "$MOUNTED" ]; then
		umount "$MOUNTED" 2>/dev/null || true
	fi
	rm -rf "$STAGE"
}

# make_disk OUT SIZE AGENT BUSYBOX ADD [KERNEL INITRD]: KERNEL makes it
# bootable.
make_disk() {
	local out=$1 size=$2 agent=$3 busybox=$4 add=$5 kernel=${6:-} initrd=${7:-}
	local release="" features=() what="ext4"
	[ "$(id -u)" -eq 0 ] || die "--make-disk runs as root (the image's files belong to root)"
	need_tool mke2fs e2fsprogs
	[ -z "$add" ] || [ -d "$add" ] || die "--add: no directory $add"
	if [ -n "$kernel" ]; then
		need_tool extlinux "extlinux and syslinux-common"
		[ -f "$kernel" ] || die "no kernel at $kernel"
		release=$(kernel_release "$kernel")
		[ -n "$initrd" ] || initrd=/boot/initrd.img-$release
		[ -f "$initrd" ] || die "no initramfs at $initrd (give --initrd)"
		# syslinux 6.03 cannot read 64-bit group descriptors at boot, and
		# a disk this small has no use for them.
		features=(-b 4096 -O ^64bit)
		what="ext4, boots $release with extlinux"
	fi
	STAGE=$(mktemp -d "${TMPDIR:-/tmp}/$PROG.XXXXXX")
	trap cleanup_stage EXIT
	make_disk_tree "$STAGE/root" "$agent" "$busybox" "$add"
	[ -z "$kernel" ] || make_boot_tree "$STAGE/root" "$kernel" "$initrd" "$release"
	find "$STAGE/root" -exec touch -h -d "@$FIXED_MTIME" {} +
	rm -f "$out.tmp"
	# A fixed UUID and hash seed, files of fixed mtimes: builds differ only
	# in creation and change times (mke2fs 1.47.0 takes those from the clock).
	mke2fs -q -F -t ext4 "${features[@]}" -L spank-vm -U "$DISK_UUID" \
		-E "hash_seed=$DISK_UUID,root_owner=0:0" -d "$STAGE/root" "$out.tmp" "$size" >/dev/null ||
		die "mke2fs failed (is $size enough for $(du -sh "$STAGE/root" | cut -f1)?)"
	[ -z "$kernel" ] || install_extlinux "$out.tmp"
	chmod 0644 "$out.tmp"
	mv -f "$out.tmp" "$out"
	echo "$out $(stat -c %s "$out") bytes ($what; $(du -k "$out" | cut -f1) KiB allocated; agent at $AGENT_IN_IMAGE)"
}

main() {
	local out="" kernel="" agent="" busybox=/bin/busybox mode=initramfs target="" format=""
	local size="" add="" bootable="" initrd=""
	agent="$(dirname "$(readlink -f "$0")")/spank-vm-agent"
	while [ $# -gt 0 ]; do
		case "$1" in
		--out) out=${2:?--out needs a directory}; shift 2 ;;
		--kernel) kernel=${2:?--kernel needs a path}; shift 2 ;;
		--agent) agent=${2:?--agent needs a path}; shift 2 ;;
		--busybox) busybox=${2:?--busybox needs a path}; shift 2 ;;
		--install-agent) mode=install; target=${2:?--install-agent needs a disk}; shift 2 ;;
		--format) format=${2:?--format needs raw or qcow2}; shift 2 ;;
		--make-disk) mode=disk; target=${2:?--make-disk needs an output file}; shift 2 ;;
		--size) size=${2:?--size needs a size}; shift 2 ;;
		--add) add=${2:?--add needs a directory}; shift 2 ;;
		--bootable) bootable=1; shift ;;
		--initrd) initrd=${2:?--initrd needs a path}; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
	[ -x "$agent" ] || die "no agent at $agent (build spank-vm-agent or pass --agent)"
	case "$mode" in
	install)
		install_agent "$target" "$format" "$(readlink -f "$agent")"
		return
		;;
	disk)
		[ -x "$busybox" ] || die "no busybox at $busybox (install busybox-static)"
		if [ -z "$bootable" ]; then
			[ -z "$kernel$initrd" ] || die "--kernel and --initrd go with --bootable"
			make_disk "$target" "${size:-64M}" "$agent" "$busybox" "$add"
			return
		fi
		[ -n "$kernel" ] || kernel=$(default_kernel)
		make_disk "$target" "${size:-128M}" "$agent" "$busybox" "$add" "$kernel" "$initrd"
		return
		;;
	esac
	[ -z "$bootable$initrd" ] || die "--bootable and --initrd go with --make-disk"
	[ -n "$out" ] || { usage >&2; exit 2; }
	[ -n "$kernel" ] || kernel=$(default_kernel)
	[ -f "$kernel" ] || die "no kernel at $kernel"
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
