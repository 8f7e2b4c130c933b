/* The guest's out-of-memory killer ended a process of this task (EXIT says
 * so, doc/protocol.md 4). The user reads why on stderr; the plugin, at the
 * task's exit, finds the proxy's mark and ends the step as Slurm ends a
 * task the job's cgroup ran out of memory for (spank_vm/task_oom.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "spank_vm/runtime.h"

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

void exec_report_out_of_memory(const char *socket_path, uint64_t guest_kib)
{
	fprintf(stderr,
	        EXEC_PREFIX "out of memory: the guest's out-of-memory killer ended a process of "
	                    "this task; the guest has %" PRIu64
	                    " MiB (the job's memory on the node less the site's mem_reserve): ask "
	                    "for more with --mem\n",
	        guest_kib / 1024);
	if (socket_path != NULL)
		leave_mark(socket_path);
}
