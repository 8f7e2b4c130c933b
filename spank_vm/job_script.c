/* S_CTX_JOB_SCRIPT: the prolog and epilog, each a fresh root process.
 *
 * A failing prolog or epilog drains the node, so nothing a user sends may
 * make them fail: a request that does not validate is recorded as an error
 * for the job's tasks to report, and the prolog succeeds. Only a broken node
 * (runtime_dir not writable) or a broken plugstack.conf fails them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

static int job_identity(spank_t sp, uint32_t *job_id, uid_t *uid)
{
	spank_err_t rc = spank_get_item(sp, S_JOB_ID, job_id);

	if (rc == ESPANK_SUCCESS)
		rc = spank_get_item(sp, S_JOB_UID, uid);
	if (rc != ESPANK_SUCCESS) {
		svm_error("cannot read the job id: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* The request as the submitting command published it; with policy=always a
 * job that asked for nothing gets the default guest. Returns 1 for "no VM". */
static int read_request(struct svm_request *req, struct svm_err *err)
{
	const char *record = getenv(SVM_REQUEST_PROLOG_ENV);

	if (record != NULL)
		return svm_request_decode(req, record, err);
	if (svm_plugin.config.policy != SVM_POLICY_ALWAYS)
		return 1;
	svm_request_init(req);
	return svm_request_set(req, SVM_OPT_VM, NULL, svm_plugin.config.default_image, err);
}

static int record(uint32_t job_id, const char *name, const char *content)
{
	struct svm_err err;

	if (svm_job_dir_create(svm_plugin.config.runtime_dir, job_id, &err) != 0 ||
	    svm_job_file_write(svm_plugin.config.runtime_dir, job_id, name, content, &err) != 0) {
		svm_error("job %u: %s", job_id, err.msg);
		return -1;
	}
	return 0;
}

/* The job's working directory (the prolog's SLURM_JOB_WORK_DIR), which the
 * guest shares read-write; the extern step cannot ask Slurm for it. */
static int record_workdir(uint32_t job_id)
{
	const char *dir = getenv("SLURM_JOB_WORK_DIR");
	char line[SVM_PATH_MAX + 2];

	if (dir == NULL || svm_check_abs_path(dir, NULL) != 0)
		return 0;
	snprintf(line, sizeof(line), "%s\n", dir);
	return record(job_id, SVM_WORKDIR_FILE, line);
}

/* Each node's guest would need its own checkpoint, and every node of a
 * job would restore the one there is: one node only, for now. Slurm writes
 * a list of one node as its bare name. */
static int check_checkpoint_nodes(const struct svm_request *req, struct svm_err *err)
{
	const char *nodes = getenv("SLURM_NODELIST");

	if (req->checkpoint_dir[0] == '\0' || nodes == NULL || strpbrk(nodes, ",[") == NULL)
		return 0;
	return svm_err_set(err,
	                   "--vm-checkpoint: only a job of one node can be checkpointed (this "
	                   "one has %.200s); run it with -N 1",
	                   nodes);
}

int svm_job_script_prolog(spank_t sp, int ac, char **av)
{
	char text[SVM_REQUEST_MAX];
	struct svm_request req;
	struct svm_err err;
	uint32_t job_id;
	uid_t uid;
	int rc;

	if (svm_plugin_load_config(ac, av) != 0 || svm_plugin_node_config() != 0 ||
	    job_identity(sp, &job_id, &uid) != 0)
		return -1;
	rc = read_request(&req, &err);
	if (rc == 1)
		return 0;
	if (rc == 0)
		rc = check_checkpoint_nodes(&req, &err);
	if (rc == 0 && svm_slurm_lacks_contain()) {
		svm_err_set(&err, "this cluster cannot run jobs in VMs: slurm.conf lacks "
		                  "PrologFlags=Contain (tell your Slurm admin)");
		svm_error("job %u: %s", job_id, err.msg);
		return record(job_id, SVM_REQUEST_ERROR_FILE, err.msg) == 0 ? 0 : -1;
	}
	if (rc != 0) {
		svm_error("job %u (uid %u): refusing its VM request: %s", job_id, (unsigned)uid,
		          err.msg);
		return record(job_id, SVM_REQUEST_ERROR_FILE, err.msg) == 0 ? 0 : -1;
	}
	if (svm_request_encode(&req, '\n', text, sizeof(text), &err) != 0) {
		svm_error("job %u: %s", job_id, err.msg);
		return record(job_id, SVM_REQUEST_ERROR_FILE, err.msg) == 0 ? 0 : -1;
	}
	strncat(text, "\n", sizeof(text) - strlen(text) - 1);
	if (record(job_id, SVM_REQUEST_FILE, text) != 0 || record_workdir(job_id) != 0 ||
	    (req.net == SVM_NET_CLUSTER && svm_job_net_record_nodes(job_id) != 0))
		return -1;
	svm_debug("job %u: recorded VM request (image %s)", job_id, req.image);
	return 0;
}

static bool job_dir_exists(uint32_t job_id)
{
	char dir[SVM_PATH_MAX + 16];
	struct stat st;

	if (svm_job_dir(svm_plugin.config.runtime_dir, job_id, dir, sizeof(dir), NULL) != 0)
		return false;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int svm_job_script_epilog(spank_t sp, int ac, char **av)
{
	struct svm_err err;
	uint32_t job_id;
	uid_t uid;

	if (svm_plugin_load_config(ac, av) != 0 || svm_plugin_node_config() != 0 ||
	    job_identity(sp, &job_id, &uid) != 0)
		return -1;
	/* The extern step may not have got to them (killed, or slurmd restarted). */
	if (job_dir_exists(job_id)) {
		svm_checkpointer_stop(job_id);
		svm_guest_stop(job_id);
	}
	if (svm_job_dir_remove(svm_plugin.config.runtime_dir, job_id, &err) != 0) {
		svm_error("job %u: cleaning up: %s", job_id, err.msg);
		return -1;
	}
	return 0;
}
