/* The batch step's proxy asks Slurm to requeue its job (scontrol requeue, as
 * the job's user, who may requeue their own job) in two cases:
 *
 * --vm-checkpoint-signal: that signal (Slurm's --signal=B:SIG@TIME sends it
 * before the time limit) becomes a requeue. The requeue saves the guest
 * (helpers/mux/requeue.c and the plugin's teardown) and the job goes on from
 * it when it starts again, with a new time limit.
 *
 * --vm-checkpoint, the guest lost: its QEMU died (killed, crashed, the host's
 * OOM killer). If the guest was checkpointed since this run of the job began,
 * the job is requeued and goes on from that checkpoint. A checkpoint older
 * than this run is the one it started from: going back to it again could
 * loop forever, so the job fails as a job without checkpoints would. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "spank_vm/build_config.h"
#include "spank_vm/checkpoint.h"
#include "spank_vm/checkpoint_name.h"
#include "spank_vm/values.h"

/* This task's job id, or NULL (and why on stderr). */
static const char *job_id(const char *why, uint32_t *id)
{
	const char *job = getenv("SLURM_JOB_ID");
	uint64_t v;

	if (job == NULL || svm_parse_uint(job, 1, UINT32_MAX - 1, &v, NULL) != 0) {
		fprintf(stderr, EXEC_PREFIX "%s: no job to requeue (SLURM_JOB_ID)\n", why);
		return NULL;
	}
	*id = (uint32_t)v;
	return job;
}

/* scontrol requeue JOB; its complaints go to stderr. */
static bool scontrol_requeue(const char *job)
{
	char scontrol[] = SPANK_VM_SLURM_BINDIR "/scontrol";
	sigset_t none;
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		/* The proxy blocks the signals it relays; scontrol needs them. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl(scontrol, scontrol, "requeue", job, (char *)NULL);
		fprintf(stderr, EXEC_PREFIX "cannot run %s: %s\n", scontrol, strerror(errno));
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool exec_requeue_job(int signo)
{
	char why[64];
	uint32_t id;
	const char *job;

	snprintf(why, sizeof(why), "signal %d", signo);
	job = job_id(why, &id);
	if (job == NULL)
		return false;
	if (!scontrol_requeue(job)) {
		fprintf(stderr,
		        EXEC_PREFIX "signal %d (--vm-checkpoint-signal): job %s could not be "
		                    "requeued (above): the script gets the signal\n",
		        signo, job);
		return false;
	}
	fprintf(stderr,
	        EXEC_PREFIX "signal %d (--vm-checkpoint-signal): job %s is requeued; its VM is "
	                    "saved and goes on when the job starts again\n",
	        signo, job);
	return true;
}

void exec_requeue_after_loss(const char *checkpoint_dir, time_t run_started)
{
	char name[SVM_CKPT_DIR_MAX], path[4200], when[64];
	uint32_t id = 0;
	const char *job = job_id("the guest is gone", &id);
	struct stat st;
	struct tm tm;

	if (job == NULL)
		return;
	svm_ckpt_dir_name(id, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s/%s", checkpoint_dir, name, SVM_CKPT_MANIFEST);
	if (stat(path, &st) != 0 || st.st_mtime < run_started) {
		fprintf(stderr,
		        EXEC_PREFIX "--vm-checkpoint: job %s has no checkpoint since it started "
		                    "in %s: it is not requeued\n",
		        job, checkpoint_dir);
		return;
	}
	strftime(when, sizeof(when), "%F %T", localtime_r(&st.st_mtime, &tm));
	if (!scontrol_requeue(job)) {
		fprintf(stderr,
		        EXEC_PREFIX "--vm-checkpoint: job %s could not be requeued (above)\n", job);
		return;
	}
	fprintf(stderr,
	        EXEC_PREFIX "--vm-checkpoint: job %s is requeued; it goes on from its checkpoint "
	                    "of %s\n",
	        job, when);
}
