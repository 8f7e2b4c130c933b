/* Asks slurmctld about a job through libslurm, as whoever runs this (a user
 * may read their own job). libslurm ends its process on a configuration it
 * cannot read and an RPC may take MessageTimeout: the question is asked in a
 * child, so a caller such as spank-vm-mux only ever waits a bounded time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spank_vm/slurm_job.h"

#define ANSWER_TIMEOUT_MS 15000

enum answer { ANSWER_REQUEUEING = 'R', ANSWER_NOT = 'N', ANSWER_ERROR = 'E' };

/* The child: one answer byte, then an error text for ANSWER_ERROR. */
static void ask(int fd, uint32_t job_id, const char *slurm_conf)
{
	job_info_msg_t *msg = NULL;
	char reply[SVM_ERR_MAX];
	int len;

	slurm_init(slurm_conf);
	if (slurm_load_job(&msg, job_id, SHOW_ALL) != SLURM_SUCCESS)
		len = snprintf(reply, sizeof(reply), "%ccannot ask Slurm about job %u: %s",
		               ANSWER_ERROR, job_id, slurm_strerror(slurm_get_errno()));
	else if (msg->record_count < 1)
		len = snprintf(reply, sizeof(reply), "%cSlurm does not know job %u", ANSWER_ERROR,
		               job_id);
	else
		len = snprintf(reply, sizeof(reply), "%c",
		               svm_job_state_requeues(msg->job_array[0].job_state)
		                       ? ANSWER_REQUEUEING
		                       : ANSWER_NOT);
	if (len > (int)sizeof(reply) - 1)
		len = (int)sizeof(reply) - 1;
	_exit(write(fd, reply, (size_t)len) == len ? 0 : 1);
}

static ssize_t read_answer(int fd, char *buf, size_t cap)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t got = 0;

	while (got < cap) {
		ssize_t n;
		int ready = poll(&pfd, 1, ANSWER_TIMEOUT_MS);

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return ready == 0 && got == 0 ? -2 : (ssize_t)got;
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int svm_slurm_job_requeueing(uint32_t job_id, const char *slurm_conf, bool *requeueing,
                             struct svm_err *err)
{
	char answer[SVM_ERR_MAX];
	int fds[2], rc = -1;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return svm_err_errno(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return svm_err_errno(err, errno, "fork");
	}
	if (pid == 0) {
		close(fds[0]);
		ask(fds[1], job_id, slurm_conf);
	}
	close(fds[1]);
	n = read_answer(fds[0], answer, sizeof(answer) - 1);
	close(fds[0]);
	if (n == -2)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n == -2)
		svm_err_set(err, "Slurm did not say within %d s whether job %u is requeued",
		            ANSWER_TIMEOUT_MS / 1000, job_id);
	else if (n < 1)
		svm_err_set(err, "cannot ask Slurm about job %u (see the log for libslurm's error)",
		            job_id);
	else if (answer[0] == ANSWER_ERROR) {
		answer[n] = '\0';
		svm_err_set(err, "%s", answer + 1);
	} else {
		*requeueing = answer[0] == ANSWER_REQUEUEING;
		rc = 0;
	}
	return rc;
}
