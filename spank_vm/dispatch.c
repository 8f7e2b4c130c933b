/* The only SPANK entry points: each one hands over to the module of the
 * context it runs in, so a reader finds srun behaviour in srun.c, and so on. */
#include "plugin.h"

SPANK_PLUGIN(spank_vm, 1);

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
		return svm_srun_init(sp, ac, av);
	case S_CTX_ALLOCATOR:
		return svm_alloc_init(sp, ac, av);
	case S_CTX_REMOTE:
		return svm_slurmstepd_init(sp, ac, av);
	case S_CTX_SLURMD:
		return svm_slurmd_init(sp, ac, av);
	default:
		return 0;
	}
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
		return svm_srun_post_opt(sp, ac, av);
	case S_CTX_ALLOCATOR:
		return svm_alloc_post_opt(sp, ac, av);
	case S_CTX_REMOTE:
		return svm_slurmstepd_post_opt(sp, ac, av);
	default:
		return 0;
	}
}

int slurm_spank_task_post_fork(spank_t sp, int ac, char **av)
{
	if (spank_context() != S_CTX_REMOTE)
		return 0;
	return svm_slurmstepd_task_post_fork(sp, ac, av);
}

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	if (spank_context() != S_CTX_REMOTE)
		return 0;
	return svm_slurmstepd_task_init_privileged(sp, ac, av);
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	if (spank_context() != S_CTX_REMOTE)
		return 0;
	return svm_slurmstepd_task_init(sp, ac, av);
}

int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (spank_context() != S_CTX_REMOTE)
		return 0;
	return svm_task_oom_exit(sp);
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	return svm_job_script_prolog(sp, ac, av);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return svm_job_script_epilog(sp, ac, av);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	int rc = 0;

	if (spank_context() == S_CTX_REMOTE)
		rc = svm_slurmstepd_exit(sp, ac, av);
	svm_plugin_reset();
	return rc;
}

int slurm_spank_slurmd_exit(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	return 0;
}
