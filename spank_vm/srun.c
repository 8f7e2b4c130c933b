/* S_CTX_LOCAL: srun. Inside an existing allocation srun only launches a step;
 * the job (and its VM request) already exists. */
#include <stdlib.h>

#include "plugin.h"

int svm_srun_init(spank_t sp, int ac, char **av)
{
	return svm_client_init(sp, ac, av);
}

int svm_srun_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return svm_client_post_opt(sp, getenv("SLURM_JOB_ID") == NULL);
}
