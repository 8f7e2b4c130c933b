/* spank-vm-hostcall, the server of the guest's host call port: the mux
 * starts it once the guest is ready (the port's socket exists by then) and
 * ends it when the mux ends. It runs as the mux does, as the job's user, and
 * lives next to the mux. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mux.h"

#define HOSTCALL_PROGRAM "spank-vm-hostcall"
#define STOP_GRACE_MS    2000

static void exec_hostcall(const struct mux *m, const char *exe)
{
	static char *const env[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char *argv[] = {(char *)exe,
	                "--socket",
	                (char *)m->opts->hostcall_socket,
	                "--commands",
	                (char *)m->opts->slurm_commands,
	                NULL};
	sigset_t none;

	sigemptyset(&none);
	if (dup2(mux_log_fd(), STDERR_FILENO) < 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		_exit(126);
	signal(SIGPIPE, SIG_DFL);
	execve(exe, argv, env);
	dprintf(STDERR_FILENO, MUX_PREFIX "cannot execute %s: %s\n", exe, strerror(errno));
	_exit(127);
}

void mux_hostcall_start(struct mux *m)
{
	char exe[4096];
	ssize_t n;
	char *slash;

	if (m->opts->hostcall_socket == NULL)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof(HOSTCALL_PROGRAM) - 1);
	slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
	if (slash == NULL) {
		mux_log("host calls unavailable: cannot find my own directory");
		return;
	}
	strcpy(slash + 1, HOSTCALL_PROGRAM);
	m->hostcall_pid = fork();
	if (m->hostcall_pid == 0)
		exec_hostcall(m, exe);
	if (m->hostcall_pid < 0) {
		mux_log("host calls unavailable: fork: %s", strerror(errno));
		m->hostcall_pid = 0;
		return;
	}
	mux_log("host calls: %s pid %d on %s", exe, (int)m->hostcall_pid, m->opts->hostcall_socket);
}

/* SIGTERM ends every Slurm command it runs for the guest; SIGKILL after a
 * bound if it does not go. */
void mux_hostcall_stop(struct mux *m)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};

	if (m->hostcall_pid <= 0)
		return;
	kill(m->hostcall_pid, SIGTERM);
	for (int waited = 0; waited < STOP_GRACE_MS; waited += 10) {
		if (waitpid(m->hostcall_pid, NULL, WNOHANG) != 0)
			goto done;
		nanosleep(&tick, NULL);
	}
	kill(m->hostcall_pid, SIGKILL);
	waitpid(m->hostcall_pid, NULL, 0);
done:
	m->hostcall_pid = 0;
}
