/* What the host side of a task costs, without a guest: the round trip of
 * `true` through spank-vm-exec + spank-vm-mux + fake_agent against a plain
 * fork/exec of `true`, and stdout throughput through the proxy against a
 * plain pipe. Usage: bench_exec EXEC MUX FAKE_AGENT. Prints figures. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS    200
#define BYTES_MIB 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t spawn(char *const argv[], int out_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(out_fd >= 0 ? out_fd : null, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int run_wait(char *const argv[])
{
	int status;

	if (waitpid(spawn(argv, -1), &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Seconds to read everything argv writes to its stdout. */
static double drain(char *const argv[], size_t *bytes)
{
	static char buf[1 << 16];
	int p[2];
	double t0 = now();
	ssize_t n;
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	pid = spawn(argv, p[1]);
	close(p[1]);
	*bytes = 0;
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		*bytes += (size_t)n;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return now() - t0;
}

static int wait_for_file(const char *path)
{
	for (int i = 0; i < 1000; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		poll(NULL, 0, 10);
	}
	return -1;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/svm-bench.XXXXXX", agent_sock[128], mux_sock[128], ready[128];
	char *true_direct[] = {"/bin/true", NULL};
	char count[64];
	double t0, direct, proxied, t_pipe, t_proxy;
	size_t b_pipe, b_proxy;
	pid_t agent, mux;

	if (argc != 4 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: bench_exec EXEC MUX FAKE_AGENT\n");
		return 64;
	}
	snprintf(agent_sock, sizeof(agent_sock), "%s/agent.sock", dir);
	snprintf(mux_sock, sizeof(mux_sock), "%s/mux.sock", dir);
	snprintf(ready, sizeof(ready), "%s/agent.ready", dir);
	agent = spawn((char *[]){argv[3], "--listen", agent_sock, "--ready-file", ready, NULL}, -1);
	if (wait_for_file(ready) != 0)
		return 1;
	mux = spawn((char *[]){argv[2], "--foreground", "--agent-socket", agent_sock, "--listen",
	                       mux_sock, NULL},
	            -1);
	if (wait_for_file(mux_sock) != 0)
		return 1;

	char *true_proxied[] = {argv[1], "--socket", mux_sock, "--", "/bin/true", NULL};

	t0 = now();
	for (int i = 0; i < ROUNDS; i++)
		run_wait(true_direct);
	direct = (now() - t0) / ROUNDS;
	t0 = now();
	for (int i = 0; i < ROUNDS; i++)
		if (run_wait(true_proxied) != 0)
			return 1;
	proxied = (now() - t0) / ROUNDS;
	printf("exec round trip of true: direct %.3f ms, through proxy+mux+fake agent %.3f ms, "
	       "added %.3f ms\n",
	       direct * 1e3, proxied * 1e3, (proxied - direct) * 1e3);

	snprintf(count, sizeof(count), "count=%d", BYTES_MIB);
	char *dd_direct[] = {"/bin/dd", "if=/dev/zero", "bs=1M", count, "status=none", NULL};
	char *dd_proxied[] = {argv[1],        "--socket", mux_sock, "--",          "/bin/dd",
	                      "if=/dev/zero", "bs=1M",    count,    "status=none", NULL};

	t_pipe = drain(dd_direct, &b_pipe);
	t_proxy = drain(dd_proxied, &b_proxy);
	printf("stdout throughput (%d MiB): pipe %.0f MiB/s, through proxy %.0f MiB/s, ratio "
	       "%.2f\n",
	       BYTES_MIB, (double)b_pipe / (1 << 20) / t_pipe,
	       (double)b_proxy / (1 << 20) / t_proxy, t_pipe / t_proxy);
	kill(mux, SIGTERM);
	waitpid(mux, NULL, 0);
	kill(agent, SIGKILL);
	waitpid(agent, NULL, 0);
	unlink(agent_sock);
	unlink(ready);
	rmdir(dir);
	return b_proxy == b_pipe ? 0 : 1;
}
