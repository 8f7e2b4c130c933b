/* What the submitting commands (srun, sbatch, salloc) share: options, their
 * defaults, validation, and handing the validated request to the job. */
#include "plugin.h"

int svm_client_init(spank_t sp, int ac, char **av)
{
	if (svm_plugin_load_config(ac, av) != 0)
		return -1;
	return svm_args_register(sp);
}

static int publish_request(spank_t sp)
{
	char record[SVM_REQUEST_MAX];
	struct svm_err err;
	spank_err_t rc;

	if (svm_request_encode(&svm_plugin.request, ' ', record, sizeof(record), &err) != 0) {
		svm_error("%s", err.msg);
		return -1;
	}
	/* Job-control environment reaches the prolog as SPANK_VM_REQUEST. */
	rc = spank_job_control_setenv(sp, SVM_REQUEST_ENV_NAME, record, 1);
	if (rc != ESPANK_SUCCESS) {
		svm_error("cannot pass the VM request to the job: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* Under policy=always a job that did not ask still runs in the default guest,
 * with whatever --vm-* options it gave. */
static int enable_by_policy(void)
{
	struct svm_err err;

	if (svm_plugin.request.enabled || svm_plugin.config.policy != SVM_POLICY_ALWAYS)
		return 0;
	if (svm_request_set(&svm_plugin.request, SVM_OPT_VM, NULL, svm_plugin.config.default_image,
	                    &err) != 0) {
		svm_error("%s", err.msg);
		return -1;
	}
	return 0;
}

int svm_client_post_opt(spank_t sp, bool new_job)
{
	if (svm_args_apply_env_defaults() != 0 || svm_args_check() != 0 || enable_by_policy() != 0)
		return -1;
	if (!svm_plugin.request.enabled || !new_job)
		return 0;
	return publish_request(sp);
}
