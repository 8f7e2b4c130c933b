/* checkpoint JOBID: saves the guest of a running --vm-checkpoint job on this
 * node into the user's checkpoint directory and lets it run on
 * (spank_vm/live_checkpoint.h). */
#include <stdio.h>

#include "ctl.h"
#include "spank_vm/live_checkpoint.h"
#include "spank_vm/request.h"
#include "spank_vm/runtime.h"

static int read_request(const struct ctl *c, uint32_t job, struct svm_request *req,
                        struct svm_err *err)
{
	char text[8192];

	if (svm_job_file_read(c->config.runtime_dir, job, SVM_REQUEST_FILE, text, sizeof(text),
	                      NULL) != 0)
		return svm_err_set(err, "job %u runs no guest on %s", job, c->node);
	if (svm_request_decode(req, text, err) != 0)
		return -1;
	if (req->checkpoint_dir[0] == '\0')
		return svm_err_set(err, "job %u did not ask for checkpoints (--vm-checkpoint=DIR)",
		                   job);
	return 0;
}

int ctl_checkpoint(const struct ctl *c, uint32_t job, struct svm_err *err)
{
	struct svm_request req = {.enabled = false};
	struct svm_live_checkpoint live = {.runtime_dir = c->config.runtime_dir,
	                                   .helper_dir = c->config.helper_dir,
	                                   .node = c->node,
	                                   .uri = c->uri,
	                                   .job_id = job,
	                                   .pause_timeout_s = c->config.heartbeat_timeout_s};

	if (read_request(c, job, &req, err) != 0)
		return -1;
	live.checkpoint_dir = req.checkpoint_dir;
	if (svm_live_checkpoint(&live, err) != 0)
		return -1;
	printf("job %u: checkpoint written to %s; the job runs on\n", job, req.checkpoint_dir);
	return 0;
}
