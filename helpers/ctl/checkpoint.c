/* checkpoint JOBID: saves the guest of a running --vm-checkpoint job on this
 * node into the user's checkpoint directory and lets it run on. The job's
 * mux quiesces and detaches from the guest (SIGUSR1, helpers/mux/pause.c),
 * spank-vm-provision save --keep-running saves it through libvirt, and the
 * mux reattaches (SIGUSR2): the job's tasks see only the pause. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "spank_vm/request.h"
#include "spank_vm/runtime.h"
#include "spank_vm/save_command.h"
#include "spank_vm/values.h"

struct ckpt_job {
	uint32_t id;
	struct svm_request req;
	pid_t mux;
	uid_t uid;
	gid_t gid;
	char guest_dir[PATH_MAX];
	char marker[PATH_MAX + 32];
};

static int read_request(const struct ctl *c, struct ckpt_job *j, struct svm_err *err)
{
	char text[8192];

	if (svm_job_file_read(c->config.runtime_dir, j->id, SVM_REQUEST_FILE, text, sizeof(text),
	                      NULL) != 0)
		return svm_err_set(err, "job %u runs no guest on %s", j->id, c->node);
	if (svm_request_decode(&j->req, text, err) != 0)
		return -1;
	if (j->req.checkpoint_dir[0] == '\0')
		return svm_err_set(err, "job %u did not ask for checkpoints (--vm-checkpoint=DIR)",
		                   j->id);
	return 0;
}

static int find_mux(const struct ctl *c, struct ckpt_job *j, struct svm_err *err)
{
	j->mux = svm_job_mux_pid(c->config.runtime_dir, c->config.helper_dir, j->id);
	if (j->mux == 0)
		return svm_err_set(err, "job %u has no running spank-vm-mux on %s", j->id, c->node);
	return 0;
}

static int find_guest_dir(const struct ctl *c, struct ckpt_job *j, struct svm_err *err)
{
	struct stat st;

	snprintf(j->guest_dir, sizeof(j->guest_dir), "%s/%u/%s", c->config.runtime_dir, j->id,
	         SVM_GUEST_DIR);
	if (lstat(j->guest_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return svm_err_set(err, "job %u has no guest directory %s", j->id, j->guest_dir);
	j->uid = st.st_uid;
	j->gid = st.st_gid;
	snprintf(j->marker, sizeof(j->marker), "%s/%s%s", j->guest_dir, SVM_GUEST_MUX_SOCKET,
	         SVM_MUX_PAUSED_SUFFIX);
	return 0;
}

static int run_save(const struct ctl *c, const struct ckpt_job *j, struct svm_err *err)
{
	char exe[PATH_MAX + 32], name[128];
	struct svm_save_guest g = {.exe = exe,
	                           .runtime_dir = c->config.runtime_dir,
	                           .job_id = j->id,
	                           .node = c->node,
	                           .name = name,
	                           .uid = j->uid,
	                           .gid = j->gid,
	                           .guest_dir = j->guest_dir,
	                           .checkpoint_dir = j->req.checkpoint_dir,
	                           .keep_running = true,
	                           .uri = c->uri};
	struct svm_save_command cmd = {.argv = {NULL}};
	int status;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/spank-vm-provision", c->config.helper_dir);
	ctl_domain_name(c, j->id, name, sizeof(name));
	svm_save_command(&cmd, &g);
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid == 0) {
		execv(exe, cmd.argv);
		fprintf(stderr, CTL_PREFIX "cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return svm_err_errno(err, errno, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return svm_err_set(err, "job %u: the save failed (above); the guest runs on",
		                   j->id);
	return 0;
}

int ctl_checkpoint(const struct ctl *c, uint32_t job, struct svm_err *err)
{
	/* PAUSED follows what the agent had queued; the mux gives up on it
	 * after heartbeat_timeout, so that is our bound too. */
	unsigned bound = (unsigned)c->config.heartbeat_timeout_s + 10;
	struct ckpt_job j = {.id = job};
	int rc;

	if (read_request(c, &j, err) != 0 || find_mux(c, &j, err) != 0 ||
	    find_guest_dir(c, &j, err) != 0)
		return -1;
	if (kill(j.mux, SIGUSR1) != 0)
		return svm_err_errno(err, errno, "cannot signal job %u's mux", job);
	if (!svm_mux_wait_marker(j.marker, j.mux, true, bound)) {
		kill(j.mux, SIGUSR2);
		return svm_err_set(err, "job %u's mux did not pause within %u s (see %s/mux.log)",
		                   job, bound, j.guest_dir);
	}
	rc = run_save(c, &j, err);
	if (kill(j.mux, SIGUSR2) != 0 || !svm_mux_wait_marker(j.marker, j.mux, false, bound)) {
		return svm_err_set(err,
		                   "job %u's mux did not take up the guest again (see %s/mux.log)",
		                   job, j.guest_dir);
	}
	if (rc == 0)
		printf("job %u: checkpoint written to %s; the job runs on\n", job,
		       j.req.checkpoint_dir);
	return rc;
}
