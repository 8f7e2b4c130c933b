/* What Slurm says of a job: whether it is being requeued. A requeue
 * (scontrol requeue, preemption with PreemptMode=REQUEUE) is the one end of a
 * --vm-checkpoint job after which its guest is worth saving. */
#ifndef SPANK_VM_SLURM_JOB_H
#define SPANK_VM_SLURM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "spank_vm/error.h"

/* Whether a running job's job_state (slurm.h) means Slurm is taking it
 * back to queue it again, rather than ending it. Pure (svm_core). */
bool svm_job_state_requeues(uint32_t job_state);

/* Asks slurmctld (libslurm: svm_slurm_job, not svm_core). slurm_conf: the
 * slurm.conf to read, or NULL for libslurm's default (SLURM_CONF or its
 * built-in path). */
int svm_slurm_job_requeueing(uint32_t job_id, const char *slurm_conf, bool *requeueing,
                             struct svm_err *err);

#endif
