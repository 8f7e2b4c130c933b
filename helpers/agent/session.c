/* Sessions: one program each, with its streams.
 *
 * Every descriptor is non-blocking and polled by the one loop of channel.c, so
 * a program that does not read its stdin, or a host that does not return
 * WINDOW for one session's stdout, stalls that stream only. Memory per
 * session is bounded by the windows: stdin (and the extra stream's inbound
 * direction) buffers at most what the host may send unacknowledged, and
 * output is only read from a pipe when credit and room on the channel allow.
 *
 * Signals go to the program's process group (the program is a session and
 * group leader), as Slurm signals every process of a task. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "spank_vm/values.h"

enum session_state {
	SESSION_STARTING, /* forked, execve not confirmed yet */
	SESSION_RUNNING,
	SESSION_CLOSING, /* our CLOSE is sent; waiting for the host's */
};

/* A direction the agent writes to the host (stdout, stderr, extra out). */
struct out_stream {
	bool open;
	int fd; /* read end; -1 once its end-of-file was sent */
	struct svm_proto_send_credit credit;
	int slot; /* index in the poll array, -1 when not polled */
};

/* A direction the host writes to the program (stdin, extra in). */
struct in_stream {
	bool open;
	bool eof; /* the host sent EOF */
	int fd;   /* write end; -1 once closed */
	struct svm_proto_recv_window window;
	uint8_t *buf; /* at most one window of bytes not yet written */
	size_t head, len;
	int slot;
};

struct agent_session {
	struct agent_session *next;
	uint32_t id;
	enum session_state state;
	pid_t pid;
	int status_fd; /* close-on-exec pipe: EOF once execve succeeded */
	int status_slot;
	bool exited;
	int wait_status;
	uint64_t pending_signals; /* arrived before STARTED */
	bool on_host;             /* served by spank-vm-hostcall */
	bool batch;               /* EXEC role BATCH: the job's batch script */
	bool orphan;              /* a restored guest's batch script, awaiting its new host */
	uint32_t uid, gid;        /* who it runs as: only that identity adopts it */
	char program[96];         /* argv[0] and the cwd, printable and bounded: */
	char cwd[96];             /* what a failure to start names */
	char memcg[AGENT_MEMCG_DIR_CAP]; /* its memory cgroup in the guest, or "" */
	struct out_stream out[SVM_PROTO_STREAMS];
	struct in_stream in[SVM_PROTO_STREAMS];
};

/* One EXEC decoded at a time; far too large for a stack. */
static struct svm_proto_exec exec_request;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static struct agent_session *find(struct agent_sessions *all, uint32_t id)
{
	for (struct agent_session *s = all->head; s != NULL; s = s->next)
		if (s->id == id && !s->orphan)
			return s;
	return NULL;
}

static void release_streams(struct agent_session *s)
{
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		close_fd(&s->out[i].fd);
		close_fd(&s->in[i].fd);
		free(s->in[i].buf);
		s->in[i].buf = NULL;
		s->in[i].len = s->in[i].head = 0;
	}
	close_fd(&s->status_fd);
}

static void kill_program(struct agent_session *s)
{
	/* The group outlives its leader while members remain. */
	if (s->pid > 0 && kill(-s->pid, SIGKILL) != 0 && errno != ESRCH)
		agent_log("session %u: kill: %s", s->id, strerror(errno));
}

static void unlink_session(struct agent_sessions *all, struct agent_session *s)
{
	for (struct agent_session **p = &all->head; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			all->count--;
			break;
		}
	}
	release_streams(s);
	agent_memcg_remove(s->memcg);
	free(s);
}

/* A session error: ERROR, the program killed, CLOSE; the host's CLOSE ends it. */
static void session_fail(struct agent_channel *ch, struct agent_session *s, uint32_t code,
                         const char *what)
{
	agent_send_error(ch, s->id, code, "%s", what);
	kill_program(s);
	release_streams(s);
	agent_send_close(ch, s->id);
	s->state = SESSION_CLOSING;
}

/* ---- EXEC ---- */

static bool identity_allowed(const struct svm_proto_exec *e, bool allow_root)
{
	if (allow_root)
		return true;
	if (e->uid == 0 || e->gid == 0)
		return false;
	for (size_t i = 0; i < e->ngroups; i++)
		if (e->groups[i] == 0)
			return false;
	return true;
}

/* NUL-terminated copies of the request's strings, in one block. */
static char **string_vector(const struct svm_proto_bytes *items, size_t count)
{
	size_t bytes = (count + 1) * sizeof(char *);
	char **vec, *p;

	for (size_t i = 0; i < count; i++)
		bytes += items[i].len + 1;
	vec = malloc(bytes);
	if (vec == NULL)
		return NULL;
	p = (char *)(vec + count + 1);
	for (size_t i = 0; i < count; i++) {
		vec[i] = p;
		memcpy(p, items[i].data, items[i].len);
		p[items[i].len] = '\0';
		p += items[i].len + 1;
	}
	vec[count] = NULL;
	return vec;
}

struct child_fds {
	int parent[SVM_PROTO_STREAMS]; /* the agent's ends */
	int extra_out;                 /* a second descriptor of parent[3] */
	int child[SVM_PROTO_STREAMS];  /* the program's ends */
	int status[2];
};

static void close_child_fds(struct child_fds *f)
{
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		close_fd(&f->child[i]);
		close_fd(&f->parent[i]);
	}
	close_fd(&f->extra_out);
	close_fd(&f->status[0]);
	close_fd(&f->status[1]);
}

static int make_pipe(int *parent, int *child, bool parent_writes)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	*parent = parent_writes ? p[1] : p[0];
	*child = parent_writes ? p[0] : p[1];
	return fcntl(*parent, F_SETFL, O_NONBLOCK);
}

static int make_extra(struct child_fds *f)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	f->parent[3] = sv[0];
	f->child[3] = sv[1];
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
		return -1;
	/* Two descriptors for one socket: each direction closes its own. */
	f->extra_out = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
	return f->extra_out < 0 ? -1 : 0;
}

static void child_fds_init(struct child_fds *f)
{
	for (int i = 0; i < SVM_PROTO_STREAMS; i++)
		f->parent[i] = f->child[i] = -1;
	f->extra_out = f->status[0] = f->status[1] = -1;
}

static int make_child_fds(const struct svm_proto_exec *e, struct child_fds *f)
{
	if (pipe2(f->status, O_CLOEXEC) != 0)
		return -1;
	if ((e->flags & SVM_PROTO_EXEC_HAS_STDIN) != 0 &&
	    make_pipe(&f->parent[0], &f->child[0], true) != 0)
		return -1;
	if (make_pipe(&f->parent[1], &f->child[1], false) != 0 ||
	    make_pipe(&f->parent[2], &f->child[2], false) != 0)
		return -1;
	return (e->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0 ? make_extra(f) : 0;
}

static pid_t fork_program(const struct svm_proto_exec *e, const struct child_fds *f,
                          const char *program, const char *memcg)
{
	char cwd[SVM_PROTO_MAX_CWD + 1]; /* checked NUL-free and short by the codec */
	char procs[AGENT_MEMCG_DIR_CAP + 16];
	struct agent_spawn sp = {0};
	bool joined;
	pid_t pid = -1;

	sp.argv = string_vector(e->argv, e->argc);
	sp.envp = string_vector(e->env, e->envc);
	sp.groups = malloc((e->ngroups + 1) * sizeof(*sp.groups));
	if (sp.argv == NULL || sp.envp == NULL || sp.groups == NULL)
		goto out;
	for (size_t i = 0; i < e->ngroups; i++)
		sp.groups[i] = e->groups[i];
	memcpy(cwd, e->cwd.data, e->cwd.len);
	cwd[e->cwd.len] = '\0';
	sp.cwd = cwd;
	sp.uid = e->uid;
	sp.gid = e->gid;
	sp.ngroups = e->ngroups;
	sp.umask = (mode_t)e->umask;
	sp.stdin_fd = f->child[0];
	sp.stdout_fd = f->child[1];
	sp.stderr_fd = f->child[2];
	sp.extra_fd = f->child[3];
	sp.extra_target = (int)e->extra_fd;
	sp.status_fd = f->status[1];
	sp.program = program;
	sp.keep_identity = program != NULL;
	pid = agent_memcg_fork(memcg, &joined);
	if (pid == 0) {
		if (!joined && memcg[0] != '\0') {
			snprintf(procs, sizeof(procs), "%s/cgroup.procs", memcg);
			sp.memcg_procs = procs;
		}
		agent_spawn_child(&sp);
	}
out:
	free(sp.argv);
	free(sp.envp);
	free(sp.groups);
	return pid;
}

/* Bytes from the host, made safe to quote in an error text: printable
 * ASCII kept, anything else '?', cut with "..." when too long. */
static void printable_copy(char *out, size_t cap, const uint8_t *data, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '?';
	out[n] = '\0';
	if (len > n && cap > 4)
		memcpy(out + cap - 4, "...", 4);
}

/* Takes the agent's ends of f. */
static struct agent_session *new_session(uint32_t id, const struct svm_proto_exec *e,
                                         struct child_fds *f)
{
	struct agent_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->id = id;
	s->state = SESSION_STARTING;
	s->batch = e->role == SVM_PROTO_ROLE_BATCH;
	s->uid = e->uid;
	s->gid = e->gid;
	printable_copy(s->program, sizeof(s->program), e->argv[0].data, e->argv[0].len);
	printable_copy(s->cwd, sizeof(s->cwd), e->cwd.data, e->cwd.len);
	s->status_slot = -1;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		s->out[i].fd = s->in[i].fd = -1;
		s->out[i].slot = s->in[i].slot = -1;
		svm_proto_send_credit_init(&s->out[i].credit);
		svm_proto_recv_window_init(&s->in[i].window);
	}
	s->out[1].open = s->out[2].open = true;
	s->in[0].open = (e->flags & SVM_PROTO_EXEC_HAS_STDIN) != 0;
	s->in[3].open = s->out[3].open = (e->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;
	s->status_fd = f->status[0];
	s->in[0].fd = f->parent[0];
	s->out[1].fd = f->parent[1];
	s->out[2].fd = f->parent[2];
	s->in[3].fd = f->parent[3];
	s->out[3].fd = f->extra_out;
	f->status[0] = f->extra_out = -1;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++)
		f->parent[i] = -1;
	return s;
}

/* Sets err's text and returns code: for the if-chain of agent_session_exec. */
static uint32_t refusal(struct svm_err *err, uint32_t code, int error, const char *what)
{
	if (error != 0)
		svm_err_errno(err, error, "%s", what);
	else
		svm_err_set(err, "%s", what);
	return code;
}

/* Descriptors, the session, fork: *out is the new session, or NULL with the
 * error code returned. */
static uint32_t start_program(uint32_t id, const struct svm_proto_exec *e, const char *program,
                              struct agent_session **out, struct svm_err *err)
{
	struct agent_session *s = NULL;
	struct child_fds f;
	uint32_t code = 0;

	child_fds_init(&f);
	if (make_child_fds(e, &f) != 0)
		code = refusal(err, SVM_PROTO_E_RESOURCE, errno, "pipes for the program");
	else if ((s = new_session(id, e, &f)) == NULL)
		code = refusal(err, SVM_PROTO_E_RESOURCE, ENOMEM, "session");
	if (s != NULL) {
		s->on_host = program != NULL;
		agent_memcg_create(s->memcg, sizeof(s->memcg));
		s->pid = fork_program(e, &f, program, s->memcg);
		agent_memcg_prepare();
		if (s->pid < 0) {
			code = refusal(err, SVM_PROTO_E_RESOURCE, errno, "fork");
			agent_memcg_remove(s->memcg);
			release_streams(s);
			free(s);
			s = NULL;
		}
	}
	/* The program's ends (it has its own copies now), or everything on failure. */
	close_child_fds(&f);
	*out = s;
	return code;
}

/* SVM_HOSTCALL_CONNECT PORT: spank-vm-hostcall itself relays it (its
 * argv[0] says so), to 127.0.0.1 only. */
static uint32_t connect_refusal(const struct svm_proto_exec *e, char *program, size_t cap,
                                struct svm_err *err)
{
	char port[8];
	uint64_t v;
	ssize_t n;

	if (e->argc != 2 || e->argv[1].len == 0 || e->argv[1].len >= sizeof(port))
		return refusal(err, SVM_PROTO_E_EXEC_FAILED, 0,
		               SVM_HOSTCALL_CONNECT " takes one argument: a port");
	memcpy(port, e->argv[1].data, e->argv[1].len);
	port[e->argv[1].len] = '\0';
	if (svm_parse_uint(port, 1, 65535, &v, NULL) != 0)
		return refusal(err, SVM_PROTO_E_EXEC_FAILED, 0,
		               SVM_HOSTCALL_CONNECT ": the port must be 1 to 65535");
	n = readlink("/proc/self/exe", program, cap - 1);
	if (n <= 0 || (size_t)n >= cap - 1)
		return refusal(err, SVM_PROTO_E_RESOURCE, errno, "readlink /proc/self/exe");
	program[n] = '\0';
	return 0;
}

/* Host mode (spank-vm-hostcall): a guest may have Slurm's commands run, by
 * name, from the host's directory of them, as the user the server runs as,
 * and nothing else. */
static uint32_t host_call_refusal(const struct svm_proto_exec *e, const char *commands,
                                  char *program, size_t cap, struct svm_err *err)
{
	char name[32];

	if (e->argv[0].len >= sizeof(name) || memchr(e->argv[0].data, '/', e->argv[0].len))
		goto not_slurm;
	memcpy(name, e->argv[0].data, e->argv[0].len);
	name[e->argv[0].len] = '\0';
	if (strcmp(name, SVM_HOSTCALL_CONNECT) == 0)
		return connect_refusal(e, program, cap, err);
	if (!agent_is_slurm_command(name))
		goto not_slurm;
	if (e->uid != getuid() || e->gid != getgid())
		return refusal(err, SVM_PROTO_E_IDENTITY_REFUSED, 0,
		               "the host runs Slurm commands only as the job's user");
	snprintf(program, cap, "%s/%s", commands, name);
	return 0;
not_slurm:
	printable_copy(name, sizeof(name), e->argv[0].data, e->argv[0].len);
	svm_err_set(err,
	            "'%s' is not a Slurm command: a guest may run only sacct, sacctmgr, "
	            "salloc, sattach, sbatch, sbcast, scancel, scontrol, sdiag, sinfo, sprio, "
	            "squeue, sreport, srun, sshare, sstat and strigger on the host",
	            name);
	return SVM_PROTO_E_EXEC_FAILED;
}

static struct agent_session *find_orphan(struct agent_sessions *all)
{
	for (struct agent_session *s = all->head; s != NULL; s = s->next)
		if (s->orphan)
			return s;
	return NULL;
}

/* Whether the orphan can be handed to this EXEC: the same identity, and its
 * script (stream 3) and stdin were delivered whole before the save. */
static bool adoptable(const struct agent_session *s, const struct svm_proto_exec *e)
{
	return s->uid == e->uid && s->gid == e->gid && s->in[0].fd < 0 && s->in[3].fd < 0 &&
	       s->in[0].len == s->in[0].head && s->in[3].len == s->in[3].head;
}

/* The new host's batch proxy takes over the script it ran before the save:
 * fresh flow control, what it sends on its streams is dropped (the script
 * has its input), and every output stream that ended before is ended again
 * for it. */
static void adopt(struct agent_channel *ch, struct agent_session *s, uint32_t id,
                  const struct svm_proto_exec *e)
{
	s->id = id;
	s->orphan = false;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		svm_proto_send_credit_init(&s->out[i].credit);
		svm_proto_recv_window_init(&s->in[i].window);
		s->in[i].eof = false;
		s->in[i].head = s->in[i].len = 0;
	}
	s->in[0].open = (e->flags & SVM_PROTO_EXEC_HAS_STDIN) != 0;
	s->in[3].open = (e->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;
	if (!s->out[3].open)
		s->out[3].fd = -1;
	s->out[3].open = s->in[3].open;
	if (s->state == SESSION_RUNNING)
		agent_send_started(ch, id, s->pid);
	for (int i = 1; i < SVM_PROTO_STREAMS; i++)
		if (s->out[i].open && s->out[i].fd < 0)
			agent_send_eof(ch, id, (uint8_t)i);
	agent_log("session %u: the restored guest's batch script (pid %d) goes on", id,
	          (int)s->pid);
}

/* A batch EXEC after a restore: true when it adopted the waiting script. */
static bool adopt_orphan(struct agent_channel *ch, struct agent_sessions *all, uint32_t id,
                         const struct svm_proto_exec *e)
{
	struct agent_session *s = find_orphan(all);

	if (s == NULL || e->role != SVM_PROTO_ROLE_BATCH)
		return false;
	if (adoptable(s, e)) {
		adopt(ch, s, id, e);
		return true;
	}
	agent_log("the restored guest's batch script cannot go on (another identity, or its "
	          "input was cut by the save): ending it");
	kill_program(s);
	unlink_session(all, s);
	return false;
}

void agent_session_exec(struct agent_channel *ch, struct agent_sessions *all, uint32_t id,
                        const struct svm_proto_frame *frame, const struct agent_config *config)
{
	struct svm_proto_exec *e = &exec_request;
	struct agent_session *s = NULL;
	struct svm_err err = {""};
	char program[AGENT_PATH_CAP + 32];
	uint32_t code;

	if (svm_proto_decode_exec(frame, e, &err) != 0)
		code = SVM_PROTO_E_MALFORMED;
	else if (adopt_orphan(ch, all, id, e))
		return;
	else if (!identity_allowed(e, config->allow_root))
		code = refusal(&err, SVM_PROTO_E_IDENTITY_REFUSED, 0,
		               "this guest runs no program as root (uid or gid 0); only an "
		               "image the site's catalog marks allow_root=yes does");
	else if (all->count >= AGENT_MAX_SESSIONS)
		code = refusal(&err, SVM_PROTO_E_RESOURCE, 0, "too many sessions");
	else if (config->host_commands != NULL &&
	         (code = host_call_refusal(e, config->host_commands, program, sizeof(program),
	                                   &err)) != 0)
		;
	else
		code = start_program(id, e, config->host_commands != NULL ? program : NULL, &s,
		                     &err);
	if (s == NULL) {
		agent_send_error(ch, id, code, "%s", err.msg);
		agent_send_close(ch, id);
		return;
	}
	s->next = all->head;
	all->head = s;
	all->count++;
}

/* ---- the program's start ---- */

static void deliver_pending_signals(struct agent_session *s)
{
	for (int sig = 1; sig <= SVM_PROTO_MAX_SIGNAL; sig++)
		if ((s->pending_signals & (UINT64_C(1) << (sig - 1))) != 0 &&
		    kill(-s->pid, sig) != 0)
			agent_log("session %u: signal %d: %s", s->id, sig, strerror(errno));
	s->pending_signals = 0;
}

static const char *where(const struct agent_session *s)
{
	return s->on_host ? "on the host" : "in the guest";
}

static void describe_failure(const struct agent_session *s, int stage, int error, char *text,
                             size_t len)
{
	switch (stage) {
	case AGENT_SPAWN_IDENTITY:
		snprintf(text, len, "cannot take the requested identity: %s", strerror(error));
		break;
	case AGENT_SPAWN_CHDIR:
		snprintf(text, len, "cannot change to the working directory %s %s: %s", s->cwd,
		         where(s), strerror(error));
		break;
	case AGENT_SPAWN_EXEC:
		snprintf(text, len, "cannot execute %s %s: %s", s->program, where(s),
		         strerror(error));
		break;
	default:
		snprintf(text, len, "cannot set up the program's descriptors: %s", strerror(error));
	}
}

static uint32_t stage_error_code(int stage)
{
	if (stage == AGENT_SPAWN_IDENTITY)
		return SVM_PROTO_E_IDENTITY_REFUSED;
	if (stage == AGENT_SPAWN_SETUP)
		return SVM_PROTO_E_RESOURCE;
	return SVM_PROTO_E_EXEC_FAILED;
}

/* The status pipe is readable: end-of-file means execve succeeded, a
 * report that the child failed before it. */
static void check_started(struct agent_channel *ch, struct agent_session *s)
{
	struct agent_spawn_report report;
	char text[256];
	ssize_t n = read(s->status_fd, &report, sizeof(report));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(&s->status_fd);
	if (n == (ssize_t)sizeof(report)) {
		describe_failure(s, report.stage, report.error, text, sizeof(text));
		session_fail(ch, s, stage_error_code(report.stage), text);
	} else {
		s->state = SESSION_RUNNING;
		agent_send_started(ch, s->id, s->pid);
		deliver_pending_signals(s);
	}
}

/* ---- streams ---- */

static void in_close(struct in_stream *in, int stream)
{
	/* The extra socket stays open for the other direction: shut down ours. */
	if (stream == SVM_PROTO_EXTRA && in->fd >= 0)
		(void)shutdown(in->fd, SHUT_WR);
	close_fd(&in->fd);
}

/* Writes what is buffered; the bytes written (or discarded because the
 * program closed its end) go back to the host as WINDOW. */
static void in_flush(struct agent_channel *ch, struct agent_session *s, int stream)
{
	struct in_stream *in = &s->in[stream];
	size_t done = 0;
	uint32_t increment;

	while (in->len > in->head) {
		ssize_t n = in->fd < 0 ? (ssize_t)(in->len - in->head)
		                       : write(in->fd, in->buf + in->head, in->len - in->head);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* EPIPE: nobody reads any more; what is left is dropped. */
			close_fd(&in->fd);
			continue;
		}
		in->head += (size_t)n;
		done += (size_t)n;
	}
	if (in->head == in->len)
		in->head = in->len = 0;
	if (done > 0 && svm_proto_recv_window_consume(&in->window, done, &increment, NULL) == 0 &&
	    increment > 0)
		agent_send_window(ch, s->id, (uint8_t)stream, increment);
	if (in->eof && in->len == 0)
		in_close(in, stream);
}

/* Appends DATA to what waits for the program, then writes what it can. */
static void in_append(struct agent_channel *ch, struct agent_session *s,
                      const struct svm_proto_data *d)
{
	struct in_stream *in = &s->in[d->stream];

	/* The window bounds what is buffered: never more than one window. */
	if (in->head > 0 && in->len + d->bytes.len > SVM_PROTO_INITIAL_WINDOW) {
		memmove(in->buf, in->buf + in->head, in->len - in->head);
		in->len -= in->head;
		in->head = 0;
	}
	memcpy(in->buf + in->len, d->bytes.data, d->bytes.len);
	in->len += d->bytes.len;
	in_flush(ch, s, d->stream);
}

static void in_data(struct agent_channel *ch, struct agent_session *s,
                    const struct svm_proto_data *d)
{
	struct in_stream *in = &s->in[d->stream];
	struct svm_err err;

	if (in->eof)
		session_fail(ch, s, SVM_PROTO_E_STATE, "DATA after EOF");
	else if (svm_proto_recv_window_receive(&in->window, d->bytes.len, &err) != 0)
		session_fail(ch, s, SVM_PROTO_E_FLOW, err.msg);
	else if (in->buf == NULL && (in->buf = malloc(SVM_PROTO_INITIAL_WINDOW)) == NULL)
		session_fail(ch, s, SVM_PROTO_E_RESOURCE, "out of memory");
	else
		in_append(ch, s, d);
}

/* Reads what the credit allows and sends it; end-of-file ends the stream. */
static void out_pump(struct agent_channel *ch, struct agent_session *s, int stream)
{
	static uint8_t chunk[SVM_PROTO_MAX_DATA];
	struct out_stream *out = &s->out[stream];
	size_t want = svm_proto_send_credit_sendable(&out->credit, sizeof(chunk));
	ssize_t n;

	if (out->fd < 0 || want == 0)
		return;
	n = read(out->fd, chunk, want);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_fd(&out->fd);
		agent_send_eof(ch, s->id, (uint8_t)stream);
		return;
	}
	svm_proto_send_credit_spend(&out->credit, (size_t)n, NULL);
	agent_send_data(ch, s->id, (uint8_t)stream, chunk, (size_t)n);
}

/* ---- host frames ---- */

static bool stream_opened(const struct agent_session *s, uint8_t type, uint8_t stream)
{
	return type == SVM_PROTO_MSG_WINDOW ? s->out[stream].open : s->in[stream].open;
}

/* DATA, EOF or WINDOW; d->stream is the stream of each. */
static int decode_stream_frame(const struct svm_proto_frame *frame, struct svm_proto_data *d,
                               struct svm_proto_window *w, struct svm_err *err)
{
	memset(d, 0, sizeof(*d));
	memset(w, 0, sizeof(*w));
	if (frame->type == SVM_PROTO_MSG_DATA)
		return svm_proto_decode_data(frame, d, err);
	if (frame->type == SVM_PROTO_MSG_EOF)
		return svm_proto_decode_eof(frame, &d->stream, err);
	if (svm_proto_decode_window(frame, w, err) != 0)
		return -1;
	d->stream = w->stream;
	return 0;
}

static void on_stream_frame(struct agent_channel *ch, struct agent_session *s,
                            const struct svm_proto_frame *frame)
{
	struct svm_proto_data d;
	struct svm_proto_window w;
	struct svm_err err;

	if (decode_stream_frame(frame, &d, &w, &err) != 0 ||
	    svm_proto_check_stream(SVM_PROTO_HOST, frame->type, d.stream, &err) != 0) {
		session_fail(ch, s, SVM_PROTO_E_MALFORMED, err.msg);
	} else if (!stream_opened(s, frame->type, d.stream)) {
		session_fail(ch, s, SVM_PROTO_E_MALFORMED,
		             "frame for a stream the EXEC did not open");
	} else if (frame->type == SVM_PROTO_MSG_DATA) {
		in_data(ch, s, &d);
	} else if (frame->type == SVM_PROTO_MSG_WINDOW) {
		if (svm_proto_send_credit_grant(&s->out[w.stream].credit, w.increment, &err) != 0)
			session_fail(ch, s, SVM_PROTO_E_FLOW, err.msg);
	} else if (s->in[d.stream].eof) {
		session_fail(ch, s, SVM_PROTO_E_STATE, "a second EOF");
	} else {
		s->in[d.stream].eof = true;
		in_flush(ch, s, d.stream);
	}
}

static void on_signal(struct agent_channel *ch, struct agent_session *s,
                      const struct svm_proto_frame *frame)
{
	struct svm_err err;
	uint32_t sig;

	if (svm_proto_decode_signal(frame, &sig, &err) != 0)
		session_fail(ch, s, SVM_PROTO_E_MALFORMED, err.msg);
	else if (s->state == SESSION_STARTING)
		s->pending_signals |= UINT64_C(1) << (sig - 1);
	else if (kill(-s->pid, (int)sig) != 0 && errno != ESRCH)
		agent_log("session %u: signal %u: %s", s->id, sig, strerror(errno));
}

static void on_host_close(struct agent_channel *ch, struct agent_sessions *all,
                          struct agent_session *s)
{
	/* Before our CLOSE: the host aborts the task. */
	if (s->state != SESSION_CLOSING) {
		kill_program(s);
		agent_send_close(ch, s->id);
	}
	unlink_session(all, s);
}

bool agent_session_frame(struct agent_channel *ch, struct agent_sessions *all,
                         const struct svm_proto_frame *frame)
{
	struct agent_session *s = find(all, frame->session);

	if (s == NULL)
		return false;
	if (frame->type == SVM_PROTO_MSG_CLOSE) {
		on_host_close(ch, all, s);
	} else if (s->state == SESSION_CLOSING) {
		/* it crossed our CLOSE: dropped */
	} else if (frame->type == SVM_PROTO_MSG_ERROR) {
		/* The host ends the session; its CLOSE follows ours. */
		kill_program(s);
		release_streams(s);
		agent_send_close(ch, s->id);
		s->state = SESSION_CLOSING;
	} else if (frame->type == SVM_PROTO_MSG_SIGNAL) {
		on_signal(ch, s, frame);
	} else {
		on_stream_frame(ch, s, frame);
	}
	return true;
}

/* ---- the poll loop ---- */

size_t agent_sessions_poll_count(const struct agent_sessions *all)
{
	/* status pipe + streams 0..3 in + 1..3 out */
	return all->count * (1 + 2 * SVM_PROTO_STREAMS);
}

static int add_fd(struct pollfd *fds, size_t *n, int fd, short events)
{
	fds[*n].fd = fd;
	fds[*n].events = events;
	fds[*n].revents = 0;
	return (int)(*n)++;
}

static void fill_session(struct agent_channel *ch, struct agent_session *s, struct pollfd *fds,
                         size_t *n)
{
	bool room = agent_channel_can_send_data(ch);

	if (s->orphan) { /* nothing of it moves until it is adopted */
		s->status_slot = -1;
		for (int i = 0; i < SVM_PROTO_STREAMS; i++)
			s->out[i].slot = s->in[i].slot = -1;
		return;
	}
	s->status_slot = s->status_fd >= 0 ? add_fd(fds, n, s->status_fd, POLLIN) : -1;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		struct out_stream *out = &s->out[i];
		struct in_stream *in = &s->in[i];
		bool readable = s->state == SESSION_RUNNING && out->fd >= 0 && room &&
		                svm_proto_send_credit_sendable(&out->credit, 1) > 0;

		out->slot = readable ? add_fd(fds, n, out->fd, POLLIN) : -1;
		in->slot = in->fd >= 0 && in->len > in->head ? add_fd(fds, n, in->fd, POLLOUT) : -1;
	}
}

size_t agent_sessions_fill_poll(struct agent_channel *ch, struct agent_sessions *all,
                                struct pollfd *fds)
{
	size_t n = 0;

	for (struct agent_session *s = all->head; s != NULL; s = s->next)
		fill_session(ch, s, fds, &n);
	return n;
}

void agent_sessions_handle_poll(struct agent_channel *ch, struct agent_sessions *all,
                                const struct pollfd *fds)
{
	for (struct agent_session *s = all->head; s != NULL; s = s->next) {
		/* First the start: STARTED goes before any DATA. */
		if (s->status_slot >= 0 && fds[s->status_slot].revents != 0 && s->status_fd >= 0)
			check_started(ch, s);
		for (int i = 0; i < SVM_PROTO_STREAMS && s->state != SESSION_CLOSING; i++) {
			if (s->in[i].slot >= 0 && fds[s->in[i].slot].revents != 0)
				in_flush(ch, s, i);
			if (s->out[i].slot >= 0 && fds[s->out[i].slot].revents != 0)
				out_pump(ch, s, i);
		}
		s->status_slot = -1;
		for (int i = 0; i < SVM_PROTO_STREAMS; i++)
			s->in[i].slot = s->out[i].slot = -1;
	}
}

void agent_sessions_reaped(struct agent_channel *ch, struct agent_sessions *all, pid_t pid,
                           int wait_status)
{
	(void)ch;
	for (struct agent_session *s = all->head; s != NULL; s = s->next) {
		if (s->pid == pid && !s->exited) {
			s->exited = true;
			s->wait_status = wait_status;
			/* As Slurm ends a step's leftovers with its task: what the
			 * program left running in its group (a `cmd &` that still
			 * holds stdout) goes, so its output ends and EXIT can follow. */
			kill(-pid, SIGKILL);
			return;
		}
	}
}

static bool output_ended(const struct agent_session *s)
{
	for (int i = 1; i < SVM_PROTO_STREAMS; i++)
		if (s->out[i].open && s->out[i].fd >= 0)
			return false;
	return true;
}

void agent_sessions_finish(struct agent_channel *ch, struct agent_sessions *all)
{
	for (struct agent_session *s = all->head; s != NULL; s = s->next) {
		if (s->state != SESSION_RUNNING || s->orphan || !s->exited || !output_ended(s))
			continue;
		agent_send_exit(ch, s->id, s->wait_status, agent_memcg_oom_kills(s->memcg) > 0);
		release_streams(s);
		agent_send_close(ch, s->id);
		s->state = SESSION_CLOSING;
	}
}

bool agent_sessions_keep_batch(struct agent_sessions *all)
{
	struct agent_session *kept = NULL, *s = all->head;

	while (s != NULL) {
		struct agent_session *next = s->next;

		if (kept == NULL && s->batch && s->state != SESSION_CLOSING) {
			kept = s;
			s->orphan = true;
			s->id = 0; /* the new host's ids may reuse its old one */
		} else {
			if (s->state != SESSION_CLOSING)
				kill_program(s);
			unlink_session(all, s);
		}
		s = next;
	}
	return kept != NULL;
}

void agent_sessions_kill_all(struct agent_sessions *all)
{
	while (all->head != NULL) {
		struct agent_session *s = all->head;

		if (s->state != SESSION_CLOSING)
			kill_program(s);
		unlink_session(all, s);
	}
}
