/* The user options (--vm and --vm-*), their environment defaults and their
 * validation. Values are checked as soon as Slurm hands them over, so a bad
 * one stops sbatch/srun/salloc before anything is queued. */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static int option_cb(int val, const char *optarg, int remote);

struct svm_arg {
	const char *option;
	const char *env; /* default when the option is not on the command line */
};

static const struct svm_arg args[] = {
        {SVM_OPT_VM, "SPANK_VM_IMAGE"},
        {SVM_OPT_HYPERVISOR, "SPANK_VM_HYPERVISOR"},
        {SVM_OPT_HUGEPAGES, "SPANK_VM_HUGEPAGES"},
        {SVM_OPT_NET, "SPANK_VM_NET"},
        {SVM_OPT_CHECKPOINT, "SPANK_VM_CHECKPOINT"},
        {SVM_OPT_DEBUG, "SPANK_VM_DEBUG"},
        {SVM_OPT_CHECKPOINT_SIGNAL, "SPANK_VM_CHECKPOINT_SIGNAL"},
        {SVM_OPT_CHECKPOINT_FALLBACK, "SPANK_VM_CHECKPOINT_FALLBACK"},
        {SVM_OPT_CHECKPOINT_INTERVAL, "SPANK_VM_CHECKPOINT_INTERVAL"},
};

#define N_ARGS (sizeof(args) / sizeof(args[0]))

/* Slurm keeps pointers into this table, so it lives as long as the plugin. */
static struct spank_option spank_opts[] = {
        {(char *)SVM_OPT_VM, (char *)"[IMAGE]",
         (char *)"Run the job in its own virtual machine, booted from IMAGE (a name from the "
                 "site's image catalog; default: the site's default guest) [env SPANK_VM_IMAGE]",
         2, 0, option_cb},
        {(char *)SVM_OPT_HYPERVISOR, (char *)"kvm|qemu|xen",
         (char *)"Hypervisor of the job's VM (default: the site's) [env SPANK_VM_HYPERVISOR]", 1, 1,
         option_cb},
        {(char *)SVM_OPT_HUGEPAGES, (char *)"[2M|1G|none]",
         (char *)"Back the VM's memory with huge pages (default size 2M) [env SPANK_VM_HUGEPAGES]",
         2, 2, option_cb},
        {(char *)SVM_OPT_NET, (char *)"none|cluster",
         (char *)"Network of the VM: none, or cluster (a private network between the job's VMs) "
                 "[env SPANK_VM_NET]",
         1, 3, option_cb},
        {(char *)SVM_OPT_CHECKPOINT, (char *)"DIR",
         (char *)"Save the VM in DIR on preemption or requeue, and resume from it "
                 "[env SPANK_VM_CHECKPOINT]",
         1, 4, option_cb},
        {(char *)SVM_OPT_DEBUG, NULL,
         (char *)"Print what spank_vm does for the job (VM size, pinning, boot time) "
                 "[env SPANK_VM_DEBUG]",
         0, 5, option_cb},
        {(char *)SVM_OPT_CHECKPOINT_SIGNAL, (char *)"USR1|USR2",
         (char *)"With --vm-checkpoint: this signal to the batch step (e.g. from "
                 "--signal=B:USR1@300, before the time limit) requeues the job; its VM is "
                 "saved and goes on when the job starts again [env SPANK_VM_CHECKPOINT_SIGNAL]",
         1, 6, option_cb},
        {(char *)SVM_OPT_CHECKPOINT_FALLBACK, (char *)"fail|fresh",
         (char *)"With --vm-checkpoint: when the job's checkpoint cannot be restored (it "
                 "does not fit the new allocation, or is damaged), fail the job (default) or "
                 "boot afresh and run the script from the start "
                 "[env SPANK_VM_CHECKPOINT_FALLBACK]",
         1, 7, option_cb},
        {(char *)SVM_OPT_CHECKPOINT_INTERVAL, (char *)"TIME",
         (char *)"With --vm-checkpoint: also save the running VM every TIME (SECONDS, or N "
                 "with s, m or h; 10s to 168h) [env SPANK_VM_CHECKPOINT_INTERVAL]",
         1, 8, option_cb},
        SPANK_OPTIONS_TABLE_END,
};

/* from_env names the environment variable the value came from, if it did. */
static int apply(unsigned index, const char *value, const char *from_env)
{
	struct svm_err err;

	if (svm_request_set(&svm_plugin.request, args[index].option, value,
	                    svm_plugin.config.default_image, &err) == 0)
		return 0;
	if (from_env != NULL)
		svm_error("%s (from the environment variable %s)", err.msg, from_env);
	else
		svm_error("%s", err.msg);
	return -1;
}

static int option_cb(int val, const char *optarg, int remote)
{
	(void)remote;
	if (val < 0 || (unsigned)val >= N_ARGS)
		return -1;
	/* Slurm 22.05 hands an option given without a value on to job steps as the
	 * text "(null)" (SLURM_SPANK__SLURM_SPANK_OPTION_*); no valid value looks
	 * like that, so it means "no value". */
	if (optarg != NULL && strcmp(optarg, "(null)") == 0)
		optarg = NULL;
	/* Slurm may call us twice with the same value; applying is idempotent. */
	svm_plugin.options_seen |= svm_request_option_bit(args[val].option);
	if (apply((unsigned)val, optarg, NULL) != 0) {
		svm_plugin.option_error = true;
		return -1;
	}
	return 0;
}

int svm_args_register(spank_t sp)
{
	for (struct spank_option *opt = spank_opts; opt->name != NULL; opt++) {
		spank_err_t rc = spank_option_register(sp, opt);

		if (rc != ESPANK_SUCCESS) {
			svm_error("cannot register --%s: %s", opt->name, spank_strerror(rc));
			return -1;
		}
	}
	return 0;
}

int svm_args_apply_env_defaults(void)
{
	for (unsigned i = 0; i < N_ARGS; i++) {
		unsigned bit = svm_request_option_bit(args[i].option);
		const char *value = getenv(args[i].env);

		if ((svm_plugin.options_seen & bit) || value == NULL)
			continue;
		if (apply(i, value, args[i].env) != 0)
			return -1;
	}
	return 0;
}

int svm_args_check(void)
{
	struct svm_err err;

	if (svm_plugin.option_error)
		return -1;
	if (svm_plugin.config.policy == SVM_POLICY_ALWAYS)
		return 0; /* every job runs in a VM: --vm-* alone is meaningful */
	if (svm_request_check(&svm_plugin.request, svm_plugin.options_seen, &err) != 0) {
		svm_error("%s", err.msg);
		return -1;
	}
	return 0;
}
