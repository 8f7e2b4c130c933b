/* gc: removes what jobs that Slurm no longer runs on this node left behind.
 * Safe from cron: if Slurm cannot be asked, nothing is removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "spank_vm/runtime.h"

#define MAX_JOBS 4096

/* Runs argv, its stdout into out (bounded); 0 only on exit status 0. */
static int capture(char *const argv[], char *out, size_t len)
{
	int fds[2], status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	while (pid > 0 && used + 1 < len && (n = read(fds[0], out + used, len - used - 1)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The jobs Slurm still has on this node, in any state that may hold a guest. */
static int active_jobs(const struct ctl *c, uint32_t *jobs, int max, struct svm_err *err)
{
	static char out[MAX_JOBS * 12];
	char *argv[] = {(char *)"squeue", (char *)"-h",    (char *)"-w",
	                (char *)c->node,  (char *)"-t",    (char *)"all",
	                (char *)"-o",     (char *)"%A %T", NULL};
	int count = 0;

	if (capture(argv, out, sizeof(out)) != 0)
		return svm_err_set(err,
		                   "cannot ask Slurm which jobs run on %s (squeue failed): "
		                   "nothing removed",
		                   c->node);
	for (char *line = strtok(out, "\n"); line && count < max; line = strtok(NULL, "\n")) {
		char state[32] = "";
		unsigned job = 0;

		if (sscanf(line, "%u %31s", &job, state) != 2)
			continue;
		if (strcmp(state, "COMPLETED") != 0 && strcmp(state, "CANCELLED") != 0 &&
		    strcmp(state, "FAILED") != 0 && strcmp(state, "TIMEOUT") != 0 &&
		    strcmp(state, "OUT_OF_MEMORY") != 0 && strcmp(state, "NODE_FAIL") != 0 &&
		    strcmp(state, "BOOT_FAIL") != 0 && strcmp(state, "DEADLINE") != 0 &&
		    strcmp(state, "PREEMPTED") != 0)
			jobs[count++] = job;
	}
	return count;
}

static bool contains(const uint32_t *jobs, int n, uint32_t job)
{
	for (int i = 0; i < n; i++)
		if (jobs[i] == job)
			return true;
	return false;
}

static int remove_job(const struct ctl *c, uint32_t job, struct svm_err *err)
{
	char exe[4096], name[128], job_text[16];
	char *argv[] = {exe,
	                (char *)"stop",
	                (char *)"--name",
	                name,
	                (char *)"--job",
	                job_text,
	                (char *)"--node",
	                (char *)c->node,
	                (char *)"--timeout",
	                (char *)"0",
	                NULL};
	char out[1024];

	snprintf(exe, sizeof(exe), "%s/spank-vm-provision", c->config.helper_dir);
	ctl_domain_name(c, job, name, sizeof(name));
	snprintf(job_text, sizeof(job_text), "%u", job);
	if (capture(argv, out, sizeof(out)) != 0)
		return svm_err_set(err, "job %u: cannot destroy %s", job, name);
	return svm_job_dir_remove(c->config.runtime_dir, job, err);
}

int ctl_gc(const struct ctl *c, struct svm_err *err)
{
	static uint32_t known[MAX_JOBS], active[MAX_JOBS];
	int nknown = ctl_known_jobs(c, known, MAX_JOBS, err), nactive, rc = 0;

	if (nknown < 0)
		return -1;
	nactive = active_jobs(c, active, MAX_JOBS, err);
	if (nactive < 0)
		return -1;
	for (int i = 0; i < nknown; i++) {
		struct svm_err why;

		if (contains(active, nactive, known[i]))
			continue;
		printf("%s job %u\n", c->dry_run ? "would remove" : "removing", known[i]);
		if (!c->dry_run && remove_job(c, known[i], &why) != 0) {
			fprintf(stderr, CTL_PREFIX "%s\n", why.msg);
			rc = svm_err_set(err, "gc left some jobs behind");
		}
	}
	return rc;
}
