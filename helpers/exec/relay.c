/* The proxy's relay: the mux connection, the task's stdio and extra fd, and
 * its signals, in one poll() loop. Host fds stay in blocking mode (they may be
 * shared with other processes, a terminal for one), so writes to pipes and
 * ttys go in PIPE_BUF pieces after POLLOUT, which never block. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"

#define READ_CHUNK (128u * 1024u)
/* Time left to hand the mux our CLOSE at the end. */
#define FINAL_FLUSH_MS 2000

static uint8_t read_buf[READ_CHUNK];

void exec_fail(struct exec_proxy *p, int code, const char *fmt, ...)
{
	va_list ap;

	if (p->fail_code != 0)
		return;
	p->fail_code = code;
	va_start(ap, fmt);
	vsnprintf(p->fail_msg, sizeof(p->fail_msg), fmt, ap);
	va_end(ap);
}

/* Every frame the proxy sends: reserve room, encode in place, commit. */
static bool frame_begin(struct exec_proxy *p, size_t room, struct svm_proto_buf *buf)
{
	struct svm_err err;

	if (svm_byte_queue_reserve(&p->out, room, buf, &err) == 0)
		return true;
	exec_fail(p, EXEC_EXIT_INTERNAL, "out of memory: %s", err.msg);
	return false;
}

static void frame_end(struct exec_proxy *p, const struct svm_proto_buf *buf, int rc,
                      const struct svm_err *err)
{
	if (rc != 0)
		exec_fail(p, EXEC_EXIT_INTERNAL, "cannot encode a frame: %s", err->msg);
	else
		svm_byte_queue_commit(&p->out, buf);
}

#define SMALL_FRAME 64

static void send_hello(struct exec_proxy *p)
{
	const struct svm_proto_hello hello = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_hello(&buf, &hello, &err), &err);
}

static void send_heartbeat(struct exec_proxy *p, uint64_t nonce)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_heartbeat(&buf, nonce, &err), &err);
}

static void send_signal(struct exec_proxy *p, uint32_t signo)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_signal(&buf, EXEC_SESSION, signo, &err), &err);
}

static void send_window(struct exec_proxy *p, const struct svm_proto_window *window)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_window(&buf, EXEC_SESSION, window, &err), &err);
}

static void send_eof(struct exec_proxy *p, uint8_t stream)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_eof(&buf, EXEC_SESSION, stream, &err), &err);
}

static void send_close(struct exec_proxy *p)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SMALL_FRAME, &buf))
		frame_end(p, &buf, svm_proto_encode_close(&buf, EXEC_SESSION, &err), &err);
}

static void send_data(struct exec_proxy *p, uint8_t stream, const uint8_t *bytes, size_t len)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (frame_begin(p, SVM_PROTO_HEADER_SIZE + 1 + len, &buf))
		frame_end(p, &buf,
		          svm_proto_encode_data(&buf, EXEC_SESSION, stream, bytes, len, &err),
		          &err);
}

/* An EXEC that does not fit one frame is the task's problem, not the proxy's. */
static void send_exec(struct exec_proxy *p, const struct svm_proto_exec *exec)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (!frame_begin(p, SVM_PROTO_MAX_FRAME, &buf))
		return;
	if (svm_proto_encode_exec(&buf, EXEC_SESSION, exec, &err) != 0)
		exec_fail(p, EXEC_EXIT_USAGE, "cannot run this task in the guest: %s", err.msg);
	else
		svm_byte_queue_commit(&p->out, &buf);
}

static void escape(const uint8_t *bytes, size_t len, char *out, size_t out_size)
{
	size_t used = 0;

	for (size_t i = 0; i < len && used + 5 < out_size; i++) {
		if (bytes[i] >= 0x20 && bytes[i] < 0x7f)
			out[used++] = (char)bytes[i];
		else
			used += (size_t)snprintf(out + used, out_size - used, "\\x%02x", bytes[i]);
	}
	out[used] = '\0';
}

static bool fd_is_socket(int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool fd_is_chunked(int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
}

static void init_streams(struct exec_proxy *p, const struct svm_proto_exec *exec)
{
	p->sinks[SVM_PROTO_STDOUT].fd = STDOUT_FILENO;
	p->sinks[SVM_PROTO_STDERR].fd = STDERR_FILENO;
	p->sources[SVM_PROTO_STDIN].fd = STDIN_FILENO;
	p->sources[SVM_PROTO_STDIN].open = (exec->flags & SVM_PROTO_EXEC_HAS_STDIN) != 0;
	p->sources[SVM_PROTO_EXTRA].open = (exec->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		struct exec_sink *k = &p->sinks[i];

		svm_byte_queue_init(&k->q);
		svm_proto_recv_window_init(&k->window);
		k->is_socket = fd_is_socket(k->fd);
		k->chunked = fd_is_chunked(k->fd);
		/* Streams the guest never writes count as finished. */
		k->done = i == SVM_PROTO_STDIN ||
		          (i == SVM_PROTO_EXTRA && !p->sources[SVM_PROTO_EXTRA].open);
		svm_proto_send_credit_init(&p->sources[i].credit);
		p->sources[i].is_socket = fd_is_socket(p->sources[i].fd);
	}
	p->flags = exec->flags;
}

static void sink_settle(struct exec_proxy *p, int stream);

/* ---- Frames from the mux ---------------------------------------------------- */

static int error_exit_code(uint32_t code)
{
	switch (code) {
	case SVM_PROTO_E_IDENTITY_REFUSED:
		return EXEC_EXIT_NOPERM;
	case SVM_PROTO_E_EXEC_FAILED:
		return EXEC_EXIT_CANNOT_EXEC;
	default:
		return EXEC_EXIT_PROTOCOL;
	}
}

static void on_error(struct exec_proxy *p, const struct svm_proto_frame *f)
{
	struct svm_proto_error e;
	struct svm_err err;
	char text[4 * SVM_PROTO_MAX_ERROR_TEXT + 1];

	if (svm_proto_decode_error(f, &e, &err) != 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "a malformed ERROR from the mux: %s", err.msg);
		return;
	}
	escape(e.text.data, e.text.len, text, sizeof(text));
	if (e.code == SVM_PROTO_E_GUEST_LOST)
		p->guest_lost = true;
	exec_fail(p, error_exit_code(e.code), "%s%s: %s",
	          f->session == 0 ? "the guest connection failed: " : "",
	          svm_proto_error_name(e.code), text);
}

static void on_ready(struct exec_proxy *p, const struct svm_proto_frame *f,
                     const struct svm_proto_exec *exec)
{
	struct svm_proto_ready ready;
	struct svm_err decode_err;

	if (p->ready || svm_proto_decode_ready(f, &ready, &decode_err) != 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "the mux sent a bad or second READY");
		return;
	}
	p->ready = true;
	p->guest_memory_kib = ready.memory_kib;
	send_exec(p, exec);
	p->exec_sent = p->fail_code == 0;
}

static void on_data(struct exec_proxy *p, const struct svm_proto_frame *f)
{
	struct svm_proto_data data;
	struct svm_err err;
	struct exec_sink *k;

	if (svm_proto_decode_data(f, &data, &err) != 0 ||
	    svm_proto_check_stream(SVM_PROTO_AGENT, f->type, data.stream, &err) != 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "bad DATA from the mux: %s", err.msg);
		return;
	}
	k = &p->sinks[data.stream];
	if (k->done || k->eof) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "DATA on a finished stream %u", data.stream);
		return;
	}
	if (svm_proto_recv_window_receive(&k->window, data.bytes.len, &err) != 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "%s", err.msg);
		return;
	}
	if (svm_byte_queue_append(&k->q, data.bytes.data, data.bytes.len, &err) != 0) {
		exec_fail(p, EXEC_EXIT_INTERNAL, "%s", err.msg);
		return;
	}
}

static void on_stream_control(struct exec_proxy *p, const struct svm_proto_frame *f)
{
	struct svm_proto_window window;
	struct svm_err err;
	uint8_t stream;

	if (f->type == SVM_PROTO_MSG_EOF) {
		if (svm_proto_decode_eof(f, &stream, &err) != 0 ||
		    svm_proto_check_stream(SVM_PROTO_AGENT, f->type, stream, &err) != 0) {
			exec_fail(p, EXEC_EXIT_PROTOCOL, "bad EOF: %s", err.msg);
			return;
		}
		p->sinks[stream].eof = true;
		sink_settle(p, stream);
		return;
	}
	if (svm_proto_decode_window(f, &window, &err) != 0 ||
	    svm_proto_check_stream(SVM_PROTO_AGENT, f->type, window.stream, &err) != 0 ||
	    svm_proto_send_credit_grant(&p->sources[window.stream].credit, window.increment,
	                                &err) != 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "bad WINDOW: %s", err.msg);
		return;
	}
}

static void on_session_frame(struct exec_proxy *p, const struct svm_proto_frame *f)
{
	struct svm_err err;
	uint32_t pid;

	if (f->session != EXEC_SESSION || !p->exec_sent) {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "%s for an unknown session %u",
		          svm_proto_type_name(f->type), f->session);
		return;
	}
	switch (f->type) {
	case SVM_PROTO_MSG_STARTED:
		if (svm_proto_decode_started(f, &pid, &err) != 0)
			exec_fail(p, EXEC_EXIT_PROTOCOL, "%s", err.msg);
		return;
	case SVM_PROTO_MSG_DATA: {
		on_data(p, f);
		return;
	}
	case SVM_PROTO_MSG_EOF:
	case SVM_PROTO_MSG_WINDOW: {
		on_stream_control(p, f);
		return;
	}
	case SVM_PROTO_MSG_EXIT:
		if (svm_proto_decode_exit(f, &p->status, &err) != 0) {
			exec_fail(p, EXEC_EXIT_PROTOCOL, "%s", err.msg);
			return;
		}
		p->exited = true;
		return;
	case SVM_PROTO_MSG_CLOSE:
		p->close_received = true;
		if (!p->exited)
			exec_fail(p, EXEC_EXIT_PROTOCOL,
			          "the guest ended the task without a status");
		return;
	default:
		exec_fail(p, EXEC_EXIT_PROTOCOL, "unexpected %s", svm_proto_type_name(f->type));
	}
}

static void on_frame(struct exec_proxy *p, const struct svm_proto_frame *f,
                     const struct svm_proto_exec *exec)
{
	const struct svm_proto_hello mine = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_hello theirs;
	struct svm_err err;
	uint16_t version;
	uint64_t nonce;

	if (f->type == SVM_PROTO_MSG_ERROR) {
		on_error(p, f);
		return;
	}
	if (!p->hello_seen) {
		if (f->type != SVM_PROTO_MSG_HELLO ||
		    svm_proto_decode_hello(f, &theirs, &err) != 0 ||
		    svm_proto_negotiate(&mine, &theirs, &version, &err) != 0) {
			exec_fail(p, EXEC_EXIT_PROTOCOL, "the mux does not speak protocol v1");
			return;
		}
		p->hello_seen = true;
		return;
	}
	switch (f->type) {
	case SVM_PROTO_MSG_READY: {
		on_ready(p, f, exec);
		return;
	}
	case SVM_PROTO_MSG_HEARTBEAT:
		if (svm_proto_decode_heartbeat(f, &nonce, &err) == 0)
			send_heartbeat(p, nonce);
		return;
	case SVM_PROTO_MSG_HELLO: {
		exec_fail(p, EXEC_EXIT_PROTOCOL, "a second HELLO from the mux");
		return;
	}
	default: {
		on_session_frame(p, f);
		return;
	}
	}
}

static void read_mux(struct exec_proxy *p, const struct svm_proto_exec *exec)
{
	struct svm_proto_frame frame;
	struct svm_err err;
	ssize_t n = read(p->sock, read_buf, sizeof(read_buf));
	const uint8_t *bytes = read_buf;
	size_t len, used;
	int rc;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		exec_fail(p, EXEC_EXIT_PROTOCOL,
		          "lost the connection to the guest (spank-vm-mux): %s",
		          n == 0 ? "closed" : strerror(errno));
		return;
	}
	len = (size_t)n;
	while (len > 0 && p->fail_code == 0) {
		rc = svm_proto_reader_next(p->reader, bytes, len, &used, &frame, &err);
		bytes += used;
		len -= used;
		if (rc < 0)
			exec_fail(p, EXEC_EXIT_PROTOCOL, "bad frame from the mux: %s", err.msg);
		else if (rc == 1)
			on_frame(p, &frame, exec);
	}
}

/* ---- Host fds ------------------------------------------------------------------- */

static void sink_consumed(struct exec_proxy *p, int stream, size_t n)
{
	struct exec_sink *k = &p->sinks[stream];
	struct svm_proto_window window = {(uint8_t)stream, 0};
	struct svm_err err;

	svm_byte_queue_consume(&k->q, n);
	if (svm_proto_recv_window_consume(&k->window, n, &window.increment, &err) != 0) {
		exec_fail(p, EXEC_EXIT_INTERNAL, "%s", err.msg);
		return;
	}
	if (window.increment > 0 && !p->exited)
		send_window(p, &window);
}

/* The reader of a stream went away: like a program writing to a closed pipe,
 * the guest program gets SIGPIPE; its further bytes are dropped. */
static void sink_broken(struct exec_proxy *p, int stream)
{
	struct exec_sink *k = &p->sinks[stream];

	k->broken = true;
	if (!p->exited)
		send_signal(p, SIGPIPE);
}

static bool writable_now(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};

	return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLOUT);
}

/* A stream is done once the guest ended it and every byte went out. */
static void sink_settle(struct exec_proxy *p, int stream)
{
	struct exec_sink *k = &p->sinks[stream];

	if (k->eof && svm_byte_queue_len(&k->q) == 0 && !k->done) {
		k->done = true;
		if (stream == SVM_PROTO_EXTRA && k->is_socket)
			shutdown(k->fd, SHUT_WR);
	}
}

static void sink_write(struct exec_proxy *p, int stream)
{
	struct exec_sink *k = &p->sinks[stream];
	size_t len;
	const uint8_t *front;
	ssize_t n;

	while ((front = svm_byte_queue_front(&k->q, &len)) != NULL && p->fail_code == 0) {
		if (k->broken) {
			sink_consumed(p, stream, len);
			continue;
		}
		if (k->chunked && len > PIPE_BUF)
			len = PIPE_BUF;
		n = k->is_socket ? send(k->fd, front, len, MSG_DONTWAIT | MSG_NOSIGNAL)
		                 : write(k->fd, front, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			sink_broken(p, stream);
			continue;
		}
		sink_consumed(p, stream, (size_t)n);
		if (k->chunked && !writable_now(k->fd))
			break;
	}
	sink_settle(p, stream);
}

static void source_read(struct exec_proxy *p, int stream)
{
	struct exec_source *s = &p->sources[stream];
	size_t want = svm_proto_send_credit_sendable(&s->credit, SVM_PROTO_MAX_DATA);
	struct svm_err spend_err;
	ssize_t n;

	if (want == 0)
		return;
	n = s->is_socket ? recv(s->fd, read_buf, want, MSG_DONTWAIT) : read(s->fd, read_buf, want);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* End of input, or an input that failed (a hung-up tty): EOF either way. */
		s->open = false;
		send_eof(p, (uint8_t)stream);
		return;
	}
	send_data(p, (uint8_t)stream, read_buf, (size_t)n);
	if (svm_proto_send_credit_spend(&s->credit, (size_t)n, &spend_err) != 0)
		exec_fail(p, EXEC_EXIT_INTERNAL, "%s", spend_err.msg);
}

static void on_signals(struct exec_proxy *p)
{
	struct signalfd_siginfo info;

	while (read(p->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		if (!p->exec_sent && info.ssi_signo != SIGCONT && info.ssi_signo != SIGTSTP) {
			/* Nothing runs yet: the signal ends the task here and now. */
			p->status.kind = SVM_PROTO_KILLED;
			p->status.signo = (uint8_t)info.ssi_signo;
			p->exited = true;
			p->close_received = true;
			return;
		}
		/* --vm-checkpoint-signal: the job goes, its guest saved, and comes
		 * back; the script sees nothing (unless Slurm refused). */
		if ((int)info.ssi_signo == p->requeue_signal && p->exec_sent && !p->exited &&
		    exec_requeue_job((int)info.ssi_signo))
			continue;
		if (p->exec_sent && !p->exited)
			send_signal(p, info.ssi_signo);
	}
}

/* ---- The loop ------------------------------------------------------------------- */

static void flush_mux(struct exec_proxy *p)
{
	size_t len;
	const uint8_t *front;
	ssize_t n;

	while (!p->write_lost && (front = svm_byte_queue_front(&p->out, &len)) != NULL) {
		n = send(p->sock, front, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			/* The mux may have said why before closing: reading
			 * the connection to its end reports it. */
			svm_byte_queue_consume(&p->out, len);
			p->write_lost = true;
		}
		if (n < 0)
			return;
		svm_byte_queue_consume(&p->out, (size_t)n);
	}
}

static bool finished(const struct exec_proxy *p)
{
	if (p->fail_code != 0 || (p->exited && p->close_received && !p->exec_sent))
		return true;
	if (!p->exited)
		return false;
	for (int i = 1; i < SVM_PROTO_STREAMS; i++)
		if (!p->sinks[i].done && !p->sinks[i].broken)
			return false;
	return true;
}

struct fds {
	struct pollfd pfd[8];
	int stream[8]; /* -1: not a stream */
	nfds_t n;
};

static void add_fd(struct fds *f, int fd, short events, int stream)
{
	f->pfd[f->n] = (struct pollfd){.fd = fd, .events = events};
	f->stream[f->n++] = stream;
}

static void build_fds(const struct exec_proxy *p, struct fds *f)
{
	f->n = 0;
	add_fd(f, p->sock,
	       (short)(POLLIN | (svm_byte_queue_len(&p->out) > 0 && !p->write_lost ? POLLOUT : 0)),
	       -1);
	add_fd(f, p->signal_fd, POLLIN, -1);
	for (int i = 1; i < SVM_PROTO_STREAMS; i++)
		if (svm_byte_queue_len(&p->sinks[i].q) > 0)
			add_fd(f, p->sinks[i].fd, POLLOUT, i);
	for (int i = 0; i < SVM_PROTO_STREAMS; i += SVM_PROTO_EXTRA)
		if (p->exec_sent && p->sources[i].open && p->sources[i].credit.bytes > 0)
			add_fd(f, p->sources[i].fd, POLLIN, i + SVM_PROTO_STREAMS);
}

static void dispatch(struct exec_proxy *p, const struct fds *f, const struct svm_proto_exec *exec)
{
	for (nfds_t i = 0; i < f->n && p->fail_code == 0; i++) {
		if (f->pfd[i].revents == 0)
			continue;
		if (f->stream[i] >= SVM_PROTO_STREAMS)
			source_read(p, f->stream[i] - SVM_PROTO_STREAMS);
		else if (f->stream[i] >= 0)
			sink_write(p, f->stream[i]);
		else if (f->pfd[i].fd == p->signal_fd)
			on_signals(p);
		else if (f->pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			read_mux(p, exec);
	}
}

static void say_goodbye(struct exec_proxy *p)
{
	struct pollfd pfd = {.fd = p->sock, .events = POLLOUT};
	int waited = 0;

	if (!p->close_sent && p->exec_sent)
		send_close(p);
	p->close_sent = true;
	flush_mux(p);
	while (svm_byte_queue_len(&p->out) > 0 && waited < FINAL_FLUSH_MS &&
	       poll(&pfd, 1, 100) >= 0) {
		waited += 100;
		flush_mux(p);
	}
}

int exec_relay(struct exec_proxy *p, struct svm_proto_exec *exec)
{
	static struct svm_proto_reader reader;
	struct fds f;

	p->reader = &reader;
	svm_proto_reader_init(&reader, SVM_PROTO_AGENT);
	svm_byte_queue_init(&p->out);
	init_streams(p, exec);
	send_hello(p);
	while (!finished(p)) {
		flush_mux(p);
		build_fds(p, &f);
		if (poll(f.pfd, f.n, -1) < 0 && errno != EINTR) {
			exec_fail(p, EXEC_EXIT_INTERNAL, "poll: %s", strerror(errno));
			break;
		}
		dispatch(p, &f, exec);
	}
	if (p->fail_code != EXEC_EXIT_PROTOCOL || p->close_received)
		say_goodbye(p);
	return p->status.kind == SVM_PROTO_EXITED ? p->status.code : 0;
}
