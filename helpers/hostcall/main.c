/* spank-vm-hostcall: the host's end of a guest's host call port
 * (helpers/hostcall/README.md). It serves the protocol the agent serves
 * (doc/protocol.md) with the agent's own code, in host mode: each EXEC from
 * the guest may only name one of Slurm's commands, runs from --commands DIR
 * as the user this program runs as, in the environment and working
 * directory the guest sent. spank-vm-mux starts it, as the job's user, once
 * the guest is ready, and ends it with SIGTERM; it also ends when QEMU closes
 * the port's socket (the guest is gone). Every program it started is killed
 * when it ends. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../agent/agent.h"
#include "hostcall.h"

#define CONNECT_TIMEOUT_MS 10000
#define CONNECT_RETRY_MS   50

static const char usage_text[] =
        "usage: spank-vm-hostcall --socket PATH --commands DIR\n"
        "Serves a guest's calls of Slurm's commands (srun, sbatch, squeue, ...) on the\n"
        "host, from DIR, as the calling user. PATH: the guest's host call port.\n";

static struct agent_config config;

/* The agent's code ends the guest here; on the host it ends this service. */
void agent_poweroff(void)
{
	agent_log("the guest's end is gone: exiting");
	_exit(0);
}

static int connect_port(const char *path, struct svm_err *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	const struct timespec tick = {0, CONNECT_RETRY_MS * 1000 * 1000};

	if (strlen(path) >= sizeof(addr.sun_path))
		return svm_err_set(err, "--socket %s is too long for a unix socket", path);
	strcpy(addr.sun_path, path);
	for (unsigned waited = 0;; waited += CONNECT_RETRY_MS) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			return svm_err_errno(err, errno, "socket");
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		svm_err_errno(err, errno, "cannot connect to %s", path);
		close(fd);
		if ((errno != ENOENT && errno != ECONNREFUSED) || waited >= CONNECT_TIMEOUT_MS)
			return -1;
		nanosleep(&tick, NULL);
	}
}

static int parse_args(int argc, char **argv, const char **socket_path, struct svm_err *err)
{
	static const struct option options[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"commands", required_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 's')
			*socket_path = optarg;
		else if (opt == 'c')
			config.host_commands = optarg;
		else if (opt == 'h')
			fputs(usage_text, stdout), exit(0);
		else
			return svm_err_set(err, "unknown option (see --help)");
	}
	if (optind != argc || *socket_path == NULL || config.host_commands == NULL ||
	    config.host_commands[0] != '/')
		return svm_err_set(err, "needs --socket PATH and --commands DIR (absolute)");
	return 0;
}

int main(int argc, char **argv)
{
	struct agent_channel *ch;
	struct svm_err err = {""};
	const char *socket_path = NULL;
	int port;

	agent_log_prefix = "spank_vm-hostcall: ";
	/* Run for a guest's connection request (session.c). */
	if (strcmp(argv[0], SVM_HOSTCALL_CONNECT) == 0)
		return hostcall_relay_tcp(argc == 2 ? argv[1] : NULL);
	if (parse_args(argc, argv, &socket_path, &err) != 0) {
		agent_log("%s", err.msg);
		return 64;
	}
	/* Never for root: the guest's requests run as whoever runs this. */
	if (getuid() == 0 || geteuid() == 0) {
		agent_log("refusing to run as root: start it as the job's user");
		return 77;
	}
	port = connect_port(socket_path, &err);
	if (port < 0 || agent_spawn_init_limits(&err) != 0 ||
	    (ch = agent_channel_new(port, -1, &config, &err)) == NULL) {
		agent_log("%s", err.msg);
		return 69;
	}
	agent_log("serving %s; Slurm commands from %s", socket_path, config.host_commands);
	agent_channel_serve(ch, &err);
	agent_log("%s", err.msg);
	return 70;
}
