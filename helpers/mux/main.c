/* spank-vm-mux: command line, privileges, daemon mode and the readiness line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "spank_vm/values.h"
#include "mux.h"

static const char usage_text[] =
        "usage: spank-vm-mux (--agent-socket PATH | --agent-device PATH) --listen PATH\n"
        "                    [--uid UID] [--gid GID]\n"
        "                    [--ready-timeout SECONDS] [--ready-fd N] [--foreground]\n"
        "                    [--pid-file PATH] [--log FILE] [--heartbeat SECONDS]\n"
        "                    [--heartbeat-timeout SECONDS] [--console FILE]\n"
        "                    [--hostcall-socket PATH --slurm-commands DIR]\n"
        "                    [--hold-on-requeue JOBID [--slurm-conf FILE]]\n"
        "Connects to the guest agent's channel, waits for READY, then serves the job\n"
        "user's task proxies on --listen (mode 0600). Writes \"ready\" or \"error: ...\"\n"
        "on --ready-fd; without --foreground it returns once ready (0) or failed (1).\n"
        "--hold-on-requeue: when Slurm ends job JOBID to requeue it, the tasks' SIGTERM\n"
        "is held back and the guest paused instead, for its checkpoint (requeue.c).\n";

enum {
	OPT_AGENT_SOCKET = 256,
	OPT_LISTEN,
	OPT_UID,
	OPT_GID,
	OPT_READY_TIMEOUT,
	OPT_READY_FD,
	OPT_FOREGROUND,
	OPT_PID_FILE,
	OPT_LOG,
	OPT_HEARTBEAT,
	OPT_HEARTBEAT_TIMEOUT,
	OPT_CONSOLE,
	OPT_AGENT_DEVICE,
	OPT_HOSTCALL_SOCKET,
	OPT_SLURM_COMMANDS,
	OPT_HOLD_ON_REQUEUE,
	OPT_SLURM_CONF,
};

static const struct option long_options[] = {
        {"agent-socket", required_argument, NULL, OPT_AGENT_SOCKET},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"uid", required_argument, NULL, OPT_UID},
        {"gid", required_argument, NULL, OPT_GID},
        {"ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT},
        {"ready-fd", required_argument, NULL, OPT_READY_FD},
        {"foreground", no_argument, NULL, OPT_FOREGROUND},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"log", required_argument, NULL, OPT_LOG},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"heartbeat-timeout", required_argument, NULL, OPT_HEARTBEAT_TIMEOUT},
        {"console", required_argument, NULL, OPT_CONSOLE},
        {"agent-device", required_argument, NULL, OPT_AGENT_DEVICE},
        {"hostcall-socket", required_argument, NULL, OPT_HOSTCALL_SOCKET},
        {"slurm-commands", required_argument, NULL, OPT_SLURM_COMMANDS},
        {"hold-on-requeue", required_argument, NULL, OPT_HOLD_ON_REQUEUE},
        {"slurm-conf", required_argument, NULL, OPT_SLURM_CONF},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static int parse_seconds(const char *name, const char *text, double *out, struct svm_err *err)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v > 0.0 && v <= 86400.0))
		return svm_err_set(err, "--%s: expected seconds in (0, 86400], got '%.32s'", name,
		                   text);
	*out = v;
	return 0;
}

static int parse_number(const char *text, uint64_t max, uint64_t *out, struct svm_err *err)
{
	return svm_parse_uint(text, 0, max, out, err);
}

static int parse_option(int opt, const char *arg, struct mux_opts *o, struct svm_err *err)
{
	uint64_t v = 0;

	switch (opt) {
	case OPT_AGENT_SOCKET:
		o->agent_socket = arg;
		return 0;
	case OPT_AGENT_DEVICE:
		o->agent_device = arg;
		return 0;
	case OPT_HOSTCALL_SOCKET:
		o->hostcall_socket = arg;
		return 0;
	case OPT_SLURM_COMMANDS:
		o->slurm_commands = arg;
		return 0;
	case OPT_SLURM_CONF:
		o->slurm_conf = arg;
		return 0;
	case OPT_HOLD_ON_REQUEUE:
		if (svm_parse_uint(arg, 1, UINT32_MAX - 1, &v, err) != 0)
			return -1;
		o->requeue_job = (uint32_t)v;
		return 0;
	case OPT_LISTEN:
		o->listen_path = arg;
		return 0;
	case OPT_PID_FILE:
		o->pid_file = arg;
		return 0;
	case OPT_LOG:
		o->log_path = arg;
		return 0;
	case OPT_CONSOLE:
		o->console_path = arg;
		return 0;
	case OPT_FOREGROUND:
		o->foreground = true;
		return 0;
	case OPT_UID:
		o->have_uid = true;
		if (parse_number(arg, SVM_PROTO_MAX_ID, &v, err) != 0)
			return -1;
		o->uid = (uid_t)v;
		return 0;
	case OPT_GID:
		o->have_gid = true;
		if (parse_number(arg, SVM_PROTO_MAX_ID, &v, err) != 0)
			return -1;
		o->gid = (gid_t)v;
		return 0;
	case OPT_READY_FD:
		if (parse_number(arg, 65535, &v, err) != 0)
			return -1;
		o->ready_fd = (int)v;
		return 0;
	case OPT_READY_TIMEOUT:
		return parse_seconds("ready-timeout", arg, &o->ready_timeout, err);
	case OPT_HEARTBEAT:
		return parse_seconds("heartbeat", arg, &o->heartbeat_interval, err);
	case OPT_HEARTBEAT_TIMEOUT:
		return parse_seconds("heartbeat-timeout", arg, &o->heartbeat_timeout, err);
	default:
		return svm_err_set(err, "unknown option (see --help)");
	}
}

static int parse_args(int argc, char **argv, struct mux_opts *o, struct svm_err *err)
{
	int opt;

	memset(o, 0, sizeof(*o));
	o->ready_fd = -1;
	o->ready_timeout = 60;
	o->heartbeat_interval = 2;
	o->heartbeat_timeout = 6;
	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (opt == '?' || parse_option(opt, optarg, o, err) != 0)
			return opt == '?' ? svm_err_set(err, "bad command line (see --help)") : -1;
	}
	if (optind != argc)
		return svm_err_set(err, "unexpected argument '%.64s'", argv[optind]);
	if ((o->agent_socket == NULL) == (o->agent_device == NULL) || o->listen_path == NULL)
		return svm_err_set(err, "--listen and one of --agent-socket, --agent-device are "
		                        "required");
	if ((o->hostcall_socket == NULL) != (o->slurm_commands == NULL))
		return svm_err_set(err, "--hostcall-socket and --slurm-commands go together");
	if (o->heartbeat_timeout <= o->heartbeat_interval / 2)
		return svm_err_set(err, "--heartbeat-timeout must exceed half the interval");
	return 0;
}

/* The user's supplementary groups when the account is known, else none. */
static int set_groups(uid_t uid, gid_t gid, struct svm_err *err)
{
	const struct passwd *pw = getpwuid(uid);

	if (pw != NULL && initgroups(pw->pw_name, gid) == 0)
		return 0;
	if (setgroups(1, &gid) != 0)
		return svm_err_errno(err, errno, "setgroups");
	return 0;
}

/* Root starts the mux for the job user; it keeps nothing of root. */
static int drop_privileges(const struct mux_opts *o, struct svm_err *err)
{
	gid_t gid = o->have_gid ? o->gid : getgid();

	if (!o->have_uid && !o->have_gid)
		return 0;
	if (geteuid() != 0) {
		if ((o->have_uid && o->uid != getuid()) || (o->have_gid && o->gid != getgid()))
			return svm_err_set(err, "only root may start the mux for another user");
		return 0;
	}
	if (!o->have_uid)
		return svm_err_set(err, "--gid without --uid: refusing to run as root");
	if (!o->have_gid) {
		const struct passwd *pw = getpwuid(o->uid);

		if (pw == NULL)
			return svm_err_set(err, "uid %u has no account: give --gid",
			                   (unsigned)o->uid);
		gid = pw->pw_gid;
	}
	if (set_groups(o->uid, gid, err) != 0)
		return -1;
	if (setgid(gid) != 0 || setuid(o->uid) != 0)
		return svm_err_errno(err, errno, "cannot become uid %u gid %u", (unsigned)o->uid,
		                     (unsigned)gid);
	if (o->uid != 0 && setuid(0) == 0)
		return svm_err_set(err, "could regain root after dropping privileges");
	return 0;
}

static int block_signals(int *fd_out, struct svm_err *err)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1); /* pause and detach (pause.c) */
	sigaddset(&set, SIGUSR2); /* reattach and resume */
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return svm_err_errno(err, errno, "sigprocmask");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return svm_err_errno(err, errno, "signal SIGPIPE");
	*fd_out = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*fd_out < 0)
		return svm_err_errno(err, errno, "signalfd");
	return 0;
}

/* Daemon mode: the parent returns only when the child is ready or failed,
 * so a starter can simply wait for it (and relays the line to --ready-fd). */
static int wait_for_child(int pipe_fd, const struct mux_opts *o)
{
	char line[1024] = "";
	struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};
	size_t have = 0;
	ssize_t n = 1;
	int ms = (int)(o->ready_timeout * 1000.0) + 10000;

	while (n > 0 && have < sizeof(line) - 1 && poll(&pfd, 1, ms) > 0) {
		n = read(pipe_fd, line + have, sizeof(line) - 1 - have);
		if (n > 0)
			have += (size_t)n;
	}
	line[have] = '\0';
	if (have == 0)
		snprintf(line, sizeof(line), "error: the mux exited before it was ready\n");
	if (o->ready_fd >= 0 && write(o->ready_fd, line, strlen(line)) < 0)
		fprintf(stderr, MUX_PREFIX "cannot write the ready fd: %s\n", strerror(errno));
	if (strcmp(line, "ready\n") == 0)
		return MUX_EXIT_OK;
	fprintf(stderr, MUX_PREFIX "%s", line);
	return MUX_EXIT_START;
}

static int daemonize(struct mux_opts *o, struct svm_err *err)
{
	int p[2], devnull;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return svm_err_errno(err, errno, "pipe");
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid > 0) {
		close(p[1]);
		exit(wait_for_child(p[0], o));
	}
	close(p[0]);
	if (o->ready_fd >= 0)
		close(o->ready_fd);
	o->ready_fd = p[1];
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (setsid() < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
	    dup2(devnull, 2) < 0)
		return svm_err_errno(err, errno, "cannot detach");
	close(devnull);
	return 0;
}

static void report_start_failure(const struct mux_opts *o, const char *msg)
{
	fprintf(stderr, MUX_PREFIX "%s\n", msg);
	if (o->ready_fd >= 0) {
		dprintf(o->ready_fd, "error: %s\n", msg);
		close(o->ready_fd);
	}
}

int main(int argc, char **argv)
{
	static struct mux m; /* large: holds a READY payload */
	struct mux_opts o;
	struct svm_err err = {""};

	if (parse_args(argc, argv, &o, &err) != 0 || drop_privileges(&o, &err) != 0 ||
	    (o.log_path != NULL && mux_log_open(o.log_path, &err) != 0) ||
	    (!o.foreground && daemonize(&o, &err) != 0) || block_signals(&m.signal_fd, &err) != 0) {
		report_start_failure(&o, err.msg);
		return MUX_EXIT_START;
	}
	m.opts = &o;
	m.agent_fd = -1;
	m.listen_fd = -1;
	m.agent_reader = malloc(sizeof(*m.agent_reader));
	if (m.agent_reader == NULL) {
		report_start_failure(&o, "out of memory");
		return MUX_EXIT_START;
	}
	svm_proto_reader_init(m.agent_reader, SVM_PROTO_AGENT);
	svm_byte_queue_init(&m.agent_first);
	svm_byte_queue_init(&m.agent_out);
	m.heartbeat_nonce = (uint64_t)getpid() << 32;
	mux_log("starting: uid %u, guest channel %s", (unsigned)getuid(),
	        o.agent_socket ? o.agent_socket : o.agent_device);
	int rc = mux_run(&m);

	free(m.agent_reader);
	close(m.signal_fd);
	return rc;
}
