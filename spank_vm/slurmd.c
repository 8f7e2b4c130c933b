/* S_CTX_SLURMD: loaded once when slurmd starts. A broken plugstack.conf line
 * is the admin's to fix, so it stops slurmd here rather than failing jobs.
 * (slurmd exports SLURMD_NODENAME only after plugins are initialised, so a
 * %n in runtime_dir is expanded by the prolog and slurmstepd, not here.) */
#include <errno.h>

#include "plugin.h"
#include "spank_vm/build_config.h"
#include "spank_vm/runtime.h"

int svm_slurmd_init(spank_t sp, int ac, char **av)
{
	(void)sp;
	if (svm_plugin_load_config(ac, av) != 0)
		return -1;
	svm_info("version %s, built for Slurm %s (task redirection: %s), hypervisor=%s "
	         "runtime_dir=%s policy=%s",
	         SPANK_VM_VERSION, SPANK_VM_SLURM_VERSION, SPANK_VM_TASK_REDIRECT,
	         svm_hypervisor_name(svm_plugin.config.hypervisor), svm_plugin.config.runtime_dir,
	         svm_policy_name(svm_plugin.config.policy));
	if (svm_slurm_lacks_contain())
		svm_error("slurm.conf lacks PrologFlags=Contain: --vm jobs on this node will fail "
		          "with that reason (the job's extern step carries its guest)");
	return 0;
}
