/* Runs the helper programs (spank-vm-provision, ...) from slurmstepd: libvirt
 * and hwloc stay out of the plugin, and a helper that crashes or hangs costs a
 * bounded wait, never the step. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugin.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Child side: only async-signal-safe calls (slurmstepd has threads). */
static void exec_child(const char *path, char *const argv[], int out_fd)
{
	static char *const env[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	int null_fd = open("/dev/null", O_RDONLY);

	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(out_fd, STDERR_FILENO) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	execve(path, argv, env);
	_exit(127);
}

/* Collects the child's output until EOF or the deadline; keeps what fits. */
static bool collect_output(int fd, long long deadline, char *out, size_t out_len)
{
	size_t used = 0;
	char discard[512];

	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return false;
		if (used + 1 < out_len)
			n = read(fd, out + used, out_len - used - 1);
		else
			n = read(fd, discard, sizeof(discard));
		if (n == 0)
			return true;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return true;
		if (n > 0 && used + 1 < out_len) {
			used += (size_t)n;
			out[used] = '\0';
		}
	}
}

int svm_run_helper(const char *name, char *const argv[], unsigned timeout_s, char *out,
                   size_t out_len)
{
	char path[SVM_PATH_MAX + 64];
	int pipe_fds[2], status = 0;
	bool finished;
	pid_t pid;

	if (out_len > 0)
		out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", svm_plugin.config.helper_dir, name);
	if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
		snprintf(out, out_len, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid == 0)
		exec_child(path, argv, pipe_fds[1]);
	close(pipe_fds[1]);
	if (pid < 0) {
		snprintf(out, out_len, "fork: %s", strerror(errno));
		close(pipe_fds[0]);
		return -1;
	}
	finished =
	        collect_output(pipe_fds[0], now_ms() + (long long)timeout_s * 1000, out, out_len);
	close(pipe_fds[0]);
	if (!finished)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!finished) {
		snprintf(out, out_len, "%s did not finish within %u s", name, timeout_s);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(out, out_len, "cannot execute %s", path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
