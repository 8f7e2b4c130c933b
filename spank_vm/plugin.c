#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct svm_plugin svm_plugin;

int svm_plugin_load_config(int ac, char **av)
{
	struct svm_err err;

	svm_config_defaults(&svm_plugin.config);
	if (svm_config_parse(&svm_plugin.config, ac, av, &err) != 0) {
		svm_error("%s", err.msg);
		return -1;
	}
	return 0;
}

int svm_plugin_node_config(void)
{
	struct svm_err err;

	/* slurmd exports its node name to everything it starts (prolog, stepd). */
	const char *node = getenv("SLURMD_NODENAME");

	if (svm_config_expand_node(&svm_plugin.config, node, &err) != 0) {
		svm_error("%s", err.msg);
		return -1;
	}
	if (node == NULL || svm_check_image_name(node, NULL) != 0) {
		svm_error("SLURMD_NODENAME is missing or not a valid node name");
		return -1;
	}
	snprintf(svm_plugin.node_name, sizeof(svm_plugin.node_name), "%s", node);
	return 0;
}

void svm_plugin_reset(void)
{
	memset(&svm_plugin, 0, sizeof(svm_plugin));
}

const char *svm_context_name(spank_context_t ctx)
{
	switch (ctx) {
	case S_CTX_LOCAL:
		return "srun";
	case S_CTX_ALLOCATOR:
		return "allocator";
	case S_CTX_REMOTE:
		return "slurmstepd";
	case S_CTX_SLURMD:
		return "slurmd";
	case S_CTX_JOB_SCRIPT:
		return "job_script";
	default:
		return "unknown";
	}
}

const char *svm_slurm_conf_path(void)
{
	/* slurmd's own configuration, which slurmstepd inherits. */
	const char *path = getenv("SLURM_CONF");

	return path != NULL && path[0] == '/' ? path : NULL;
}
