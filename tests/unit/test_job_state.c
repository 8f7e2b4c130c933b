#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <slurm/slurm.h>

#include "spank_vm/slurm_job.h"

/* What slurmctld leaves on a job it requeues, and on jobs it ends. */
static void test_requeue_states(void **state)
{
	(void)state;
	assert_true(svm_job_state_requeues(JOB_PENDING | JOB_COMPLETING));
	assert_true(svm_job_state_requeues(JOB_PENDING | JOB_COMPLETING | JOB_REQUEUE_HOLD));
	assert_true(svm_job_state_requeues(JOB_RUNNING | JOB_REQUEUE));
	assert_true(svm_job_state_requeues(JOB_COMPLETE | JOB_REQUEUE_FED));
}

static void test_ending_states(void **state)
{
	(void)state;
	assert_false(svm_job_state_requeues(JOB_RUNNING));
	assert_false(svm_job_state_requeues(JOB_COMPLETE | JOB_COMPLETING));
	assert_false(svm_job_state_requeues(JOB_CANCELLED | JOB_COMPLETING));
	assert_false(svm_job_state_requeues(JOB_TIMEOUT | JOB_COMPLETING));
	assert_false(svm_job_state_requeues(JOB_FAILED));
	assert_false(svm_job_state_requeues(JOB_OOM | JOB_COMPLETING));
	assert_false(svm_job_state_requeues(JOB_PREEMPTED | JOB_COMPLETING));
	assert_false(svm_job_state_requeues(JOB_NODE_FAIL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_requeue_states),
	        cmocka_unit_test(test_ending_states),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
