/* A --vm-checkpoint job that Slurm ends to requeue it (scontrol requeue,
 * preemption with PreemptMode=REQUEUE) keeps its guest: as the extern step
 * ends, before the teardown, the guest is saved into the user's checkpoint
 * directory, and the job's next start restores it (guest.c). The job's mux
 * has held the tasks' SIGTERM back and paused the channel meanwhile
 * (helpers/mux/requeue.c), so nothing in the guest was told to stop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"
#include "spank_vm/save_command.h"

#define REQUEUED_HELPER    "spank-vm-requeued"
#define REQUEUED_TIMEOUT_S 30
#define SAVE_TIMEOUT_S     600

static bool job_is_requeued(uint32_t job_id)
{
	char job[16], output[1024];
	const char *conf = svm_slurm_conf_path();
	char *argv[] = {(char *)REQUEUED_HELPER, job, NULL, NULL, NULL};
	int rc;

	snprintf(job, sizeof(job), "%u", job_id);
	if (conf != NULL) {
		argv[1] = (char *)"--slurm-conf";
		argv[2] = (char *)conf;
		argv[3] = job;
	}
	rc = svm_run_helper(REQUEUED_HELPER, argv, REQUEUED_TIMEOUT_S, output, sizeof(output));
	if (rc != 0 && rc != 1)
		svm_error("job %u: its guest is not saved: %.*s", job_id,
		          (int)strcspn(output, "\n"), output);
	return rc == 0;
}

/* The mux pauses by itself when it sees the requeue first; else it is asked
 * to. Gone (killed after KillWait) or too slow, the guest is saved as it is:
 * its processes are all there, only the channel was not quiesced. */
static void pause_mux(uint32_t job_id, const char *guest_dir)
{
	char marker[SVM_PATH_MAX + 64];
	pid_t mux = svm_job_mux_pid(svm_plugin.config.runtime_dir, svm_plugin.config.helper_dir,
	                            job_id);
	unsigned bound = (unsigned)svm_plugin.config.heartbeat_timeout_s + 10;

	snprintf(marker, sizeof(marker), "%s/%s%s", guest_dir, SVM_GUEST_MUX_SOCKET,
	         SVM_MUX_PAUSED_SUFFIX);
	if (faccessat(AT_FDCWD, marker, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return;
	if (mux > 0 && kill(mux, SIGUSR1) == 0 && svm_mux_wait_marker(marker, mux, true, bound))
		return;
	svm_info("job %u: its mux did not pause the guest's channel: saving the guest as it is",
	         job_id);
}

static void save_guest(uint32_t job_id, const struct svm_request *req, const char *guest_dir)
{
	char name[96], output[1024];
	struct svm_save_guest g = {.exe = "spank-vm-provision",
	                           .runtime_dir = svm_plugin.config.runtime_dir,
	                           .job_id = job_id,
	                           .node = svm_plugin.node_name,
	                           .name = name,
	                           .guest_dir = guest_dir,
	                           .checkpoint_dir = req->checkpoint_dir};
	struct svm_save_command cmd = {.argv = {NULL}};
	struct stat st;

	/* The guest directory is the user's: its owner is the job's. */
	if (svm_guest_domain_name(job_id, name, sizeof(name)) != 0 || lstat(guest_dir, &st) != 0 ||
	    !S_ISDIR(st.st_mode)) {
		svm_error("job %u: requeued, but it has no guest to save", job_id);
		return;
	}
	g.uid = st.st_uid;
	g.gid = st.st_gid;
	svm_save_command(&cmd, &g);
	if (svm_run_helper(cmd.argv[0], cmd.argv, SAVE_TIMEOUT_S, output, sizeof(output)) != 0)
		svm_error("job %u: requeued, but its guest could not be saved: %.*s", job_id,
		          (int)strcspn(output, "\n"), output);
	else
		svm_info("job %u: requeued: its guest is saved in %s", job_id, req->checkpoint_dir);
}

void svm_guest_save_if_requeued(uint32_t job_id, const struct svm_request *req)
{
	char guest_dir[SVM_PATH_MAX + 32];
	struct svm_err err;
	int lock;

	if (req->checkpoint_dir[0] == '\0' || !job_is_requeued(job_id))
		return;
	/* After a `spank-vm-ctl checkpoint` under way, which resumes the mux. */
	lock = svm_job_checkpoint_lock(svm_plugin.config.runtime_dir, job_id, &err);
	if (lock < 0) {
		svm_error("job %u: requeued, but its guest cannot be saved: %s", job_id, err.msg);
		return;
	}
	snprintf(guest_dir, sizeof(guest_dir), "%s/%u/%s", svm_plugin.config.runtime_dir, job_id,
	         SVM_GUEST_DIR);
	pause_mux(job_id, guest_dir);
	save_guest(job_id, req, guest_dir);
	close(lock);
}
