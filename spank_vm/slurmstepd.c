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

struct allocation {
	char *cores;
	uint64_t mem_mib;
	pid_t pid; /* a process in the job's cgroups */
};

static int read_allocation(spank_t sp, struct allocation *alloc)
{
	spank_err_t rc = spank_get_item(sp, S_JOB_ALLOC_CORES, &alloc->cores);

	if (rc == ESPANK_SUCCESS)
		rc = spank_get_item(sp, S_JOB_ALLOC_MEM, &alloc->mem_mib);
	/* slurmstepd has joined the job's cgroups by now; the extern step has no
	 * task of its own to ask about (S_TASK_PID is "not in task context"). */
	alloc->pid = getpid();
	if (rc != ESPANK_SUCCESS) {
		svm_error("cannot read the job's allocation: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* Computes the guest plan (spank-vm-provision plan) into the job's
 * directory; a failure is recorded for the job's tasks to report. */
static int plan_guest(uint32_t job_id, const struct svm_request *req,
                      const struct allocation *alloc)
{
	const struct svm_config *cfg = &svm_plugin.config;
	char mem[32], reserve[32], min_guest[32], pid[32], out_path[SVM_PATH_MAX + 64];
	char output[1024], dir[SVM_PATH_MAX + 16];
	enum svm_hypervisor hv =
	        req->hypervisor != SVM_HV_UNSET ? req->hypervisor : cfg->hypervisor;
	struct svm_err err;
	int status;

	snprintf(mem, sizeof(mem), "%" PRIu64, alloc->mem_mib);
	snprintf(reserve, sizeof(reserve), "%" PRIu64, cfg->mem_reserve_mib);
	snprintf(min_guest, sizeof(min_guest), "%" PRIu64, cfg->min_guest_mib);
	snprintf(pid, sizeof(pid), "%d", (int)alloc->pid);
	svm_job_dir(cfg->runtime_dir, job_id, dir, sizeof(dir), &err);
	snprintf(out_path, sizeof(out_path), "%s/plan", dir);
	{
		char *argv[] = {(char *)PROVISION_HELPER,
		                (char *)"plan",
		                (char *)"--cores",
		                alloc->cores,
		                (char *)"--cgroup-pid",
		                pid,
		                (char *)"--mem",
		                mem,
		                (char *)"--reserve",
		                reserve,
		                (char *)"--min-guest",
		                min_guest,
		                (char *)"--hypervisor",
		                (char *)svm_hypervisor_name(hv),
		                (char *)"--hugepages",
		                (char *)svm_hugepages_name(req->hugepages),
		                (char *)"--out",
		                out_path,
		                NULL};

		status = svm_run_helper(PROVISION_HELPER, argv, PLAN_TIMEOUT_S, output,
		                        sizeof(output));
	}
	if (status == 0) {
		svm_debug("job %u: planned the guest into %s", job_id, out_path);
		return 0;
	}
	output[strcspn(output, "\n")] = '\0';
	svm_error("job %u: no guest plan: %s", job_id, output);
	svm_job_file_write(cfg->runtime_dir, job_id, PLAN_ERROR_FILE, output, &err);
	return -1;
}

int svm_slurmstepd_task_post_fork(spank_t sp, int ac, char **av)
{
	struct svm_request req;
	struct allocation alloc = {0};
	uint32_t job_id = 0, step_id = 0;

	(void)ac;
	(void)av;
	if (spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS ||
	    step_id != SLURM_EXTERN_CONT || spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS)
		return 0;
	if (load_request(job_id, &req) != 0 || read_allocation(sp, &alloc) != 0)
		return 0;
	/* A job's failure is its own: the extern step itself carries on. */
	plan_guest(job_id, &req, &alloc);
	return 0;
}
