#!/bin/bash
# Starts and stops the local spank_vm test cluster: our own munged, a MariaDB
# and slurmdbd for job accounting (sacct), one slurmctld and two slurmd
# (`slurmd -N svm1|svm2`) on this host, plus libvirtd/virtlogd when they are not
# running yet. Everything lives in CLUSTER_DIR (cluster.env); the host's
# /etc/slurm, /etc/munge and /etc/mysql are never used. PID 1 need not be systemd.
#
#   cluster.sh up [--build BUILD_DIR]   start (with the plugin installed from a build)
#   cluster.sh down                     stop everything and remove CLUSTER_DIR
#   cluster.sh status                   say whether it runs (exit 0), not (exit 3) or in part (exit 1)
#   cluster.sh run-as-user CMD...       run CMD as the test user, SLURM_CONF set
#   cluster.sh env                      print `export ...` lines for eval
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=cluster.env
source "$HERE/cluster.env"

read -ra NODE_LIST <<<"$NODES"
read -ra PORT_LIST <<<"$NODE_PORTS"
# Our records of the daemons we started, one "PID COMM" file each: `down` stops
# exactly these, and `up` refuses to run while one of them is alive.
PIDS_DIR="$CLUSTER_DIR/pids"
# Set in the environment of slurmctld/slurmd; slurmstepd and whatever it spawns
# inherit it, which lets `down` find this cluster's leftover processes.
DAEMON_MARK="SPANK_VM_CLUSTER_OF=$CLUSTER_DIR"
UP_TIMEOUT="${SPANK_VM_UP_TIMEOUT:-60}"
STOP_TIMEOUT=10
STRAY_TIMEOUT=2
LIBVIRT_QEMU_DIR=/var/lib/libvirt/qemu
LIBVIRT_RUN_DIR=/run/libvirt
LIBVIRT_LOG_DIR=/var/log/libvirt
DEFAULT_NET_AUTOSTART=/etc/libvirt/qemu/networks/autostart/default.xml
DOWN_RC=0

msg() { printf 'spank_vm: %s\n' "$*" >&2; }
die() {
    msg "$*"
    exit 1
}

usage() {
    sed -n 's/^#   //p' "${BASH_SOURCE[0]}" | sed 's/^/spank_vm: usage: /' >&2
    exit 2
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "cluster.sh $1 must run as root"
}

# Runs a Slurm client against this cluster.
slurm() { SLURM_CONF="$SLURM_CONF" "$@"; }

virsh_q() { timeout 20 virsh -q -c "$LIBVIRT_URI" "$@"; }

# Polls "$@" every 0.1 s until it succeeds; fails after $1 seconds. (Microseconds
# from EPOCHREALTIME: SECONDS would make a 2 s bound anything from 1 to 2 s.)
wait_for() {
    local deadline=$((${EPOCHREALTIME//[!0-9]/} + $1 * 1000000))
    shift
    until "$@"; do
        ((${EPOCHREALTIME//[!0-9]/} < deadline)) || return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------- processes

# True if PID is alive (not a zombie) and its name is COMM: a recycled pid of
# another program is never taken for ours.
pid_alive() {
    local stat state comm
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    comm=${stat#*(}
    comm=${comm%)*}
    state=${stat##*) }
    state=${state%% *}
    [[ $comm == "$2" && $state != Z ]]
}

record_pid() { printf '%s %s\n' "$2" "$3" >"$PIDS_DIR/$1.pid"; }

# Prints "PID:COMM" for each recorded daemon matching the glob patterns that is alive.
recorded_alive() {
    local pattern file pid comm
    [[ -d $PIDS_DIR ]] || return 0
    for pattern in "$@"; do
        for file in "$PIDS_DIR"/$pattern.pid; do
            [[ -e $file ]] || continue
            read -r pid comm <"$file"
            if pid_alive "$pid" "$comm"; then printf '%s:%s\n' "$pid" "$comm"; fi
        done
    done
}

all_dead() {
    local t
    for t in "$@"; do
        if pid_alive "${t%%:*}" "${t#*:}"; then return 1; fi
    done
}

# Prints the "PID:COMM" arguments that are still alive.
alive_of() {
    local t
    for t in "$@"; do
        if pid_alive "${t%%:*}" "${t#*:}"; then printf '%s\n' "$t"; fi
    done
}

# True if a live (non-zombie) process is named COMM. Plain pgrep is not enough:
# PID 1 here reaps orphans late, and their zombies keep their names meanwhile.
running() {
    local pid
    for pid in $(pgrep -x "$1"); do
        if pid_alive "$pid" "$1"; then return 0; fi
    done
    return 1
}

# stop_procs SECONDS PID:COMM...: TERM, a bounded wait, then KILL.
stop_procs() {
    local timeout=$1 t left
    shift
    (($# > 0)) || return 0
    for t in "$@"; do kill -TERM "${t%%:*}" 2>/dev/null || true; done
    wait_for "$timeout" all_dead "$@" && return 0
    left=$(alive_of "$@" | tr '\n' ' ')
    msg "still running after ${timeout} s, sending KILL: ${left% }"
    for t in "$@"; do kill -KILL "${t%%:*}" 2>/dev/null || true; done
    wait_for 5 all_dead "$@" && return 0
    msg "could not stop: $(alive_of "$@" | tr '\n' ' ')"
    DOWN_RC=1
}

stop_recorded() {
    local targets
    mapfile -t targets < <(recorded_alive "$@")
    stop_procs "$STOP_TIMEOUT" "${targets[@]}"
}

# Daemons must not keep the caller's pipes or extra descriptors (a test harness
# capturing our output would otherwise wait for them forever), its working
# directory (it could not be removed or unmounted) or its umask.
detach_from_caller() {
    local fd
    for fd in "/proc/$BASHPID/fd/"*; do
        fd=${fd##*/}
        if ((fd > 2)); then exec {fd}>&-; fi
    done
    cd /
    umask 022
}

# Starts a foreground daemon (slurm's -D) in its own session, so a Ctrl-C or
# hangup of the caller does not reach it, with output to log/NAME.out.
spawn_daemon() {
    local name=$1 comm=$2
    shift 2
    (
        detach_from_caller
        exec setsid env "$DAEMON_MARK" "$@" </dev/null >>"$CLUSTER_DIR/log/$name.out" 2>&1
    ) &
    local pid=$!
    # Until the exec chain is done the child is still named bash/setsid/env.
    wait_for 10 exec_done "$pid" "$comm" "$name" || die "$name failed to start, see $CLUSTER_DIR/log/$name.out"
    record_pid "$name" "$pid" "$comm"
}

# exec_done PID COMM NAME: true once PID runs COMM; dies at once if PID is gone.
exec_done() {
    [[ -e /proc/$1 ]] || die "$3 exited at once, see $CLUSTER_DIR/log/$3.out"
    pid_alive "$1" "$2"
}

# Runs a daemon that forks into the background by itself and returns once it is
# ready (munged, virtlogd -d, libvirtd -d); records the pid from its pid file.
run_daemonizing() {
    local name=$1 comm=$2 pidfile=$3
    shift 3
    (
        detach_from_caller
        exec "$@" </dev/null >>"$CLUSTER_DIR/log/$name.out" 2>&1
    ) || die "$name failed to start, see $CLUSTER_DIR/log/$name.out"
    wait_for 10 test -s "$pidfile" || die "$name wrote no pid file $pidfile"
    record_pid "$name" "$(<"$pidfile")" "$comm"
}

# ---------------------------------------------------------------- up

check_not_running() {
    local alive
    alive=$(recorded_alive '*' | tr '\n' ' ')
    [[ -z $alive ]] ||
        die "a cluster is already running in $CLUSTER_DIR (pids ${alive% }); stop it with: cluster.sh down"
}

# sun_path holds 108 bytes: a long SPANK_VM_CLUSTER_DIR would break munged or
# MariaDB late.
check_socket_path() {
    local path
    for path in "$MUNGE_SOCKET" "$MARIADB_SOCKET"; do
        ((${#path} < 100)) ||
            die "socket path too long (${#path} > 99 bytes): $path; set a shorter SPANK_VM_CLUSTER_DIR"
    done
}

ensure_test_user() {
    id -u "$TEST_USER" >/dev/null 2>&1 && return 0
    msg "creating test user $TEST_USER"
    useradd -m -s /bin/bash "$TEST_USER"
}

make_dirs() {
    local dir node
    for dir in "" etc state spool log run pids munge images tmp; do
        install -d -m 0755 "$CLUSTER_DIR/$dir"
    done
    for node in "${NODE_LIST[@]}"; do
        install -d -m 0755 "$CLUSTER_DIR/spool/$node"
        # TmpFS of the node: every job user writes there (mpi/pmix client dirs).
        install -d -m 1777 "$CLUSTER_DIR/tmp/$node"
    done
}

# Installs the build into CLUSTER_DIR/stage and sets PLUGIN_SO and HELPER_DIR.
stage_build() {
    local build=$1 stage="$CLUSTER_DIR/stage" log="$CLUSTER_DIR/log/cmake-install.log"
    [[ -d $build ]] || die "no build directory: $build"
    if ! DESTDIR="$stage" cmake --install "$build" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "cmake --install $build failed (log above)"
    fi
    # srun/sbatch load the plugin as the job user: it must be readable by all.
    chmod -R a+rX "$stage"
    PLUGIN_SO=$(find "$stage" -type f -name spank_vm.so -print -quit)
    HELPER_DIR=$(find "$stage" -type d -path '*/libexec/spank_vm' -print -quit)
    [[ -n $PLUGIN_SO ]] || die "no spank_vm.so installed below $stage"
    [[ -n $HELPER_DIR ]] || die "no libexec/spank_vm installed below $stage"
    msg "staged $PLUGIN_SO"
    build_guest_image
}

# The default guest (host kernel + spank_vm's initramfs) in image_dir, built
# by the staged spank-vm-image from the staged agent.
build_guest_image() {
    local log="$CLUSTER_DIR/log/spank-vm-image.log"
    [[ -x $HELPER_DIR/spank-vm-image ]] || return 0
    mkdir -p "$IMAGE_DIR"
    chmod 0755 "$IMAGE_DIR"
    if ! "$HELPER_DIR/spank-vm-image" --out "$IMAGE_DIR" >"$log" 2>&1; then
        cat "$log" >&2
        die "building the default guest image failed (log above)"
    fi
    chmod -R a+rX "$IMAGE_DIR"
    msg "default guest image: $(tail -n 1 "$log")"
}

# Escapes a value for the replacement side of sed's s|...|...|.
sed_value() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# render TEMPLATE OUTPUT NAME=VALUE...: substitutes every @NAME@.
render() {
    local template=$1 out=$2 kv
    shift 2
    local script=()
    for kv in "$@"; do
        script+=(-e "s|@${kv%%=*}@|$(sed_value "${kv#*=}")|g")
    done
    sed "${script[@]}" "$template" >"$out"
    if grep -n '@[A-Z0-9_]*@' "$out" >&2; then
        die "unsubstituted template variables in $out"
    fi
}

# The host's CPU topology as slurm.conf node attributes, from `slurmd -C`.
host_topology() {
    local line tok topo=()
    line=$(slurmd -C)
    for tok in ${line%%$'\n'*}; do
        case ${tok%%=*} in
        CPUs | Boards | SocketsPerBoard | CoresPerSocket | ThreadsPerCore) topo+=("$tok") ;;
        esac
    done
    ((${#topo[@]} == 5)) || die "cannot read the host topology from 'slurmd -C': $line"
    printf '%s\n' "${topo[*]}"
}

write_slurm_conf() {
    ((${#NODE_LIST[@]} == 2 && ${#PORT_LIST[@]} == 2)) ||
        die "slurm.conf.in has two nodes; cluster.env sets NODES='$NODES' NODE_PORTS='$NODE_PORTS'"
    render "$HERE/slurm.conf.in" "$SLURM_CONF" \
        "CLUSTER_DIR=$CLUSTER_DIR" "HOSTNAME=$(hostname -s)" "CLUSTER_NAME=$CLUSTER_NAME" \
        "SLURMCTLD_PORT=$SLURMCTLD_PORT" "MUNGE_SOCKET=$MUNGE_SOCKET" \
        "SLURMDBD_PORT=$SLURMDBD_PORT" \
        "NODE1=${NODE_LIST[0]}" "NODE1_PORT=${PORT_LIST[0]}" \
        "NODE2=${NODE_LIST[1]}" "NODE2_PORT=${PORT_LIST[1]}" \
        "TOPOLOGY=$(host_topology)" "REAL_MEMORY=4096"
    install -m 0644 "$HERE/cgroup.conf" "$CLUSTER_DIR/etc/cgroup.conf"
}

# libvirt raises the emulator's RLIMIT_MEMLOCK to a guest's memory hard limit,
# which needs CAP_SYS_RESOURCE. Some containers (this CI's among them) drop it:
# there the cluster runs with hard_limit=no, and says so.
host_plugstack_args() {
    local cap_eff
    cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
    if (((16#$cap_eff >> 24) & 1)); then
        return
    fi
    msg "no CAP_SYS_RESOURCE here: guests run without a memory hard limit (hard_limit=no)"
    printf 'hard_limit=no'
}

# The guests' job network (--vm-net=cluster): one bridge for both nodes
# (they share this host), without an address, so guests never reach the
# host through it. The plugin's libvirt nwfilter keeps each job to itself.
GUEST_BRIDGE=svmbr0

start_guest_bridge() {
    if ! ip link show "$GUEST_BRIDGE" >/dev/null 2>&1; then
        ip link add "$GUEST_BRIDGE" type bridge || die "cannot create the bridge $GUEST_BRIDGE"
    fi
    ip link set "$GUEST_BRIDGE" up || die "cannot bring $GUEST_BRIDGE up"
}

# The nwfilter spank-vm-provision defined is libvirt configuration: ours to
# remove while our libvirtd runs; then the bridge, once no guest port is on it.
remove_guest_network() {
    if [[ -e $PIDS_DIR/libvirtd.pid ]] && running libvirtd; then
        virsh_q nwfilter-undefine spank_vm-job >/dev/null 2>&1 || true
    fi
    if ip link show "$GUEST_BRIDGE" >/dev/null 2>&1; then
        ip link del "$GUEST_BRIDGE" || { msg "cannot remove the bridge $GUEST_BRIDGE"; DOWN_RC=1; }
    fi
}

# With a build: the one plugin line (template comments dropped, so tests can
# edit the line and restore it from plugstack.conf.orig). Without: empty.
write_plugstack_conf() {
    : >"$PLUGSTACK_CONF"
    if [[ -n ${PLUGIN_SO:-} ]]; then
        render "$HERE/plugstack.conf.in" "$PLUGSTACK_CONF.tmp" \
            "PLUGIN_SO=$PLUGIN_SO" "RUNTIME_DIR=$RUNTIME_DIR" "HELPER_DIR=$HELPER_DIR" \
            "IMAGE_DIR=$IMAGE_DIR" \
            "PLUGSTACK_ARGS=net_bridge=$GUEST_BRIDGE $(host_plugstack_args) ${SPANK_VM_PLUGSTACK_ARGS:-}"
        sed -e '/^#/d' -e 's/[[:space:]]*$//' "$PLUGSTACK_CONF.tmp" >"$PLUGSTACK_CONF"
        rm -f "$PLUGSTACK_CONF.tmp"
    fi
    cp "$PLUGSTACK_CONF" "$PLUGSTACK_CONF.orig"
}

write_configs() {
    write_slurm_conf
    write_plugstack_conf
    chmod 0644 "$CLUSTER_DIR"/etc/*
    runuser -u "$TEST_USER" -- test -r "$SLURM_CONF" ||
        die "$TEST_USER cannot read $SLURM_CONF: every parent of $CLUSTER_DIR must be world-searchable"
}

start_munge() {
    local key="$CLUSTER_DIR/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$key"
    else
        (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
    fi
    chmod 0600 "$key"
    # The socket's directory is 0755 so that the job user's srun can reach it.
    run_daemonizing munged munged "$CLUSTER_DIR/run/munged.pid" \
        munged --force --socket="$MUNGE_SOCKET" --key-file="$key" \
        --pid-file="$CLUSTER_DIR/run/munged.pid" --log-file="$CLUSTER_DIR/log/munged.log" \
        --seed-file="$CLUSTER_DIR/munge/munged.seed"
}

# ---------------------------------------------------------------- accounting

# The cluster's own MariaDB, for slurmdbd alone: a fresh data directory, the
# server running as the mysql user (it drops root itself, so the recorded pid
# stays the server's), reachable through its socket only.
#
# Its data directory takes about 2 s to make: mariadb-install-db runs in the
# background while the build is staged, and start_mariadb waits for it.
MARIADB_INIT_PID=""
MARIADB_INIT_LOG=""

init_mariadb() {
    render "$HERE/mariadb.cnf.in" "$MARIADB_CNF" \
        "MARIADB_DIR=$MARIADB_DIR" "MARIADB_SOCKET=$MARIADB_SOCKET"
    install -d -o mysql -g mysql -m 0750 "$MARIADB_DIR" "$MARIADB_DIR/tmp"
    MARIADB_INIT_LOG="$CLUSTER_DIR/log/mariadb-install-db.log"
    mariadb-install-db --defaults-file="$MARIADB_CNF" --skip-test-db \
        --auth-root-authentication-method=socket </dev/null >"$MARIADB_INIT_LOG" 2>&1 &
    MARIADB_INIT_PID=$!
}

# Waits for init_mariadb's mariadb-install-db; true if it succeeded.
init_mariadb_done() {
    local pid=$MARIADB_INIT_PID
    [[ -n $pid ]] || return 0
    MARIADB_INIT_PID=""
    wait "$pid"
}

start_mariadb() {
    if ! init_mariadb_done; then
        tail -n 20 "$MARIADB_INIT_LOG" >&2
        die "mariadb-install-db failed (log above)"
    fi
    spawn_daemon mariadb mariadbd mariadbd --defaults-file="$MARIADB_CNF"
    wait_for "$UP_TIMEOUT" mariadb_answers ||
        die "MariaDB does not answer on $MARIADB_SOCKET within ${UP_TIMEOUT} s"
}

# The clients log in as MariaDB's root: the system root, through the socket.
mariadb_client() { "$1" --defaults-file="$MARIADB_CNF" --user=root "${@:2}"; }

mariadb_answers() {
    daemons_alive mariadb
    mariadb_client mariadb-admin --connect-timeout=2 status >/dev/null 2>&1
}

# slurmdbd's database and its user, with a fresh random password that only
# slurmdbd.conf (0600) keeps. The SQL goes through stdin, never argv.
create_acct_db() {
    local pass
    pass=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    mariadb_client mariadb --batch <<SQL ||
CREATE DATABASE \`$ACCT_DB_NAME\`;
CREATE USER '$ACCT_DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON \`$ACCT_DB_NAME\`.* TO '$ACCT_DB_USER'@'localhost';
SQL
        die "cannot create the accounting database $ACCT_DB_NAME and its user $ACCT_DB_USER"
    # slurmdbd refuses a slurmdbd.conf other than 0600 and not the SlurmUser's:
    # the file exists with that mode before the password goes in.
    install -m 0600 -o root -g root /dev/null "$SLURMDBD_CONF"
    render "$HERE/slurmdbd.conf.in" "$SLURMDBD_CONF" \
        "CLUSTER_DIR=$CLUSTER_DIR" "MUNGE_SOCKET=$MUNGE_SOCKET" "SLURMDBD_PORT=$SLURMDBD_PORT" \
        "ACCT_DB_NAME=$ACCT_DB_NAME" "ACCT_DB_USER=$ACCT_DB_USER" "ACCT_DB_PASS=$pass"
}

# The clusters slurmdbd knows, one name a line; fails when it does not answer.
known_clusters() {
    slurm timeout 10 sacctmgr -n -P show cluster format=cluster 2>/dev/null
}

dbd_answers() {
    daemons_alive slurmdbd
    known_clusters >/dev/null
}

cluster_registered() { known_clusters | grep -qxF "$CLUSTER_NAME"; }

# slurmdbd finds slurmdbd.conf next to SLURM_CONF, and MariaDB's socket in
# MYSQL_UNIX_PORT (slurmdbd.conf.in). It answers once its tables exist; the
# cluster is registered before slurmctld first reports to it.
start_accounting() {
    start_mariadb
    create_acct_db
    spawn_daemon slurmdbd slurmdbd \
        env SLURM_CONF="$SLURM_CONF" MYSQL_UNIX_PORT="$MARIADB_SOCKET" slurmdbd -D
    wait_for "$UP_TIMEOUT" dbd_answers ||
        die "slurmdbd does not answer on port $SLURMDBD_PORT within ${UP_TIMEOUT} s"
    if ! cluster_registered; then
        slurm sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null ||
            die "sacctmgr cannot add the cluster $CLUSTER_NAME"
    fi
}

# libvirt's "default" NAT network would start a dnsmasq that outlives us. With
# libvirtd down, removing the autostart link is what `net-autostart --disable` does.
disable_default_network_offline() {
    running libvirtd || rm -f "$DEFAULT_NET_AUTOSTART"
}

disable_default_network() {
    local info
    info=$(virsh_q net-info default 2>/dev/null) || return 0
    if grep -Eq '^Autostart: +yes' <<<"$info"; then
        virsh_q net-autostart default --disable >/dev/null
    fi
    # Destroy it only in a libvirtd of ours: in another one it is not ours to stop.
    if [[ -e $PIDS_DIR/libvirtd.pid ]] && grep -Eq '^Active: +yes' <<<"$info"; then
        virsh_q net-destroy default >/dev/null
    fi
}

start_libvirt() {
    # Security model (DESIGN.md 6): QEMU runs as the job user, who must be able
    # to reach the per-domain files below this directory; Debian ships it 0750.
    chmod 0711 "$LIBVIRT_QEMU_DIR"
    # No libvirt daemon ran before us: `down` may remove their runtime state too.
    [[ -e $LIBVIRT_RUN_DIR ]] || : >"$PIDS_DIR/libvirt-run-dir.created"
    disable_default_network_offline
    if ! running virtlogd; then
        run_daemonizing virtlogd virtlogd "$CLUSTER_DIR/run/virtlogd.pid" \
            virtlogd -d --pid-file="$CLUSTER_DIR/run/virtlogd.pid"
    fi
    if ! running libvirtd; then
        run_daemonizing libvirtd libvirtd "$CLUSTER_DIR/run/libvirtd.pid" \
            libvirtd -d --pid-file="$CLUSTER_DIR/run/libvirtd.pid"
    fi
    wait_for 30 virsh_q version >/dev/null ||
        die "libvirtd does not answer on $LIBVIRT_URI within 30 s"
    disable_default_network
}

# Fails start-up at once when a daemon died instead of waiting for a timeout.
daemons_alive() {
    local name
    for name in "$@"; do
        [[ -n $(recorded_alive "$name") ]] || die "$name exited during start-up"
    done
}

ctld_answers() {
    daemons_alive slurmctld
    slurm scontrol ping 2>/dev/null | grep -q ' is UP'
}

nodes_idle() {
    local out node
    daemons_alive slurmctld "${NODE_LIST[@]/#/slurmd-}"
    out=$(slurm sinfo -h -N -o '%N %t' 2>/dev/null) || return 1
    for node in "${NODE_LIST[@]}"; do
        grep -qx "$node idle" <<<"$out" || return 1
    done
}

# slurmd registers once at start: start it only when slurmctld answers.
start_slurm() {
    local node
    spawn_daemon slurmctld slurmctld slurmctld -D -i -f "$SLURM_CONF"
    wait_for "$UP_TIMEOUT" ctld_answers || die "slurmctld does not answer within ${UP_TIMEOUT} s"
    for node in "${NODE_LIST[@]}"; do
        # SLURM_CONF in slurmd's environment, as a site sets it when its
        # slurm.conf is not at the default path: spank_vm's helpers that ask
        # slurmctld about a job (spank-vm-requeued) find it there.
        spawn_daemon "slurmd-$node" slurmd env SLURM_CONF="$SLURM_CONF" slurmd -D -N "$node" -f "$SLURM_CONF"
    done
    wait_for "$UP_TIMEOUT" nodes_idle ||
        die "nodes ${NODE_LIST[*]} not idle within ${UP_TIMEOUT} s: $(slurm sinfo -h -N -o '%N=%t' 2>&1 | tr '\n' ' ')"
}

# The slurm daemons' .out files repeat their logs (-D logs to stderr too).
print_log_tails() {
    local log
    for log in "$CLUSTER_DIR"/log/slurmctld.log "$CLUSTER_DIR"/log/slurmd.*.log \
        "$CLUSTER_DIR"/log/slurmdbd.log "$CLUSTER_DIR"/log/{munged,mariadb,virtlogd,libvirtd}.out; do
        [[ -s $log ]] || continue
        printf '==> %s <==\n' "$log" >&2
        tail -n 10 "$log" >&2
    done
}

# EXIT trap of `up`: a failed start leaves nothing running.
on_up_exit() {
    local rc=$?
    ((rc != 0)) || return 0
    init_mariadb_done || true
    print_log_tails
    msg "start-up failed; stopping what was started (logs kept in ${CLUSTER_DIR}.last-logs)"
    cmd_down || true
    exit "$rc"
}

cmd_up() {
    local build=""
    while (($# > 0)); do
        case $1 in
        --build)
            (($# >= 2)) || die "--build needs a build directory"
            build=$2
            shift 2
            ;;
        *) usage ;;
        esac
    done
    require_root up
    check_not_running
    if [[ -e $CLUSTER_DIR ]]; then
        msg "removing the remains of an earlier cluster in $CLUSTER_DIR"
        cmd_down
    fi
    check_socket_path
    bash "$HERE/install-deps.sh"
    ensure_test_user
    make_dirs
    trap on_up_exit EXIT
    init_mariadb
    [[ -z $build ]] || stage_build "$(realpath "$build")"
    write_configs
    start_munge
    start_accounting
    start_guest_bridge
    start_libvirt
    start_slurm
    trap - EXIT
    msg "cluster up in $CLUSTER_DIR: ${NODE_LIST[*]} idle, accounting in slurmdbd (port $SLURMDBD_PORT); plugin: ${PLUGIN_SO:-none}"
}

# ---------------------------------------------------------------- down

# Lets Slurm end the jobs itself first (epilog, the plugin's own teardown), bounded.
# Jobs already COMPLETING are only waited for.
cancel_jobs() {
    [[ -n $(recorded_alive slurmctld) ]] || return 0
    local jobs
    jobs=$(slurm squeue -h -t PD,CF,R,S -o %i 2>/dev/null) || return 0
    if [[ -n $jobs ]]; then
        msg "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
        # shellcheck disable=SC2086  # one job id per word
        slurm scancel $jobs 2>/dev/null || true
    fi
    wait_for 20 jobs_gone || msg "jobs still present after 20 s, killing their processes"
}

jobs_gone() { [[ -z $(slurm squeue -h -o %i 2>/dev/null) ]]; }

# The spank_vm-* domains are ours by name, whichever libvirtd runs them.
# In parallel: libvirt takes a second or two to destroy each QEMU.
destroy_domains() {
    local names name
    names=$(virsh_q list --all --name 2>/dev/null) || return 0
    for name in $names; do
        [[ $name == spank_vm-* ]] || continue
        msg "removing libvirt domain $name"
        destroy_domain "$name" &
    done
    wait
}

destroy_domain() {
    virsh_q destroy "$1" >/dev/null 2>&1 || true
    # A transient domain is gone with destroy; a persistent one needs undefine.
    virsh_q undefine --managed-save --snapshots-metadata "$1" >/dev/null 2>&1 || true
}

cluster_cgroups() {
    local node
    for node in "${NODE_LIST[@]}"; do
        compgen -G "/sys/fs/cgroup/*/slurm_$node" || true
    done
}

# Slurm clients of this cluster (run-as-user sets SLURM_CONF): with the
# controller gone they would wait for it forever. Other programs that merely
# carry our SLURM_CONF (a test harness, this script) are left alone.
client_pids() {
    local name pid
    # One name per pgrep: it warns about patterns longer than a process name.
    for name in srun salloc sbatch sattach; do
        for pid in $(pgrep -x "$name"); do
            if grep -qzxF "SLURM_CONF=$SLURM_CONF" "/proc/$pid/environ" 2>/dev/null; then
                echo "$pid"
            fi
        done
    done
}

# "PID:COMM" of the cluster's remaining processes: marked ones (slurmstepd and
# what it spawned), everything inside the cluster's cgroups (the job tasks) and
# the cluster's Slurm clients.
stray_procs() {
    local pid comm cgroups
    cgroups=$(cluster_cgroups)
    {
        grep -lzxF "$DAEMON_MARK" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
        # shellcheck disable=SC2086  # one cgroup path per word
        [[ -z $cgroups ]] || find $cgroups -name cgroup.procs -exec cat {} + 2>/dev/null || true
        client_pids
    } | sort -un | while read -r pid; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) && printf '%s:%s\n' "$pid" "$comm"
    done
}

# Frozen tasks would not act on signals. slurmstepd itself freezes a step's
# cgroup while it signals the step: one killed meanwhile leaves it FROZEN.
thaw_cgroups() {
    local cgroup state
    for cgroup in $(cluster_cgroups); do
        [[ $cgroup == /sys/fs/cgroup/freezer/* ]] || continue
        while read -r state; do
            echo THAWED >"$state" 2>/dev/null || true
        done < <(find "$cgroup" -name freezer.state)
    done
}

thawed_and_dead() {
    thaw_cgroups
    all_dead "$@"
}

# No slurmd is left to end them gracefully, and slurmstepd ignores TERM: one
# TERM round (with CONT for stopped tasks, as scancel does), then KILL rounds.
# Each round lists them again: tasks whose slurmstepd died are still found
# through the cgroups.
kill_strays() {
    local sig procs t
    for sig in TERM KILL KILL; do
        thaw_cgroups
        mapfile -t procs < <(stray_procs)
        ((${#procs[@]} > 0)) || return 0
        msg "sending $sig to ${#procs[@]} leftover process(es): ${procs[*]}"
        for t in "${procs[@]}"; do
            kill "-$sig" "${t%%:*}" 2>/dev/null || true
            [[ $sig != TERM ]] || kill -CONT "${t%%:*}" 2>/dev/null || true
        done
        wait_for "$STRAY_TIMEOUT" thawed_and_dead "${procs[@]}" || true
    done
    mapfile -t procs < <(stray_procs)
    ((${#procs[@]} > 0)) || return 0
    msg "could not stop: ${procs[*]}"
    DOWN_RC=1
}

# rmdir depth-first; exiting tasks can keep a cgroup busy for a moment.
remove_cgroups() {
    local left tries=50
    while left=$(cluster_cgroups) && [[ -n $left ]]; do
        # shellcheck disable=SC2086  # one cgroup path per word
        find $left -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ -n $(cluster_cgroups) ]] || return 0
        if ((--tries == 0)); then
            msg "could not remove cgroups: $(tr '\n' ' ' <<<"$left")"
            DOWN_RC=1
            return 0
        fi
        sleep 0.1
    done
}

# Runtime state of a libvirtd of ours: /run/libvirt and the (empty) "machine"
# cgroups it made for guests. Only when no libvirt daemon ran before our `up`
# and none runs now; rmdir leaves a non-empty cgroup alone.
remove_libvirt_leftovers() {
    [[ -e $PIDS_DIR/libvirt-run-dir.created ]] || return 0
    if running libvirtd || running virtlogd; then return 0; fi
    rm -rf "$LIBVIRT_RUN_DIR"
    rmdir /sys/fs/cgroup/*/machine 2>/dev/null || true
}

# Everything needed to diagnose a failed run: the cluster's logs and configs,
# libvirtd's log, and the QEMU logs of our domains (moved: they are ours by
# name and would pile up in /var/log/libvirt/qemu over many runs).
save_logs() {
    local keep="${CLUSTER_DIR}.last-logs" log
    [[ -d $CLUSTER_DIR/log ]] || return 0
    rm -rf "$keep"
    cp -a "$CLUSTER_DIR/log" "$keep"
    [[ ! -d $CLUSTER_DIR/etc ]] || cp -a "$CLUSTER_DIR/etc" "$keep/etc"
    mkdir -p "$keep/libvirt"
    [[ ! -e $LIBVIRT_LOG_DIR/libvirtd.log ]] || cp -a "$LIBVIRT_LOG_DIR/libvirtd.log" "$keep/libvirt/"
    for log in "$LIBVIRT_LOG_DIR"/qemu/spank_vm-*.log; do
        [[ ! -e $log ]] || mv "$log" "$keep/libvirt/"
    done
}

cmd_down() {
    require_root down
    if [[ ! -e $CLUSTER_DIR && -z $(cluster_cgroups) ]]; then
        msg "no cluster in $CLUSTER_DIR, nothing to stop"
        return 0
    fi
    cancel_jobs
    stop_recorded slurmctld 'slurmd-*'
    # slurmctld hands its last records to slurmdbd as it stops; then slurmdbd
    # goes, then its database.
    stop_recorded slurmdbd
    stop_recorded mariadb
    destroy_domains
    kill_strays
    remove_guest_network
    stop_recorded libvirtd
    stop_recorded virtlogd munged
    remove_libvirt_leftovers
    remove_cgroups
    rm -rf "$RUNTIME_DIR"
    save_logs
    rm -rf "$CLUSTER_DIR"
    if ((DOWN_RC != 0)); then
        msg "cluster stopped with errors (above); logs in ${CLUSTER_DIR}.last-logs"
        return 1
    fi
    msg "cluster stopped and removed; logs in ${CLUSTER_DIR}.last-logs"
}

# ---------------------------------------------------------------- others

# Names of the recorded daemons that are no longer alive.
recorded_dead() {
    local file name
    for file in "$PIDS_DIR"/*.pid; do
        [[ -e $file ]] || continue
        name=${file##*/}
        name=${name%.pid}
        [[ -n $(recorded_alive "$name") ]] || printf '%s\n' "$name"
    done
}

cmd_status() {
    local alive dead rc=0
    alive=$(recorded_alive '*' | tr '\n' ' ')
    if [[ -z $alive ]]; then
        msg "no cluster running in $CLUSTER_DIR"
        return 3
    fi
    msg "cluster running in $CLUSTER_DIR (pid:name ${alive% })"
    dead=$(recorded_dead | tr '\n' ' ')
    if [[ -n $dead ]]; then
        msg "but these daemons of it are gone: ${dead% } (restart with: cluster.sh down; cluster.sh up)"
        rc=1
    fi
    slurm sinfo || rc=1
    if cluster_registered; then
        msg "accounting: slurmdbd answers, cluster $CLUSTER_NAME registered"
    else
        msg "accounting: slurmdbd does not answer or does not know the cluster $CLUSTER_NAME"
        rc=1
    fi
    return "$rc"
}

cmd_run_as_user() {
    (($# > 0)) || usage
    local home
    home=$(getent passwd "$TEST_USER" | cut -d: -f6) ||
        die "no user $TEST_USER: start the cluster first (cluster.sh up)"
    cd "$home"
    exec runuser -u "$TEST_USER" -- env SLURM_CONF="$SLURM_CONF" "$@"
}

cmd_env() {
    printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"
    printf 'export SPANK_VM_CLUSTER_DIR=%q\n' "$CLUSTER_DIR"
    printf 'export SPANK_VM_TEST_USER=%q\n' "$TEST_USER"
}

# CLUSTER_DIR is removed with rm -rf and used after `cd /`: only an absolute
# path of at least two components, without a trailing slash, is accepted.
check_cluster_dir() {
    [[ $CLUSTER_DIR =~ ^/.+/[^/]+$ ]] ||
        die "SPANK_VM_CLUSTER_DIR must be an absolute path like /var/tmp/NAME, not '$CLUSTER_DIR'"
}

main() {
    (($# > 0)) || usage
    check_cluster_dir
    local cmd=$1
    shift
    case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    run-as-user) cmd_run_as_user "$@" ;;
    env) cmd_env ;;
    *) usage ;;
    esac
}

main "$@"
