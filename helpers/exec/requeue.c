/* --vm-checkpoint-signal: the batch step's proxy turns that signal (Slurm's
 * --signal=B:SIG@TIME sends it before the time limit) into a requeue of its
 * job. The requeue saves the guest (helpers/mux/requeue.c and the plugin's
 * teardown) and the job goes on from it when it starts again, with a new
 * time limit. scontrol runs as the job's user, who may requeue their own job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "spank_vm/build_config.h"
#include "spank_vm/values.h"

bool exec_requeue_job(int signo)
{
	const char *job = getenv("SLURM_JOB_ID");
	char scontrol[] = SPANK_VM_SLURM_BINDIR "/scontrol";
	sigset_t none;
	int status = 0;
	uint64_t id;
	pid_t pid;

	if (job == NULL || svm_parse_uint(job, 1, UINT32_MAX - 1, &id, NULL) != 0) {
		fprintf(stderr, EXEC_PREFIX "signal %d: no job to requeue (SLURM_JOB_ID)\n", signo);
		return false;
	}
	pid = fork();
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
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
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
