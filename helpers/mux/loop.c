/* The event loop: one poll() over the signal fd, the agent channel, the
 * listening socket and every client. Everything is non-blocking; a peer that
 * does not read only grows its own queue, within its windows. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mux.h"

/* Above this, the mux stops reading clients until the agent catches up. */
#define AGENT_QUEUE_HIGH (8u * 1024u * 1024u)
/* How long queued ERRORs and POWEROFF may take to drain at exit. */
#define DRAIN_SECONDS 2.0
#define READ_CHUNK    (128u * 1024u)

static uint8_t read_buf[READ_CHUNK];

static int make_listener(const char *path, int *fd_out, struct svm_err *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char tmp[sizeof(addr.sun_path)];
	int fd = -1;

	/* Bound under a temporary name and renamed once listening: a client
	 * that sees the path can connect, and sees it only once the guest is ready. */
	if (snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return svm_err_set(err, "--listen %s is too long for a unix socket", path);
	strcpy(addr.sun_path, tmp);
	unlink(tmp);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return svm_err_errno(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		svm_err_errno(err, errno, "bind %s", tmp);
		goto fail;
	}
	if (chmod(tmp, 0600) != 0 || listen(fd, 128) != 0 || rename(tmp, path) != 0) {
		svm_err_errno(err, errno, "cannot publish the socket %s", path);
		unlink(tmp);
		goto fail;
	}
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

static void signal_ready(struct mux *m, const char *line)
{
	size_t len = strlen(line);

	if (m->opts->ready_fd < 0)
		return;
	if (write(m->opts->ready_fd, line, len) != (ssize_t)len)
		mux_log("cannot write to the ready fd: %s", strerror(errno));
	close(m->opts->ready_fd);
}

static int write_pid_file(const char *path, struct svm_err *err)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return svm_err_set(err, "--pid-file %s is too long", path);
	f = fopen(tmp, "we");
	if (f == NULL)
		return svm_err_errno(err, errno, "cannot create %s", tmp);
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return svm_err_errno(err, errno, "cannot write the pid file %s", path);
	}
	return 0;
}

static void become_ready(struct mux *m)
{
	struct svm_err err;

	if (make_listener(m->opts->listen_path, &m->listen_fd, &err) != 0 ||
	    (m->opts->pid_file != NULL && write_pid_file(m->opts->pid_file, &err) != 0)) {
		char line[sizeof(err.msg) + 16];

		mux_log("%s", err.msg);
		snprintf(m->stop_reason, sizeof(m->stop_reason), "%s", err.msg);
		m->stop = true;
		m->exit_code = MUX_EXIT_START;
		snprintf(line, sizeof(line), "error: %s\n", err.msg);
		signal_ready(m, line);
		return;
	}
	mux_log("listening on %s", m->opts->listen_path);
	signal_ready(m, "ready\n");
	mux_hostcall_start(m);
}

static void on_signal(struct mux *m)
{
	struct signalfd_siginfo info;

	if (read(m->signal_fd, &info, sizeof(info)) != (ssize_t)sizeof(info))
		return;
	if (info.ssi_signo == SIGUSR1) {
		mux_pause(m);
		return;
	}
	if (info.ssi_signo == SIGUSR2) {
		mux_resume(m);
		return;
	}
	if (info.ssi_signo == SIGTERM && (m->requeue_hold || m->channel == MUX_CHANNEL_DETACHED)) {
		/* The teardown, the guest saved or being saved: POWEROFF could
		 * not reach it, and the teardown ends it anyway. */
		mux_log("SIGTERM: the guest is detached: it is left to the job's teardown");
		snprintf(m->stop_reason, sizeof(m->stop_reason), "%s",
		         m->requeue_hold ? "the job is being requeued: its guest is saved for "
		                           "its next start"
		                         : "the job ended while its guest was detached for a save");
		m->stop = true;
		m->exit_code = MUX_EXIT_OK;
		return;
	}
	if (info.ssi_signo == SIGTERM && mux_requeue_holds(m))
		return;
	snprintf(m->stop_reason, sizeof(m->stop_reason), "the guest is powering off (signal %u)",
	         info.ssi_signo);
	mux_log("signal %u: powering the guest off", info.ssi_signo);
	if (m->agent_fd >= 0)
		mux_put_frame(&m->agent_out, SVM_PROTO_MSG_POWEROFF, 0, NULL, 0, NULL);
	m->stop = true;
	m->exit_code = MUX_EXIT_OK;
}

static void read_agent(struct mux *m)
{
	ssize_t n = read(m->agent_fd, read_buf, sizeof(read_buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		mux_agent_lost(m, "reading the channel: %s", strerror(errno));
	else if (n == 0)
		mux_agent_lost(m, "the guest closed the channel");
	else {
		m->agent_heard = mux_now();
		mux_agent_input(m, read_buf, (size_t)n);
	}
}

static void read_client(struct mux *m, struct mux_client *c)
{
	ssize_t n = read(c->fd, read_buf, sizeof(read_buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		mux_client_drop(m, c, n == 0 ? NULL : strerror(errno));
	else
		mux_client_input(m, c, read_buf, (size_t)n);
}

/* The agent is alive while anything comes from it: a guest whose vCPUs spin
 * in MPI (under TCG, or oversubscribed) answers a HEARTBEAT late behind its
 * other frames, and only silence past the timeout means it hangs. */
static double silent_since(const struct mux *m)
{
	return m->agent_heard > m->heartbeat_sent ? m->agent_heard : m->heartbeat_sent;
}

/* Waiting for the agent: a HEARTBEAT's answer, PAUSED or the READY after RESUME. */
static bool awaiting_agent(const struct mux *m)
{
	return m->heartbeat_sent > 0 || m->channel == MUX_CHANNEL_PAUSING ||
	       m->channel == MUX_CHANNEL_RESUMING;
}

static void heartbeat(struct mux *m, double now)
{
	if (awaiting_agent(m) && now - silent_since(m) >= m->opts->heartbeat_timeout) {
		mux_agent_lost(m, "no %s answer within %.1f s",
		               m->channel == MUX_CHANNEL_PAUSING    ? "PAUSE"
		               : m->channel == MUX_CHANNEL_RESUMING ? "RESUME"
		                                                    : "HEARTBEAT",
		               m->opts->heartbeat_timeout);
		return;
	}
	if (m->channel == MUX_CHANNEL_LIVE && m->heartbeat_sent == 0 && now >= m->heartbeat_due) {
		m->heartbeat_nonce++;
		mux_put_heartbeat(&m->agent_out, m->heartbeat_nonce);
		m->heartbeat_sent = now;
		m->heartbeat_due = now + m->opts->heartbeat_interval;
	}
}

static int poll_timeout_ms(const struct mux *m, double now)
{
	double next =
	        awaiting_agent(m) ? silent_since(m) + m->opts->heartbeat_timeout : m->heartbeat_due;

	if (m->channel == MUX_CHANNEL_DETACHED)
		next = m->agent_heard + MUX_DETACHED_MAX_S;
	if (!m->agent_ready)
		next = m->heartbeat_due; /* the ready deadline, set by mux_run */
	if (next <= now)
		return 0;
	return (int)((next - now) * 1000.0) + 1;
}

struct poll_set {
	struct pollfd *fds;
	struct mux_client **owners; /* NULL for the mux's own fds */
	size_t len, cap;
};

static int poll_add(struct poll_set *p, int fd, short events, struct mux_client *owner)
{
	if (p->len == p->cap) {
		size_t cap = p->cap > 0 ? p->cap * 2 : 64;
		struct pollfd *fds = realloc(p->fds, cap * sizeof(*fds));
		struct mux_client **owners;

		if (fds == NULL)
			return -1;
		p->fds = fds;
		owners = realloc(p->owners, cap * sizeof(*owners));
		if (owners == NULL)
			return -1;
		p->owners = owners;
		p->cap = cap;
	}
	p->fds[p->len] = (struct pollfd){.fd = fd, .events = events};
	p->owners[p->len++] = owner;
	return 0;
}

static int build_poll_set(struct mux *m, struct poll_set *p)
{
	bool live = m->channel == MUX_CHANNEL_LIVE;
	bool take_input = live && svm_byte_queue_len(&m->agent_out) < AGENT_QUEUE_HIGH;
	short agent_events = POLLIN;

	p->len = 0;
	if (svm_byte_queue_len(&m->agent_first) > 0 ||
	    (live && svm_byte_queue_len(&m->agent_out) > 0))
		agent_events |= POLLOUT;
	if (poll_add(p, m->signal_fd, POLLIN, NULL) != 0 ||
	    poll_add(p, m->agent_fd, agent_events, NULL) != 0)
		return -1;
	if (m->listen_fd >= 0 && poll_add(p, m->listen_fd, POLLIN, NULL) != 0)
		return -1;
	for (struct mux_client *c = m->clients; c != NULL; c = c->next) {
		short events = take_input ? POLLIN : 0;

		if (svm_byte_queue_len(&c->out) > 0)
			events |= POLLOUT;
		if (poll_add(p, c->fd, events, c) != 0)
			return -1;
	}
	return 0;
}

static void dispatch(struct mux *m, const struct poll_set *p)
{
	for (size_t i = 0; i < p->len && !m->stop; i++) {
		short ev = p->fds[i].revents;

		if (ev == 0)
			continue;
		if (p->owners[i] != NULL) {
			if (ev & (POLLIN | POLLHUP | POLLERR))
				read_client(m, p->owners[i]);
		} else if (p->fds[i].fd == m->signal_fd) {
			on_signal(m);
		} else if (p->fds[i].fd == m->agent_fd) {
			if (ev & (POLLIN | POLLHUP | POLLERR))
				read_agent(m);
		} else {
			mux_client_accept(m);
		}
	}
}

static void free_client(struct mux_client *c)
{
	close(c->fd);
	svm_byte_queue_free(&c->out);
	free(c->reader);
	free(c);
}

/* Writes what can go now; drops clients that are gone or over their bound. */
static void flush_all(struct mux *m)
{
	struct svm_err err;

	if (m->agent_fd >= 0 && mux_flush(m->agent_fd, &m->agent_first, &err) != 0)
		mux_agent_lost(m, "%s", err.msg);
	/* The sessions' frames wait while the channel is paused or detached. */
	if (m->agent_fd >= 0 && m->channel == MUX_CHANNEL_LIVE &&
	    svm_byte_queue_len(&m->agent_first) == 0 &&
	    mux_flush(m->agent_fd, &m->agent_out, &err) != 0)
		mux_agent_lost(m, "%s", err.msg);
	for (struct mux_client **link = &m->clients; *link != NULL;) {
		struct mux_client *c = *link;

		if (!c->gone && mux_flush(c->fd, &c->out, &err) != 0)
			mux_client_drop(m, c, err.msg);
		if (!c->gone && svm_byte_queue_len(&c->out) > mux_client_queue_limit(c))
			mux_client_drop(m, c, "stopped reading beyond its windows");
		if (c->gone) {
			*link = c->next;
			free_client(c);
		} else {
			link = &c->next;
		}
	}
}

/* Every client learns why its sessions end, then gets a bounded time to read it. */
static void fail_every_session(struct mux *m)
{
	/* A task whose guest died may be restarted from a checkpoint (exec's
	 * requeue.c): it must tell that from a session that merely failed. */
	uint32_t code =
	        m->exit_code == MUX_EXIT_GUEST_LOST ? SVM_PROTO_E_GUEST_LOST : SVM_PROTO_E_RESOURCE;

	for (size_t i = m->nsessions; i-- > 0;) {
		struct mux_session *s = m->sessions[i];

		if (s->client != NULL && !s->close_to_client) {
			mux_put_error(&s->client->out, s->client_id, code, "%s", m->stop_reason);
			mux_put_close(&s->client->out, s->client_id);
		}
		free(s);
	}
	m->nsessions = 0;
}

static bool queues_empty(const struct mux *m)
{
	if (m->agent_fd >= 0 &&
	    (svm_byte_queue_len(&m->agent_first) > 0 ||
	     (m->channel == MUX_CHANNEL_LIVE && svm_byte_queue_len(&m->agent_out) > 0)))
		return false;
	for (const struct mux_client *c = m->clients; c != NULL; c = c->next)
		if (svm_byte_queue_len(&c->out) > 0)
			return false;
	return true;
}

static void drain(struct mux *m)
{
	double deadline = mux_now() + DRAIN_SECONDS;
	struct poll_set p = {0};

	fail_every_session(m);
	if (m->exit_code == MUX_EXIT_GUEST_LOST && m->agent_fd >= 0) {
		close(m->agent_fd); /* nothing more can reach a lost agent */
		m->agent_fd = -1;
	}
	while (!queues_empty(m) && mux_now() < deadline) {
		p.len = 0;
		if (m->agent_fd >= 0)
			poll_add(&p, m->agent_fd, POLLOUT, NULL);
		for (struct mux_client *c = m->clients; c != NULL; c = c->next)
			poll_add(&p, c->fd, POLLOUT, c);
		if (poll(p.fds, p.len, 100) < 0 && errno != EINTR)
			break;
		flush_all(m);
	}
	free(p.fds);
	free(p.owners);
}

static void cleanup(struct mux *m)
{
	mux_hostcall_stop(m);
	mux_pause_cleanup(m);
	while (m->clients != NULL) {
		struct mux_client *c = m->clients;

		m->clients = c->next;
		free_client(c);
	}
	if (m->listen_fd >= 0) {
		unlink(m->opts->listen_path);
		close(m->listen_fd);
	}
	if (m->opts->pid_file != NULL && m->agent_ready)
		unlink(m->opts->pid_file);
	if (m->agent_fd >= 0)
		close(m->agent_fd);
	free(m->sessions);
	svm_byte_queue_free(&m->agent_first);
	svm_byte_queue_free(&m->agent_out);
}

static void run_loop(struct mux *m)
{
	struct poll_set p = {0};
	double ready_deadline = mux_now() + m->opts->ready_timeout;

	m->heartbeat_due = ready_deadline;
	while (!m->stop) {
		double now = mux_now();

		if (!m->agent_ready && now >= ready_deadline)
			mux_agent_lost(m, "the guest agent did not send READY within %.0f s",
			               m->opts->ready_timeout);
		else if (m->channel == MUX_CHANNEL_DETACHED &&
		         now - m->agent_heard >= MUX_DETACHED_MAX_S)
			mux_resume(m); /* whoever paused us is gone */
		else if (m->agent_ready && m->channel != MUX_CHANNEL_DETACHED)
			heartbeat(m, now);
		if (m->stop || build_poll_set(m, &p) != 0)
			break;
		if (poll(p.fds, p.len, poll_timeout_ms(m, now)) < 0 && errno != EINTR) {
			mux_agent_lost(m, "poll: %s", strerror(errno));
			break;
		}
		bool was_ready = m->agent_ready;

		dispatch(m, &p);
		if (!was_ready && m->agent_ready && !m->stop) {
			become_ready(m);
			m->heartbeat_due = mux_now() + m->opts->heartbeat_interval;
		}
		flush_all(m);
	}
	free(p.fds);
	free(p.owners);
}

int mux_run(struct mux *m)
{
	struct svm_err err;
	char line[sizeof(m->stop_reason) + 16];

	if (mux_agent_connect(m, &err) != 0) {
		snprintf(m->stop_reason, sizeof(m->stop_reason), "%s", err.msg);
		m->exit_code = MUX_EXIT_START;
	} else {
		run_loop(m);
	}
	if (!m->agent_ready) {
		char console[256];

		m->exit_code = MUX_EXIT_START;
		if (mux_console_reason(m->opts->console_path, console, sizeof(console)))
			snprintf(m->stop_reason + strlen(m->stop_reason),
			         sizeof(m->stop_reason) - strlen(m->stop_reason),
			         "; the guest's console says: %s", console);
		mux_log("not ready: %s", m->stop_reason);
		snprintf(line, sizeof(line), "error: %s\n", m->stop_reason);
		signal_ready(m, line);
	}
	drain(m);
	cleanup(m);
	mux_log("exiting (%d): %s", m->exit_code, m->stop_reason);
	return m->exit_code;
}
