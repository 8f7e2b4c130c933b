/* The agent's side of the channel: the mux plays the host (doc/protocol.md,
 * section 8, host side) and relays each session's frames to its client. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mux.h"

/* Between connection attempts while QEMU creates the channel's socket. */
#define CONNECT_RETRY_MS 50

static int try_connect(const char *path, int *fd_out, struct svm_err *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd, saved;

	if (strlen(path) >= sizeof(addr.sun_path))
		return svm_err_set(err, "--agent-socket %s is too long for a unix socket", path);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return svm_err_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		*fd_out = fd;
		return 0;
	}
	saved = errno;
	svm_err_errno(err, saved, "cannot connect to the guest channel %s", path);
	close(fd);
	return saved == ENOENT || saved == ECONNREFUSED ? 1 : -1;
}

/* In a guest, the host end of a virtio port: it reports POLLHUP until the
 * host connects, and bytes written before are lost, so HELLO waits for it. */
static int open_device(struct mux *m, double deadline, struct svm_err *err)
{
	struct pollfd pfd[2] = {{.fd = m->signal_fd, .events = POLLIN}, {.events = POLLIN}};

	m->agent_fd = open(m->opts->agent_device, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (m->agent_fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", m->opts->agent_device);
	pfd[1].fd = m->agent_fd;
	for (;;) {
		if (poll(&pfd[1], 1, 0) >= 0 && (pfd[1].revents & POLLHUP) == 0)
			break;
		if (mux_now() >= deadline)
			return svm_err_set(err, "nobody connected to %s within %.0f s",
			                   m->opts->agent_device, m->opts->ready_timeout);
		if (poll(pfd, 1, CONNECT_RETRY_MS) > 0)
			return svm_err_set(err, "stopped by a signal while waiting for the host");
	}
	mux_log("the host connected to %s", m->opts->agent_device);
	return mux_put_hello(&m->agent_out);
}

/* QEMU creates the socket some time after the domain starts: retry until the
 * ready deadline, waking early for SIGTERM (the starter gave up). */
int mux_agent_connect(struct mux *m, struct svm_err *err)
{
	double deadline = mux_now() + m->opts->ready_timeout;
	struct pollfd pfd = {.fd = m->signal_fd, .events = POLLIN};
	int rc;

	if (m->opts->agent_device != NULL)
		return open_device(m, deadline, err);

	while ((rc = try_connect(m->opts->agent_socket, &m->agent_fd, err)) == 1) {
		if (mux_now() >= deadline)
			return svm_err_set(err, "the guest channel %s did not appear within %.0f s",
			                   m->opts->agent_socket, m->opts->ready_timeout);
		if (poll(&pfd, 1, CONNECT_RETRY_MS) > 0)
			return svm_err_set(err, "stopped by a signal while waiting for the guest");
	}
	if (rc != 0 || mux_set_nonblock(m->agent_fd, err) != 0)
		return -1;
	mux_log("connected to the guest channel %s", m->opts->agent_socket);
	return mux_put_hello(&m->agent_out);
}

void mux_send_to_agent(struct mux *m, uint8_t type, uint32_t guest_id, const uint8_t *payload,
                       size_t len)
{
	struct svm_err err;

	if (mux_put_frame(&m->agent_out, type, guest_id, payload, len, &err) != 0)
		mux_agent_lost(m, "cannot queue a frame for the agent: %s", err.msg);
}

void mux_agent_lost(struct mux *m, const char *fmt, ...)
{
	va_list ap;

	if (m->stop)
		return;
	int used = snprintf(m->stop_reason, sizeof(m->stop_reason), "the job's guest is gone: ");

	va_start(ap, fmt);
	vsnprintf(m->stop_reason + used, sizeof(m->stop_reason) - (size_t)used, fmt, ap);
	va_end(ap);
	m->stop = true;
	m->exit_code = MUX_EXIT_GUEST_LOST;
	mux_log("%s", m->stop_reason);
}

static void agent_hello(struct mux *m, const struct svm_proto_frame *f)
{
	const struct svm_proto_hello mine = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_hello theirs;
	struct svm_err err;
	uint16_t version;

	if (m->agent_reader->offset != SVM_PROTO_HEADER_SIZE + f->len) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "a second HELLO");
		mux_agent_lost(m, "the agent sent a second HELLO");
	} else if (svm_proto_decode_hello(f, &theirs, &err) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_MALFORMED, "%s", err.msg);
		mux_agent_lost(m, "%s", err.msg);
	} else if (svm_proto_negotiate(&mine, &theirs, &version, &err) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_VERSION, "%s", err.msg);
		mux_agent_lost(m, "%s", err.msg);
	} else {
		m->agent_version = version;
	}
}

static void agent_ready(struct mux *m, const struct svm_proto_frame *f)
{
	struct svm_proto_ready ready;
	struct svm_err err;
	char boot_id[SVM_PROTO_MAX_READY_TEXT + 1], kernel[SVM_PROTO_MAX_READY_TEXT + 1];

	if (m->channel == MUX_CHANNEL_RESUMING) {
		mux_resumed(m, f);
		return;
	}
	if (m->agent_ready) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "a second READY");
		mux_agent_lost(m, "the agent sent a second READY");
		return;
	}
	if (svm_proto_decode_ready(f, &ready, &err) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_MALFORMED, "%s", err.msg);
		mux_agent_lost(m, "%s", err.msg);
		return;
	}
	memcpy(m->ready_payload, f->payload, f->len);
	m->ready_len = f->len;
	m->agent_ready = true;
	/* Printable ASCII only (the decoder checked), so %.*s is safe to log. */
	snprintf(boot_id, sizeof(boot_id), "%.*s", (int)ready.boot_id.len,
	         (const char *)ready.boot_id.data);
	snprintf(kernel, sizeof(kernel), "%.*s", (int)ready.kernel_release.len,
	         (const char *)ready.kernel_release.data);
	mux_log("guest ready: boot id %s, kernel %s, %u vCPUs, %llu KiB", boot_id, kernel,
	        ready.vcpus, (unsigned long long)ready.memory_kib);
}

static void agent_heartbeat(struct mux *m, const struct svm_proto_frame *f)
{
	struct svm_err err;
	uint64_t nonce;

	if (svm_proto_decode_heartbeat(f, &nonce, &err) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_MALFORMED, "%s", err.msg);
		mux_agent_lost(m, "%s", err.msg);
	} else if (m->heartbeat_sent > 0 && nonce == m->heartbeat_nonce) {
		m->heartbeat_sent = 0;
	} else {
		mux_put_heartbeat(&m->agent_out, nonce); /* the agent asks whether we live */
	}
}

static void agent_connection_error(struct mux *m, const struct svm_proto_frame *f)
{
	struct svm_proto_error e;
	struct svm_err err;
	char text[4 * SVM_PROTO_MAX_ERROR_TEXT + 1];

	if (svm_proto_decode_error(f, &e, &err) != 0) {
		mux_agent_lost(m, "a malformed ERROR: %s", err.msg);
		return;
	}
	mux_escape(e.text.data, e.text.len, text, sizeof(text));
	mux_agent_lost(m, "the agent reported %s: %s", svm_proto_error_name(e.code), text);
}

static bool agent_streams_done(const struct mux_session *s)
{
	bool extra = (s->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;

	return s->agent_eof[1] && s->agent_eof[2] && (!extra || s->agent_eof[3]);
}

/* Checks an agent DATA, EOF or WINDOW against the session; 0 or an error code. */
static uint32_t check_agent_stream(struct mux_session *s, const struct svm_proto_frame *f,
                                   struct svm_err *err)
{
	struct svm_proto_data data;
	struct svm_proto_window window;
	uint8_t stream;

	if (f->type == SVM_PROTO_MSG_WINDOW) {
		if (svm_proto_decode_window(f, &window, err) != 0 ||
		    svm_proto_check_stream(SVM_PROTO_AGENT, f->type, window.stream, err) != 0)
			return SVM_PROTO_E_MALFORMED;
		if (!mux_session_stream_open(s, window.stream))
			return mux_fault(err, SVM_PROTO_E_MALFORMED,
			                 "WINDOW for a stream the EXEC did not open");
		if (svm_proto_send_credit_grant(&s->client_credit[window.stream], window.increment,
		                                err) != 0)
			return SVM_PROTO_E_FLOW;
		return 0;
	}
	if (f->type == SVM_PROTO_MSG_DATA ? svm_proto_decode_data(f, &data, err) != 0
	                                  : svm_proto_decode_eof(f, &data.stream, err) != 0)
		return SVM_PROTO_E_MALFORMED;
	stream = data.stream;
	if (svm_proto_check_stream(SVM_PROTO_AGENT, f->type, stream, err) != 0)
		return SVM_PROTO_E_MALFORMED;
	if (!mux_session_stream_open(s, stream))
		return mux_fault(err, SVM_PROTO_E_MALFORMED,
		                 "%s for a stream the EXEC did not open",
		                 svm_proto_type_name(f->type));
	if (!s->started || s->agent_eof[stream])
		return mux_fault(err, SVM_PROTO_E_STATE,
		                 "%s on stream %u before STARTED or after its EOF",
		                 svm_proto_type_name(f->type), stream);
	if (f->type == SVM_PROTO_MSG_EOF) {
		s->agent_eof[stream] = true;
		return 0;
	}
	if (svm_proto_send_credit_spend(&s->agent_credit[stream], data.bytes.len, err) != 0)
		return SVM_PROTO_E_FLOW;
	return 0;
}

/* 0 when the frame may go on to the client, else the protocol error code. */
static uint32_t check_agent_frame(struct mux_session *s, const struct svm_proto_frame *f,
                                  struct svm_err *err)
{
	uint32_t pid;
	struct svm_proto_error e;
	struct svm_proto_exit status;

	switch (f->type) {
	case SVM_PROTO_MSG_STARTED:
		if (svm_proto_decode_started(f, &pid, err) != 0)
			return SVM_PROTO_E_MALFORMED;
		if (s->started)
			return mux_fault(err, SVM_PROTO_E_STATE, "a second STARTED");
		s->started = true;
		return 0;
	case SVM_PROTO_MSG_EXIT:
		if (svm_proto_decode_exit(f, &status, err) != 0)
			return SVM_PROTO_E_MALFORMED;
		if (!s->started || s->exited || !agent_streams_done(s))
			return mux_fault(err, SVM_PROTO_E_STATE,
			                 "EXIT before STARTED, twice or before every EOF");
		s->exited = true;
		if (status.out_of_memory)
			mux_log("session %u: the guest's out-of-memory killer ended a process of "
			        "it",
			        s->guest_id);
		return 0;
	case SVM_PROTO_MSG_ERROR:
		return svm_proto_decode_error(f, &e, err) != 0 ? SVM_PROTO_E_MALFORMED : 0;
	default:
		return check_agent_stream(s, f, err);
	}
}

static void agent_close(struct mux *m, struct mux_session *s, const struct svm_proto_frame *f)
{
	struct svm_err err;

	if (svm_proto_decode_empty(f, &err) != 0)
		mux_log("session %u: %s (taken as CLOSE)", s->guest_id, err.msg);
	s->close_from_agent = true;
	if (s->client != NULL && !s->close_to_client) {
		mux_send_to_client(m, s, SVM_PROTO_MSG_CLOSE, NULL, 0);
		s->close_to_client = true;
	}
	if (s->client == NULL && !s->close_to_agent) {
		mux_put_close(&m->agent_out, s->guest_id);
		s->close_to_agent = true;
	}
	mux_session_settle(m, s);
}

static void agent_session_frame(struct mux *m, const struct svm_proto_frame *f)
{
	struct mux_session *s = mux_session_by_guest(m, f->session);
	struct svm_err err;
	uint32_t code;

	if (s == NULL) {
		/* Finished sessions' frames crossed our CLOSE: dropped. */
		if (f->session > m->last_guest_id && f->type != SVM_PROTO_MSG_ERROR &&
		    f->type != SVM_PROTO_MSG_CLOSE)
			mux_put_error(&m->agent_out, f->session, SVM_PROTO_E_UNKNOWN_SESSION,
			              "session %u was never opened", f->session);
		return;
	}
	if (s->close_from_agent)
		return;
	if (f->type == SVM_PROTO_MSG_CLOSE) {
		agent_close(m, s, f);
		return;
	}
	if (s->close_to_agent || s->client == NULL || s->close_to_client)
		return;
	code = check_agent_frame(s, f, &err);
	if (code != 0) {
		mux_log("session %u: the agent broke the protocol: %s", s->guest_id, err.msg);
		mux_session_fail(m, s, code, err.msg, true);
		return;
	}
	if (f->type == SVM_PROTO_MSG_EXIT && s->client->version < SVM_PROTO_VERSION_OOM) {
		uint8_t older[4];

		/* A client of an older version would take the flag as malformed. */
		memcpy(older, f->payload, sizeof(older));
		older[SVM_PROTO_EXIT_FLAGS_BYTE] &= (uint8_t)~SVM_PROTO_EXIT_FLAG_OUT_OF_MEMORY;
		mux_send_to_client(m, s, f->type, older, sizeof(older));
		return;
	}
	mux_send_to_client(m, s, f->type, f->payload, f->len);
}

static void agent_frame(struct mux *m, const struct svm_proto_frame *f)
{
	if (m->agent_reader->offset == SVM_PROTO_HEADER_SIZE + f->len &&
	    f->type != SVM_PROTO_MSG_HELLO) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "the first frame must be HELLO");
		mux_agent_lost(m, "the agent's first frame was %s", svm_proto_type_name(f->type));
		return;
	}
	switch (f->type) {
	case SVM_PROTO_MSG_HELLO:
		agent_hello(m, f);
		return;
	case SVM_PROTO_MSG_READY:
		agent_ready(m, f);
		return;
	case SVM_PROTO_MSG_HEARTBEAT:
		agent_heartbeat(m, f);
		return;
	case SVM_PROTO_MSG_PAUSED:
		mux_paused(m, f);
		return;
	case SVM_PROTO_MSG_ERROR:
		if (f->session == 0) {
			agent_connection_error(m, f);
			return;
		}
		break;
	default:
		break;
	}
	if (!m->agent_ready) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "%s before READY",
		              svm_proto_type_name(f->type));
		mux_agent_lost(m, "the agent sent %s before READY", svm_proto_type_name(f->type));
		return;
	}
	agent_session_frame(m, f);
}

void mux_agent_input(struct mux *m, const uint8_t *bytes, size_t len)
{
	struct svm_proto_frame frame;
	struct svm_err err;
	size_t used;
	int rc;

	while (len > 0 && !m->stop) {
		rc = svm_proto_reader_next(m->agent_reader, bytes, len, &used, &frame, &err);
		bytes += used;
		len -= used;
		if (rc < 0) {
			mux_put_error(&m->agent_out, 0, m->agent_reader->error_code, "%s", err.msg);
			mux_agent_lost(m, "%s", err.msg);
		} else if (rc == 1) {
			agent_frame(m, &frame);
		}
	}
}
