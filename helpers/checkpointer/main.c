/* spank-vm-checkpointer: --vm-checkpoint-interval. The plugin starts one per
 * job (as root, in the extern step, next to the job's mux) once the guest is
 * up; every interval it saves the running guest into the job's checkpoint
 * directory and lets it run on (spank_vm/live_checkpoint.h), the same save as
 * `spank-vm-ctl checkpoint`. The interval counts from the end of the last
 * save, so a slow save never piles up on the next. It stops on SIGTERM (the
 * plugin's teardown, which then waits for a save under way to finish) or
 * when the job's mux is gone. Each save, or why it failed, is a line of its
 * log. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spank_vm/live_checkpoint.h"
#include "spank_vm/request.h"
#include "spank_vm/runtime.h"
#include "spank_vm/values.h"

#define PREFIX      "spank_vm: spank-vm-checkpointer: "
#define MUX_CHECK_S 5

static const char usage_text[] =
        "usage: spank-vm-checkpointer --runtime-dir DIR --helper-dir DIR --node NAME\n"
        "           --job ID --checkpoint DIR --every SECONDS --pause-timeout SECONDS\n"
        "           [--log FILE] [--uri URI]\n"
        "Saves job ID's running guest into its checkpoint directory every SECONDS\n"
        "until SIGTERM or the end of the job's mux.\n";

struct options {
	struct svm_live_checkpoint live;
	unsigned every_s;
	const char *log;
};

static int parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	struct svm_err err;

	if (svm_parse_uint(text, min, max, out, &err) == 0)
		return 0;
	fprintf(stderr, PREFIX "%s\n", err.msg);
	return -1;
}

static int parse_option(int opt, const char *arg, struct options *o)
{
	uint64_t v;

	switch (opt) {
	case 'r':
		o->live.runtime_dir = arg;
		return 0;
	case 'x':
		o->live.helper_dir = arg;
		return 0;
	case 'n':
		o->live.node = arg;
		return 0;
	case 'c':
		o->live.checkpoint_dir = arg;
		return 0;
	case 'u':
		o->live.uri = arg;
		return 0;
	case 'l':
		o->log = arg;
		return 0;
	case 'j':
		if (parse_number(arg, 1, UINT32_MAX - 1, &v) != 0)
			return -1;
		o->live.job_id = (uint32_t)v;
		return 0;
	case 'e':
		if (parse_number(arg, SVM_CHECKPOINT_INTERVAL_MIN_S, SVM_CHECKPOINT_INTERVAL_MAX_S,
		                 &v) != 0)
			return -1;
		o->every_s = (unsigned)v;
		return 0;
	case 'p':
		if (parse_number(arg, 1, 3600, &v) != 0)
			return -1;
		o->live.pause_timeout_s = (unsigned)v;
		return 0;
	default:
		return -1;
	}
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option options[] = {
	        {"runtime-dir", required_argument, NULL, 'r'},
	        {"helper-dir", required_argument, NULL, 'x'},
	        {"node", required_argument, NULL, 'n'},
	        {"job", required_argument, NULL, 'j'},
	        {"checkpoint", required_argument, NULL, 'c'},
	        {"every", required_argument, NULL, 'e'},
	        {"pause-timeout", required_argument, NULL, 'p'},
	        {"log", required_argument, NULL, 'l'},
	        {"uri", required_argument, NULL, 'u'},
	        {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
		if (parse_option(opt, optarg, o) != 0)
			return -1;
	if (optind != argc || o->live.runtime_dir == NULL || o->live.helper_dir == NULL ||
	    o->live.node == NULL || o->live.job_id == 0 || o->live.checkpoint_dir == NULL ||
	    o->every_s == 0 || o->live.pause_timeout_s == 0)
		return -1;
	return 0;
}

/* stdout and stderr (provision's report too) append to the log. */
static int open_log(const char *path)
{
	int fd;

	if (path == NULL)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
		fprintf(stderr, PREFIX "cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One line of the log, after the time of day. */
static void __attribute__((format(printf, 1, 2))) log_line(const char *fmt, ...)
{
	char when[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	strftime(when, sizeof(when), "%F %T", localtime_r(&t, &tm));
	printf("%s ", when);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static bool mux_runs(const struct options *o)
{
	return svm_job_mux_pid(o->live.runtime_dir, o->live.helper_dir, o->live.job_id) != 0;
}

/* Waits out one interval; false when told to stop or when the job's mux is
 * gone (looked at every few seconds: a teardown that never ran must not
 * leave this process behind for a long interval). */
static bool wait_interval(const struct options *o, const sigset_t *stop)
{
	double deadline = now_s() + o->every_s;

	for (;;) {
		double left = deadline - now_s();
		struct timespec ts;

		if (!mux_runs(o))
			return false;
		if (left <= 0)
			return true;
		if (left > MUX_CHECK_S)
			left = MUX_CHECK_S;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		if (sigtimedwait(stop, NULL, &ts) > 0)
			return false;
	}
}

int main(int argc, char **argv)
{
	struct options o = {.live = {.runtime_dir = NULL}};
	sigset_t stop;

	if (parse_args(argc, argv, &o) != 0) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (open_log(o.log) != 0)
		return 1;
	/* Blocked, so that a save under way always ends with the guest running. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0)
		return 1;
	log_line("job %u: a checkpoint every %u s into %s", o.live.job_id, o.every_s,
	         o.live.checkpoint_dir);
	while (wait_interval(&o, &stop)) {
		struct svm_err err;
		double t0 = now_s();

		if (svm_live_checkpoint(&o.live, &err) == 0)
			log_line("checkpoint written in %.1f s", now_s() - t0);
		else
			log_line("no checkpoint: %s", err.msg);
	}
	log_line("stopped");
	return 0;
}
