/* A stand-in for spank-vm-agent, for testing the host side without a guest:
 * it listens on a unix socket as QEMU's channel does, speaks the agent side
 * of doc/protocol.md, and runs each EXEC on this host with fork/exec.
 *
 *   fake_agent --listen PATH [--no-ready] [--no-heartbeat] [--ready-file PATH]
 *
 * --no-ready: HELLO but never READY (a guest that does not come up).
 * --no-heartbeat: HEARTBEATs go unanswered (a guest too busy to answer them
 *   in time: only its other frames show that it lives).
 * --ready-file: created once listening, so tests wait on a file, not a sleep.
 * --oom-on-sigkill: speaks up to version 3 and says of every program killed
 *   by SIGKILL that the out-of-memory killer ended it. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spank_vm/byte_queue.h"
#include "spank_vm/proto.h"

#define MAX_SESSIONS 512
#define CHUNK        65535

struct session {
	uint32_t id;
	pid_t pid; /* 0 once reaped */
	int status;
	int in_fd;     /* stdin pipe, -1 when closed or absent */
	int out_fd[4]; /* stdout 1, stderr 2, extra 3 (socket), -1 when at EOF */
	int extra_fd;  /* the extra socket: written to (stream 3 from the host) */
	bool extra_in_eof;
	struct svm_byte_queue to_prog[4]; /* host bytes for stdin 0 and extra 3 */
	struct svm_proto_recv_window recv[4];
	struct svm_proto_send_credit credit[4];
	bool eof_sent[4];
	bool host_eof[4];
	bool exit_sent, close_sent, close_received;
};

static struct session *sessions[MAX_SESSIONS];
static int conn = -1;
static struct svm_byte_queue out;
static struct svm_proto_reader reader;
static struct svm_proto_exec exec_req;
static uint32_t last_id;
static bool no_ready;
static bool no_heartbeat;
static bool oom_on_sigkill;
static uint8_t buf[256 * 1024];

static void die(const char *what)
{
	fprintf(stderr, "fake_agent: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void commit_or_die(struct svm_proto_buf *b, int rc, struct svm_err *err)
{
	if (rc != 0) {
		fprintf(stderr, "fake_agent: encode: %s\n", err->msg);
		exit(1);
	}
	svm_byte_queue_commit(&out, b);
}

static struct svm_proto_buf reserve(size_t room)
{
	struct svm_proto_buf b;
	struct svm_err err;

	if (svm_byte_queue_reserve(&out, room, &b, &err) != 0) {
		fprintf(stderr, "fake_agent: %s\n", err.msg);
		exit(1);
	}
	return b;
}

static void send_error(uint32_t id, uint32_t code, const char *text)
{
	struct svm_proto_buf b = reserve(2048);
	struct svm_err err;

	commit_or_die(&b, svm_proto_encode_error(&b, id, code, text, strlen(text), &err), &err);
}

static void send_close(uint32_t id)
{
	struct svm_proto_buf b = reserve(64);
	struct svm_err err;

	commit_or_die(&b, svm_proto_encode_close(&b, id, &err), &err);
}

static void send_ready(void)
{
	struct svm_proto_buf b = reserve(512);
	struct svm_err err;
	struct utsname u;
	struct svm_proto_ready r;

	uname(&u);
	r.boot_id.data = (const uint8_t *)"00000000-fake-agent-boot-id";
	r.boot_id.len = strlen((const char *)r.boot_id.data);
	r.kernel_release.data = (const uint8_t *)u.release;
	r.kernel_release.len = strlen(u.release);
	r.vcpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	r.memory_kib = 1024 * 1024;
	commit_or_die(&b, svm_proto_encode_ready(&b, &r, &err), &err);
}

static struct session *find(uint32_t id)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i] != NULL && sessions[i]->id == id)
			return sessions[i];
	return NULL;
}

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The child: the protocol's order of operations, then execvp in ENV's PATH. */
static void child(int in_r, int out_w, int err_w, int extra, int report)
{
	static char *argv[SVM_PROTO_MAX_ARGS + 1], *envp[SVM_PROTO_MAX_ENV + 1];
	static gid_t groups[SVM_PROTO_MAX_GROUPS];
	static char cwd[SVM_PROTO_MAX_CWD + 1];
	extern char **environ;
	int e;

	sigset_t none;

	/* A program starts with default signal dispositions and nothing blocked,
	 * whatever the agent itself inherited (a test shell ignores SIGINT). */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setsid();
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		goto fail;
	if (extra >= 0 && dup2(extra, (int)exec_req.extra_fd) < 0)
		goto fail;
	for (size_t i = 0; i < exec_req.argc; i++)
		argv[i] = strndup((const char *)exec_req.argv[i].data, exec_req.argv[i].len);
	for (size_t i = 0; i < exec_req.envc; i++)
		envp[i] = strndup((const char *)exec_req.env[i].data, exec_req.env[i].len);
	for (size_t i = 0; i < exec_req.ngroups; i++)
		groups[i] = exec_req.groups[i];
	memcpy(cwd, exec_req.cwd.data, exec_req.cwd.len);
	if (getuid() == 0 && (setgroups(exec_req.ngroups, groups) != 0 ||
	                      setgid(exec_req.gid) != 0 || setuid(exec_req.uid) != 0))
		goto fail;
	umask((mode_t)exec_req.umask);
	if (chdir(cwd) != 0)
		goto fail;
	environ = envp;
	execvp(argv[0], argv);
fail:
	e = errno;
	if (write(report, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static void start_session(uint32_t id)
{
	int in[2] = {-1, -1}, o[2], e[2], x[2] = {-1, -1}, rep[2], err_no = 0;
	bool has_in = exec_req.flags & SVM_PROTO_EXEC_HAS_STDIN;
	bool has_x = exec_req.flags & SVM_PROTO_EXEC_HAS_EXTRA;
	struct session *s = calloc(1, sizeof(*s));
	int slot = 0;

	while (slot < MAX_SESSIONS && sessions[slot] != NULL)
		slot++;
	if (s == NULL || slot == MAX_SESSIONS) {
		send_error(id, SVM_PROTO_E_RESOURCE, "too many sessions");
		send_close(id);
		free(s);
		return;
	}
	if ((has_in ? pipe2(in, O_CLOEXEC)
	            : ((in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)) ||
	    pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC) || pipe2(rep, O_CLOEXEC) ||
	    (has_x && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x)))
		die("pipes");
	s->id = id;
	s->pid = fork();
	if (s->pid < 0)
		die("fork");
	if (s->pid == 0)
		child(in[0], o[1], e[1], x[1], rep[1]);
	close(in[0]);
	close(o[1]);
	close(e[1]);
	close(rep[1]);
	if (has_x)
		close(x[1]);
	if (read(rep[0], &err_no, sizeof(err_no)) == (ssize_t)sizeof(err_no)) {
		char text[256];

		snprintf(text, sizeof(text), "cannot run %.*s: %s", (int)exec_req.argv[0].len,
		         (const char *)exec_req.argv[0].data, strerror(err_no));
		send_error(id, SVM_PROTO_E_EXEC_FAILED, text);
		send_close(id);
		waitpid(s->pid, NULL, 0);
		close(rep[0]);
		close(o[0]);
		close(e[0]);
		if (has_in)
			close(in[1]);
		if (has_x)
			close(x[0]);
		free(s);
		return;
	}
	close(rep[0]);
	s->in_fd = has_in ? in[1] : -1;
	s->out_fd[0] = -1;
	s->out_fd[1] = o[0];
	s->out_fd[2] = e[0];
	s->out_fd[3] = has_x ? x[0] : -1;
	s->extra_fd = has_x ? x[0] : -1;
	s->eof_sent[0] = true;
	s->eof_sent[3] = !has_x;
	for (int i = 0; i < 4; i++) {
		svm_byte_queue_init(&s->to_prog[i]);
		svm_proto_recv_window_init(&s->recv[i]);
		svm_proto_send_credit_init(&s->credit[i]);
		if (s->out_fd[i] >= 0)
			nonblock(s->out_fd[i]);
	}
	if (s->in_fd >= 0)
		nonblock(s->in_fd);
	sessions[slot] = s;
	{
		struct svm_proto_buf b = reserve(64);
		struct svm_err err;

		commit_or_die(&b, svm_proto_encode_started(&b, id, (uint32_t)s->pid, &err), &err);
	}
}

static void free_session(struct session *s)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i] == s)
			sessions[i] = NULL;
	if (s->in_fd >= 0)
		close(s->in_fd);
	for (int i = 1; i < 4; i++)
		if (s->out_fd[i] >= 0)
			close(s->out_fd[i]);
	if (s->extra_fd >= 0 && s->extra_fd != s->out_fd[3])
		close(s->extra_fd);
	for (int i = 0; i < 4; i++)
		svm_byte_queue_free(&s->to_prog[i]);
	free(s);
}

static void maybe_finish(struct session *s)
{
	struct svm_proto_exit st = {0};
	struct svm_err err;

	if (!s->exit_sent && s->pid == 0 && s->eof_sent[1] && s->eof_sent[2] && s->eof_sent[3] &&
	    !s->close_sent) {
		if (WIFSIGNALED(s->status)) {
			st.kind = SVM_PROTO_KILLED;
			st.signo = (uint8_t)WTERMSIG(s->status);
			st.core_dumped = WCOREDUMP(s->status);
			st.out_of_memory = oom_on_sigkill && st.signo == SIGKILL;
		} else {
			st.kind = SVM_PROTO_EXITED;
			st.code = (uint8_t)WEXITSTATUS(s->status);
		}
		struct svm_proto_buf b = reserve(64);

		commit_or_die(&b, svm_proto_encode_exit(&b, s->id, &st, &err), &err);
		s->exit_sent = true;
		send_close(s->id);
		s->close_sent = true;
	}
	if (s->close_sent && s->close_received)
		free_session(s);
}

static void host_close(struct session *s)
{
	s->close_received = true;
	if (!s->close_sent) {
		if (s->pid > 0)
			kill(-s->pid, SIGKILL);
		send_close(s->id);
		s->close_sent = true;
	}
	if (s->pid == 0)
		maybe_finish(s);
}

static void host_stream(struct session *s, const struct svm_proto_frame *f)
{
	struct svm_proto_data d;
	struct svm_proto_window w;
	struct svm_err err;

	if (f->type == SVM_PROTO_MSG_WINDOW) {
		if (svm_proto_decode_window(f, &w, &err) == 0)
			svm_proto_send_credit_grant(&s->credit[w.stream], w.increment, &err);
		return;
	}
	if (f->type == SVM_PROTO_MSG_EOF) {
		if (svm_proto_decode_eof(f, &d.stream, &err) == 0)
			s->host_eof[d.stream] = true;
		return;
	}
	if (svm_proto_decode_data(f, &d, &err) != 0 ||
	    svm_proto_recv_window_receive(&s->recv[d.stream], d.bytes.len, &err) != 0) {
		send_error(s->id, SVM_PROTO_E_FLOW, err.msg);
		return;
	}
	svm_byte_queue_append(&s->to_prog[d.stream], d.bytes.data, d.bytes.len, &err);
}

static void on_frame(const struct svm_proto_frame *f)
{
	struct svm_err err;
	struct session *s;
	uint32_t signo;
	uint64_t nonce;

	switch (f->type) {
	case SVM_PROTO_MSG_HELLO:
		if (!no_ready)
			send_ready();
		return;
	case SVM_PROTO_MSG_HEARTBEAT:
		if (!no_heartbeat && svm_proto_decode_heartbeat(f, &nonce, &err) == 0) {
			struct svm_proto_buf b = reserve(64);

			commit_or_die(&b, svm_proto_encode_heartbeat(&b, nonce, &err), &err);
		}
		return;
	case SVM_PROTO_MSG_POWEROFF:
		for (int i = 0; i < MAX_SESSIONS; i++)
			if (sessions[i] != NULL && sessions[i]->pid > 0)
				kill(-sessions[i]->pid, SIGKILL);
		exit(0);
	case SVM_PROTO_MSG_EXEC:
		if (f->session <= last_id || svm_proto_decode_exec(f, &exec_req, &err) != 0) {
			fprintf(stderr, "fake_agent: bad EXEC %u\n", f->session);
			exit(3);
		}
		last_id = f->session;
		start_session(f->session);
		return;
	default:
		break;
	}
	s = find(f->session);
	if (s == NULL || s->close_received)
		return;
	if (f->type == SVM_PROTO_MSG_CLOSE)
		host_close(s);
	else if (f->type == SVM_PROTO_MSG_SIGNAL && svm_proto_decode_signal(f, &signo, &err) == 0)
		kill(-s->pid, (int)signo);
	else if (f->type != SVM_PROTO_MSG_ERROR && !s->close_sent)
		host_stream(s, f);
}

static void read_conn(void)
{
	struct svm_proto_frame f;
	struct svm_err err;
	ssize_t n = read(conn, buf, sizeof(buf));
	size_t len, used;
	const uint8_t *p = buf;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0)
		exit(0); /* the host went away: a real agent would wait for the next one */
	len = (size_t)n;
	while (len > 0) {
		int rc = svm_proto_reader_next(&reader, p, len, &used, &f, &err);

		p += used;
		len -= used;
		if (rc < 0) {
			fprintf(stderr, "fake_agent: %s\n", err.msg);
			exit(2);
		}
		if (rc == 1)
			on_frame(&f);
	}
}

static void pump_output(struct session *s, int stream)
{
	size_t want = svm_proto_send_credit_sendable(&s->credit[stream], CHUNK);
	struct svm_err err;
	ssize_t n;

	if (want == 0)
		return;
	n = read(s->out_fd[stream], buf, want);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		struct svm_proto_buf b = reserve(64);

		commit_or_die(&b, svm_proto_encode_eof(&b, s->id, (uint8_t)stream, &err), &err);
		s->eof_sent[stream] = true;
		if (stream != 3)
			close(s->out_fd[stream]);
		else
			shutdown(s->extra_fd, SHUT_RD);
		s->out_fd[stream] = -1;
		maybe_finish(s);
		return;
	}
	struct svm_proto_buf b = reserve(SVM_PROTO_HEADER_SIZE + 1 + (size_t)n);

	commit_or_die(&b, svm_proto_encode_data(&b, s->id, (uint8_t)stream, buf, (size_t)n, &err),
	              &err);
	svm_proto_send_credit_spend(&s->credit[stream], (size_t)n, &err);
}

static void pump_input(struct session *s, int stream)
{
	int fd = stream == 0 ? s->in_fd : s->extra_fd;
	size_t len;
	const uint8_t *front = svm_byte_queue_front(&s->to_prog[stream], &len);
	struct svm_proto_window w = {(uint8_t)stream, 0};
	struct svm_err err;
	ssize_t n;

	if (front == NULL || fd < 0)
		return;
	n = send(fd, front, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && errno == ENOTSOCK)
		n = write(fd, front, len);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n < 0)
		n = (ssize_t)len; /* the program closed its input: drop */
	svm_byte_queue_consume(&s->to_prog[stream], (size_t)n);
	svm_proto_recv_window_consume(&s->recv[stream], (size_t)n, &w.increment, &err);
	if (w.increment > 0 && !s->close_sent) {
		struct svm_proto_buf b = reserve(64);

		commit_or_die(&b, svm_proto_encode_window(&b, s->id, &w, &err), &err);
	}
}

static void input_eofs(struct session *s)
{
	if (s->host_eof[0] && s->in_fd >= 0 && svm_byte_queue_len(&s->to_prog[0]) == 0) {
		close(s->in_fd);
		s->in_fd = -1;
	}
	if (s->host_eof[3] && !s->extra_in_eof && s->extra_fd >= 0 &&
	    svm_byte_queue_len(&s->to_prog[3]) == 0) {
		shutdown(s->extra_fd, SHUT_WR);
		s->extra_in_eof = true;
	}
}

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < MAX_SESSIONS; i++)
			if (sessions[i] != NULL && sessions[i]->pid == pid) {
				sessions[i]->pid = 0;
				sessions[i]->status = status;
				maybe_finish(sessions[i]);
				break;
			}
}

static int listen_on(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1) != 0)
		die("listen");
	return fd;
}

/* One poll entry per fd that can make progress; session i's fds map back by tag. */
static void loop(int sfd)
{
	static struct pollfd p[4 + MAX_SESSIONS * 5];
	static int tag[4 + MAX_SESSIONS * 5];
	int n;

	for (;;) {
		size_t len;
		const uint8_t *front;

		while ((front = svm_byte_queue_front(&out, &len)) != NULL) {
			ssize_t w = send(conn, front, len, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w < 0 && errno == EAGAIN)
				break;
			if (w < 0)
				exit(0);
			svm_byte_queue_consume(&out, (size_t)w);
		}
		n = 0;
		p[n] = (struct pollfd){
		        conn, (short)(POLLIN | (svm_byte_queue_len(&out) ? POLLOUT : 0)), 0};
		tag[n++] = -1;
		p[n] = (struct pollfd){sfd, POLLIN, 0};
		tag[n++] = -2;
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = sessions[i];

			if (s == NULL)
				continue;
			input_eofs(s);
			for (int st = 1; st < 4; st++)
				if (s->out_fd[st] >= 0 && s->credit[st].bytes > 0 &&
				    !s->close_sent) {
					p[n] = (struct pollfd){s->out_fd[st], POLLIN, 0};
					tag[n++] = i * 8 + st;
				}
			if (s->in_fd >= 0 && svm_byte_queue_len(&s->to_prog[0]) > 0) {
				p[n] = (struct pollfd){s->in_fd, POLLOUT, 0};
				tag[n++] = i * 8 + 4;
			}
			if (s->extra_fd >= 0 && svm_byte_queue_len(&s->to_prog[3]) > 0) {
				p[n] = (struct pollfd){s->extra_fd, POLLOUT, 0};
				tag[n++] = i * 8 + 7;
			}
		}
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < n; i++) {
			if (p[i].revents == 0)
				continue;
			if (tag[i] == -1) {
				read_conn();
			} else if (tag[i] == -2) {
				struct signalfd_siginfo si;

				while (read(sfd, &si, sizeof(si)) > 0)
					;
				reap();
			} else if (sessions[tag[i] / 8] != NULL) {
				struct session *s = sessions[tag[i] / 8];
				int st = tag[i] % 8;

				if (st < 4 && s->out_fd[st] >= 0)
					pump_output(s, st);
				else if (st == 4)
					pump_input(s, 0);
				else if (st == 7)
					pump_input(s, 3);
			}
		}
		reap();
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL, *ready_file = NULL;
	struct svm_proto_hello hello = {1, 1};
	sigset_t set;
	int lfd, sfd;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc)
			ready_file = argv[++i];
		else if (strcmp(argv[i], "--no-ready") == 0)
			no_ready = true;
		else if (strcmp(argv[i], "--no-heartbeat") == 0)
			no_heartbeat = true;
		else if (strcmp(argv[i], "--oom-on-sigkill") == 0) {
			oom_on_sigkill = true;
			hello.max_version = SVM_PROTO_VERSION_OOM;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "usage: fake_agent --listen PATH [--no-ready] [--no-heartbeat] "
		                "[--ready-file PATH]\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	lfd = listen_on(path);
	if (ready_file != NULL)
		close(open(ready_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		die("accept");
	nonblock(conn);
	svm_byte_queue_init(&out);
	svm_proto_reader_init(&reader, SVM_PROTO_HOST);
	{
		struct svm_proto_buf b = reserve(64);
		struct svm_err err;

		commit_or_die(&b, svm_proto_encode_hello(&b, &hello, &err), &err);
	}
	loop(sfd);
	return 0;
}
