/* spank-vm-exec: command line, the EXEC request built from the proxy's own
 * state (argv, environment, cwd, identity, umask), connecting to the mux,
 * and leaving with the program's status. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "spank_vm/values.h"
#include "exec.h"

extern char **environ;

#define CONNECT_RETRY_MIN_MS 10
#define CONNECT_RETRY_MAX_MS 200

static const char usage_text[] =
        "usage: spank-vm-exec [--socket PATH] [--wait-timeout SECONDS] [--extra-fd N]\n"
        "                     -- PROGRAM [ARGS...]\n"
        "       spank-vm-exec --serve-port PORT... -- PROGRAM [ARGS...]   (in a guest)\n"
        "Runs PROGRAM in the job's guest through spank-vm-mux (socket from --socket or\n"
        "SPANK_VM_SOCKET) and exits with its status. Own failures: 64 usage, 69 guest\n"
        "unavailable, 70 internal, 76 protocol error or connection lost, 77 identity\n"
        "refused, 126 the program could not be started in the guest.\n";

/* Signals a task receives from Slurm or a terminal, forwarded to the program. */
static const int forwarded_signals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGUSR1,
                                        SIGUSR2, SIGCONT, SIGTSTP, SIGQUIT};

struct exec_opts {
	const char *socket_path;
	double wait_timeout;
	int extra_fd;               /* -1: none */
	char **argv;                /* the program and its arguments */
	const char *ready_file;     /* task mode: the mux's readiness line */
	const char *job_dir;        /* task mode: where guest.error would be */
	bool task_mode;             /* a task of a Slurm step (SPANK_VM_TASK) */
	bool report_guest;          /* task mode, --vm-debug, rank 0: say what the guest is */
	bool ship_script;           /* task mode, batch step: argv[0] is the host's script */
	bool forward_pmix;          /* task mode: carry PMIx's server connections (forward.c) */
	int requeue_signal;         /* task mode, batch step: --vm-checkpoint-signal's number */
	const char *checkpoint_dir; /* task mode, batch step: --vm-checkpoint's DIR */
	char *serve_ports[EXEC_MAX_PORTS]; /* in the guest: --serve-port */
	size_t nserve_ports;
};

static struct svm_proto_exec exec_request; /* large */

void exec_die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs(EXEC_PREFIX, stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* The program was killed by signo: so is the proxy, for Slurm to report it. */
static void die_by_signal(int signo)
{
	const struct rlimit no_core = {0, 0};
	sigset_t set;

	fflush(NULL);
	setrlimit(RLIMIT_CORE, &no_core); /* the guest had the core, if any */
	signal(signo, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, signo);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(signo);
	/* Signals whose default is to ignore or stop do not end a process. */
	exit(128 + signo);
}

static void parse_args(int argc, char **argv, struct exec_opts *o)
{
	static const struct option long_options[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"wait-timeout", required_argument, NULL, 'w'},
	        {"extra-fd", required_argument, NULL, 'x'},
	        {"serve-port", required_argument, NULL, 'p'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct svm_err err;
	uint64_t v;
	char *end = NULL;
	int opt;

	o->socket_path = getenv("SPANK_VM_SOCKET");
	o->wait_timeout = 60;
	o->extra_fd = -1;
	while ((opt = getopt_long(argc, argv, "+h", long_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'w':
			o->wait_timeout = strtod(optarg, &end);
			if (end == optarg || *end != '\0' ||
			    !(o->wait_timeout >= 0 && o->wait_timeout <= 86400))
				exec_die(EXEC_EXIT_USAGE,
				         "--wait-timeout: expected seconds, got '%.32s'", optarg);
			break;
		case 'x':
			if (svm_parse_uint(optarg, SVM_PROTO_MIN_EXTRA_FD, SVM_PROTO_MAX_EXTRA_FD,
			                   &v, &err) != 0)
				exec_die(EXEC_EXIT_USAGE, "--extra-fd: %s", err.msg);
			o->extra_fd = (int)v;
			break;
		case 'p':
			if (o->nserve_ports == EXEC_MAX_PORTS)
				exec_die(EXEC_EXIT_USAGE, "--serve-port: at most %d",
				         EXEC_MAX_PORTS);
			o->serve_ports[o->nserve_ports++] = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			exec_die(EXEC_EXIT_USAGE, "bad command line (see --help)");
		}
	}
	if (optind >= argc)
		exec_die(EXEC_EXIT_USAGE, "no program to run (see --help)");
	if (o->nserve_ports > 0)
		exec_serve_ports(o->serve_ports, o->nserve_ports, argv + optind);
	if (o->socket_path == NULL || o->socket_path[0] == '\0')
		exec_die(EXEC_EXIT_USAGE, "no socket: give --socket or set SPANK_VM_SOCKET");
	if (o->extra_fd >= 0 && fcntl(o->extra_fd, F_GETFD) < 0)
		exec_die(EXEC_EXIT_USAGE, "--extra-fd %d is not open", o->extra_fd);
	o->argv = argv + optind;
}

/* Task mode: slurmstepd started us in place of a task (the plugin's
 * task_init). Everything comes from the environment it set: on Slurm 22.05
 * argv[0] was replaced and the task's program is SPANK_VM_ARGV0; from 23.11
 * we were prepended and argv[1] is the program. */
static const char *const task_env[] = {"SPANK_VM_TASK",
                                       "SPANK_VM_ARGV0",
                                       "SPANK_VM_SOCKET",
                                       "SPANK_VM_READY_FILE",
                                       "SPANK_VM_JOB_DIR",
                                       "SPANK_VM_WAIT",
                                       "SPANK_VM_EXTRA_FD",
                                       "SPANK_VM_DEBUG_GUEST",
                                       "SPANK_VM_SHIP_SCRIPT",
                                       "SPANK_VM_REQUEUE_SIGNAL",
                                       "SPANK_VM_FORWARD_PMIX",
                                       "SPANK_VM_CHECKPOINT_DIR",
                                       NULL};

static void parse_task_env(int argc, char **argv, struct exec_opts *o)
{
	const char *argv0 = getenv("SPANK_VM_ARGV0"), *wait = getenv("SPANK_VM_WAIT");
	const char *extra = getenv("SPANK_VM_EXTRA_FD");
	struct svm_err err;
	uint64_t v;

	o->task_mode = true;
	o->socket_path = getenv("SPANK_VM_SOCKET");
	o->ready_file = getenv("SPANK_VM_READY_FILE");
	o->job_dir = getenv("SPANK_VM_JOB_DIR");
	o->report_guest = getenv("SPANK_VM_DEBUG_GUEST") != NULL &&
	                  getenv("SLURM_PROCID") != NULL &&
	                  strcmp(getenv("SLURM_PROCID"), "0") == 0;
	o->ship_script = getenv("SPANK_VM_SHIP_SCRIPT") != NULL;
	o->forward_pmix = getenv("SPANK_VM_FORWARD_PMIX") != NULL;
	o->checkpoint_dir = getenv("SPANK_VM_CHECKPOINT_DIR");
	if (getenv("SPANK_VM_REQUEUE_SIGNAL") != NULL &&
	    svm_parse_uint(getenv("SPANK_VM_REQUEUE_SIGNAL"), 1, SVM_PROTO_MAX_SIGNAL, &v, &err) ==
	            0)
		o->requeue_signal = (int)v;
	o->wait_timeout = 60;
	o->extra_fd = -1;
	if (wait != NULL && svm_parse_uint(wait, 1, 86400, &v, &err) == 0)
		o->wait_timeout = (double)v;
	if (extra != NULL &&
	    svm_parse_uint(extra, SVM_PROTO_MIN_EXTRA_FD, SVM_PROTO_MAX_EXTRA_FD, &v, &err) == 0)
		o->extra_fd = (int)v;
	if (argv0 != NULL) {
		argv[0] = (char *)argv0;
		o->argv = argv;
	} else {
		o->argv = argv + 1;
	}
	if (o->argv[0] == NULL || argc < 1)
		exec_die(EXEC_EXIT_USAGE, "no program to run");
	if (o->socket_path == NULL || o->socket_path[0] == '\0')
		exec_die(EXEC_EXIT_USAGE, "no socket: SPANK_VM_SOCKET is not set");
	if (o->ship_script && o->extra_fd >= 0)
		exec_die(EXEC_EXIT_USAGE, "a batch step has no PMI_FD to relay");
	for (const char *const *name = task_env; *name != NULL; name++)
		unsetenv(*name);
}

/* --vm-debug: one line on the task's stderr once the guest answers: its plan
 * (size, pinning, memory) and how long it took from the plan to ready. */
static void report_guest(const struct exec_opts *o)
{
	char path[4096], line[1024] = "";
	struct stat plan_st, ready_st;
	double boot_s = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/plan", o->job_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL && strncmp(line, "describe=", 9) != 0)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (stat(path, &plan_st) == 0 && o->ready_file != NULL &&
	    stat(o->ready_file, &ready_st) == 0)
		boot_s = (double)(ready_st.st_mtim.tv_sec - plan_st.st_mtim.tv_sec) +
		         (double)(ready_st.st_mtim.tv_nsec - plan_st.st_mtim.tv_nsec) / 1e9;
	fprintf(stderr, "spank_vm: guest ready: %s, boot %.1f s\n",
	        line[0] ? line + 9 : "(no plan)", boot_s);
}

/* The reason the job's guest will never come, if the node recorded one:
 * spank-vm-provision's (guest.error in the job's directory) or the mux's
 * ("error: ..." in the ready file). */
static bool guest_failed(const struct exec_opts *o, char *why, size_t len)
{
	char path[4096];
	FILE *f = NULL;

	if (o->job_dir != NULL) {
		snprintf(path, sizeof(path), "%s/guest.error", o->job_dir);
		f = fopen(path, "re");
	}
	if (f == NULL && o->ready_file != NULL)
		f = fopen(o->ready_file, "re");
	if (f == NULL)
		return false;
	why[0] = '\0';
	if (fgets(why, (int)len, f) == NULL)
		why[0] = '\0';
	fclose(f);
	why[strcspn(why, "\n")] = '\0';
	if (strncmp(why, "error: ", 7) == 0)
		memmove(why, why + 7, strlen(why + 7) + 1);
	/* A helper's own line: our prefix starts the line we print it in. */
	if (strncmp(why, EXEC_PREFIX, strlen(EXEC_PREFIX)) == 0)
		memmove(why, why + strlen(EXEC_PREFIX), strlen(why + strlen(EXEC_PREFIX)) + 1);
	return why[0] != '\0' && strcmp(why, "ready") != 0;
}

/* What the node wants the job's user to know of its guest (guest.notice,
 * e.g. a checkpoint it could not restore): the batch step's output says it. */
static void print_notice(const struct exec_opts *o)
{
	char path[4096], line[1024];
	FILE *f;

	if (!o->ship_script || o->job_dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/guest.notice", o->job_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	if (fgets(line, sizeof(line), f) != NULL && line[0] != '\n')
		fprintf(stderr, EXEC_PREFIX "%s", line);
	fclose(f);
}

static int block_signals(void)
{
	sigset_t set;
	int fd;

	/* An ignored signal never reaches the signalfd, and a shell starts
	 * background commands with SIGINT and SIGQUIT ignored: the program
	 * decides what it ignores, so the proxy takes every one it forwards. */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		sigaddset(&set, forwarded_signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		exec_die(EXEC_EXIT_INTERNAL, "cannot set up signals: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		if (signal(forwarded_signals[i], SIG_DFL) == SIG_ERR)
			exec_die(EXEC_EXIT_INTERNAL, "cannot set up signals: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		exec_die(EXEC_EXIT_INTERNAL, "signalfd: %s", strerror(errno));
	return fd;
}

/* While nothing runs in the guest yet, a terminating signal ends the proxy
 * as it would have ended the program. */
static void check_early_signal(int signal_fd)
{
	struct signalfd_siginfo info;

	while (read(signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
		if (info.ssi_signo != SIGCONT && info.ssi_signo != SIGTSTP)
			die_by_signal((int)info.ssi_signo);
}

/* 0 connected, 1 not there yet (retry), -1 a real error (errno set). */
static int try_connect(const char *path, int *fd_out)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd, saved;

	if (strlen(path) >= sizeof(addr.sun_path))
		exec_die(EXEC_EXIT_USAGE, "socket path %s is too long", path);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		*fd_out = fd;
		return 0;
	}
	saved = errno;
	close(fd);
	errno = saved;
	return saved == ENOENT || saved == ECONNREFUSED || saved == EAGAIN ? 1 : -1;
}

/* The mux publishes its socket once the guest is ready: a missing socket
 * means a guest still booting, so wait for it, boundedly. */
static int connect_mux(const struct exec_opts *o, int signal_fd)
{
	double waited_ms = 0;
	int delay = CONNECT_RETRY_MIN_MS, fd = -1, rc;
	struct pollfd pfd = {.fd = signal_fd, .events = POLLIN};

	char why[1024];

	while ((rc = try_connect(o->socket_path, &fd)) == 1 && waited_ms < o->wait_timeout * 1000) {
		if (guest_failed(o, why, sizeof(why)))
			exec_die(EXEC_EXIT_UNAVAILABLE, "the job's guest did not come up: %s", why);
		if (poll(&pfd, 1, delay) > 0)
			check_early_signal(signal_fd);
		waited_ms += delay;
		delay = delay * 2 > CONNECT_RETRY_MAX_MS ? CONNECT_RETRY_MAX_MS : delay * 2;
	}
	if (rc == 1)
		exec_die(EXEC_EXIT_UNAVAILABLE,
		         "the job's guest is not reachable: %s did not accept "
		         "within %.0f s (%s)",
		         o->socket_path, o->wait_timeout, strerror(errno));
	if (rc < 0)
		exec_die(EXEC_EXIT_UNAVAILABLE, "cannot connect to %s: %s", o->socket_path,
		         strerror(errno));
	return fd;
}

static bool stdin_present(void)
{
	struct stat in, null;

	if (fstat(STDIN_FILENO, &in) != 0)
		return false; /* closed */
	if (!S_ISCHR(in.st_mode) || stat("/dev/null", &null) != 0)
		return true;
	return in.st_rdev != null.st_rdev;
}

static void add_identity(struct svm_proto_exec *e)
{
	gid_t groups[SVM_PROTO_MAX_GROUPS];
	int n = getgroups(SVM_PROTO_MAX_GROUPS, groups);
	struct svm_err err;
	mode_t mask = umask(0);

	umask(mask);
	if (n < 0)
		exec_die(EXEC_EXIT_INTERNAL, "getgroups: %s", strerror(errno));
	e->uid = getuid();
	e->gid = getgid();
	e->umask = mask;
	for (int i = 0; i < n; i++)
		if (svm_proto_exec_add_group(e, groups[i], &err) != 0)
			exec_die(EXEC_EXIT_USAGE, "%s", err.msg);
}

static void build_exec(const struct exec_opts *o, struct svm_proto_exec *e, char *cwd)
{
	struct svm_err err;

	svm_proto_exec_init(e);
	for (char **arg = o->argv; *arg != NULL; arg++)
		if (svm_proto_exec_add_arg(e, *arg, strlen(*arg), &err) != 0)
			exec_die(EXEC_EXIT_USAGE, "%s", err.msg);
	for (char **env = environ; *env != NULL; env++)
		if (svm_proto_exec_add_env(e, *env, strlen(*env), &err) != 0)
			exec_die(EXEC_EXIT_USAGE, "%s", err.msg);
	e->cwd.data = (const uint8_t *)cwd;
	e->cwd.len = strlen(cwd);
	add_identity(e);
	if (stdin_present())
		e->flags |= SVM_PROTO_EXEC_HAS_STDIN;
	if (o->extra_fd >= 0) {
		e->flags |= SVM_PROTO_EXEC_HAS_EXTRA;
		e->extra_fd = (uint32_t)o->extra_fd;
	}
	/* A guest restored for a requeued job hands this proxy the script it
	 * was running, instead of starting it again (doc/protocol.md 7.1). */
	if (o->ship_script)
		e->role = SVM_PROTO_ROLE_BATCH;
}

int main(int argc, char **argv)
{
	static struct exec_proxy p;
	struct exec_opts o = {0};
	time_t started = time(NULL);
	char *cwd;
	int rc;

	if (getenv("SPANK_VM_TASK") != NULL)
		parse_task_env(argc, argv, &o);
	else
		parse_args(argc, argv, &o);
	if (o.ship_script) {
		char why[4200];

		o.argv = exec_ship_script(o.argv, &o.extra_fd, why, sizeof(why));
		if (o.argv == NULL)
			exec_die(EXEC_EXIT_USAGE, "%s", why);
	} else if (o.forward_pmix)
		o.argv = exec_pmix_wrap(o.argv);
	cwd = getcwd(NULL, 0);
	if (cwd == NULL)
		exec_die(EXEC_EXIT_USAGE, "cannot name the working directory: %s", strerror(errno));
	build_exec(&o, &exec_request, cwd);
	p.signal_fd = block_signals();
	p.sock = connect_mux(&o, p.signal_fd);
	if (o.report_guest)
		report_guest(&o);
	print_notice(&o);
	p.sinks[SVM_PROTO_EXTRA].fd = o.extra_fd;
	p.sources[SVM_PROTO_EXTRA].fd = o.extra_fd;
	p.requeue_signal = o.requeue_signal;
	rc = exec_relay(&p, &exec_request);
	free(cwd);
	if (p.fail_code != 0 && p.guest_lost && o.checkpoint_dir != NULL) {
		fprintf(stderr, EXEC_PREFIX "%s\n", p.fail_msg);
		exec_requeue_after_loss(o.checkpoint_dir, started);
		exit(p.fail_code);
	}
	if (p.fail_code != 0 && p.guest_lost && o.task_mode && o.job_dir != NULL &&
	    exec_guest_ended_by_oom(o.job_dir)) {
		fprintf(stderr, EXEC_PREFIX "%s\n", p.fail_msg);
		exec_report_guest_oom(o.job_dir, o.socket_path, p.guest_memory_kib);
		exit(p.fail_code);
	}
	if (p.fail_code != 0)
		exec_die(p.fail_code, "%s", p.fail_msg);
	if (p.status.out_of_memory)
		exec_report_out_of_memory(o.job_dir, o.task_mode ? o.socket_path : NULL,
		                          p.guest_memory_kib);
	if (p.status.kind == SVM_PROTO_KILLED)
		die_by_signal(p.status.signo);
	return rc;
}
