/* The commands a guest may have run on the host: Slurm's user commands.
 * Both ends use this list: the agent puts a stand-in for each in the guest,
 * spank-vm-hostcall runs nothing else. */
#include <string.h>

#include "agent.h"

const char *const agent_slurm_commands[] = {
        "sacct",   "sacctmgr", "salloc", "sattach", "sbatch",   "sbcast",
        "scancel", "scontrol", "sdiag",  "sinfo",   "sprio",    "squeue",
        "sreport", "srun",     "sshare", "sstat",   "strigger", NULL,
};

bool agent_is_slurm_command(const char *name)
{
	for (const char *const *c = agent_slurm_commands; *c != NULL; c++)
		if (strcmp(*c, name) == 0)
			return true;
	return false;
}
