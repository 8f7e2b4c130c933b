/* The child's side of an EXEC, between fork and execve. Everything that can
 * fail is reported through the close-on-exec status pipe: the parent reads
 * end-of-file when execve succeeded, or one agent_spawn_report. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* Above every fd a program may ask for (EXTRA_FD <= 1023), so moving the
 * child's descriptors into place never overwrites one not yet moved. */
#define SPAWN_HIGH_FD 1024
/* What execvp searches when the environment has no PATH. */
#define DEFAULT_PATH "/bin:/usr/bin"

/* The status pipe, moved out of the way of the program's descriptors. */
static int report_fd = -1;
/* The descriptor limit programs start with: the kernel's default for init. */
static struct rlimit program_nofile;

int agent_spawn_init_limits(struct svm_err *err)
{
	struct rlimit agent;

	if (getrlimit(RLIMIT_NOFILE, &program_nofile) != 0)
		return svm_err_errno(err, errno, "getrlimit");
	/* The agent holds several descriptors per session, and its children
	 * move theirs above SPAWN_HIGH_FD, which the default 1024 forbids. */
	agent = program_nofile;
	agent.rlim_cur = agent.rlim_max;
	if (agent.rlim_cur <= SPAWN_HIGH_FD + 8)
		return svm_err_set(err, "the descriptor limit %llu is too low",
		                   (unsigned long long)agent.rlim_max);
	if (setrlimit(RLIMIT_NOFILE, &agent) != 0)
		return svm_err_errno(err, errno, "setrlimit");
	return 0;
}

static void __attribute__((noreturn)) fail(int stage, int error)
{
	struct agent_spawn_report report = {.stage = stage, .error = error};

	/* Nothing else to do if the parent cannot hear it: it sees the exit. */
	(void)!write(report_fd, &report, sizeof(report));
	_exit(127);
}

/* The agent ignores SIGPIPE and blocks SIGCHLD; a program starts with the
 * defaults, as after a normal login. */
static int reset_signals(void)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

static int move_high(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD);
}

static int setup_fds(const struct agent_spawn *sp)
{
	int in = sp->stdin_fd >= 0 ? move_high(sp->stdin_fd)
	                           : open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = move_high(sp->stdout_fd), errfd = move_high(sp->stderr_fd);
	int extra = move_high(sp->extra_fd);

	if (in < 0 || out < 0 || errfd < 0 || (sp->extra_fd >= 0 && extra < 0))
		return -1;
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(errfd, STDERR_FILENO) < 0)
		return -1;
	/* The agent opens everything close-on-exec; this is the guarantee. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
		return -1;
	if (extra >= 0 && dup2(extra, sp->extra_target) < 0)
		return -1;
	return setrlimit(RLIMIT_NOFILE, &program_nofile);
}

static int set_identity(const struct agent_spawn *sp)
{
	if (sp->keep_identity)
		return 0;
	if (setgroups(sp->ngroups, sp->groups) != 0 || setgid(sp->gid) != 0 || setuid(sp->uid) != 0)
		return -1;
	return 0;
}

static const char *env_path(char **envp)
{
	for (char **e = envp; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	return DEFAULT_PATH;
}

/* A file the kernel cannot execute is a script without #!: execvp runs it
 * with /bin/sh, and so does this. */
static void exec_as_script(const struct agent_spawn *sp, const char *file)
{
	size_t argc = 0;
	char **argv;

	while (sp->argv[argc] != NULL)
		argc++;
	argv = calloc(argc + 2, sizeof(*argv));
	if (argv == NULL)
		return;
	argv[0] = (char *)"/bin/sh";
	argv[1] = (char *)file;
	for (size_t i = 1; i < argc; i++)
		argv[i + 1] = sp->argv[i];
	execve("/bin/sh", argv, sp->envp);
	errno = ENOEXEC;
}

/* Tries path; returns whether the search should go on. */
static bool try_exec(const struct agent_spawn *sp, const char *path, int *error)
{
	execve(path, sp->argv, sp->envp);
	if (errno == ENOEXEC)
		exec_as_script(sp, path);
	switch (errno) {
	case EACCES:
		*error = EACCES; /* remembered: it says more than a later ENOENT */
		return true;
	case ENOENT:
	case ENOTDIR:
	case ESTALE:
	case ENODEV:
	case ETIMEDOUT:
		if (*error == 0)
			*error = errno;
		return true;
	default:
		*error = errno;
		return false;
	}
}

/* execvpe's search, but in the PATH of the program's environment (glibc's
 * looks at the agent's own). */
static int exec_program(const struct agent_spawn *sp)
{
	const char *name = sp->argv[0], *dirs;
	char path[PATH_MAX];
	int error = 0;

	if (sp->program != NULL) {
		try_exec(sp, sp->program, &error);
		return error;
	}
	if (name[0] == '\0')
		return ENOENT;
	if (strchr(name, '/') != NULL) {
		try_exec(sp, name, &error);
		return error;
	}
	dirs = env_path(sp->envp);
	for (;;) {
		size_t len = strcspn(dirs, ":");
		int n = snprintf(path, sizeof(path), "%.*s%s%s", (int)len, dirs, len ? "/" : "",
		                 name);

		if ((n < 0 || (size_t)n >= sizeof(path)) && error == 0)
			error = ENAMETOOLONG;
		else if (n > 0 && (size_t)n < sizeof(path) && !try_exec(sp, path, &error))
			break;
		if (dirs[len] == '\0')
			break;
		dirs += len + 1;
	}
	return error ? error : ENOENT;
}

/* Before anything of the program runs, so that all it starts is counted.
 * A failure only loses the count: the program runs all the same. */
static void join_memcg(const char *procs)
{
	int fd = procs != NULL ? open(procs, O_WRONLY | O_CLOEXEC) : -1;

	if (fd >= 0) {
		(void)!write(fd, "0", 1);
		close(fd);
	}
}

void agent_spawn_child(const struct agent_spawn *sp)
{
	report_fd = move_high(sp->status_fd);
	if (report_fd < 0)
		report_fd = sp->status_fd;
	/* Not the agent's raised priority (main.c); in host mode this is
	 * spank-vm-hostcall's own, which it never raised. */
	if (getpriority(PRIO_PROCESS, 0) < 0)
		(void)setpriority(PRIO_PROCESS, 0, 0);
	if (reset_signals() != 0 || setsid() < 0 || setup_fds(sp) != 0)
		fail(AGENT_SPAWN_SETUP, errno);
	join_memcg(sp->memcg_procs);
	if (set_identity(sp) != 0)
		fail(AGENT_SPAWN_IDENTITY, errno);
	umask(sp->umask);
	if (chdir(sp->cwd) != 0)
		fail(AGENT_SPAWN_CHDIR, errno);
	fail(AGENT_SPAWN_EXEC, exec_program(sp));
}
