/* The command line of `spank-vm-provision save` for a job's guest, as the
 * plugin (a requeue) and spank-vm-ctl (a checkpoint on demand) run it. */
#ifndef SPANK_VM_SAVE_COMMAND_H
#define SPANK_VM_SAVE_COMMAND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/values.h"

struct svm_save_guest {
	const char *exe; /* argv[0] */
	const char *runtime_dir;
	uint32_t job_id;
	const char *node; /* the node it runs on: provision finds the guest by it */
	const char *name; /* the name it was started under */
	uid_t uid;        /* the job's user: the checkpoint's files are theirs */
	gid_t gid;
	const char *guest_dir;
	const char *checkpoint_dir;
	bool keep_running;
	const char *uri; /* NULL: provision's default */
};

struct svm_save_command {
	char job[16], owner[48], stage[SVM_PATH_MAX + 32], cgroups[SVM_PATH_MAX + 32];
	char *argv[24];
};

/* Fills cmd->argv (NULL-terminated; it points into cmd and into g's strings). */
void svm_save_command(struct svm_save_command *cmd, const struct svm_save_guest *g);

#endif
