/* spank-vm-oom-mark: records an out-of-memory kill in a Slurm task's memory
 * cgroup, for a task whose guest's OOM killer ended one of its processes.
 *
 * Slurm marks a step OUT_OF_MEMORY (and a batch step's job with it) only
 * from the kernel's count of OOM kills in the step's memory cgroups
 * (task/cgroup reads "oom_kill" when the first task ends). The guest's own
 * OOM killer is invisible there, so this program makes the kernel count one:
 * a child of its own joins the task's cgroup, the cgroup's limit is lowered
 * to just above what it holds, and the child touches memory (locked, so it
 * cannot be swapped instead) until the cgroup's OOM killer ends it. Its
 * oom_score_adj of 1000 makes it the victim. The limit is put back at once.
 * Run by the plugin as root at the task's exit, before Slurm reads the count. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "spank_vm/cgroup.h"
#include "spank_vm/values.h"

#define PREFIX      "spank_vm: spank-vm-oom-mark: "
#define CGROUP_ROOT "/sys/fs/cgroup"
/* Room above the cgroup's usage, and how far the child goes past it. */
#define HEADROOM_BYTES (8u << 20)
#define TOUCH_BYTES    ((size_t)256 << 20)
#define WAIT_S         10

/* The files of a memory cgroup, v1 or v2. */
struct memcg_files {
	const char *usage, *limit, *events, *unlimited;
};
static const struct memcg_files v1_files = {"memory.usage_in_bytes", "memory.limit_in_bytes",
                                            "memory.oom_control", "-1"};
static const struct memcg_files v2_files = {"memory.current", "memory.max", "memory.events", "max"};

struct memcg {
	const char *dir;
	const struct memcg_files *files;
};

static const char usage_text[] =
        "usage: spank-vm-oom-mark --stepd PID --task N | --cgroup DIR\n"
        "Has the kernel end one process of its own in a Slurm task's memory cgroup, by the\n"
        "cgroup's out-of-memory killer, so that Slurm ends the task's step as OUT_OF_MEMORY.\n"
        "The cgroup is that of local task N of the step of slurmstepd PID, or DIR\n"
        "(" CGROUP_ROOT "/.../job_N/.../task_N). Exits 0 once the kernel counted the kill.\n";

static int read_in(const struct memcg *cg, const char *name, char *buf, size_t len,
                   struct svm_err *err)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", cg->dir, name);
	return svm_read_small_file(path, buf, len, err);
}

static int write_file(const char *path, const char *text, struct svm_err *err)
{
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", path);
	n = write(fd, text, strlen(text));
	close(fd);
	if (n != (ssize_t)strlen(text))
		return svm_err_errno(err, n < 0 ? errno : EIO, "cannot write '%s' to %s", text,
		                     path);
	return 0;
}

static int write_in(const struct memcg *cg, const char *name, const char *text, struct svm_err *err)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", cg->dir, name);
	return write_file(path, text, err);
}

static int oom_kills(const struct memcg *cg, uint64_t *kills, struct svm_err *err)
{
	char text[1024];

	if (read_in(cg, cg->files->events, text, sizeof(text), err) != 0)
		return -1;
	if (svm_keyed_value(text, "oom_kill", kills) != 0)
		return svm_err_set(err, "%s/%s has no oom_kill count (kernel too old)", cg->dir,
		                   cg->files->events);
	return 0;
}

static int open_memcg(const char *dir, struct memcg *cg, struct svm_err *err)
{
	char text[1024];
	uint64_t disabled = 0;

	cg->dir = dir;
	cg->files = &v1_files;
	if (read_in(cg, "memory.oom_control", text, sizeof(text), NULL) == 0) {
		if (svm_keyed_value(text, "oom_kill_disable", &disabled) == 0 && disabled != 0)
			return svm_err_set(err, "%s has its OOM killer disabled", dir);
		return 0;
	}
	cg->files = &v2_files;
	if (read_in(cg, "memory.events", text, sizeof(text), NULL) == 0)
		return 0;
	return svm_err_set(err, "%s is not a memory cgroup", dir);
}

/* The victim: in the cgroup, first in line for the OOM killer, its pages
 * locked; it touches memory once told to, and should never get to exit. */
static void __attribute__((noreturn)) victim(const struct memcg *cg, int ready_fd, int go_fd)
{
	struct svm_err err;
	char go;
	char *mem;

	if (write_in(cg, "cgroup.procs", "0", &err) != 0 ||
	    write_file("/proc/self/oom_score_adj", "1000", &err) != 0) {
		fprintf(stderr, PREFIX "%s\n", err.msg);
		_exit(2);
	}
	(void)mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		_exit(2);
	mem = mmap(NULL, TOUCH_BYTES, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		_exit(2);
	for (size_t at = 0; at < TOUCH_BYTES; at += 4096)
		mem[at] = 1;
	_exit(3);
}

static int lower_limit(const struct memcg *cg, char *old, size_t old_len, struct svm_err *err)
{
	char text[64];
	uint64_t usage;

	if (read_in(cg, cg->files->limit, old, old_len, err) != 0 ||
	    read_in(cg, cg->files->usage, text, sizeof(text), err) != 0)
		return -1;
	old[strcspn(old, "\n")] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if (svm_parse_uint(text, 0, UINT64_MAX / 2, &usage, err) != 0)
		return -1;
	snprintf(text, sizeof(text), "%" PRIu64, usage + HEADROOM_BYTES);
	return write_in(cg, cg->files->limit, text, err);
}

/* Waits up to WAIT_S for the victim; kills it after that. */
static int wait_victim(pid_t pid, int *status)
{
	struct timespec tick = {0, 20 * 1000 * 1000};

	for (int i = 0; i < WAIT_S * 50; i++) {
		pid_t got = waitpid(pid, status, WNOHANG);

		if (got == pid)
			return 0;
		if (got < 0 && errno != EINTR)
			return -1;
		nanosleep(&tick, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

static int mark(const struct memcg *cg, struct svm_err *err)
{
	int ready[2], go[2], status = 0, rc = -1;
	uint64_t before, after;
	char old[64] = "", r;
	pid_t pid;

	if (oom_kills(cg, &before, err) != 0)
		return -1;
	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)
		return svm_err_errno(err, errno, "pipe");
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid == 0)
		victim(cg, ready[1], go[0]);
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &r, 1) != 1)
		svm_err_set(err, "the process meant to be ended could not join %s", cg->dir);
	else if (lower_limit(cg, old, sizeof(old), err) == 0 && write(go[1], "g", 1) == 1) {
		if (wait_victim(pid, &status) != 0)
			svm_err_set(err, "the cgroup's OOM killer did not act within %d s", WAIT_S);
		else if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			svm_err_set(err,
			            "the process meant to be ended exited instead (status 0x%x)",
			            (unsigned)status);
		else
			rc = 0;
	}
	close(go[1]);
	close(ready[0]);
	if (rc != 0)
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (old[0] != '\0' && write_in(cg, cg->files->limit, old, err) != 0)
		return -1;
	if (rc == 0 && (oom_kills(cg, &after, err) != 0 || after <= before))
		return svm_err_set(err, "the kernel did not count the kill in %s", cg->dir);
	return rc;
}

/* The task's memory cgroup, from where its slurmstepd is. */
static int task_dir_of(const char *stepd, const char *task, char *dir, size_t len,
                       struct svm_err *err)
{
	char path[64], text[4096];
	uint64_t pid, n;

	if (svm_parse_uint(stepd, 2, INT32_MAX, &pid, err) != 0 ||
	    svm_parse_uint(task, 0, 65535, &n, err) != 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/cgroup", pid);
	if (svm_read_small_file(path, text, sizeof(text), err) != 0)
		return -1;
	return svm_cgroup_task_memory_dir(text, CGROUP_ROOT, (unsigned)n, dir, len, err);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"cgroup", required_argument, NULL, 'c'},
	        {"stepd", required_argument, NULL, 's'},
	        {"task", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	static char dir[4096];
	const char *given = NULL, *stepd = NULL, *task = NULL;
	struct svm_err err = {""};
	struct memcg cg;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'c')
			given = optarg;
		else if (opt == 's')
			stepd = optarg;
		else if (opt == 't')
			task = optarg;
		else {
			fputs(usage_text, opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind != argc || (given == NULL) == (stepd == NULL) ||
	    (stepd == NULL) != (task == NULL)) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (given != NULL)
		snprintf(dir, sizeof(dir), "%s", given);
	else if (task_dir_of(stepd, task, dir, sizeof(dir), &err) != 0) {
		fprintf(stderr, PREFIX "%s\n", err.msg);
		return 1;
	}
	if (svm_cgroup_check_task_dir(dir, CGROUP_ROOT, &err) != 0 ||
	    open_memcg(dir, &cg, &err) != 0 || mark(&cg, &err) != 0) {
		fprintf(stderr, PREFIX "%s\n", err.msg);
		return 1;
	}
	printf("out-of-memory kill recorded in %s\n", dir);
	return 0;
}
