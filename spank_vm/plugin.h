/* State shared by the context modules of one loaded spank_vm.so. Each SPANK
 * context is its own process, so this is per srun, sbatch, slurmstepd, etc. */
#ifndef SPANK_VM_PLUGIN_H
#define SPANK_VM_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <slurm/spank.h>

#include "spank_vm/config.h"
#include "spank_vm/request.h"
#include "spank_vm/runtime.h"

#define SVM_LOG_PREFIX        "spank_vm: "
#define svm_error(fmt, ...)   slurm_error(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_info(fmt, ...)    slurm_info(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_verbose(fmt, ...) slurm_verbose(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_debug(fmt, ...)   slurm_debug(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)

struct svm_plugin {
	struct svm_config config;
	struct svm_request request;
	unsigned options_seen;                  /* SVM_SEEN_* bits of options given explicitly */
	bool option_error;                      /* an option callback refused its value */
	char node_name[SVM_IMAGE_NAME_MAX + 1]; /* node-side contexts: SLURMD_NODENAME */
};

extern struct svm_plugin svm_plugin;

/* config.c glue: parses the plugstack.conf arguments into svm_plugin.config. */
int svm_plugin_load_config(int ac, char **av);
/* For node-side contexts: expands %n in runtime_dir with the node's name. */
int svm_plugin_node_config(void);
void svm_plugin_reset(void);
/* slurmd's slurm.conf (SLURM_CONF), or NULL for libslurm's default: for the
 * helpers that ask slurmctld about a job. */
const char *svm_slurm_conf_path(void);

/* slurm_flags.c: true when this node's slurm.conf is known to lack
 * PrologFlags=Contain (no extern step, so no guest). */
bool svm_slurm_lacks_contain(void);
const char *svm_context_name(spank_context_t ctx);

/* args.c: the user options. */
int svm_args_register(spank_t sp);
int svm_args_apply_env_defaults(void);
int svm_args_check(void);

/* client.c: what srun, sbatch and salloc share. */
int svm_client_init(spank_t sp, int ac, char **av);
int svm_client_post_opt(spank_t sp, bool new_job);

/* helper_exec.c: runs helper_dir/NAME (argv[0] included in argv) with a clean
 * environment, its output (stdout and stderr) into out, killed after
 * timeout_s. Returns its exit status, or -1 (reason in out). */
int svm_run_helper(const char *name, char *const argv[], unsigned timeout_s, char *out,
                   size_t out_len);

/* guest.c: the guest's lifetime on a node (extern step, epilog). */
#define SVM_GUEST_ERROR_FILE  "guest.error"
#define SVM_GUEST_NOTICE_FILE "guest.notice" /* for the job's output (the batch step) */
#define SVM_PLAN_FILE_NAME    "plan"
#define SVM_BUILTIN_IMAGE     "host"
#define SVM_GUEST_READY_FILE  "ready"
#define SVM_EXEC_HELPER       "spank-vm-exec"
#define SVM_WORKDIR_FILE      "workdir"
/* --vm-net=cluster: the job's node list as the prolog saw it (job_net.c). */
#define SVM_NODES_FILE   "nodes"
#define SVM_NODELIST_MAX 8192

struct svm_guest_job {
	uint32_t job_id;
	uid_t uid;
	gid_t gid;
	const char *cores;              /* S_JOB_ALLOC_CORES */
	uint64_t mem_mib;               /* S_JOB_ALLOC_MEM */
	pid_t cgroup_pid;               /* a process in the job's cgroups */
	pid_t extern_task;              /* the extern step's task: QEMU joins its cgroups */
	char workdir[SVM_PATH_MAX + 1]; /* shared read-write into the guest; "" for none */
	char home[SVM_PATH_MAX + 1];
	const struct svm_request *req;
	/* --vm-net=cluster: this node's index in the job and every node's
	 * name, comma-separated, in the job's order */
	uint32_t node_index;
	char net_hosts[SVM_NODELIST_MAX];
};

/* job_net.c */
int svm_job_net_record_nodes(uint32_t job_id);
int svm_job_net_hosts(uint32_t job_id, char *out, size_t cap, struct svm_err *err);

int svm_guest_domain_name(uint32_t job_id, char *buf, size_t len);
int svm_guest_start(const struct svm_guest_job *job);
void svm_guest_stop(uint32_t job_id);
/* Starts the guest's spank-vm-mux (as the job user) once the guest is started. */
int svm_guest_start_mux(const struct svm_guest_job *job);
void svm_guest_stop_mux(uint32_t job_id);

/* guest.c: runs argv (argv[0] a path) with stdio on /dev/null and fd3 (-1:
 * none) as its fd 3, forked twice so that it is nobody's child here
 * (slurmstepd reaps what it forked) yet stays in the step's cgroups; returns
 * its pid, or -1. */
pid_t svm_spawn_detached(char *const argv[], int fd3);

/* checkpointer.c: --vm-checkpoint-interval's spank-vm-checkpointer, started
 * with the guest's mux and stopped (a save under way finished) before the
 * extern step's end saves or stops the guest. */
void svm_checkpointer_start(const struct svm_guest_job *job);
void svm_checkpointer_stop(uint32_t job_id);

/* requeue_save.c: a --vm-checkpoint job's guest, saved when Slurm ends the
 * job to requeue it (from the extern step's end, before svm_guest_stop). */
void svm_guest_save_if_requeued(uint32_t job_id, const struct svm_request *req);

/* One module per context. */
int svm_srun_init(spank_t sp, int ac, char **av);
int svm_srun_post_opt(spank_t sp, int ac, char **av);
int svm_alloc_init(spank_t sp, int ac, char **av);
int svm_alloc_post_opt(spank_t sp, int ac, char **av);
int svm_slurmstepd_init(spank_t sp, int ac, char **av);
int svm_slurmstepd_post_opt(spank_t sp, int ac, char **av);
int svm_slurmstepd_task_post_fork(spank_t sp, int ac, char **av);
int svm_slurmstepd_exit(spank_t sp, int ac, char **av);
int svm_slurmstepd_task_init_privileged(spank_t sp, int ac, char **av);
int svm_slurmstepd_task_init(spank_t sp, int ac, char **av);
/* task_oom.c: a task whose guest's OOM killer ended one of its processes. */
int svm_task_oom_exit(spank_t sp);
int svm_slurmd_init(spank_t sp, int ac, char **av);
int svm_job_script_prolog(spank_t sp, int ac, char **av);
int svm_job_script_epilog(spank_t sp, int ac, char **av);

#endif
