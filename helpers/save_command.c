#include <stdio.h>

#include "spank_vm/runtime.h"
#include "spank_vm/save_command.h"

void svm_save_command(struct svm_save_command *cmd, const struct svm_save_guest *g)
{
	size_t n = 0;

	snprintf(cmd->job, sizeof(cmd->job), "%u", g->job_id);
	snprintf(cmd->owner, sizeof(cmd->owner), "%u:%u", (unsigned)g->uid, (unsigned)g->gid);
	/* libvirt writes the state into the job's root-owned stage first. */
	snprintf(cmd->stage, sizeof(cmd->stage), "%s/%u/%s", g->runtime_dir, g->job_id,
	         SVM_CHECKPOINT_STAGE);
	cmd->argv[n++] = (char *)g->exe;
	cmd->argv[n++] = (char *)"save";
	cmd->argv[n++] = (char *)"--name";
	cmd->argv[n++] = (char *)g->name;
	cmd->argv[n++] = (char *)"--job";
	cmd->argv[n++] = cmd->job;
	cmd->argv[n++] = (char *)"--node";
	cmd->argv[n++] = (char *)g->node;
	cmd->argv[n++] = (char *)"--owner";
	cmd->argv[n++] = cmd->owner;
	cmd->argv[n++] = (char *)"--dir";
	cmd->argv[n++] = (char *)g->guest_dir;
	cmd->argv[n++] = (char *)"--checkpoint-stage";
	cmd->argv[n++] = cmd->stage;
	cmd->argv[n++] = (char *)"--checkpoint";
	cmd->argv[n++] = (char *)g->checkpoint_dir;
	if (g->keep_running) {
		/* The guest resumes in a new QEMU: it joins the job's cgroups again. */
		snprintf(cmd->cgroups, sizeof(cmd->cgroups), "%s/%u/%s", g->runtime_dir, g->job_id,
		         SVM_JOB_CGROUPS_FILE);
		cmd->argv[n++] = (char *)"--keep-running";
		cmd->argv[n++] = (char *)"--job-cgroups-file";
		cmd->argv[n++] = cmd->cgroups;
	}
	if (g->uri != NULL) {
		cmd->argv[n++] = (char *)"--uri";
		cmd->argv[n++] = (char *)g->uri;
	}
	cmd->argv[n] = NULL;
}
