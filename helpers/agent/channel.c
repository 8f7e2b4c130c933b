/* The agent's end of the channel: the virtio-serial port, the frames on it
 * and the connection's state (doc/protocol.md, sections 2, 4 and 7).
 *
 * The host end is a unix socket QEMU listens on; the guest sees the host
 * connect and disconnect. While nobody is connected the port reports POLLHUP
 * continuously and read() returns 0, so a disconnected port is left out of
 * poll() and looked at again every DOWN_RECHECK_MS. Each new connection
 * starts from HELLO. Sessions end with their connection, except across a
 * PAUSE (version 2): the host quiesces the channel before the guest is
 * saved, the agent answers PAUSED as its last frame and, when the host hangs
 * up, keeps the sessions (suspended, none of their descriptors polled) for
 * the next connection, whose first frame after HELLO takes them over
 * (RESUME) or ends them (anything else). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "agent.h"

#define DOWN_RECHECK_MS 50
/* Stream data stops being read from programs while this much waits for the
 * port; frames that are not stream data are always queued. */
#define OUT_SOFT_LIMIT (1024u * 1024u)
#define READ_CHUNK     65536

enum conn_state {
	CONN_DOWN,    /* nobody on the host end */
	CONN_HELLO,   /* our HELLO is queued; the host's is awaited */
	CONN_SERVING, /* READY sent: sessions run */
	CONN_FAILED,  /* a connection error was sent: input discarded until the host hangs up */
};

struct out_queue {
	uint8_t *data;
	size_t head, len, cap;
};

struct agent_channel {
	int port;
	int signals;      /* signalfd: SIGCHLD */
	int power_button; /* input device, or -1 */
	const struct agent_config *config;
	enum conn_state state;
	uint16_t version; /* agreed on this connection */
	bool paused;      /* PAUSED sent: nothing more goes out on this connection */
	bool suspended;   /* sessions kept from a paused connection, awaiting RESUME */
	uint32_t last_exec_id;
	struct svm_proto_reader *reader;
	struct out_queue out;
	struct agent_sessions sessions;
};

/* ---- the output queue ---- */

static bool reserve(struct out_queue *q, size_t more)
{
	size_t cap;
	uint8_t *bigger;

	if (q->head > 0 && q->cap - q->len < more) {
		memmove(q->data, q->data + q->head, q->len - q->head);
		q->len -= q->head;
		q->head = 0;
	}
	if (q->cap - q->len >= more)
		return true;
	cap = q->cap ? q->cap : 2 * SVM_PROTO_MAX_FRAME;
	while (cap - q->len < more)
		cap *= 2;
	bigger = realloc(q->data, cap);
	if (bigger == NULL)
		return false;
	q->data = bigger;
	q->cap = cap;
	return true;
}

/* Frames go out only on a live connection; otherwise they are dropped with
 * it (a new connection starts from scratch). */
static bool frame_begin(struct agent_channel *ch, struct svm_proto_buf *buf)
{
	if (ch->state == CONN_DOWN || ch->state == CONN_FAILED)
		return false;
	if (!reserve(&ch->out, SVM_PROTO_MAX_FRAME)) {
		agent_log("out of memory for the channel's output");
		return false;
	}
	svm_proto_buf_init(buf, ch->out.data + ch->out.len, ch->out.cap - ch->out.len);
	return true;
}

static int frame_end(struct agent_channel *ch, struct svm_proto_buf *buf, int rc,
                     const struct svm_err *err)
{
	if (rc != 0) {
		/* Our own frame refused by the codec: a bug here, not the host's. */
		agent_log("cannot encode a frame: %s", err->msg);
		return -1;
	}
	ch->out.len += buf->len;
	return 0;
}

int agent_send_error(struct agent_channel *ch, uint32_t session, uint32_t code, const char *fmt,
                     ...)
{
	char text[SVM_PROTO_MAX_ERROR_TEXT + 1];
	struct svm_proto_buf buf;
	struct svm_err err;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (!frame_begin(ch, &buf))
		return -1;
	agent_log("ERROR %s to the host (session %u): %s", svm_proto_error_name(code), session,
	          text);
	return frame_end(ch, &buf,
	                 svm_proto_encode_error(&buf, session, code, text, strlen(text), &err),
	                 &err);
}

int agent_send_close(struct agent_channel *ch, uint32_t session)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_close(&buf, session, &err), &err);
}

int agent_send_started(struct agent_channel *ch, uint32_t session, pid_t pid)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_started(&buf, session, (uint32_t)pid, &err),
	                 &err);
}

int agent_send_data(struct agent_channel *ch, uint32_t session, uint8_t stream, const void *bytes,
                    size_t len)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_data(&buf, session, stream, bytes, len, &err),
	                 &err);
}

int agent_send_eof(struct agent_channel *ch, uint32_t session, uint8_t stream)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_eof(&buf, session, stream, &err), &err);
}

int agent_send_window(struct agent_channel *ch, uint32_t session, uint8_t stream,
                      uint32_t increment)
{
	const struct svm_proto_window window = {.stream = stream, .increment = increment};
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_window(&buf, session, &window, &err), &err);
}

int agent_send_exit(struct agent_channel *ch, uint32_t session, int wait_status, bool out_of_memory)
{
	struct svm_proto_exit status = {0};
	struct svm_proto_buf buf;
	struct svm_err err;

	if (WIFSIGNALED(wait_status)) {
		status.kind = SVM_PROTO_KILLED;
		status.signo = (uint8_t)WTERMSIG(wait_status);
		status.core_dumped = WCOREDUMP(wait_status);
	} else {
		status.kind = SVM_PROTO_EXITED;
		status.code = (uint8_t)WEXITSTATUS(wait_status);
	}
	status.out_of_memory = out_of_memory && ch->version >= SVM_PROTO_VERSION_OOM;
	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_exit(&buf, session, &status, &err), &err);
}

bool agent_channel_can_send_data(const struct agent_channel *ch)
{
	return ch->out.len - ch->out.head < OUT_SOFT_LIMIT;
}

/* ---- connection messages ---- */

static void read_text_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static int send_ready(struct agent_channel *ch)
{
	struct svm_proto_ready ready;
	struct svm_proto_buf buf;
	struct svm_err err;
	struct utsname uts;
	struct sysinfo si;
	char boot_id[SVM_PROTO_MAX_READY_TEXT + 1];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	read_text_file("/proc/sys/kernel/random/boot_id", boot_id, sizeof(boot_id));
	if (uname(&uts) != 0 || sysinfo(&si) != 0) {
		agent_log("uname/sysinfo: %s", strerror(errno));
		return -1;
	}
	ready.boot_id.data = (const uint8_t *)boot_id;
	ready.boot_id.len = strlen(boot_id);
	ready.kernel_release.data = (const uint8_t *)uts.release;
	ready.kernel_release.len = strnlen(uts.release, SVM_PROTO_MAX_READY_TEXT);
	ready.vcpus = cpus > 0 ? (uint32_t)cpus : 1;
	ready.memory_kib = (uint64_t)si.totalram * si.mem_unit / 1024;
	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_ready(&buf, &ready, &err), &err);
}

static int send_hello(struct agent_channel *ch)
{
	const struct svm_proto_hello mine = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(ch, &buf))
		return -1;
	return frame_end(ch, &buf, svm_proto_encode_hello(&buf, &mine, &err), &err);
}

/* A connection error: ERROR(0), every session killed, input ignored until
 * the host hangs up. */
static void connection_fail(struct agent_channel *ch, uint32_t code, const char *why)
{
	ch->paused = ch->suspended = false;
	agent_send_error(ch, 0, code, "%s", why);
	agent_sessions_kill_all(&ch->sessions);
	ch->state = CONN_FAILED;
}

static void on_hello(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	const struct svm_proto_hello mine = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_hello theirs;
	struct svm_err err;
	uint16_t version;

	if (ch->state != CONN_HELLO) {
		connection_fail(ch, SVM_PROTO_E_STATE, "a second HELLO");
	} else if (svm_proto_decode_hello(frame, &theirs, &err) != 0) {
		connection_fail(ch, SVM_PROTO_E_MALFORMED, err.msg);
	} else if (svm_proto_negotiate(&mine, &theirs, &version, &err) != 0) {
		connection_fail(ch, SVM_PROTO_E_VERSION, err.msg);
	} else if (send_ready(ch) != 0) {
		connection_fail(ch, SVM_PROTO_E_INTERNAL, "cannot describe the guest");
	} else {
		ch->state = CONN_SERVING;
		ch->version = version;
		agent_log("host connected, protocol version %u; READY sent at %.2f s of uptime",
		          version, agent_uptime_s());
	}
}

static void on_heartbeat(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	struct svm_proto_buf buf;
	struct svm_err err;
	uint64_t nonce;

	if (svm_proto_decode_heartbeat(frame, &nonce, &err) != 0)
		connection_fail(ch, SVM_PROTO_E_MALFORMED, err.msg);
	else if (frame_begin(ch, &buf))
		frame_end(ch, &buf, svm_proto_encode_heartbeat(&buf, nonce, &err), &err);
}

static void on_error(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	struct svm_proto_error e = {0};
	struct svm_err err;
	char text[SVM_PROTO_MAX_ERROR_TEXT * 4 + 1] = "";

	/* Never answered with an ERROR, even when malformed. */
	if (svm_proto_decode_error(frame, &e, &err) == 0)
		agent_escape(e.text.data, e.text.len, text, sizeof(text));
	agent_log("host reports ERROR %s on session %u: %s", svm_proto_error_name(e.code),
	          frame->session, text);
	if (frame->session != 0) {
		agent_session_frame(ch, &ch->sessions, frame);
	} else {
		ch->paused = ch->suspended = false;
		agent_sessions_kill_all(&ch->sessions);
		ch->state = CONN_FAILED;
	}
}

static void on_poweroff(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	struct svm_err err;

	if (svm_proto_decode_empty(frame, &err) != 0) {
		connection_fail(ch, SVM_PROTO_E_MALFORMED, err.msg);
		return;
	}
	/* The guest's end: every program is killed with it (agent_poweroff). */
	agent_log("power off requested by the host");
	agent_sessions_kill_all(&ch->sessions);
	agent_poweroff();
}

/* PAUSE: everything queued goes out, PAUSED last; then nothing more. */
static void on_pause(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (svm_proto_decode_empty(frame, &err) != 0) {
		connection_fail(ch, SVM_PROTO_E_MALFORMED, err.msg);
	} else if (ch->config->host_commands != NULL) {
		/* Host calls end with their connection: a guest cannot park them. */
		connection_fail(ch, SVM_PROTO_E_STATE, "PAUSE is not for host calls");
	} else if (ch->suspended) {
		connection_fail(ch, SVM_PROTO_E_STATE, "PAUSE before the sessions were resumed");
	} else if (frame_begin(ch, &buf) &&
	           frame_end(ch, &buf,
	                     svm_proto_encode_connection_signal(&buf, SVM_PROTO_MSG_PAUSED, &err),
	                     &err) == 0) {
		ch->paused = true;
		agent_log("paused by the host with %zu sessions", ch->sessions.count);
	}
}

static void on_resume(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	struct svm_err err;

	if (svm_proto_decode_empty(frame, &err) != 0) {
		connection_fail(ch, SVM_PROTO_E_MALFORMED, err.msg);
	} else if (!ch->suspended) {
		connection_fail(ch, SVM_PROTO_E_STATE, "RESUME without paused sessions");
	} else {
		ch->suspended = false;
		agent_log("resumed %zu sessions", ch->sessions.count);
	}
}

/* The first frame after HELLO on a connection that finds suspended sessions:
 * RESUME takes them over; anything else means the host does not know them. */
static void end_suspension(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	if (frame->type == SVM_PROTO_MSG_RESUME || !ch->suspended)
		return;
	size_t count = ch->sessions.count;
	bool kept = agent_sessions_keep_batch(&ch->sessions);

	agent_log("the host did not resume the %zu paused sessions: ended them%s", count,
	          kept ? " but the batch script, which its new host may take over" : "");
	ch->suspended = false;
	ch->last_exec_id = 0; /* their ids are this host's to use: it never saw them */
}

static void on_exec(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	if (frame->session <= ch->last_exec_id) {
		connection_fail(ch, SVM_PROTO_E_STATE, "EXEC id not above every earlier one");
	} else {
		ch->last_exec_id = frame->session;
		agent_session_exec(ch, &ch->sessions, frame->session, frame, ch->config);
	}
}

static void on_session_frame(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	if (agent_session_frame(ch, &ch->sessions, frame))
		return;
	/* Not live: never opened, or finished (the frame crossed our CLOSE). */
	if (frame->session > ch->last_exec_id && frame->type != SVM_PROTO_MSG_CLOSE)
		agent_send_error(ch, frame->session, SVM_PROTO_E_UNKNOWN_SESSION,
		                 "session %u was never opened", frame->session);
}

static void connection_up(struct agent_channel *ch);
static void connection_down(struct agent_channel *ch);

static bool is_pause_type(uint8_t type)
{
	return type == SVM_PROTO_MSG_PAUSE || type == SVM_PROTO_MSG_PAUSED ||
	       type == SVM_PROTO_MSG_RESUME;
}

static void dispatch_serving(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	switch (frame->type) {
	case SVM_PROTO_MSG_PAUSE:
		on_pause(ch, frame);
		break;
	case SVM_PROTO_MSG_RESUME:
		on_resume(ch, frame);
		break;
	case SVM_PROTO_MSG_HEARTBEAT:
		on_heartbeat(ch, frame);
		break;
	case SVM_PROTO_MSG_POWEROFF:
		on_poweroff(ch, frame);
		break;
	case SVM_PROTO_MSG_EXEC:
		on_exec(ch, frame);
		break;
	default:
		on_session_frame(ch, frame);
	}
}

static void dispatch(struct agent_channel *ch, const struct svm_proto_frame *frame)
{
	if (frame->type == SVM_PROTO_MSG_ERROR) {
		on_error(ch, frame);
	} else if (frame->type == SVM_PROTO_MSG_HELLO) {
		/* Nothing follows PAUSE on a connection: a HELLO is a new one,
		 * whose hang-up and reconnect the guest, saved meanwhile, saw as
		 * one event. */
		if (ch->paused) {
			connection_down(ch);
			connection_up(ch);
		}
		on_hello(ch, frame);
	} else if (ch->state == CONN_HELLO) {
		connection_fail(ch, SVM_PROTO_E_STATE, "the first frame must be HELLO");
	} else if (ch->paused) {
		connection_fail(ch, SVM_PROTO_E_STATE, "a frame after PAUSE");
	} else if (is_pause_type(frame->type) && ch->version < SVM_PROTO_VERSION_PAUSE) {
		connection_fail(ch, SVM_PROTO_E_UNKNOWN_TYPE, "PAUSE and RESUME need version 2");
	} else {
		end_suspension(ch, frame);
		dispatch_serving(ch, frame);
	}
}

/* ---- the port ---- */

static void connection_up(struct agent_channel *ch)
{
	svm_proto_reader_init(ch->reader, SVM_PROTO_HOST);
	ch->out.head = ch->out.len = 0;
	ch->version = 0;
	/* Kept sessions keep their ids: a new EXEC must not reuse one. */
	if (!ch->suspended)
		ch->last_exec_id = 0;
	ch->state = CONN_HELLO;
	send_hello(ch);
}

static void connection_down(struct agent_channel *ch)
{
	if (ch->state != CONN_DOWN)
		agent_log("host disconnected");
	if (ch->paused) {
		ch->paused = false;
		ch->suspended = true;
		ch->out.head = ch->out.len = 0;
		ch->state = CONN_DOWN;
		return;
	}
	if (!ch->suspended)
		agent_sessions_kill_all(&ch->sessions);
	/* Host mode: QEMU closed the port's socket, the guest is gone. */
	if (ch->config->host_commands != NULL)
		agent_poweroff();
	ch->out.head = ch->out.len = 0;
	ch->state = CONN_DOWN;
}

static bool host_connected(const struct agent_channel *ch)
{
	struct pollfd p = {.fd = ch->port, .events = POLLIN};

	return poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP) == 0;
}

static void feed(struct agent_channel *ch, const uint8_t *bytes, size_t len)
{
	struct svm_proto_frame frame;
	struct svm_err err;

	while (len > 0 && (ch->state == CONN_HELLO || ch->state == CONN_SERVING)) {
		size_t used;
		int rc = svm_proto_reader_next(ch->reader, bytes, len, &used, &frame, &err);

		if (rc < 0) {
			connection_fail(ch, ch->reader->error_code, err.msg);
			return;
		}
		bytes += used;
		len -= used;
		if (rc == 1)
			dispatch(ch, &frame);
	}
}

static void read_port(struct agent_channel *ch)
{
	static uint8_t chunk[READ_CHUNK];

	for (;;) {
		ssize_t n = read(ch->port, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			agent_log("read from the port: %s", strerror(errno));
		if (n < 0)
			return;
		if (n == 0) {
			connection_down(ch);
			return;
		}
		feed(ch, chunk, (size_t)n);
	}
}

static void flush_port(struct agent_channel *ch)
{
	while (ch->out.len > ch->out.head && ch->state != CONN_DOWN) {
		ssize_t n =
		        write(ch->port, ch->out.data + ch->out.head, ch->out.len - ch->out.head);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			agent_log("write to the port: %s", strerror(errno));
		if (n < 0)
			return;
		ch->out.head += (size_t)n;
	}
	if (ch->out.head == ch->out.len)
		ch->out.head = ch->out.len = 0;
}

/* ---- children ---- */

static void reap_children(struct agent_channel *ch)
{
	struct signalfd_siginfo info;
	bool terminate = false;
	int status;
	pid_t pid;

	while (read(ch->signals, &info, sizeof(info)) > 0)
		terminate |= info.ssi_signo != SIGCHLD;
	/* Host mode only: the mux that started us is ending. */
	if (terminate) {
		agent_log("terminated: ending every host call");
		agent_sessions_kill_all(&ch->sessions);
		agent_poweroff();
	}
	/* PID 1 adopts every orphan of the guest: reap them all. */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		agent_sessions_reaped(ch, &ch->sessions, pid, status);
}

static int open_signals(bool host_mode, struct svm_err *err)
{
	sigset_t set;
	int fd;

	/* Writes to a program that closed its stdin must fail, not kill PID 1. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return svm_err_errno(err, errno, "ignore SIGPIPE");
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (host_mode) {
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return svm_err_errno(err, errno, "block SIGCHLD");
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "signalfd");
	return fd;
}

struct agent_channel *agent_channel_new(int port, int power_button,
                                        const struct agent_config *config, struct svm_err *err)
{
	struct agent_channel *ch = calloc(1, sizeof(*ch));

	if (ch == NULL || (ch->reader = malloc(sizeof(*ch->reader))) == NULL) {
		free(ch);
		svm_err_set(err, "out of memory");
		return NULL;
	}
	ch->port = port;
	ch->power_button = power_button;
	ch->config = config;
	ch->state = CONN_DOWN;
	ch->signals = open_signals(config->host_commands != NULL, err);
	if (ch->signals < 0) {
		free(ch->reader);
		free(ch);
		return NULL;
	}
	return ch;
}

/* Paused or suspended sessions make no frames: none of their descriptors is
 * looked at (their programs block on full pipes) and no EXIT goes out. */
static bool sessions_quiet(const struct agent_channel *ch)
{
	return ch->paused || ch->suspended;
}

/* Poll slots: the signals, the power button, then the port while a host is
 * connected, then the sessions' descriptors. */
enum { SLOT_SIGNALS, SLOT_POWER_BUTTON, SLOT_PORT };

static int build_poll_set(struct agent_channel *ch, struct pollfd **fds, size_t *cap, size_t *n,
                          struct svm_err *err)
{
	size_t need = SLOT_PORT + 1 + agent_sessions_poll_count(&ch->sessions);

	if (need > *cap) {
		struct pollfd *bigger = realloc(*fds, need * sizeof(**fds));

		if (bigger == NULL)
			return svm_err_set(err, "out of memory for the poll set");
		*fds = bigger;
		*cap = need;
	}
	(*fds)[SLOT_SIGNALS] = (struct pollfd){.fd = ch->signals, .events = POLLIN};
	(*fds)[SLOT_POWER_BUTTON] = (struct pollfd){.fd = ch->power_button, .events = POLLIN};
	*n = SLOT_PORT;
	if (ch->state != CONN_DOWN)
		(*fds)[(*n)++] = (struct pollfd){
		        .fd = ch->port,
		        .events = (short)(POLLIN | (ch->out.len > ch->out.head ? POLLOUT : 0))};
	if (!sessions_quiet(ch))
		*n += agent_sessions_fill_poll(ch, &ch->sessions, *fds + *n);
	return 0;
}

/* Children first (their status), then the sessions' descriptors, then the
 * port, whose frames may add or end sessions. */
static void handle_events(struct agent_channel *ch, const struct pollfd *fds, bool port_polled)
{
	if (fds[SLOT_SIGNALS].revents != 0)
		reap_children(ch);
	if (fds[SLOT_POWER_BUTTON].revents != 0 && agent_power_button_pressed(ch->power_button)) {
		agent_log("power button pressed: powering off");
		agent_sessions_kill_all(&ch->sessions);
		agent_poweroff();
	}
	if (!sessions_quiet(ch))
		agent_sessions_handle_poll(ch, &ch->sessions,
		                           fds + SLOT_PORT + (port_polled ? 1 : 0));
	if (port_polled && (fds[SLOT_PORT].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
		read_port(ch);
	if (!sessions_quiet(ch))
		agent_sessions_finish(ch, &ch->sessions);
	flush_port(ch);
}

static int serve_once(struct agent_channel *ch, struct pollfd **fds, size_t *cap,
                      struct svm_err *err)
{
	bool port_polled;
	size_t n;

	if (ch->state == CONN_DOWN && host_connected(ch))
		connection_up(ch);
	port_polled = ch->state != CONN_DOWN;
	if (build_poll_set(ch, fds, cap, &n, err) != 0)
		return -1;
	/* A disconnected port reports POLLHUP without end: it is left out and
	 * looked at again after DOWN_RECHECK_MS. */
	if (poll(*fds, n, port_polled ? -1 : DOWN_RECHECK_MS) < 0 && errno != EINTR)
		return svm_err_errno(err, errno, "poll");
	handle_events(ch, *fds, port_polled);
	return 0;
}

int agent_channel_serve(struct agent_channel *ch, struct svm_err *err)
{
	struct pollfd *fds = NULL;
	size_t cap = 0;
	int rc;

	while ((rc = serve_once(ch, &fds, &cap, err)) == 0)
		;
	free(fds);
	return rc;
}
