/* --vm-checkpoint-interval: the job's spank-vm-checkpointer (its own file:
 * helpers/checkpointer/main.c) runs as root in the extern step from the
 * guest's start to the extern step's end. */
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "plugin.h"

/* A save of a 4 GiB guest takes about 15 s here; a stop waits that long. */
#define STOP_TIMEOUT_S 120

void svm_checkpointer_start(const struct svm_guest_job *job)
{
	const struct svm_config *cfg = &svm_plugin.config;
	char exe[SVM_PATH_MAX + 32], log[SVM_PATH_MAX + 48], job_text[16], every[16], pause[16];
	char pid_text[16], dir[SVM_PATH_MAX + 16];
	char *argv[] = {exe,
	                "--runtime-dir",
	                (char *)cfg->runtime_dir,
	                "--helper-dir",
	                (char *)cfg->helper_dir,
	                "--node",
	                svm_plugin.node_name,
	                "--job",
	                job_text,
	                "--checkpoint",
	                (char *)job->req->checkpoint_dir,
	                "--every",
	                every,
	                "--pause-timeout",
	                pause,
	                "--log",
	                log,
	                NULL};
	struct svm_err err;
	pid_t pid;

	if (job->req->checkpoint_interval_s == 0)
		return;
	snprintf(exe, sizeof(exe), "%s/%s", cfg->helper_dir, SVM_CHECKPOINTER_HELPER);
	snprintf(dir, sizeof(dir), "%s/%u", cfg->runtime_dir, job->job_id);
	snprintf(log, sizeof(log), "%s/%s", dir, SVM_CHECKPOINTER_LOG);
	snprintf(job_text, sizeof(job_text), "%u", job->job_id);
	snprintf(every, sizeof(every), "%u", (unsigned)job->req->checkpoint_interval_s);
	snprintf(pause, sizeof(pause), "%u", (unsigned)cfg->heartbeat_timeout_s);
	pid = svm_spawn_detached(argv, -1);
	if (pid <= 0) {
		svm_error("job %u: cannot start %s: no periodic checkpoints", job->job_id, exe);
		return;
	}
	snprintf(pid_text, sizeof(pid_text), "%d\n", (int)pid);
	if (svm_job_file_write(cfg->runtime_dir, job->job_id, SVM_JOB_CHECKPOINTER_PID_FILE,
	                       pid_text, &err) != 0)
		svm_error("job %u: %s", job->job_id, err.msg);
	svm_verbose("job %u: a checkpoint every %u s (pid %d)", job->job_id,
	            (unsigned)job->req->checkpoint_interval_s, (int)pid);
}

void svm_checkpointer_stop(uint32_t job_id)
{
	const struct svm_config *cfg = &svm_plugin.config;
	const struct timespec tick = {0, 50 * 1000000L};
	pid_t pid = svm_job_helper_pid(cfg->runtime_dir, cfg->helper_dir, job_id,
	                               SVM_JOB_CHECKPOINTER_PID_FILE, SVM_CHECKPOINTER_HELPER);

	if (pid <= 0 || kill(pid, SIGTERM) != 0)
		return;
	/* Not our child, maybe a zombie for a while: gone is when its pid no
	 * longer runs the checkpointer. */
	for (int waited = 0; waited < STOP_TIMEOUT_S * 20; waited++) {
		if (svm_job_helper_pid(cfg->runtime_dir, cfg->helper_dir, job_id,
		                       SVM_JOB_CHECKPOINTER_PID_FILE,
		                       SVM_CHECKPOINTER_HELPER) != pid)
			return;
		nanosleep(&tick, NULL);
	}
	svm_error("job %u: its checkpointer (pid %d) did not stop in %d s: killed", job_id,
	          (int)pid, STOP_TIMEOUT_S);
	kill(pid, SIGKILL);
}
