/* A checkpoint of a running --vm-checkpoint job's guest that lets it run on:
 * spank-vm-ctl checkpoint and the periodic spank-vm-checkpointer both take
 * it. The job's mux quiesces and detaches from the guest (SIGUSR1,
 * helpers/mux/pause.c), spank-vm-provision save --keep-running saves it
 * through libvirt, and the mux reattaches (SIGUSR2): the job's tasks see only
 * the pause. Root only. */
#ifndef SPANK_VM_LIVE_CHECKPOINT_H
#define SPANK_VM_LIVE_CHECKPOINT_H

#include <stdint.h>

#include "spank_vm/error.h"

struct svm_live_checkpoint {
	const char *runtime_dir;
	const char *helper_dir; /* spank-vm-provision and the mux are there */
	const char *node;       /* this node's Slurm name */
	const char *uri;        /* NULL: provision's default */
	uint32_t job_id;
	unsigned pause_timeout_s; /* the mux's heartbeat timeout bounds its pause */
	const char *checkpoint_dir;
};

/* Saves the guest, its provision's report on stdout; -1 and why otherwise
 * (the guest runs on either way, unless it was gone). */
int svm_live_checkpoint(const struct svm_live_checkpoint *c, struct svm_err *err);

#endif
