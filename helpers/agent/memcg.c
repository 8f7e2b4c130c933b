/* One memory cgroup per session in the guest: the only way to know that the
 * guest's out-of-memory killer ended one of a session's processes (a child
 * of the program as much as the program), which EXIT then says, so that the
 * host can end the task's step as Slurm ends an OOM task. Without cgroup v2
 * in the guest's kernel the agent runs as before and says nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "spank_vm/small_file.h"
#include "spank_vm/values.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static bool enabled;          /* set once, in the guest only */
static unsigned long created; /* names never repeat, even across hosts */
/* Made ahead, while the last program starts, for the next session. */
static char spare[AGENT_MEMCG_DIR_CAP];

static bool write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);
	bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok;
}

void agent_memcg_init(void)
{
	if (mount("cgroup2", CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 &&
	    errno != EBUSY) {
		agent_log("no cgroup2 at %s (%s): a task's out-of-memory kills go unreported",
		          CGROUP_ROOT, strerror(errno));
		return;
	}
	if (!write_text(CGROUP_ROOT "/cgroup.subtree_control", "+memory")) {
		agent_log("no memory controller in the guest (%s): a task's out-of-memory kills go "
		          "unreported",
		          strerror(errno));
		return;
	}
	enabled = true;
	agent_memcg_prepare();
}

static bool make_group(char *dir, size_t cap)
{
	int n = snprintf(dir, cap, CGROUP_ROOT "/session-%lu", ++created);

	if (n < 0 || (size_t)n >= cap || mkdir(dir, 0755) != 0) {
		agent_log("cannot make a memory cgroup for a session: %s", strerror(errno));
		dir[0] = '\0';
		return false;
	}
	return true;
}

bool agent_memcg_create(char *dir, size_t cap)
{
	dir[0] = '\0';
	if (!enabled)
		return false;
	if (spare[0] != '\0' && strlen(spare) < cap) {
		strcpy(dir, spare);
		spare[0] = '\0';
		return true;
	}
	return make_group(dir, cap);
}

void agent_memcg_prepare(void)
{
	if (enabled && spare[0] == '\0')
		make_group(spare, sizeof(spare));
}

pid_t agent_memcg_fork(const char *dir, bool *joined)
{
	struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD};
	int fd = dir[0] != '\0' ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	long pid = -1;

	*joined = false;
	if (fd >= 0) {
		/* Born in the group: moving a process there later waits for an RCU
		 * grace period, milliseconds of every task's start under TCG. */
		args.cgroup = (uint64_t)fd;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		*joined = pid >= 0;
		close(fd);
	}
	return pid >= 0 ? (pid_t)pid : fork();
}

uint64_t agent_memcg_oom_kills(const char *dir)
{
	char path[AGENT_MEMCG_DIR_CAP + 32], text[1024];
	uint64_t n = 0;

	if (dir[0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	if (svm_read_small_file(path, text, sizeof(text), NULL) != 0 ||
	    svm_keyed_value(text, "oom_kill", &n) != 0)
		return 0;
	return n;
}

void agent_memcg_remove(const char *dir)
{
	/* Busy while a process that left the program's group still runs in
	 * it; the guest ends with the job, and with it the directory. */
	if (dir[0] != '\0' && rmdir(dir) != 0 && errno != EBUSY)
		agent_log("cannot remove %s: %s", dir, strerror(errno));
}
