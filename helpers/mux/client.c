/* The clients' side: each task proxy speaks the protocol to the mux as if it
 * were the agent (doc/protocol.md, sections 7 and 8, agent side). Their
 * session ids are their own; the mux maps them onto fresh guest ids. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux.h"

/* Control frames a client may have queued on top of its windows. */
#define CLIENT_QUEUE_SLACK (1024u * 1024u)

static struct svm_proto_exec exec_scratch; /* large: one, decoded per EXEC */

size_t mux_client_queue_limit(const struct mux_client *c)
{
	/* Per session: three streams the agent writes, each within its window. */
	return CLIENT_QUEUE_SLACK + c->sessions * 3 * (size_t)SVM_PROTO_INITIAL_WINDOW;
}

void mux_send_to_client(struct mux *m, struct mux_session *s, uint8_t type, const uint8_t *payload,
                        size_t len)
{
	struct svm_err err;

	if (mux_put_frame(&s->client->out, type, s->client_id, payload, len, &err) != 0)
		mux_client_drop(m, s->client, err.msg);
}

void mux_client_drop(struct mux *m, struct mux_client *c, const char *why)
{
	if (c->gone)
		return;
	if (why != NULL)
		mux_log("client pid %ld: %s", (long)c->pid, why);
	else if (c->sessions > 0)
		mux_log("client pid %ld left with %zu open sessions: their programs are killed",
		        (long)c->pid, c->sessions);
	c->gone = true;
	/* A vanished proxy means Slurm killed the task (it SIGKILLs the proxy):
	 * the guest program must not outlive it. CLOSE makes the agent SIGKILL
	 * the program's process group. */
	for (size_t i = m->nsessions; i-- > 0;) {
		struct mux_session *s = m->sessions[i];

		if (s->client != c)
			continue;
		s->client = NULL;
		c->sessions--;
		s->close_to_client = true;
		s->close_from_client = true;
		if (!s->close_to_agent) {
			mux_put_close(&m->agent_out, s->guest_id);
			s->close_to_agent = true;
		}
		mux_session_settle(m, s);
	}
}

/* A connection-level error: ERROR(0), then the connection is closed. */
static void client_fail(struct mux *m, struct mux_client *c, uint32_t code, const char *text)
{
	struct svm_err err;

	mux_put_error(&c->out, 0, code, "%s", text);
	mux_flush(c->fd, &c->out, &err);
	mux_client_drop(m, c, text);
}

static bool peer_allowed(struct mux_client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		mux_log("SO_PEERCRED: %s", strerror(errno));
		return false;
	}
	c->uid = cred.uid;
	c->pid = cred.pid;
	return cred.uid == getuid();
}

static struct mux_client *client_new(int fd)
{
	struct mux_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->reader = malloc(sizeof(*c->reader));
	if (c->reader == NULL) {
		free(c);
		return NULL;
	}
	c->fd = fd;
	svm_proto_reader_init(c->reader, SVM_PROTO_HOST);
	svm_byte_queue_init(&c->out);
	return c;
}

void mux_client_accept(struct mux *m)
{
	struct mux_client *c;
	struct svm_err err;
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			mux_log("accept: %s", strerror(errno));
		return;
	}
	c = client_new(fd);
	if (c == NULL) {
		mux_log("out of memory for a client");
		close(fd);
		return;
	}
	c->next = m->clients;
	m->clients = c;
	if (!peer_allowed(c)) {
		char why[96];

		snprintf(why, sizeof(why), "refused: uid %ld is not the job's user (uid %ld)",
		         (long)c->uid, (long)getuid());
		client_fail(m, c, SVM_PROTO_E_IDENTITY_REFUSED, why);
		return;
	}
	if (mux_put_hello(&c->out) != 0 || mux_flush(fd, &c->out, &err) != 0)
		mux_client_drop(m, c, "cannot greet the client");
}

static void client_hello(struct mux *m, struct mux_client *c, const struct svm_proto_frame *f)
{
	const struct svm_proto_hello mine = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	struct svm_proto_hello theirs;
	struct svm_err err;
	uint16_t version;

	if (f->type != SVM_PROTO_MSG_HELLO)
		client_fail(m, c, SVM_PROTO_E_STATE, "the first frame must be HELLO");
	else if (svm_proto_decode_hello(f, &theirs, &err) != 0)
		client_fail(m, c, SVM_PROTO_E_MALFORMED, err.msg);
	else if (svm_proto_negotiate(&mine, &theirs, &version, &err) != 0)
		client_fail(m, c, SVM_PROTO_E_VERSION, err.msg);
	else if (mux_put_frame(&c->out, SVM_PROTO_MSG_READY, 0, m->ready_payload, m->ready_len,
	                       &err) != 0)
		mux_client_drop(m, c, err.msg);
	else {
		c->hello_seen = true;
		c->version = version;
	}
}

static bool in_my_groups(uint32_t gid)
{
	gid_t groups[SVM_PROTO_MAX_GROUPS];
	int n = getgroups(SVM_PROTO_MAX_GROUPS, groups);

	if (gid == getgid())
		return true;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* The guest runs the program with whatever identity EXEC names, so the mux
 * lets a client ask only for the job user's own: its uid and its groups. */
static bool identity_allowed(const struct svm_proto_exec *exec, struct svm_err *err)
{
	if (exec->uid != getuid()) {
		svm_err_set(err, "uid %u is not the job's user (uid %u)", exec->uid,
		            (unsigned)getuid());
		return false;
	}
	if (!in_my_groups(exec->gid)) {
		svm_err_set(err, "gid %u is not one of the job user's groups", exec->gid);
		return false;
	}
	for (size_t i = 0; i < exec->ngroups; i++) {
		if (!in_my_groups(exec->groups[i])) {
			svm_err_set(err, "group %u is not one of the job user's groups",
			            exec->groups[i]);
			return false;
		}
	}
	return true;
}

/* A session refused before it reached the agent: its id counts as used. */
static void refuse_exec(struct mux_client *c, uint32_t id, uint32_t code, const char *text)
{
	mux_put_error(&c->out, id, code, "%s", text);
	mux_put_close(&c->out, id);
}

static void client_exec(struct mux *m, struct mux_client *c, const struct svm_proto_frame *f)
{
	struct mux_session *s;
	struct svm_err err;

	if (f->session <= c->last_exec_id) {
		client_fail(m, c, SVM_PROTO_E_STATE, "EXEC session ids must increase");
		return;
	}
	c->last_exec_id = f->session;
	if (svm_proto_decode_exec(f, &exec_scratch, &err) != 0) {
		refuse_exec(c, f->session, SVM_PROTO_E_MALFORMED, err.msg);
	} else if (!identity_allowed(&exec_scratch, &err)) {
		refuse_exec(c, f->session, SVM_PROTO_E_IDENTITY_REFUSED, err.msg);
	} else if (c->sessions >= MUX_MAX_SESSIONS_PER_CLIENT || m->nsessions >= MUX_MAX_SESSIONS) {
		refuse_exec(c, f->session, SVM_PROTO_E_RESOURCE, "too many sessions");
	} else if ((s = mux_session_new(m, c, f->session, exec_scratch.flags)) == NULL) {
		refuse_exec(c, f->session, SVM_PROTO_E_RESOURCE, "out of session ids or memory");
	} else {
		mux_send_to_agent(m, SVM_PROTO_MSG_EXEC, s->guest_id, f->payload, f->len);
	}
}

static uint32_t check_client_window(struct mux_session *s, const struct svm_proto_frame *f,
                                    struct svm_err *err)
{
	struct svm_proto_window window;

	if (svm_proto_decode_window(f, &window, err) != 0 ||
	    svm_proto_check_stream(SVM_PROTO_HOST, f->type, window.stream, err) != 0)
		return SVM_PROTO_E_MALFORMED;
	if (!mux_session_stream_open(s, window.stream))
		return mux_fault(err, SVM_PROTO_E_MALFORMED, "WINDOW for a stream not opened");
	if (svm_proto_send_credit_grant(&s->agent_credit[window.stream], window.increment, err) !=
	    0)
		return SVM_PROTO_E_FLOW;
	return 0;
}

static uint32_t check_client_stream(struct mux_session *s, const struct svm_proto_frame *f,
                                    struct svm_err *err)
{
	struct svm_proto_data data;

	if (f->type == SVM_PROTO_MSG_DATA ? svm_proto_decode_data(f, &data, err) != 0
	                                  : svm_proto_decode_eof(f, &data.stream, err) != 0)
		return SVM_PROTO_E_MALFORMED;
	if (svm_proto_check_stream(SVM_PROTO_HOST, f->type, data.stream, err) != 0)
		return SVM_PROTO_E_MALFORMED;
	if (!mux_session_stream_open(s, data.stream))
		return mux_fault(err, SVM_PROTO_E_MALFORMED, "%s on stream %u, not opened",
		                 svm_proto_type_name(f->type), data.stream);
	if (s->client_eof[data.stream])
		return mux_fault(err, SVM_PROTO_E_STATE, "%s on stream %u after its EOF",
		                 svm_proto_type_name(f->type), data.stream);
	if (f->type == SVM_PROTO_MSG_EOF) {
		s->client_eof[data.stream] = true;
		return 0;
	}
	if (svm_proto_send_credit_spend(&s->client_credit[data.stream], data.bytes.len, err) != 0)
		return SVM_PROTO_E_FLOW;
	return 0;
}

static uint32_t check_client_frame(struct mux_session *s, const struct svm_proto_frame *f,
                                   struct svm_err *err)
{
	uint32_t signo;
	struct svm_proto_error e;

	switch (f->type) {
	case SVM_PROTO_MSG_WINDOW:
		return check_client_window(s, f, err);
	case SVM_PROTO_MSG_SIGNAL:
		return svm_proto_decode_signal(f, &signo, err) != 0 ? SVM_PROTO_E_MALFORMED : 0;
	case SVM_PROTO_MSG_ERROR:
		return svm_proto_decode_error(f, &e, err) != 0 ? SVM_PROTO_E_MALFORMED : 0;
	default:
		return check_client_stream(s, f, err);
	}
}

static bool is_sigterm(const struct svm_proto_frame *f)
{
	uint32_t signo = 0;
	struct svm_err err;

	return svm_proto_decode_signal(f, &signo, &err) == 0 && signo == SIGTERM;
}

static void client_close(struct mux *m, struct mux_session *s)
{
	s->close_from_client = true;
	if (!s->close_to_agent) {
		mux_put_close(&m->agent_out, s->guest_id);
		s->close_to_agent = true;
	}
	mux_session_settle(m, s);
}

static void client_session_frame(struct mux *m, struct mux_client *c,
                                 const struct svm_proto_frame *f)
{
	struct mux_session *s = mux_session_by_client(m, c, f->session);
	struct svm_err err;
	uint32_t code;

	if (s == NULL) {
		if (f->session > c->last_exec_id && f->type != SVM_PROTO_MSG_ERROR &&
		    f->type != SVM_PROTO_MSG_CLOSE)
			mux_put_error(&c->out, f->session, SVM_PROTO_E_UNKNOWN_SESSION,
			              "session %u was never opened", f->session);
		return;
	}
	if (s->close_from_client)
		return;
	if (f->type == SVM_PROTO_MSG_CLOSE) {
		client_close(m, s);
		return;
	}
	if (s->close_to_client || s->close_to_agent)
		return;
	code = check_client_frame(s, f, &err);
	if (code != 0) {
		mux_session_fail(m, s, code, err.msg, false);
		return;
	}
	if (f->type == SVM_PROTO_MSG_SIGNAL && is_sigterm(f) && mux_requeue_holds(m))
		return;
	mux_send_to_agent(m, f->type, s->guest_id, f->payload, f->len);
}

static void client_frame(struct mux *m, struct mux_client *c, const struct svm_proto_frame *f)
{
	struct svm_err err;
	uint64_t nonce;

	if (!c->hello_seen) {
		client_hello(m, c, f);
		return;
	}
	switch (f->type) {
	case SVM_PROTO_MSG_HELLO:
		client_fail(m, c, SVM_PROTO_E_STATE, "a second HELLO");
		return;
	case SVM_PROTO_MSG_HEARTBEAT:
		if (svm_proto_decode_heartbeat(f, &nonce, &err) != 0)
			client_fail(m, c, SVM_PROTO_E_MALFORMED, err.msg);
		else
			mux_put_heartbeat(&c->out, nonce);
		return;
	case SVM_PROTO_MSG_POWEROFF:
		client_fail(m, c, SVM_PROTO_E_STATE,
		            "only the job's teardown powers the guest off");
		return;
	case SVM_PROTO_MSG_ERROR:
		if (f->session == 0) {
			mux_client_drop(m, c, "the client reported a connection error");
			return;
		}
		break;
	case SVM_PROTO_MSG_EXEC:
		client_exec(m, c, f);
		return;
	default:
		break;
	}
	client_session_frame(m, c, f);
}

void mux_client_input(struct mux *m, struct mux_client *c, const uint8_t *bytes, size_t len)
{
	struct svm_proto_frame frame;
	struct svm_err err;
	size_t used;
	int rc;

	while (len > 0 && !c->gone && !m->stop) {
		rc = svm_proto_reader_next(c->reader, bytes, len, &used, &frame, &err);
		bytes += used;
		len -= used;
		if (rc < 0)
			client_fail(m, c, c->reader->error_code, err.msg);
		else if (rc == 1)
			client_frame(m, c, &frame);
	}
}
