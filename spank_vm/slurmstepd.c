/* S_CTX_REMOTE: slurmstepd, for every step of every job, as root. A job
 * without --vm must cost nothing here: only the existence of its request
 * record is checked.
 *
 * The extern step (PrologFlags=Contain) carries the guest's lifetime: it
 * knows the job's cores and memory on this node (S_JOB_ALLOC_*), which the
 * prolog does not, and it lives until the job ends. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

#define PROVISION_HELPER "spank-vm-provision"
#define PLAN_TIMEOUT_S   30
#define PLAN_ERROR_FILE  "plan.error"

static const char *step_kind(uint32_t step_id)
{
	if (step_id == SLURM_EXTERN_CONT)
		return "extern";
	if (step_id == SLURM_BATCH_SCRIPT)
		return "batch";
	return "task";
}

int svm_slurmstepd_init(spank_t sp, int ac, char **av)
{
	if (svm_plugin_load_config(ac, av) != 0)
		return -1;
	/* Registered here too, so the options travelling with the step are known. */
	return svm_args_register(sp);
}

int svm_slurmstepd_post_opt(spank_t sp, int ac, char **av)
{
	uint32_t job_id = 0, step_id = 0;

	(void)ac;
	(void)av;
	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS)
		return 0;
	if (svm_plugin_node_config() != 0)
		return -1;
	svm_debug("loaded in slurmstepd for job %u (%s step), runtime_dir %s", job_id,
	          step_kind(step_id), svm_plugin.config.runtime_dir);
	return 0;
}

/* The request the prolog recorded; 1 when the job asked for no VM. */
static int load_request(uint32_t job_id, struct svm_request *req)
{
	char text[SVM_REQUEST_MAX];
	struct svm_err err;

	if (svm_job_file_read(svm_plugin.config.runtime_dir, job_id, SVM_REQUEST_FILE, text,
	                      sizeof(text), &err) != 0)
		return errno == ENOENT ? 1 : (svm_error("job %u: %s", job_id, err.msg), -1);
	if (svm_request_decode(req, text, &err) != 0) {
		svm_error("job %u: recorded request: %s", job_id, err.msg);
		return -1;
	}
	return 0;
}

/* Reads what the extern step knows of the job on this node. */
static int read_job(spank_t sp, struct svm_guest_job *job)
{
	spank_err_t rc = spank_get_item(sp, S_JOB_ALLOC_CORES, &job->cores);

	if (rc == ESPANK_SUCCESS)
		rc = spank_get_item(sp, S_JOB_ALLOC_MEM, &job->mem_mib);
	if (rc == ESPANK_SUCCESS)
		rc = spank_get_item(sp, S_JOB_UID, &job->uid);
	if (rc == ESPANK_SUCCESS)
		rc = spank_get_item(sp, S_JOB_GID, &job->gid);
	/* slurmstepd has joined the job's cgroups by now; the extern step has no
	 * task of its own to ask about (S_TASK_PID is "not in task context"). */
	job->cgroup_pid = getpid();
	if (rc != ESPANK_SUCCESS) {
		svm_error("job %u: cannot read the job's allocation: %s", job->job_id,
		          spank_strerror(rc));
		return -1;
	}
	return 0;
}

static bool is_extern_step(spank_t sp, uint32_t *job_id)
{
	uint32_t step_id = 0;

	return spank_get_item(sp, S_JOB_STEPID, &step_id) == ESPANK_SUCCESS &&
	       step_id == SLURM_EXTERN_CONT &&
	       spank_get_item(sp, S_JOB_ID, job_id) == ESPANK_SUCCESS;
}

int svm_slurmstepd_task_post_fork(spank_t sp, int ac, char **av)
{
	struct svm_request req;
	struct svm_guest_job job = {0};

	(void)ac;
	(void)av;
	if (!is_extern_step(sp, &job.job_id) || load_request(job.job_id, &req) != 0)
		return 0;
	job.req = &req;
	/* A job's failure is its own: the extern step itself carries on, and
	 * the job's tasks report guest.error. */
	if (read_job(sp, &job) == 0)
		svm_guest_start(&job);
	return 0;
}

int svm_slurmstepd_exit(spank_t sp, int ac, char **av)
{
	struct svm_request req;
	uint32_t job_id = 0;

	(void)ac;
	(void)av;
	if (!is_extern_step(sp, &job_id) || load_request(job_id, &req) != 0)
		return 0;
	svm_guest_stop(job_id);
	return 0;
}
