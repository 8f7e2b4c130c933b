/* spank-vm-provision: the root-side helper that turns a job's allocation into
 * a running guest. The plugin executes it (so libvirt and hwloc never load
 * into slurmstepd, and a crash here cannot take a step down); admins and
 * tests run it by hand. */
#ifndef SPANK_VM_PROVISION_H
#define SPANK_VM_PROVISION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/catalog.h"
#include "spank_vm/cgroup.h"
#include "spank_vm/domain_xml.h"
#include "spank_vm/error.h"
#include "spank_vm/net.h"
#include "spank_vm/plan.h"

#define PROVISION_LOG_PREFIX "spank_vm: spank-vm-provision: "
#define PROVISION_MAX_SHARES 16

struct provision_opts {
	/* the allocation */
	const char *cores;  /* Slurm's abstract core list */
	const char *cpuset; /* OS CPU list */
	pid_t cgroup_pid;   /* take the OS CPU list from this process's job cgroup */
	pid_t job_task;     /* --job-task: the guest joins this task's cgroups (job_cgroups.c) */
	const char *job_cgroups_file; /* where start lists them, for stop to remove */
	uint64_t mem_mib;
	uint64_t reserve_mib;
	uint64_t min_guest_mib;
	enum svm_hypervisor hypervisor;
	enum svm_hugepages hugepages;
	const char *emulator_cpus;
	const char *topology_xml;
	const char *out; /* plan: write the record here instead of stdout; start: too */
	/* the domain */
	const char *name;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *dir; /* per-guest directory: console log, agent socket */
	const char *uri;
	const char *image;     /* a site image (catalog name) as the guest's disk */
	const char *image_dir; /* the catalog */
	uid_t uid;
	gid_t gid;
	bool have_owner;
	bool no_hard_limit;
	struct svm_share shares[PROVISION_MAX_SHARES]; /* --share HOSTDIR:TAG[:ro] */
	size_t nshares;
	/* --guest-share PATH: host PATH read-write at the same path in the guest
	 * (tags share0, share1, ... told to the agent on the kernel command line) */
	const char *guest_shares[PROVISION_MAX_SHARES];
	size_t nguest_shares;
	unsigned timeout_s;
	/* --slurm-commands DIR: the host's Slurm commands (srun, sbatch, ...)
	 * live in DIR; the guest gets the host call port and runs them on the
	 * host through it (helpers/hostcall/README.md). NULL: not offered. */
	const char *slurm_commands;
	/* --vm-net=cluster: --net-bridge BR --net-cidr CIDR --net-job ID
	 * --net-node INDEX --net-hosts NAME,NAME,... (the job's nodes in order) */
	const char *net_bridge;
	const char *net_cidr;
	uint32_t net_job;
	uint32_t net_node;
	const char *net_hosts;
	/* Checkpoints (checkpoint.c): --checkpoint-stage STAGE (root's, for
	 * libvirt's state file and the guest's recorded shape) with --job ID and
	 * --node NAME makes a guest that save can checkpoint; --checkpoint DIR is
	 * the user's directory that save writes to and start restores from. */
	const char *checkpoint_stage;
	const char *checkpoint;
	uint32_t job_id;
	const char *node;
	bool keep_running;     /* save: the guest runs on after its checkpoint */
	bool checkpoint_fresh; /* start: a checkpoint that cannot be restored boots afresh */
};

/* One guest's place on the job network (net.c). */
struct provision_net {
	bool enabled;
	char addr[SVM_NET_ADDR_LEN];
	char subnet[SVM_NET_ADDR_LEN];
	char mac[SVM_NET_MAC_LEN];
	char words[16384 - 512]; /* the agent's spank_vm.net/hostname/hosts words */
};

/* Address, MAC and words from the --net-* options; net->enabled false without them. */
int provision_net_prepare(const struct provision_opts *o, struct provision_net *net,
                          struct svm_err *err);
/* Defines the job NICs' nwfilter (SVM_NET_FILTER_NAME) when libvirt lacks it. */
struct _virConnect;
int provision_net_filter(struct _virConnect *conn, struct svm_err *err);

/* The host call port's socket, in the guest directory next to agent.sock. */
#define PROVISION_HOSTCALL_SOCKET "hostcall.sock"

/* The kernel's arguments: the serial console is the guest's log; quiet
 * spares TCG the slow output of boot messages; panic=-1 makes a panicked
 * guest reboot, which libvirt turns into its end (on_reboot=destroy), so a
 * guest that cannot boot fails its job at once instead of at boot_timeout. */
#define PROVISION_DEFAULT_CMDLINE "console=ttyS0 quiet panic=-1"

/* The guest's console log, in the guest directory. */
#define PROVISION_CONSOLE_LOG "console.log"

/* Creates the console log as the job user's (see console.c). */
int provision_prepare_console(const struct provision_opts *o, struct svm_err *err);

/* Loads the topology and builds the plan the options describe. */
int provision_build_plan(const struct provision_opts *o, struct svm_plan *plan,
                         struct svm_err *err);

/* Creates dir/disk.qcow2 backed by the image's disk, owned by the job user;
 * its path goes to overlay. */
int provision_make_overlay(const struct provision_opts *o, const struct svm_image *image,
                           char *overlay, size_t len, struct svm_err *err);

/* The kernel and initramfs to boot (see boot_files.c). */
int provision_boot_files(const struct provision_opts *o, char *kernel, size_t klen, char *initrd,
                         size_t ilen, struct svm_err *err);

/* Writes the plan record to path atomically (temp, fsync, rename), 0644. */
int provision_record_plan(const struct svm_plan *plan, const char *path, struct svm_err *err);

/* Shared by start, stop and save (domain.c). */
struct _virConnect *provision_connect(const struct provision_opts *o, struct svm_err *err);
int provision_libvirt_error(struct svm_err *err, const char *what);

/* job_cgroups.c: the guest in the job's cgroups. The directories to join,
 * from the job's task, listed in file; or as file lists them (1: no file). */
int provision_cgroups_of_task(pid_t task, const char *file, struct svm_cgroup_dirs *dirs,
                              struct svm_err *err);
int provision_cgroups_recorded(const char *file, struct svm_cgroup_dirs *dirs, struct svm_err *err);
/* Moves the paused guest name into dirs, pins it again as defined and lets
 * it run; destroys it on failure. */
int provision_join_job_cgroups(struct _virConnect *conn, const char *name,
                               const struct svm_cgroup_dirs *dirs, struct svm_err *err);
/* Once the guest is gone: removes the directories file lists, where empty
 * (Slurm gave up on them while the guest was inside), and the file. */
void provision_leave_job_cgroups(const char *file);
int provision_load_image(const struct provision_opts *o, struct svm_image *image,
                         struct svm_err *err);
/* Hands the channels' sockets libvirt made (as root) to the job's user. */
int provision_hand_sockets(const struct provision_opts *o, struct svm_err *err);
double provision_now_s(void);

/* Checkpoints (checkpoint.c). Whether the options allow one at all. */
int provision_checkpoint_check(const struct provision_opts *o, struct svm_err *err);
/* Records the guest's shape (from plan, or m's when plan is NULL) and the
 * image's digest in the stage, for save. */
struct svm_ckpt_manifest;
int provision_checkpoint_record_shape(const struct provision_opts *o, const struct svm_image *image,
                                      const struct svm_plan *plan, struct svm_ckpt_manifest *m,
                                      struct svm_err *err);
/* The guest this command is about: with --job and --node the one libvirt's
 * metadata gives to that job on that node (its name may be another node's,
 * after a restore), else the one named --name; NULL if none. */
struct _virDomain *provision_find_guest(struct _virConnect *conn, const struct provision_opts *o);

/* Copies the job's checkpoint in (as the user, verified) and fits it to
 * alloc: 0 with *restored and the state file's path, 1 if there is none. */
int provision_restore_load(const struct provision_opts *o, const struct svm_image *image,
                           const struct svm_plan *alloc, struct svm_plan *restored,
                           struct svm_ckpt_manifest *m, char *memory_path, size_t len,
                           struct svm_err *err);
/* Removes the state file once libvirt has restored the guest (or failed). */
void provision_restore_done(const struct provision_opts *o);

int provision_cmd_plan(const struct provision_opts *o, struct svm_err *err);
int provision_cmd_start(const struct provision_opts *o, struct svm_err *err);
int provision_cmd_stop(const struct provision_opts *o, struct svm_err *err);
int provision_cmd_save(const struct provision_opts *o, struct svm_err *err);

#endif
