#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spank_vm/live_checkpoint.h"
#include "spank_vm/runtime.h"
#include "spank_vm/save_command.h"

struct live_job {
	pid_t mux;
	uid_t uid;
	gid_t gid;
	char guest_dir[PATH_MAX];
	char marker[PATH_MAX + 32];
};

static int find_job(const struct svm_live_checkpoint *c, struct live_job *j, struct svm_err *err)
{
	struct stat st;

	j->mux = svm_job_mux_pid(c->runtime_dir, c->helper_dir, c->job_id);
	if (j->mux == 0)
		return svm_err_set(err, "job %u has no running spank-vm-mux on %s", c->job_id,
		                   c->node);
	snprintf(j->guest_dir, sizeof(j->guest_dir), "%s/%u/%s", c->runtime_dir, c->job_id,
	         SVM_GUEST_DIR);
	/* The guest directory is the user's: its owner is the job's. */
	if (lstat(j->guest_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return svm_err_set(err, "job %u has no guest directory %s", c->job_id,
		                   j->guest_dir);
	j->uid = st.st_uid;
	j->gid = st.st_gid;
	snprintf(j->marker, sizeof(j->marker), "%s/%s%s", j->guest_dir, SVM_GUEST_MUX_SOCKET,
	         SVM_MUX_PAUSED_SUFFIX);
	return 0;
}

static int run_save(const struct svm_live_checkpoint *c, const struct live_job *j,
                    struct svm_err *err)
{
	char exe[PATH_MAX + 32], name[128];
	struct svm_save_guest g = {.exe = exe,
	                           .runtime_dir = c->runtime_dir,
	                           .job_id = c->job_id,
	                           .node = c->node,
	                           .name = name,
	                           .uid = j->uid,
	                           .gid = j->gid,
	                           .guest_dir = j->guest_dir,
	                           .checkpoint_dir = c->checkpoint_dir,
	                           .keep_running = true,
	                           .uri = c->uri};
	struct svm_save_command cmd = {.argv = {NULL}};
	int status;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/spank-vm-provision", c->helper_dir);
	if (svm_domain_default_name(c->node, c->job_id, name, sizeof(name)) != 0)
		return svm_err_set(err, "job %u: node name too long", c->job_id);
	svm_save_command(&cmd, &g);
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid == 0) {
		execv(exe, cmd.argv);
		fprintf(stderr, "spank_vm: cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return svm_err_errno(err, errno, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return svm_err_set(err, "job %u: the save failed (above); the guest runs on",
		                   c->job_id);
	return 0;
}

int svm_live_checkpoint(const struct svm_live_checkpoint *c, struct svm_err *err)
{
	/* PAUSED follows what the agent had queued; the mux gives up on it
	 * after its heartbeat timeout, so that is our bound too. */
	unsigned bound = c->pause_timeout_s + 10;
	struct live_job j = {.mux = 0};
	int lock = svm_job_checkpoint_lock(c->runtime_dir, c->job_id, err), rc = -1;

	if (lock < 0 || find_job(c, &j, err) != 0)
		goto out;
	if (kill(j.mux, SIGUSR1) != 0) {
		svm_err_errno(err, errno, "cannot signal job %u's mux", c->job_id);
		goto out;
	}
	if (!svm_mux_wait_marker(j.marker, j.mux, true, bound)) {
		kill(j.mux, SIGUSR2);
		svm_err_set(err, "job %u's mux did not pause within %u s (see %s/mux.log)",
		            c->job_id, bound, j.guest_dir);
		goto out;
	}
	rc = run_save(c, &j, err);
	if (kill(j.mux, SIGUSR2) != 0 || !svm_mux_wait_marker(j.marker, j.mux, false, bound))
		rc = svm_err_set(err,
		                 "job %u's mux did not take up the guest again (see %s/mux.log)",
		                 c->job_id, j.guest_dir);
out:
	if (lock >= 0)
		close(lock);
	return rc;
}
