/* S_CTX_REMOTE: slurmstepd, for every step of every job, as root. A job
 * without --vm must cost nothing here: only the existence of its request
 * record is checked.
 *
 * The extern step (PrologFlags=Contain) carries the guest's lifetime: it
 * knows the job's cores and memory on this node (S_JOB_ALLOC_*), which the
 * prolog does not, and it lives until the job ends. */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "spank_vm/build_config.h"

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

/* The directories the guest shares read-write: the job's working directory
 * (recorded by the prolog) and the user's home. */
static void read_dirs(struct svm_guest_job *job)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	job->workdir[0] = job->home[0] = '\0';
	if (svm_job_file_read(svm_plugin.config.runtime_dir, job->job_id, SVM_WORKDIR_FILE,
	                      job->workdir, sizeof(job->workdir), NULL) == 0)
		job->workdir[strcspn(job->workdir, "\n")] = '\0';
	if (getpwuid_r(job->uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
		snprintf(job->home, sizeof(job->home), "%s", pw.pw_dir);
}

/* The extern step's task (Slurm's "sleep"), forked just before this
 * callback: the first child of any of this process's threads. */
static pid_t extern_task(void)
{
	char path[64], text[256];
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *t;
	pid_t found = 0;

	if (tasks == NULL)
		return 0;
	while (found == 0 && (t = readdir(tasks)) != NULL) {
		FILE *f;

		if (t->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.16s/children", t->d_name);
		f = fopen(path, "re");
		if (f == NULL)
			continue;
		if (fgets(text, sizeof(text), f) != NULL)
			found = (pid_t)strtol(text, NULL, 10);
		fclose(f);
	}
	closedir(tasks);
	return found > 1 ? found : 0;
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
	job->extern_task = extern_task();
	read_dirs(job);
	if (rc == ESPANK_SUCCESS && job->req->net == SVM_NET_CLUSTER) {
		struct svm_err err;

		rc = spank_get_item(sp, S_JOB_NODEID, &job->node_index);
		if (svm_job_net_hosts(job->job_id, job->net_hosts, sizeof(job->net_hosts), &err) !=
		    0)
			svm_error("job %u: guest network: %s", job->job_id, err.msg);
	}
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
	static struct svm_guest_job job; /* large: the job network's host names */

	(void)ac;
	(void)av;
	memset(&job, 0, sizeof(job));
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
	svm_checkpointer_stop(job_id);
	svm_guest_save_if_requeued(job_id, &req);
	svm_guest_stop(job_id);
	return 0;
}

/* ---- tasks: each one is pointed at spank-vm-exec, its proxy into the guest ---- */

/* Set in the task's own process by task_init_privileged (root can read the
 * request), used by task_init (as the user) in the same process. */
static bool task_runs_in_guest;
static bool task_debug;         /* --vm-debug: the proxy reports the guest */
static bool task_forward_pmix;  /* the proxy carries PMIx's connections to the host */
static char task_refusal[1024]; /* why the prolog refused the job's request */
static int task_requeue_signal; /* --vm-checkpoint-signal: the batch proxy requeues on it */
/* --vm-checkpoint's DIR, for the batch proxy: a guest lost after a checkpoint
 * requeues the job (helpers/exec/requeue.c) */
static char task_checkpoint_dir[SVM_PATH_MAX + 1];

static bool is_task_step(spank_t sp, uint32_t *job_id)
{
	uint32_t step_id = 0;

	return spank_get_item(sp, S_JOB_STEPID, &step_id) == ESPANK_SUCCESS &&
	       step_id != SLURM_EXTERN_CONT &&
	       spank_get_item(sp, S_JOB_ID, job_id) == ESPANK_SUCCESS;
}

static bool is_batch_step(spank_t sp)
{
	uint32_t step_id = 0;

	return spank_get_item(sp, S_JOB_STEPID, &step_id) == ESPANK_SUCCESS &&
	       step_id == SLURM_BATCH_SCRIPT;
}

int svm_slurmstepd_task_init_privileged(spank_t sp, int ac, char **av)
{
	struct svm_request req;
	uint32_t job_id = 0;

	(void)ac;
	(void)av;
	if (!is_task_step(sp, &job_id))
		return 0;
	/* A request the prolog refused still means "in a VM": the task must
	 * fail with the reason, not silently run on the host. */
	if (svm_job_file_read(svm_plugin.config.runtime_dir, job_id, SVM_REQUEST_ERROR_FILE,
	                      task_refusal, sizeof(task_refusal), NULL) == 0) {
		task_refusal[strcspn(task_refusal, "\n")] = '\0';
		task_runs_in_guest = true;
		return 0;
	}
	task_refusal[0] = '\0';
	task_runs_in_guest = load_request(job_id, &req) != 1;
	/* Asked for a guest, but this node never prepared one: slurmd skips the
	 * prolog (and the extern step) of a requeued job that comes back to a
	 * node before it forgot the job. Never run such a task on the host. */
	if (!task_runs_in_guest &&
	    (svm_plugin.request.enabled || svm_plugin.config.policy == SVM_POLICY_ALWAYS)) {
		snprintf(task_refusal, sizeof(task_refusal),
		         "this node has no guest for it: slurmd did not run its prolog here this "
		         "time (a requeued job back on its node too soon); requeue it again");
		task_runs_in_guest = true;
		return 0;
	}
	task_debug = task_runs_in_guest && req.debug;
	task_requeue_signal = task_runs_in_guest && is_batch_step(sp) ? req.checkpoint_signal : 0;
	snprintf(task_checkpoint_dir, sizeof(task_checkpoint_dir), "%s",
	         task_runs_in_guest && is_batch_step(sp) ? req.checkpoint_dir : "");
	/* PMIx's server is reached through the host call port, by helpers the
	 * default guest sees at their host paths (a site image has neither). */
	task_forward_pmix = task_runs_in_guest && strcmp(req.image, SVM_BUILTIN_IMAGE) == 0 &&
	                    svm_plugin.config.slurm_commands[0] != '\0';
	return 0;
}

static int setenv_or_fail(spank_t sp, const char *name, const char *value)
{
	spank_err_t rc = spank_setenv(sp, name, value, 1);

	if (rc != ESPANK_SUCCESS) {
		dprintf(STDERR_FILENO, "spank_vm: cannot set %s: %s\n", name, spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* What the proxy needs to find the guest, and to explain a guest that never came. */
static int export_guest_env(spank_t sp, uint32_t job_id)
{
	char path[SVM_PATH_MAX + 48], wait_s[16];
	const char *rd = svm_plugin.config.runtime_dir;

	snprintf(path, sizeof(path), "%s/%u/%s/%s", rd, job_id, SVM_GUEST_DIR,
	         SVM_GUEST_MUX_SOCKET);
	if (setenv_or_fail(sp, "SPANK_VM_TASK", "1") != 0 ||
	    setenv_or_fail(sp, "SPANK_VM_SOCKET", path) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%u/%s/%s", rd, job_id, SVM_GUEST_DIR,
	         SVM_GUEST_READY_FILE);
	if (setenv_or_fail(sp, "SPANK_VM_READY_FILE", path) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%u", rd, job_id);
	if (setenv_or_fail(sp, "SPANK_VM_JOB_DIR", path) != 0)
		return -1;
	snprintf(wait_s, sizeof(wait_s), "%u", (unsigned)svm_plugin.config.boot_timeout_s);
	return setenv_or_fail(sp, "SPANK_VM_WAIT", wait_s);
}

/* PMI2 hands each task a socket in PMI_FD: the proxy relays it into the guest. */
static int export_pmi_fd(spank_t sp)
{
	char fd[16];

	if (spank_getenv(sp, "PMI_FD", fd, sizeof(fd)) != ESPANK_SUCCESS)
		return 0;
	return setenv_or_fail(sp, "SPANK_VM_EXTRA_FD", fd);
}

static int redirect_to_proxy(spank_t sp)
{
	static char exe[SVM_PATH_MAX + 32];
	char **argv = NULL;
	int argc = 0;

	snprintf(exe, sizeof(exe), "%s/%s", svm_plugin.config.helper_dir, SVM_EXEC_HELPER);
	if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1) {
		dprintf(STDERR_FILENO, "spank_vm: cannot read the task's command line\n");
		return -1;
	}
#if SPANK_VM_TASK_REDIRECT_PREPEND
	{
		const char *prefix[] = {exe};

		return spank_prepend_task_argv(sp, 1, prefix) == ESPANK_SUCCESS ? 0 : -1;
	}
#else
	/* Slurm 22.05 has no argv API: the array's first pointer is replaced
	 * (slurmstepd execs job->argv for normal and batch steps) and the
	 * original program travels in the environment. */
	if (setenv_or_fail(sp, "SPANK_VM_ARGV0", argv[0]) != 0)
		return -1;
	argv[0] = exe;
	return 0;
#endif
}

/* --multi-prog gives each task its own argv copy, which 22.05 offers no way
 * to change from a plugin. Such a step's job argv is the configuration file's
 * name followed by its whole text (srun sends both): that is what we look for. */
static bool task_is_multi_prog(spank_t sp)
{
#if SPANK_VM_TASK_REDIRECT_PREPEND
	(void)sp;
	return false;
#else
	char **argv = NULL, buf[4096];
	size_t want;
	ssize_t n;
	int argc = 0, fd;

	if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc != 2)
		return false;
	want = strlen(argv[1]);
	if (want == 0 || want >= sizeof(buf))
		return want >= sizeof(buf) && strchr(argv[1], '\n') != NULL;
	fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)want && memcmp(buf, argv[1], want) == 0;
#endif
}

int svm_slurmstepd_task_init(spank_t sp, int ac, char **av)
{
	uint32_t job_id = 0;

	(void)ac;
	(void)av;
	if (!task_runs_in_guest || !is_task_step(sp, &job_id))
		return 0;
	if (task_refusal[0] != '\0') {
		dprintf(STDERR_FILENO, "spank_vm: job %u: the VM request was refused: %s\n", job_id,
		        task_refusal);
		return -1;
	}
	if (task_is_multi_prog(sp)) {
		dprintf(STDERR_FILENO, "spank_vm: --multi-prog is not supported with --vm on "
		                       "Slurm 22.05 (each task needs its own command line)\n");
		return -1;
	}
	if (export_guest_env(sp, job_id) != 0 || export_pmi_fd(sp) != 0)
		return -1;
	/* The script is in slurmd's spool: the proxy ships it over the session. */
	if (is_batch_step(sp) && setenv_or_fail(sp, "SPANK_VM_SHIP_SCRIPT", "1") != 0)
		return -1;
	if (task_debug && setenv_or_fail(sp, "SPANK_VM_DEBUG_GUEST", "1") != 0)
		return -1;
	if (task_forward_pmix && setenv_or_fail(sp, "SPANK_VM_FORWARD_PMIX", "1") != 0)
		return -1;
	if (task_requeue_signal != 0) {
		char signo[16];

		snprintf(signo, sizeof(signo), "%d", task_requeue_signal);
		if (setenv_or_fail(sp, "SPANK_VM_REQUEUE_SIGNAL", signo) != 0)
			return -1;
	}
	if (task_checkpoint_dir[0] != '\0' &&
	    setenv_or_fail(sp, "SPANK_VM_CHECKPOINT_DIR", task_checkpoint_dir) != 0)
		return -1;
	return redirect_to_proxy(sp);
}
