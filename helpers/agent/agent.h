/* spank-vm-agent: PID 1 of the default guest. It boots the guest (modules,
 * the host's root over 9p under a tmpfs overlay, or a site image's disk,
 * the job's shares) and then
 * serves the host's sessions over the virtio-serial port (doc/protocol.md).
 *
 * Files: boot.c (mounts, switch root), cmdline.c (the configuration words of
 * the kernel command line and of QEMU's fw_cfg),
 * modules.c (kernel modules), power.c (the power button), channel.c (the port and its frames),
 * session.c (one program per session, its streams), spawn.c (the child's
 * side of fork), memcg.c (a session's out-of-memory kills), log.c (console
 * messages), main.c. */
#ifndef SPANK_VM_AGENT_H
#define SPANK_VM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/domain_xml.h"
#include "spank_vm/error.h"
#include "spank_vm/net.h"
#include "spank_vm/proto.h"

#define AGENT_LOG_PREFIX "spank_vm-agent: "
/* The agent's scheduling priority in the guest; its programs get 0. */
#define AGENT_NICE (-10)

/* ---- log.c ---- */

/* AGENT_LOG_PREFIX; spank-vm-hostcall sets its own. */
extern const char *agent_log_prefix;
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Seconds since the guest booted: boot milestones on the console. */
double agent_uptime_s(void);
/* Untrusted bytes (a peer's ERROR text) as printable ASCII, at most cap-1. */
void agent_escape(const uint8_t *bytes, size_t len, char *out, size_t cap);

/* ---- cmdline.c: spank_vm.* words of the kernel command line and fw_cfg ---- */

#define AGENT_MAX_SHARES 16
#define AGENT_MAX_TAG    31 /* virtio-9p mount tags are short names */
#define AGENT_ROOT_TAG   "hostroot"
#define AGENT_PATH_CAP   4096
/* "/dev/" and a kernel block device name (vda, vda1, sda2, nvme0n1p1). */
#define AGENT_MAX_DEV_NAME 31
#define AGENT_DEV_CAP      (5 + AGENT_MAX_DEV_NAME + 1)

struct agent_share {
	char tag[AGENT_MAX_TAG + 1];
	char path[AGENT_PATH_CAP]; /* absolute, normalized, decoded */
};

struct agent_config {
	bool allow_root; /* spank_vm.allow_root=1 */
	/* spank_vm.root=/dev/NAME: the root file system is this disk, mounted
	 * read-write, instead of the host's root over 9p; "" when not given */
	char root_device[AGENT_DEV_CAP];
	size_t nshares;
	struct agent_share shares[AGENT_MAX_SHARES];
	/* spank_vm.hostcall=UID:GID:HELPERS:COMMANDS: the guest's Slurm
	 * commands run on the host (hostcall.c); hostcall_commands "" without */
	uint32_t hostcall_uid, hostcall_gid;
	char hostcall_helpers[AGENT_PATH_CAP];
	char hostcall_commands[AGENT_PATH_CAP];
	/* spank_vm.net=ADDR/PREFIX, spank_vm.hostname=NAME and
	 * spank_vm.hosts=FIRST:NAME:...: the job network (net.c); net_addr 0
	 * without. Host i of the list has address FIRST + i. */
	uint32_t net_addr;
	unsigned net_prefix;
	char hostname[SVM_NET_MAX_HOSTNAME + 1];
	uint32_t hosts_first;
	char hosts[SVM_FW_CFG_CONFIG_MAX];
	/* Not from the guest's words: set by spank-vm-hostcall, which serves
	 * the guest's calls on the host with this code (host mode). Only the
	 * Slurm commands of this directory run there, as the user who runs it. */
	const char *host_commands;
};

/* Parses the whole command line (as in /proc/cmdline) into a cleared
 * config. Unknown spank_vm.* keys and malformed values are errors: a share
 * silently dropped would run the job on the wrong files. */
int agent_parse_cmdline(const char *cmdline, struct agent_config *config, struct svm_err *err);
/* Parses more words into config, as if appended to what it holds (see
 * cmdline.c for what a repeated word does). */
int agent_parse_words(const char *text, struct agent_config *config, struct svm_err *err);

/* The fw_cfg file's size limit: provision's words are at most 8 KiB. */
#define AGENT_FW_CFG_MAX SVM_FW_CFG_CONFIG_MAX
/* The content of the fw_cfg file SVM_FW_CFG_CONFIG_NAME (len bytes, not
 * NUL-terminated), parsed after the command line with agent_parse_words;
 * errors name the file. */
int agent_parse_fw_cfg(const char *bytes, size_t len, struct agent_config *config,
                       struct svm_err *err);

/* ---- modules.c ---- */

/* Loads the named modules and their dependencies, dependencies first, from
 * /lib/modules/<release>/ (modules.dep of the initramfs). */
int agent_load_modules(const char *const *names, size_t count, struct svm_err *err);

/* ---- boot.c ---- */

/* Mounts the early file systems, loads modules, builds the new root and
 * switches to it (or, started without an initramfs, keeps the kernel's
 * root); the process stays PID 1. */
int agent_boot(struct agent_config *config, struct svm_err *err);
/* The device node of the virtio-serial port called name (made when missing),
 * waiting up to timeout_ms for the host to announce it. */
int agent_find_port(const char *name, unsigned timeout_ms, char *dev, size_t cap,
                    struct svm_err *err);
/* The first line of a small file (sysfs, procfs), without its newline;
 * false when it cannot be read or is empty. */
bool agent_read_small(const char *path, char *buf, size_t cap);
/* Opens the agent's virtio-serial port (waits for it to appear). */
int agent_open_port(unsigned timeout_ms, struct svm_err *err);

/* ---- net.c: the job network ---- */

/* Loads virtio_net when the guest has a job NIC (still in the initramfs). */
int agent_net_load_modules(const struct agent_config *config, struct svm_err *err);
/* Address and link of the job NIC, the hostname, /etc/hosts: in the final root. */
int agent_net_setup(const struct agent_config *config, struct svm_err *err);

/* ---- commands.c: what a guest may run on the host ---- */

/* Slurm's user commands, NULL-terminated. */
extern const char *const agent_slurm_commands[];
bool agent_is_slurm_command(const char *name);

/* ---- hostcall.c: the guest's Slurm commands, run on the host ---- */

/* With spank_vm.hostcall: stand-ins for the Slurm commands and the user's
 * mux on the host call port. Failures are logged, not fatal: the job still
 * runs, its Slurm commands do not. */
void agent_hostcall_start(const struct agent_config *config);
/* Kills everything, syncs and powers the guest off. Does not return. */
void agent_poweroff(void) __attribute__((noreturn));

/* ---- power.c: the ACPI power button ---- */

/* The power button's input device, or -1 when the guest has none. */
int agent_power_button_open(void);
/* Reads its events: whether the button was pressed. */
bool agent_power_button_pressed(int fd);

/* ---- channel.c: the port, framing, the connection's state ---- */

struct agent_channel;

/* port: the agent's port; power_button: its input device or -1. */
struct agent_channel *agent_channel_new(int port, int power_button,
                                        const struct agent_config *config, struct svm_err *err);
/* Serves until POWEROFF. Returns only on a fatal local error. */
int agent_channel_serve(struct agent_channel *ch, struct svm_err *err);

/* Frames queued for the host (the channel's output queue). The queue only
 * refuses when memory runs out; callers bound what they queue by credit. */
int agent_send_error(struct agent_channel *ch, uint32_t session, uint32_t code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
int agent_send_close(struct agent_channel *ch, uint32_t session);
int agent_send_started(struct agent_channel *ch, uint32_t session, pid_t pid);
int agent_send_data(struct agent_channel *ch, uint32_t session, uint8_t stream, const void *bytes,
                    size_t len);
int agent_send_eof(struct agent_channel *ch, uint32_t session, uint8_t stream);
int agent_send_window(struct agent_channel *ch, uint32_t session, uint8_t stream,
                      uint32_t increment);
/* out_of_memory is only sent on a connection that agreed on version 3. */
int agent_send_exit(struct agent_channel *ch, uint32_t session, int wait_status,
                    bool out_of_memory);
/* Whether the output queue has room for more stream data now. */
bool agent_channel_can_send_data(const struct agent_channel *ch);

/* ---- session.c: the sessions of one connection ---- */

struct agent_session;

struct agent_sessions {
	struct agent_session *head;
	size_t count;
};

#define AGENT_MAX_SESSIONS 1024

/* An EXEC arrived (already known to be a new id): refuses it with
 * ERROR + CLOSE, or starts the program. */
void agent_session_exec(struct agent_channel *ch, struct agent_sessions *all, uint32_t id,
                        const struct svm_proto_frame *frame, const struct agent_config *config);
/* Any other session frame for a live session id; returns false when the id
 * is not live (the caller decides between dropping and UNKNOWN_SESSION). */
bool agent_session_frame(struct agent_channel *ch, struct agent_sessions *all,
                         const struct svm_proto_frame *frame);

/* The poll loop: each session adds its descriptors, then handles their events. */
struct pollfd;
size_t agent_sessions_poll_count(const struct agent_sessions *all);
size_t agent_sessions_fill_poll(struct agent_channel *ch, struct agent_sessions *all,
                                struct pollfd *fds);
void agent_sessions_handle_poll(struct agent_channel *ch, struct agent_sessions *all,
                                const struct pollfd *fds);
/* A child was reaped: the session it belonged to records its status. */
void agent_sessions_reaped(struct agent_channel *ch, struct agent_sessions *all, pid_t pid,
                           int wait_status);
/* Sessions whose program exited and whose output streams all ended send
 * EXIT and CLOSE. */
void agent_sessions_finish(struct agent_channel *ch, struct agent_sessions *all);
/* A new host took over a restored guest (doc/protocol.md 7.1): every
 * suspended session ends but the job's batch script, which waits (unpolled)
 * for the new host's batch EXEC to adopt it; true if there is one. */
bool agent_sessions_keep_batch(struct agent_sessions *all);
/* The connection is gone or failed: SIGKILL every program, forget all. */
void agent_sessions_kill_all(struct agent_sessions *all);

/* ---- memcg.c: a memory cgroup per session, in the guest ---- */

#define AGENT_MEMCG_DIR_CAP 64
/* In the guest, once its root is ready: cgroup2 with the memory controller
 * for the sessions' groups; logs why not when it cannot. */
void agent_memcg_init(void);
/* A new group for a session (its path in dir); false, dir "", without
 * (host mode, or no cgroup2 in the guest). */
bool agent_memcg_create(char *dir, size_t cap);
/* Makes the next session's group ahead of time (after a fork: the new
 * program starts meanwhile). */
void agent_memcg_prepare(void);
/* fork(), the child born in group dir (*joined) where the kernel can
 * (clone3, Linux 5.7), else left to join it itself (agent_spawn's
 * memcg_procs). */
pid_t agent_memcg_fork(const char *dir, bool *joined);
/* How many of the group's processes the out-of-memory killer ended so far;
 * 0 for dir "". */
uint64_t agent_memcg_oom_kills(const char *dir);
/* Removes the group (nothing for dir ""), once the session is over: after
 * its EXIT, off the way of the task's end. */
void agent_memcg_remove(const char *dir);

/* ---- spawn.c: the child between fork and execve ---- */

/* What the child reports through its close-on-exec status pipe. */
enum agent_spawn_stage {
	AGENT_SPAWN_SETUP = 1, /* descriptors, session, signals */
	AGENT_SPAWN_IDENTITY = 2,
	AGENT_SPAWN_CHDIR = 3,
	AGENT_SPAWN_EXEC = 4,
};

struct agent_spawn_report {
	int32_t stage;
	int32_t error; /* errno */
};

struct agent_spawn {
	char **argv;
	char **envp;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t *groups;
	mode_t umask;
	int stdin_fd; /* -1: /dev/null */
	int stdout_fd;
	int stderr_fd;
	int extra_fd; /* -1: none */
	int extra_target;
	int status_fd; /* close-on-exec write end */
	/* The session's memory cgroup's cgroup.procs, which the child joins
	 * before it drops root; NULL for none. */
	const char *memcg_procs;
	/* Host mode: execute this file (no PATH search) and keep the caller's
	 * own identity, which the EXEC was checked to ask for. */
	const char *program;
	bool keep_identity;
};

/* At start: raises the agent's descriptor limit, remembering the default
 * for programs. */
int agent_spawn_init_limits(struct svm_err *err);
/* In the child: never returns. */
void agent_spawn_child(const struct agent_spawn *sp) __attribute__((noreturn));

#endif
