/* spank-vm-ctl: what an admin needs to see and clean up on a node. */
#ifndef SPANK_VM_CTL_H
#define SPANK_VM_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include "spank_vm/config.h"
#include "spank_vm/error.h"

#define CTL_PREFIX "spank_vm: spank-vm-ctl: "

struct ctl {
	struct svm_config config;
	char node[SVM_IMAGE_NAME_MAX + 1];
	const char *uri;
	bool dry_run;
	unsigned console_lines;
};

/* The job ids with a runtime directory or a guest on this node, sorted;
 * returns the count (at most max) or -1. */
int ctl_known_jobs(const struct ctl *c, uint32_t *jobs, int max, struct svm_err *err);

/* spank_vm-<node>-<job>: the name a job's guest on this node is started
 * under. A restored guest keeps the name it was saved under: find guests
 * with svm_domain_of_job, which knows both. */
void ctl_domain_name(const struct ctl *c, uint32_t job, char *buf, size_t len);

int ctl_list(const struct ctl *c, struct svm_err *err);
int ctl_show(const struct ctl *c, uint32_t job, struct svm_err *err);
int ctl_console(const struct ctl *c, uint32_t job, struct svm_err *err);
int ctl_gc(const struct ctl *c, struct svm_err *err);
/* Saves a --vm-checkpoint job's guest here and lets it run on. */
int ctl_checkpoint(const struct ctl *c, uint32_t job, struct svm_err *err);

#endif
