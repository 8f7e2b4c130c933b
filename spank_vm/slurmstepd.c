/* S_CTX_REMOTE: slurmstepd, for every step of every job, as root. A job
 * without --vm must cost nothing here: no files are touched unless the
 * prolog recorded a request. */
#include <stdint.h>

#include <slurm/slurm.h>

#include "plugin.h"

static const char *step_kind(uint32_t step_id)
{
	if (step_id == SLURM_EXTERN_CONT)
		return "extern";
	if (step_id == SLURM_BATCH_SCRIPT)
		return "batch";
	return "task";
}

int svm_slurmstepd_init(spank_t sp, int ac, char **av)
{
	if (svm_plugin_load_config(ac, av) != 0)
		return -1;
	/* Registered here too, so the options travelling with the step are known. */
	return svm_args_register(sp);
}

int svm_slurmstepd_post_opt(spank_t sp, int ac, char **av)
{
	uint32_t job_id = 0, step_id = 0;

	(void)ac;
	(void)av;
	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS)
		return 0;
	if (svm_plugin_node_config() != 0)
		return -1;
	svm_debug("loaded in slurmstepd for job %u (%s step), runtime_dir %s", job_id,
	          step_kind(step_id), svm_plugin.config.runtime_dir);
	return 0;
}
