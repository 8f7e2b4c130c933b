/* agent_client: a minimal host end of the agent protocol, for the guest
 * agent's tests (the real one is spank-vm-mux). It connects to a guest's
 * agent.sock, does HELLO, waits for READY (bounded), runs one command (or
 * the same command in N concurrent sessions), relays stdin/stdout/stderr and
 * exits with the command's status: its exit code, or 128 + signal.
 *
 *   agent_client --socket PATH [--timeout S] [--ready] [--uid N --gid N]
 *                [--group N]... [--cwd DIR] [--env NAME=VALUE]... [--stdin]
 *                [--umask OCTAL] [--extra-fd N] [--parallel N]
 *                [--bad-frame flags|oversize|version]
 *                [--poweroff] [--pause-after BYTES --pause-run SHELL-COMMAND]
 *                [-- COMMAND...]
 *
 * --extra-fd opens the extra stream at fd N (its bytes are printed on
 * stdout; the client sends none). --ready prints the READY fields.
 * --bad-frame sends a faulty frame and prints the ERROR the agent answers:
 * flags (a HEARTBEAT with nonzero flags, after READY), oversize (a header
 * announcing 65537 payload bytes, after READY), version (a HELLO offering
 * only version 99, instead of the real one). --pause-after: once BYTES of
 * stdout have arrived, PAUSE the channel, wait for PAUSED, hang up, run
 * SHELL-COMMAND (a checkpoint of the guest, say), connect again, RESUME the
 * session and relay on; stderr then says "resumed on boot id ID". Exit 124: timeout, 125: the agent
 * refused or failed (ERROR), 2: usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "spank_vm/proto.h"

#define MAX_PARALLEL 64
#define EXIT_TIMEOUT 124
#define EXIT_REFUSED 125

struct client_session {
	bool closed;
	int status; /* exit code or 128 + signal; -1 until EXIT */
	struct svm_proto_recv_window out_window[SVM_PROTO_STREAMS];
};

struct client {
	int fd;
	struct svm_proto_reader reader;
	uint8_t out[SVM_PROTO_MAX_FRAME];
	uint8_t in[65536]; /* read from the socket, in[pos..have) not yet decoded */
	size_t have, pos;
	double deadline;
	bool forward_stdin;
	bool stdin_done;
	struct svm_proto_send_credit stdin_credit;
	size_t nsessions;
	struct client_session sessions[MAX_PARALLEL];
	int refused;
	const char *socket_path;
	uint64_t stdout_bytes;
	uint64_t pause_after; /* 0: never */
	const char *pause_run;
	bool paused_once;
};

static struct svm_proto_exec request;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(int code, const char *what)
{
	fprintf(stderr, "agent_client: %s\n", what);
	exit(code);
}

static void write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(1, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Encoders append to one buffer that is sent at once. */
static void send_buf(struct client *c, struct svm_proto_buf *buf)
{
	write_all(c->fd, buf->data, buf->len);
}

enum bad_frame { BAD_NONE, BAD_FLAGS, BAD_OVERSIZE, BAD_VERSION };

static void send_hello(struct client *c, enum bad_frame bad)
{
	const struct svm_proto_hello hello = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	const struct svm_proto_hello future = {99, 99};
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	if (svm_proto_encode_hello(&buf, bad == BAD_VERSION ? &future : &hello, &err) != 0)
		die(1, err.msg);
	send_buf(c, &buf);
}

static int connect_socket(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(addr.sun_path))
		die(1, "cannot make a socket for that path");
	strcpy(addr.sun_path, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		die(1, strerror(errno));
	return fd;
}

/* Waits for the next frame until the deadline. */
static void next_frame(struct client *c, struct svm_proto_frame *frame)
{
	struct svm_err err;

	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		double left;
		size_t used;
		ssize_t n;
		int rc = svm_proto_reader_next(&c->reader, c->in + c->pos, c->have - c->pos, &used,
		                               frame, &err);

		if (rc < 0)
			die(1, err.msg);
		c->pos += used;
		if (rc == 1)
			return;
		c->pos = c->have = 0;
		left = c->deadline - now_s();
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0)
			die(EXIT_TIMEOUT, "timed out waiting for the agent");
		n = read(c->fd, c->in, sizeof(c->in));
		if (n <= 0)
			die(1, "the agent's socket closed");
		c->have = (size_t)n;
	}
}

static void print_ready(const struct svm_proto_frame *frame)
{
	struct svm_proto_ready r;
	struct svm_err err;

	if (svm_proto_decode_ready(frame, &r, &err) != 0)
		die(1, err.msg);
	printf("boot_id=%.*s\nkernel=%.*s\nvcpus=%" PRIu32 "\nmemory_kib=%" PRIu64 "\n",
	       (int)r.boot_id.len, (const char *)r.boot_id.data, (int)r.kernel_release.len,
	       (const char *)r.kernel_release.data, r.vcpus, r.memory_kib);
	fflush(stdout);
}

static void print_error(struct client *c, const struct svm_proto_frame *frame)
{
	struct svm_proto_error e;
	struct svm_err err;

	if (svm_proto_decode_error(frame, &e, &err) != 0)
		die(1, err.msg);
	fprintf(stderr, "agent_client: ERROR %s on session %" PRIu32 ": %.*s\n",
	        svm_proto_error_name(e.code), frame->session, (int)e.text.len,
	        (const char *)e.text.data);
	if (frame->session == 0)
		exit(EXIT_REFUSED);
	c->refused = EXIT_REFUSED;
}

/* A connection error before READY: STATE means the agent still serves the
 * previous connection (see connect_ready); anything else ends the client. */
static bool stale_connection(struct client *c, const struct svm_proto_frame *frame)
{
	struct svm_proto_error e;
	struct svm_err err;

	if (frame->session == 0 && svm_proto_decode_error(frame, &e, &err) == 0 &&
	    e.code == SVM_PROTO_E_STATE)
		return true;
	print_error(c, frame);
	return false;
}

/* Whether READY came (printed if asked), or the connection is stale. */
static bool wait_ready(struct client *c, bool print)
{
	struct svm_proto_frame frame;

	for (;;) {
		next_frame(c, &frame);
		if (frame.type == SVM_PROTO_MSG_ERROR && stale_connection(c, &frame))
			return false;
		if (frame.type != SVM_PROTO_MSG_READY)
			continue;
		if (print)
			print_ready(&frame);
		return true;
	}
}

/* Connects and waits for READY. The guest learns that the host end of its
 * port closed and reopened from two virtio-serial control messages; when a
 * new connection follows the previous one within a few milliseconds, the
 * guest may see both at once, miss the reconnect, and answer our HELLO as a
 * second HELLO of the old connection (ERROR STATE). Then the client hangs up,
 * which the agent does see, and tries again (bounded by the deadline). */
static void await_error(struct client *c);

static void connect_ready(struct client *c, const char *socket_path, bool print, enum bad_frame bad)
{
	const struct timespec backoff = {0, 100 * 1000 * 1000};

	for (;;) {
		c->fd = connect_socket(socket_path);
		svm_proto_reader_init(&c->reader, SVM_PROTO_AGENT);
		c->pos = c->have = 0;
		send_hello(c, bad);
		if (bad == BAD_VERSION)
			await_error(c);
		if (wait_ready(c, print))
			return;
		close(c->fd);
		if (now_s() > c->deadline)
			die(EXIT_TIMEOUT, "the agent kept refusing HELLO");
		fprintf(stderr, "agent_client: the agent still held the previous connection; "
		                "connecting again\n");
		nanosleep(&backoff, NULL);
	}
}

static void send_frame_close(struct client *c, uint32_t id)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	svm_proto_encode_close(&buf, id, &err);
	send_buf(c, &buf);
}

static void send_window(struct client *c, uint32_t id, uint8_t stream, uint32_t increment)
{
	const struct svm_proto_window w = {.stream = stream, .increment = increment};
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	svm_proto_encode_window(&buf, id, &w, &err);
	send_buf(c, &buf);
}

static void on_data(struct client *c, const struct svm_proto_frame *frame)
{
	struct client_session *s = &c->sessions[frame->session - 1];
	struct svm_proto_data d;
	struct svm_err err;
	uint32_t inc;

	if (svm_proto_decode_data(frame, &d, &err) != 0 || d.stream == 0)
		die(1, "bad DATA from the agent");
	if (svm_proto_recv_window_receive(&s->out_window[d.stream], d.bytes.len, &err) != 0)
		die(1, err.msg);
	if (d.stream == SVM_PROTO_STDOUT)
		c->stdout_bytes += d.bytes.len;
	/* The extra stream's bytes go to stdout too: the tests only read them. */
	write_all(d.stream == SVM_PROTO_STDERR ? STDERR_FILENO : STDOUT_FILENO, d.bytes.data,
	          d.bytes.len);
	if (svm_proto_recv_window_consume(&s->out_window[d.stream], d.bytes.len, &inc, &err) == 0 &&
	    inc > 0)
		send_window(c, frame->session, d.stream, inc);
}

static void on_exit_frame(struct client *c, const struct svm_proto_frame *frame)
{
	struct svm_proto_exit e;
	struct svm_err err;

	if (svm_proto_decode_exit(frame, &e, &err) != 0)
		die(1, err.msg);
	c->sessions[frame->session - 1].status =
	        e.kind == SVM_PROTO_EXITED ? e.code : 128 + e.signo;
}

static void on_frame(struct client *c, const struct svm_proto_frame *frame)
{
	struct svm_proto_window w;
	struct svm_err err;

	if (frame->session == 0 || frame->session > c->nsessions) {
		if (frame->type == SVM_PROTO_MSG_ERROR)
			print_error(c, frame);
		return;
	}
	switch (frame->type) {
	case SVM_PROTO_MSG_DATA:
		on_data(c, frame);
		break;
	case SVM_PROTO_MSG_EXIT:
		on_exit_frame(c, frame);
		break;
	case SVM_PROTO_MSG_ERROR:
		print_error(c, frame);
		break;
	case SVM_PROTO_MSG_WINDOW:
		if (svm_proto_decode_window(frame, &w, &err) == 0 && w.stream == 0)
			svm_proto_send_credit_grant(&c->stdin_credit, w.increment, NULL);
		break;
	case SVM_PROTO_MSG_CLOSE:
		c->sessions[frame->session - 1].closed = true;
		send_frame_close(c, frame->session);
		break;
	default: /* STARTED, EOF */
		break;
	}
}

/* stdin goes to session 1 as far as the agent's window allows. */
static void pump_stdin(struct client *c)
{
	static uint8_t chunk[SVM_PROTO_MAX_DATA];
	size_t want = svm_proto_send_credit_sendable(&c->stdin_credit, sizeof(chunk));
	struct svm_proto_buf buf;
	struct svm_err err;
	ssize_t n = read(STDIN_FILENO, chunk, want);

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	if (n <= 0) {
		svm_proto_encode_eof(&buf, 1, SVM_PROTO_STDIN, &err);
		c->stdin_done = true;
	} else {
		svm_proto_send_credit_spend(&c->stdin_credit, (size_t)n, NULL);
		svm_proto_encode_data(&buf, 1, SVM_PROTO_STDIN, chunk, (size_t)n, &err);
	}
	send_buf(c, &buf);
}

static bool all_closed(const struct client *c)
{
	for (size_t i = 0; i < c->nsessions; i++)
		if (!c->sessions[i].closed)
			return false;
	return true;
}

static void send_connection_signal(struct client *c, enum svm_proto_type type)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	if (svm_proto_encode_connection_signal(&buf, type, &err) != 0)
		die(1, err.msg);
	send_buf(c, &buf);
}

static void print_boot_id(const struct svm_proto_frame *frame)
{
	struct svm_proto_ready ready;
	struct svm_err err;

	if (svm_proto_decode_ready(frame, &ready, &err) != 0)
		die(1, err.msg);
	fprintf(stderr, "agent_client: resumed on boot id %.*s\n", (int)ready.boot_id.len,
	        (const char *)ready.boot_id.data);
}

/* PAUSE, relay until PAUSED, hang up, run the command, connect, RESUME. */
static void pause_and_resume(struct client *c)
{
	struct svm_proto_frame frame;
	int status;

	c->paused_once = true;
	send_connection_signal(c, SVM_PROTO_MSG_PAUSE);
	for (;;) {
		next_frame(c, &frame);
		if (frame.type == SVM_PROTO_MSG_PAUSED)
			break;
		on_frame(c, &frame);
	}
	close(c->fd);
	status = system(c->pause_run);
	if (status != 0)
		die(1, "the command run during the pause failed");
	c->fd = connect_socket(c->socket_path);
	svm_proto_reader_init(&c->reader, SVM_PROTO_AGENT);
	c->pos = c->have = 0;
	send_hello(c, BAD_NONE);
	do
		next_frame(c, &frame);
	while (frame.type != SVM_PROTO_MSG_READY);
	print_boot_id(&frame);
	send_connection_signal(c, SVM_PROTO_MSG_RESUME);
}

static void relay(struct client *c)
{
	struct svm_proto_frame frame;

	while (!all_closed(c)) {
		bool stdin_ready = c->forward_stdin && !c->stdin_done &&
		                   svm_proto_send_credit_sendable(&c->stdin_credit, 1) > 0;
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
		                      {.fd = stdin_ready ? STDIN_FILENO : -1, .events = POLLIN}};
		double left = c->deadline - now_s();

		if (c->pos == c->have) {
			if (left <= 0 || poll(p, 2, (int)(left * 1000) + 1) == 0)
				die(EXIT_TIMEOUT, "timed out waiting for the command");
			if (p[1].revents != 0)
				pump_stdin(c);
			if (p[0].revents == 0)
				continue;
		}
		next_frame(c, &frame);
		on_frame(c, &frame);
		if (c->pause_after > 0 && !c->paused_once && c->stdout_bytes >= c->pause_after)
			pause_and_resume(c);
	}
}

static void send_execs(struct client *c)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (c->forward_stdin)
		request.flags |= SVM_PROTO_EXEC_HAS_STDIN;
	for (size_t i = 0; i < c->nsessions; i++) {
		c->sessions[i].status = -1;
		for (int s = 0; s < SVM_PROTO_STREAMS; s++)
			svm_proto_recv_window_init(&c->sessions[i].out_window[s]);
		svm_proto_buf_init(&buf, c->out, sizeof(c->out));
		if (svm_proto_encode_exec(&buf, (uint32_t)(i + 1), &request, &err) != 0)
			die(2, err.msg);
		/* The client sends nothing on the extra stream: its direction ends now. */
		if ((request.flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0 &&
		    svm_proto_encode_eof(&buf, (uint32_t)(i + 1), SVM_PROTO_EXTRA, &err) != 0)
			die(2, err.msg);
		send_buf(c, &buf);
		request.flags &= ~SVM_PROTO_EXEC_HAS_STDIN; /* stdin feeds session 1 only */
	}
}

/* Prints the connection's ERROR (and exits); other frames are skipped. */
static void await_error(struct client *c)
{
	struct svm_proto_frame frame;

	for (;;) {
		next_frame(c, &frame);
		if (frame.type == SVM_PROTO_MSG_ERROR)
			print_error(c, &frame); /* exits: a connection error */
	}
}

static void send_bad_frame(struct client *c, enum bad_frame bad)
{
	/* A HEARTBEAT whose flags byte is set: MALFORMED for the whole connection. */
	const uint8_t flags[] = {
	        8, 0, 0, 0, SVM_PROTO_MSG_HEARTBEAT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	/* DATA announcing 65537 bytes: refused from the header alone. */
	const uint8_t oversize[] = {1, 0, 1, 0, SVM_PROTO_MSG_DATA, 0, 0, 0, 1, 0, 0, 0};

	if (bad == BAD_FLAGS)
		write_all(c->fd, flags, sizeof(flags));
	else
		write_all(c->fd, oversize, sizeof(oversize));
	await_error(c);
}

static enum bad_frame bad_frame_kind(const char *text)
{
	if (strcmp(text, "flags") == 0)
		return BAD_FLAGS;
	if (strcmp(text, "oversize") == 0)
		return BAD_OVERSIZE;
	if (strcmp(text, "version") == 0)
		return BAD_VERSION;
	die(2, "--bad-frame: give flags, oversize or version");
	return BAD_NONE;
}

static void send_poweroff(struct client *c)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_buf_init(&buf, c->out, sizeof(c->out));
	svm_proto_encode_poweroff(&buf, &err);
	send_buf(c, &buf);
}

static int result(const struct client *c)
{
	if (c->refused)
		return c->refused;
	for (size_t i = 0; i < c->nsessions; i++)
		if (c->sessions[i].status != 0)
			return c->sessions[i].status < 0 ? EXIT_REFUSED : c->sessions[i].status;
	return 0;
}

static uint32_t number(const char *text)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);

	if (*text == '\0' || *end != '\0' || v > UINT32_MAX)
		die(2, "expected a number");
	return (uint32_t)v;
}

static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"ready", no_argument, NULL, 'r'},
        {"uid", required_argument, NULL, 'u'},
        {"gid", required_argument, NULL, 'g'},
        {"group", required_argument, NULL, 'G'},
        {"cwd", required_argument, NULL, 'c'},
        {"env", required_argument, NULL, 'e'},
        {"stdin", no_argument, NULL, 'i'},
        {"parallel", required_argument, NULL, 'p'},
        {"umask", required_argument, NULL, 'm'},
        {"bad-frame", required_argument, NULL, 'b'},
        {"poweroff", no_argument, NULL, 'P'},
        {"extra-fd", required_argument, NULL, 'x'},
        {"pause-after", required_argument, NULL, 'A'},
        {"pause-run", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
};

struct client_args {
	const char *socket_path;
	double timeout;
	bool print_ready, poweroff;
	enum bad_frame bad_frame;
};

/* Options that shape the EXEC request. Returns false for an unknown one. */
static bool request_option(int opt, const char *arg, struct client *c)
{
	struct svm_err err;

	switch (opt) {
	case 'u':
		request.uid = number(arg);
		return true;
	case 'g':
		request.gid = number(arg);
		return true;
	case 'G':
		if (svm_proto_exec_add_group(&request, number(arg), &err) != 0)
			die(2, err.msg);
		return true;
	case 'c':
		request.cwd.data = (const uint8_t *)arg;
		request.cwd.len = strlen(arg);
		return true;
	case 'e':
		if (svm_proto_exec_add_env(&request, arg, strlen(arg), &err) != 0)
			die(2, err.msg);
		return true;
	case 'm':
		request.umask = (uint32_t)strtoul(arg, NULL, 8);
		return true;
	case 'x':
		request.flags |= SVM_PROTO_EXEC_HAS_EXTRA;
		request.extra_fd = number(arg);
		return true;
	case 'i':
		c->forward_stdin = true;
		return true;
	case 'p':
		c->nsessions = number(arg);
		return true;
	default:
		return false;
	}
}

static void parse_args(int argc, char **argv, struct client *c, struct client_args *o)
{
	struct svm_err err;
	int opt;

	svm_proto_exec_init(&request);
	request.cwd.data = (const uint8_t *)"/";
	request.cwd.len = 1;
	c->nsessions = 1;
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		if (opt == 's')
			o->socket_path = optarg;
		else if (opt == 't')
			o->timeout = number(optarg);
		else if (opt == 'r')
			o->print_ready = true;
		else if (opt == 'b')
			o->bad_frame = bad_frame_kind(optarg);
		else if (opt == 'P')
			o->poweroff = true;
		else if (opt == 'A')
			c->pause_after = number(optarg);
		else if (opt == 'R')
			c->pause_run = optarg;
		else if (!request_option(opt, optarg, c))
			die(2, "usage: see the header of agent_client.c");
	}
	if (o->socket_path == NULL || c->nsessions < 1 || c->nsessions > MAX_PARALLEL)
		die(2, "--socket is required; --parallel 1..64");
	if ((c->pause_after > 0) != (c->pause_run != NULL))
		die(2, "--pause-after and --pause-run go together");
	c->socket_path = o->socket_path;
	for (int i = optind; i < argc; i++)
		if (svm_proto_exec_add_arg(&request, argv[i], strlen(argv[i]), &err) != 0)
			die(2, err.msg);
}

int main(int argc, char **argv)
{
	static struct client c;
	struct client_args o = {.timeout = 60};

	parse_args(argc, argv, &c, &o);
	svm_proto_send_credit_init(&c.stdin_credit);
	c.deadline = now_s() + o.timeout;
	connect_ready(&c, o.socket_path, o.print_ready, o.bad_frame);
	if (o.bad_frame != BAD_NONE)
		send_bad_frame(&c, o.bad_frame);
	if (request.argc > 0) {
		send_execs(&c);
		relay(&c);
	}
	if (o.poweroff)
		send_poweroff(&c);
	close(c.fd);
	return result(&c);
}
