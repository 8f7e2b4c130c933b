/* S_CTX_REMOTE, at each task's exit: a task whose guest's out-of-memory
 * killer ended one of its processes ends its step as Slurm ends a task the
 * job's memory cgroup ran out for: OUT_OF_MEMORY, for the batch step's job
 * too. Its proxy left the mark guest/oom.<task pid> (helpers/exec/oom.c);
 * spank-vm-oom-mark then has the kernel count one OOM kill in the task's
 * memory cgroup, which task/cgroup reads right after this callback. A task
 * without the mark costs one fstatat. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

#define OOM_MARK_HELPER    "spank-vm-oom-mark"
#define OOM_MARK_TIMEOUT_S 20

/* Takes the proxy's mark if there is one. The directory is the user's: the
 * mark is only looked at, never followed, and removed. */
static bool take_mark(uint32_t job_id, pid_t task_pid)
{
	char dir[SVM_PATH_MAX + 48], name[48];
	struct stat st;
	bool marked;
	int fd;

	snprintf(dir, sizeof(dir), "%s/%u/%s", svm_plugin.config.runtime_dir, job_id,
	         SVM_GUEST_DIR);
	snprintf(name, sizeof(name), "%s%ld", SVM_GUEST_OOM_MARK_PREFIX, (long)task_pid);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	marked = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	if (marked && unlinkat(fd, name, 0) != 0)
		svm_error("job %u: cannot remove %s/%s: %s", job_id, dir, name, strerror(errno));
	close(fd);
	return marked;
}

int svm_task_oom_exit(spank_t sp)
{
	uint32_t job_id = 0, step_id = 0;
	int task_id = 0;
	pid_t task_pid = 0;
	char stepd[24], task[24], output[1024];
	char *argv[] = {OOM_MARK_HELPER, "--stepd", stepd, "--task", task, NULL};

	if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_TASK_ID, &task_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_TASK_PID, &task_pid) != ESPANK_SUCCESS || task_pid <= 0 ||
	    task_id < 0 || !take_mark(job_id, task_pid))
		return 0;
	snprintf(stepd, sizeof(stepd), "%ld", (long)getpid());
	snprintf(task, sizeof(task), "%d", task_id);
	if (svm_run_helper(OOM_MARK_HELPER, argv, OOM_MARK_TIMEOUT_S, output, sizeof(output)) != 0)
		svm_error(
		        "job %u step %u task %d: the guest ran out of memory, but the step cannot "
		        "be marked so: %.*s",
		        job_id, step_id, task_id, (int)strcspn(output, "\n"), output);
	else
		svm_info("job %u step %u task %d: the guest's OOM killer ended a process of the "
		         "task: the step ends as out of memory",
		         job_id, step_id, task_id);
	return 0;
}
