/* spank_vm-connect PORT: spank-vm-hostcall run as the program of a guest's
 * request (session.c gives it that argv[0]). Its stdin and stdout are the
 * session's streams; it connects to the host's 127.0.0.1:PORT and carries
 * bytes both ways, half-closing as each side ends. The guest's PMIx client
 * thus reaches the node's PMIx server (slurmstepd's, on loopback). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostcall.h"
#include "spank_vm/values.h"

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_loopback(uint16_t port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
	                           .sin_port = htons(port),
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* One direction: false once it ended (EOF or error). */
static bool carry(int from, int to, bool to_is_socket)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && errno == EINTR)
		return true;
	if (n > 0 && write_all(to, buf, (size_t)n) == 0)
		return true;
	if (to_is_socket)
		shutdown(to, SHUT_WR);
	else
		close(to);
	return false;
}

int hostcall_relay_tcp(const char *port_text)
{
	uint64_t port;
	int sock;
	bool up = true, down = true; /* guest -> server, server -> guest */

	if (port_text == NULL || svm_parse_uint(port_text, 1, 65535, &port, NULL) != 0) {
		fprintf(stderr, "spank_vm-hostcall: connect: the port must be 1 to 65535\n");
		return 64;
	}
	sock = connect_loopback((uint16_t)port);
	if (sock < 0) {
		fprintf(stderr, "spank_vm-hostcall: connect to 127.0.0.1:%u: %s\n", (unsigned)port,
		        strerror(errno));
		return 69;
	}
	while (down) {
		struct pollfd fds[2] = {{.fd = up ? STDIN_FILENO : -1, .events = POLLIN},
		                        {.fd = sock, .events = POLLIN}};

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (up && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
			up = carry(STDIN_FILENO, sock, true);
		if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
			down = carry(sock, STDOUT_FILENO, false);
	}
	close(sock);
	return 0;
}
