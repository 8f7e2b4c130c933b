/* PMIx in the guest. Slurm's mpi/pmix runs a PMIx server per step in
 * slurmstepd, which clients reach at a loopback TCP address named in
 * PMIX_SERVER_URI*; in the guest, loopback is the guest's own. So:
 *
 * - on the host (task mode), exec_pmix_wrap() makes the task's EXEC run
 *   `spank-vm-exec --serve-port PORT -- PROGRAM ARGS` in the guest (the
 *   default guest sees this program at its host path) and turns PMIx's
 *   shared-memory data store off there (PMIX_MCA_gds=hash: the server's
 *   segments are in the host's memory);
 * - in the guest, exec_serve_ports() listens on 127.0.0.1:PORT (SO_REUSEPORT:
 *   every task of the step in this guest listens, any one serves) in a child
 *   that dies with the program (PR_SET_PDEATHSIG), then becomes PROGRAM;
 *   each connection is carried by `spank-vm-exec -- spank_vm-connect PORT`
 *   through the guest's host call port to spank-vm-hostcall, which connects
 *   to the host's 127.0.0.1:PORT. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exec.h"
#include "spank_vm/domain_xml.h"
#include "spank_vm/values.h"

extern char **environ;

#define TCP_PREFIX "tcp4://127.0.0.1:"

/* The distinct loopback ports of PMIX_SERVER_URI* ("NSPACE.RANK;tcp4://127.0.0.1:PORT"). */
static size_t pmix_ports(char ports[][8])
{
	size_t n = 0;

	for (char **env = environ; *env != NULL && n < EXEC_MAX_PORTS; env++) {
		const char *tcp, *p;
		char port[8];
		size_t len;
		bool seen = false;

		if (strncmp(*env, "PMIX_SERVER_URI", 15) != 0 ||
		    (tcp = strstr(*env, TCP_PREFIX)) == NULL)
			continue;
		p = tcp + strlen(TCP_PREFIX);
		len = strspn(p, "0123456789");
		if (len == 0 || len >= sizeof(port))
			continue;
		memcpy(port, p, len);
		port[len] = '\0';
		for (size_t i = 0; i < n; i++)
			seen = seen || strcmp(ports[i], port) == 0;
		if (!seen)
			strcpy(ports[n++], port);
	}
	return n;
}

char **exec_pmix_wrap(char **argv)
{
	static char ports[EXEC_MAX_PORTS][8];
	static char self[4096];
	size_t nports = pmix_ports(ports), argc = 0, k = 0;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char **wrapped;

	if (nports == 0 || len <= 0 || (size_t)len >= sizeof(self) - 1)
		return argv;
	self[len] = '\0';
	while (argv[argc] != NULL)
		argc++;
	wrapped = calloc(argc + 2 * nports + 3, sizeof(*wrapped));
	if (wrapped == NULL)
		return argv;
	wrapped[k++] = self;
	for (size_t i = 0; i < nports; i++) {
		wrapped[k++] = (char *)"--serve-port";
		wrapped[k++] = ports[i];
	}
	wrapped[k++] = (char *)"--";
	for (size_t i = 0; i < argc; i++)
		wrapped[k++] = argv[i];
	setenv("PMIX_MCA_gds", "hash", 1);
	return wrapped;
}

static int listen_loopback(uint16_t port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
	                           .sin_port = htons(port),
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 64) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void __attribute__((noreturn)) carry_connection(int conn, const char *port)
{
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len <= 0 || (size_t)len >= sizeof(self) - 1 || dup2(conn, STDIN_FILENO) < 0 ||
	    dup2(conn, STDOUT_FILENO) < 0)
		_exit(EXEC_EXIT_INTERNAL);
	self[len] = '\0';
	execl(self, "spank-vm-exec", "--socket", SVM_GUEST_HOSTCALL_SOCKET, "--wait-timeout", "30",
	      "--", SVM_HOSTCALL_CONNECT, port, (char *)NULL);
	_exit(EXEC_EXIT_INTERNAL);
}

/* The listening child: lives while its parent (the program) does. */
static void __attribute__((noreturn))
serve(const int *fds, char *const *ports, size_t n, pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(0);
	signal(SIGCHLD, SIG_IGN); /* the per-connection children reap themselves */
	for (;;) {
		fd_set set;
		int top = -1;

		FD_ZERO(&set);
		for (size_t i = 0; i < n; i++) {
			FD_SET(fds[i], &set);
			top = fds[i] > top ? fds[i] : top;
		}
		if (select(top + 1, &set, NULL, NULL, NULL) < 0 && errno != EINTR)
			_exit(EXEC_EXIT_INTERNAL);
		for (size_t i = 0; i < n; i++) {
			int conn = FD_ISSET(fds[i], &set)
			                   ? accept4(fds[i], NULL, NULL, SOCK_CLOEXEC)
			                   : -1;

			if (conn >= 0 && fork() == 0)
				carry_connection(conn, ports[i]);
			if (conn >= 0)
				close(conn);
		}
	}
}

void exec_serve_ports(char *const *ports, size_t n, char **argv)
{
	int fds[EXEC_MAX_PORTS];
	pid_t parent = getpid(), child;

	for (size_t i = 0; i < n; i++) {
		uint64_t port;

		if (svm_parse_uint(ports[i], 1, 65535, &port, NULL) != 0)
			exec_die(EXEC_EXIT_USAGE, "--serve-port: expected 1 to 65535, got '%.16s'",
			         ports[i]);
		fds[i] = listen_loopback((uint16_t)port);
		if (fds[i] < 0)
			exec_die(EXEC_EXIT_USAGE, "--serve-port %s: cannot listen on 127.0.0.1: %s",
			         ports[i], strerror(errno));
	}
	child = fork();
	if (child == 0)
		serve(fds, ports, n, parent);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	if (child < 0)
		exec_die(EXEC_EXIT_USAGE, "--serve-port: fork: %s", strerror(errno));
	execvp(argv[0], argv);
	fprintf(stderr, EXEC_PREFIX "cannot execute %s: %s\n", argv[0], strerror(errno));
	exit(errno == ENOENT ? 127 : EXEC_EXIT_CANNOT_EXEC);
}
