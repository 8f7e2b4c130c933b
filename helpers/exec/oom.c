/* A task out of memory, in either of two ways: the guest's out-of-memory
 * killer ended a process of it (EXIT says so, doc/protocol.md 4), or the
 * job's memory cgroup ended the guest's QEMU (its RAM and QEMU's own memory
 * outgrew the job's memory on the node). The user reads why on stderr; the
 * plugin, at the task's exit, finds the proxy's mark and ends the step as
 * Slurm ends a task its memory cgroup ran out for (spank_vm/task_oom.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "spank_vm/runtime.h"
#include "spank_vm/small_file.h"
#include "spank_vm/values.h"

/* The mark goes next to the mux's socket: the job's guest/ directory. */
static void leave_mark(const char *socket_path)
{
	char path[4200];
	const char *slash = strrchr(socket_path, '/');
	int n, fd;

	if (slash == NULL)
		return;
	n = snprintf(path, sizeof(path), "%.*s/%s%ld", (int)(slash - socket_path), socket_path,
	             SVM_GUEST_OOM_MARK_PREFIX, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, EXEC_PREFIX "cannot tell Slurm (%s: %s)\n", path, strerror(errno));
		return;
	}
	close(fd);
}

/* Whether the kernel counted an OOM kill in one of the cgroups the guest's
 * QEMU joined (the provision helper lists them in the job's directory). */
bool exec_guest_ended_by_oom(const char *job_dir)
{
	static const char *const counters[] = {"memory.oom_control", "memory.events"};
	char path[4200], list[4 * 4200], text[1024];
	char *line, *save = NULL;
	uint64_t kills;

	snprintf(path, sizeof(path), "%s/%s", job_dir, SVM_JOB_CGROUPS_FILE);
	if (svm_read_small_file(path, list, sizeof(list), NULL) != 0)
		return false;
	for (line = strtok_r(list, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		for (size_t i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/%s", line, counters[i]);
			if (svm_read_small_file(path, text, sizeof(text), NULL) == 0 &&
			    svm_keyed_value(text, "oom_kill", &kills) == 0 && kills > 0)
				return true;
		}
	return false;
}

/* The guest's RAM as planned (the plan in the job's directory): what Linux
 * in the guest shows as MemTotal is less, by what its kernel keeps. */
static uint64_t guest_mib(const char *job_dir, uint64_t ready_kib)
{
	char path[4200], text[4096];
	const char *at;
	uint64_t mib;

	/* SVM_PLAN_FILE (plan_record.h, which brings hwloc along) */
	snprintf(path, sizeof(path), "%s/plan", job_dir != NULL ? job_dir : "");
	if (job_dir != NULL && svm_read_small_file(path, text, sizeof(text), NULL) == 0 &&
	    (at = strstr(text, "\nguest_mib=")) != NULL) {
		at += strlen("\nguest_mib=");
		text[at - text + strspn(at, "0123456789")] = '\0';
		if (svm_parse_uint(at, 1, UINT32_MAX, &mib, NULL) == 0)
			return mib;
	}
	return ready_kib / 1024;
}

void exec_report_guest_oom(const char *job_dir, const char *socket_path, uint64_t ready_kib)
{
	fprintf(stderr,
	        EXEC_PREFIX "out of memory: the job's memory cgroup ended the guest: its %" PRIu64
	                    " MiB of RAM and QEMU's own memory outgrew the job's memory on the "
	                    "node; ask for more with --mem (or the site raises mem_reserve)\n",
	        guest_mib(job_dir, ready_kib));
	leave_mark(socket_path);
}

void exec_report_out_of_memory(const char *job_dir, const char *socket_path, uint64_t ready_kib)
{
	fprintf(stderr,
	        EXEC_PREFIX "out of memory: the guest's out-of-memory killer ended a process of "
	                    "this task; the guest has %" PRIu64
	                    " MiB (the job's memory on the node less the site's mem_reserve): ask "
	                    "for more with --mem\n",
	        guest_mib(job_dir, ready_kib));
	if (socket_path != NULL)
		leave_mark(socket_path);
}
