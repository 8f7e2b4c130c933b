/* What the submitting commands (srun, sbatch, salloc) share: options, their
 * defaults, validation, and handing the validated request to the job. */
#include <string.h>
#include <unistd.h>

#include "plugin.h"
#include "spank_vm/catalog.h"

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

/* An image the catalog lacks is refused before the job queues, when this
 * host sees the catalog (a login node may not: the node refuses it then). */
static int check_image(void)
{
	const struct svm_config *cfg = &svm_plugin.config;
	char names[512];
	struct svm_image image;
	struct svm_err err;

	if (!svm_plugin.request.enabled ||
	    strcmp(svm_plugin.request.image, SVM_BUILTIN_IMAGE) == 0 ||
	    access(cfg->image_dir, X_OK) != 0)
		return 0;
	if (svm_catalog_load(cfg->image_dir, svm_plugin.request.image, &image, &err) == 0)
		return 0;
	if (svm_catalog_names(cfg->image_dir, names, sizeof(names), NULL) != 0)
		names[0] = '\0';
	svm_error("--vm: %s; accepted: %s (the default guest)%s%s", err.msg, SVM_BUILTIN_IMAGE,
	          names[0] ? ", " : "", names);
	return -1;
}

/* A guest network needs the site's bridge: refused before the job queues. */
static int check_net(void)
{
	if (!svm_plugin.request.enabled || svm_plugin.request.net != SVM_NET_CLUSTER ||
	    svm_plugin.config.net_bridge[0] != '\0')
		return 0;
	svm_error("--vm-net=cluster: this site has no guest network (plugstack.conf sets no "
	          "net_bridge); accepted: none");
	return -1;
}

/* QEMU 7.2 cannot save a guest with 9p shares, and the default guest boots
 * the host's root over 9p: only site images can be checkpointed. */
static int check_checkpoint(void)
{
	const struct svm_config *cfg = &svm_plugin.config;
	char names[512] = "";

	if (!svm_plugin.request.enabled || svm_plugin.request.checkpoint_dir[0] == '\0' ||
	    strcmp(svm_plugin.request.image, SVM_BUILTIN_IMAGE) != 0)
		return 0;
	if (access(cfg->image_dir, X_OK) != 0 ||
	    svm_catalog_names(cfg->image_dir, names, sizeof(names), NULL) != 0)
		names[0] = '\0';
	svm_error("--vm-checkpoint: the default guest (--vm=%s) shares the host's root over 9p, "
	          "which QEMU cannot save; accepted: --vm=IMAGE of the site catalog%s%s",
	          SVM_BUILTIN_IMAGE, names[0] ? ": " : "", names);
	return -1;
}

int svm_client_post_opt(spank_t sp, bool new_job)
{
	if (svm_args_apply_env_defaults() != 0 || svm_args_check() != 0 ||
	    enable_by_policy() != 0 || check_image() != 0 || check_net() != 0 ||
	    check_checkpoint() != 0)
		return -1;
	if (!svm_plugin.request.enabled || !new_job)
		return 0;
	return publish_request(sp);
}
