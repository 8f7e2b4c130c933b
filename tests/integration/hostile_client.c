/* A SPANK plugin for submit commands only, standing in for a user who talks to
 * slurmctld with a client of their own: it hands the job whatever VM request
 * the environment variable HOSTILE_VM_REQUEST holds, unvalidated. The node's
 * prolog must refuse it without failing (a failing prolog drains the node). */
#include <stdlib.h>

#include <slurm/spank.h>

SPANK_PLUGIN(svm_hostile_client, 1);

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	const char *forged = getenv("HOSTILE_VM_REQUEST");

	(void)ac;
	(void)av;
	if (forged == NULL || spank_context() == S_CTX_REMOTE)
		return 0;
	return spank_job_control_setenv(sp, "VM_REQUEST", forged, 1) == ESPANK_SUCCESS ? 0 : -1;
}
