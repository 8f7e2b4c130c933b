/* State shared by the context modules of one loaded spank_vm.so. Each SPANK
 * context is its own process, so this is per srun, sbatch, slurmstepd, etc. */
#ifndef SPANK_VM_PLUGIN_H
#define SPANK_VM_PLUGIN_H

#include <stdbool.h>

#include <slurm/spank.h>

#include "spank_vm/config.h"
#include "spank_vm/request.h"

#define SVM_LOG_PREFIX        "spank_vm: "
#define svm_error(fmt, ...)   slurm_error(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_info(fmt, ...)    slurm_info(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_verbose(fmt, ...) slurm_verbose(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)
#define svm_debug(fmt, ...)   slurm_debug(SVM_LOG_PREFIX fmt, ##__VA_ARGS__)

struct svm_plugin {
	struct svm_config config;
	struct svm_request request;
	unsigned options_seen; /* SVM_SEEN_* bits of options given explicitly */
	bool option_error;     /* an option callback refused its value */
};

extern struct svm_plugin svm_plugin;

/* config.c glue: parses the plugstack.conf arguments into svm_plugin.config. */
int svm_plugin_load_config(int ac, char **av);
/* For node-side contexts: expands %n in runtime_dir with the node's name. */
int svm_plugin_node_config(void);
void svm_plugin_reset(void);
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

/* One module per context. */
int svm_srun_init(spank_t sp, int ac, char **av);
int svm_srun_post_opt(spank_t sp, int ac, char **av);
int svm_alloc_init(spank_t sp, int ac, char **av);
int svm_alloc_post_opt(spank_t sp, int ac, char **av);
int svm_slurmstepd_init(spank_t sp, int ac, char **av);
int svm_slurmstepd_post_opt(spank_t sp, int ac, char **av);
int svm_slurmstepd_task_post_fork(spank_t sp, int ac, char **av);
int svm_slurmd_init(spank_t sp, int ac, char **av);
int svm_job_script_prolog(spank_t sp, int ac, char **av);
int svm_job_script_epilog(spank_t sp, int ac, char **av);

#endif
