#!/bin/bash
# Installs, as root on Debian 12, every package spank_vm needs to build, test and
# run its local cluster. Idempotent and fast when nothing is missing: it asks
# dpkg which packages are absent and only then touches apt (update + install).
set -euo pipefail

# The one list of the project's Debian packages.
PACKAGES=(
    # build and static checks
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format cppcheck
    dpkg-dev file git
    # Slurm (headers for the plugin, daemons for the test cluster) and munge
    libslurm-dev slurm-wlm-basic-plugins-dev slurmd slurmctld slurm-client munge
    # job accounting of the test cluster (sacct): slurmdbd and its own MariaDB
    slurmdbd mariadb-server
    # libvirt + QEMU (TCG in tests, KVM at sites)
    libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86 qemu-utils
    # helper library dependencies and unit tests
    libhwloc-dev hwloc uuid-dev nettle-dev libcmocka-dev libxml2-dev libxml2-utils shellcheck
    # default guest: busybox, the host kernel (linux-image-amd64 has 9p; the cloud
    # kernel does not), and the tools that build the initramfs
    busybox-static linux-image-amd64 kmod cpio e2fsprogs
    # the bootloader of the test site image that boots itself (spank-vm-image
    # --make-disk --bootable)
    extlinux syslinux-common
    # MPI over Slurm: mpi/pmix dlopens libpmix.so, shipped only by libpmix-dev
    libpmix-dev mpich libmpich-dev openmpi-bin libopenmpi-dev
    # used by the cluster scripts
    iproute2 procps util-linux
    # libvirt's nwfilter (the job network's isolation) runs ebtables/iptables
    ebtables iptables
)

POLICY_RC=/usr/sbin/policy-rc.d

msg() { printf 'spank_vm: %s\n' "$*" >&2; }

# Prints the packages of PACKAGES that are not fully installed. One dpkg-query
# call: it prints nothing for unknown packages (and exits 1), hence `|| true`.
missing_packages() {
    local -A installed=()
    local pkg status
    while read -r pkg status; do
        [[ $status == ii ]] && installed[$pkg]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" \
        2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        [[ -n ${installed[$pkg]:-} ]] || printf '%s\n' "$pkg"
    done
}

# Without systemd, package scripts would start the distribution's munged/slurmd/
# libvirtd through invoke-rc.d. The cluster runs its own daemons, so a temporary
# policy-rc.d (exit 101 = "action forbidden") keeps the system ones from starting.
# An existing policy (Docker images ship one) is left as it is.
forbid_service_starts() {
    [[ -e $POLICY_RC ]] && return 0
    printf '#!/bin/sh\n# temporary, from spank_vm install-deps.sh\nexit 101\n' >"$POLICY_RC"
    chmod 0755 "$POLICY_RC"
    trap 'rm -f "$POLICY_RC"' EXIT
}

install_packages() {
    if [[ $(id -u) -ne 0 ]]; then
        msg "missing packages ($*) and not root: run this script as root"
        exit 1
    fi
    msg "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    forbid_service_starts
    apt-get -qq update
    apt-get -qq install -y --no-install-recommends "$@" >/dev/null
}

main() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    install_packages "${missing[@]}"
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -ne 0 ]]; then
        msg "still missing after apt-get install: ${missing[*]}"
        exit 1
    fi
    msg "all packages installed"
}

main "$@"
