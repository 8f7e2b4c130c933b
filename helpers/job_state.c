/* The meaning of a job_state, without libslurm (the header's constants only). */
#include <slurm/slurm.h>

#include "spank_vm/slurm_job.h"

bool svm_job_state_requeues(uint32_t job_state)
{
	/* slurmctld marks a running job it requeues PENDING (with COMPLETING
	 * until its nodes are clean) or sets a requeue flag, before it tells
	 * the nodes to end it: cancelled, failed, timed out or completed
	 * jobs carry neither. */
	const uint32_t requeue_flags = JOB_REQUEUE | JOB_REQUEUE_HOLD | JOB_REQUEUE_FED;

	return (job_state & JOB_STATE_BASE) == JOB_PENDING || (job_state & requeue_flags) != 0;
}
