/* The guest's lifetime on a node, as root: started by the extern step (it
 * knows the job's cores and memory), stopped when the extern step ends, and
 * stopped again by the epilog in case the extern step never got to it. The
 * work is done by spank-vm-provision; this file only builds its command
 * lines and records failures where the job's tasks will find them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

#define PROVISION_HELPER "spank-vm-provision"
#define START_TIMEOUT_S  120
#define STOP_TIMEOUT_S   60
#define GRACEFUL_STOP_S  "10"

int svm_guest_domain_name(uint32_t job_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "spank_vm-%s-%u", svm_plugin.node_name, job_id);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void job_path(uint32_t job_id, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u/%s", svm_plugin.config.runtime_dir, job_id, name);
}

/* runtime_dir/<jobid>/guest: the user's own (QEMU and the mux run as the user). */
static int make_guest_dir(uint32_t job_id, uid_t uid, gid_t gid, char *dir, size_t len)
{
	job_path(job_id, SVM_GUEST_DIR, dir, len);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		svm_error("job %u: cannot create %s: %s", job_id, dir, strerror(errno));
		return -1;
	}
	if (lchown(dir, uid, gid) != 0) {
		svm_error("job %u: cannot hand %s to uid %u: %s", job_id, dir, (unsigned)uid,
		          strerror(errno));
		return -1;
	}
	return 0;
}

static void record_failure(uint32_t job_id, const char *output)
{
	char line[1024];
	struct svm_err err;

	snprintf(line, sizeof(line), "%.*s", (int)strcspn(output, "\n"), output);
	svm_error("job %u: no guest: %s", job_id, line);
	strncat(line, "\n", sizeof(line) - strlen(line) - 1);
	if (svm_job_file_write(svm_plugin.config.runtime_dir, job_id, SVM_GUEST_ERROR_FILE, line,
	                       &err) != 0)
		svm_error("job %u: %s", job_id, err.msg);
}

struct start_args {
	char mem[32], reserve[32], min_guest[32], pid[32], owner[48];
	char name[96], dir[SVM_PATH_MAX + 32], plan[SVM_PATH_MAX + 32];
};

struct argv_builder {
	const char *argv[48];
	size_t n;
	bool overflow;
};

static void add(struct argv_builder *b, const char *arg)
{
	if (b->n + 1 >= sizeof(b->argv) / sizeof(b->argv[0])) {
		b->overflow = true;
		return;
	}
	b->argv[b->n++] = arg;
	b->argv[b->n] = NULL;
}

static void add_pair(struct argv_builder *b, const char *option, const char *value)
{
	add(b, option);
	add(b, value);
}

static int build_start_argv(const struct svm_guest_job *job, struct start_args *a,
                            struct argv_builder *b)
{
	const struct svm_config *cfg = &svm_plugin.config;
	enum svm_hypervisor hv =
	        job->req->hypervisor != SVM_HV_UNSET ? job->req->hypervisor : cfg->hypervisor;

	snprintf(a->mem, sizeof(a->mem), "%" PRIu64, job->mem_mib);
	snprintf(a->reserve, sizeof(a->reserve), "%" PRIu64, cfg->mem_reserve_mib);
	snprintf(a->min_guest, sizeof(a->min_guest), "%" PRIu64, cfg->min_guest_mib);
	snprintf(a->pid, sizeof(a->pid), "%d", (int)job->cgroup_pid);
	snprintf(a->owner, sizeof(a->owner), "%u:%u", (unsigned)job->uid, (unsigned)job->gid);
	job_path(job->job_id, SVM_PLAN_FILE_NAME, a->plan, sizeof(a->plan));
	add(b, PROVISION_HELPER);
	add(b, "start");
	add_pair(b, "--cores", job->cores);
	add_pair(b, "--cgroup-pid", a->pid);
	add_pair(b, "--mem", a->mem);
	add_pair(b, "--reserve", a->reserve);
	add_pair(b, "--min-guest", a->min_guest);
	add_pair(b, "--hypervisor", svm_hypervisor_name(hv));
	add_pair(b, "--hugepages", svm_hugepages_name(job->req->hugepages));
	add_pair(b, "--name", a->name);
	add_pair(b, "--owner", a->owner);
	add_pair(b, "--dir", a->dir);
	add_pair(b, "--out", a->plan);
	add_pair(b, "--image-dir", cfg->image_dir);
	if (cfg->kernel[0] != '\0')
		add_pair(b, "--kernel", cfg->kernel);
	if (cfg->initrd[0] != '\0')
		add_pair(b, "--initrd", cfg->initrd);
	/* The built-in guest boots the host's root; any other name is a catalog entry. */
	if (strcmp(job->req->image, SVM_BUILTIN_IMAGE) != 0)
		add_pair(b, "--image", job->req->image);
	if (!cfg->hard_limit)
		add(b, "--no-hard-limit");
	return b->overflow ? -1 : 0;
}

int svm_guest_start(const struct svm_guest_job *job)
{
	struct argv_builder b = {.n = 0};
	struct start_args a;
	char output[1024];

	if (svm_guest_domain_name(job->job_id, a.name, sizeof(a.name)) != 0 ||
	    make_guest_dir(job->job_id, job->uid, job->gid, a.dir, sizeof(a.dir)) != 0 ||
	    build_start_argv(job, &a, &b) != 0) {
		record_failure(job->job_id, "cannot prepare the guest's directory");
		return -1;
	}
	if (svm_run_helper(PROVISION_HELPER, (char *const *)b.argv, START_TIMEOUT_S, output,
	                   sizeof(output)) != 0) {
		record_failure(job->job_id, output);
		return -1;
	}
	svm_verbose("job %u: %.*s", job->job_id, (int)strcspn(output, "\n"), output);
	return 0;
}

void svm_guest_stop(uint32_t job_id)
{
	char name[96], dir[SVM_PATH_MAX + 32], output[1024];
	const char *argv[] = {PROVISION_HELPER, "stop",          "--name", name,
	                      "--timeout",      GRACEFUL_STOP_S, NULL};
	struct svm_err err;
	int parent;

	if (svm_guest_domain_name(job_id, name, sizeof(name)) != 0)
		return;
	if (svm_run_helper(PROVISION_HELPER, (char *const *)argv, STOP_TIMEOUT_S, output,
	                   sizeof(output)) != 0)
		svm_error("job %u: stopping %s: %.*s", job_id, name, (int)strcspn(output, "\n"),
		          output);
	/* The guest directory is the user's: remove it without following links. */
	snprintf(dir, sizeof(dir), "%s/%u", svm_plugin.config.runtime_dir, job_id);
	parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return;
	if (svm_remove_tree_at(parent, SVM_GUEST_DIR, &err) != 0)
		svm_error("job %u: removing the guest directory: %s", job_id, err.msg);
	close(parent);
}
