/* A --vm-checkpoint job that Slurm ends to requeue it (scontrol requeue,
 * preemption with PreemptMode=REQUEUE): its guest is saved by the job's
 * teardown and restored when the job starts again, so nothing in it may be
 * told to stop. slurmd sends SIGTERM to every step at once: to this mux (in
 * the extern step) and to each task's proxy, which relays it as SIGNAL.
 * Whichever comes first asks slurmctld whether the job is being requeued;
 * if so the signals are dropped and the channel is paused (pause.c) for the
 * save, and the teardown's own SIGTERM later ends the mux without POWEROFF.
 * A SIGTERM that is not a requeue (scancel, a time limit) goes on as always. */
#include <signal.h>

#include "spank_vm/slurm_job.h"
#include "mux.h"

bool mux_requeue_holds(struct mux *m)
{
	struct svm_err err;
	bool requeueing = false;

	if (m->opts->requeue_job == 0)
		return false;
	if (m->requeue_hold)
		return true;
	if (svm_slurm_job_requeueing(m->opts->requeue_job, m->opts->slurm_conf, &requeueing,
	                             &err) != 0) {
		mux_log("SIGTERM: %s: passing it on", err.msg);
		return false;
	}
	if (!requeueing)
		return false;
	mux_log("job %u is being requeued: the tasks' SIGTERM is held back and the guest "
	        "paused for its checkpoint",
	        m->opts->requeue_job);
	m->requeue_hold = true;
	mux_pause(m);
	return true;
}
