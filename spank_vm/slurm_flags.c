/* Whether this node's Slurm runs an extern step for every job
 * (PrologFlags=Contain): the extern step carries each --vm job's guest, so
 * without it no guest is ever made. SPANK has no item for slurm.conf; the
 * Slurm daemons and slurmstepd export their parsed configuration as the
 * global `slurm_conf` (libslurmfull), whose type is public in slurm.h. It is
 * read through a weak reference: where it is absent, nothing is claimed. */
#include <slurm/slurm.h>

#include "plugin.h"

extern slurm_conf_t slurm_conf __attribute__((weak));

bool svm_slurm_lacks_contain(void)
{
	const slurm_conf_t *conf = &slurm_conf;

	/* A process that never read slurm.conf has no flags at all (0), which
	 * is also "no Contain": believe it only once the config was loaded. */
	return conf != NULL && conf->cluster_name != NULL &&
	       (conf->prolog_flags & PROLOG_FLAG_CONTAIN) == 0;
}
