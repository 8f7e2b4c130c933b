/* spank-vm-requeued: whether Slurm is ending a job to requeue it. The
 * plugin's teardown of a --vm-checkpoint job asks before it saves the guest:
 * libslurm stays out of spank_vm.so, which slurmstepd loads. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "spank_vm/slurm_job.h"
#include "spank_vm/values.h"

#define PREFIX "spank_vm: spank-vm-requeued: "

enum { EXIT_REQUEUEING = 0, EXIT_NOT_REQUEUEING = 1, EXIT_UNKNOWN = 2 };

static const char usage_text[] =
        "usage: spank-vm-requeued [--slurm-conf FILE] JOBID\n"
        "Exits 0 when Slurm is ending job JOBID to requeue it (scontrol requeue,\n"
        "preemption with PreemptMode=REQUEUE), 1 when it is not, 2 when it cannot tell.\n";

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"slurm-conf", required_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *slurm_conf = NULL;
	struct svm_err err;
	bool requeueing = false;
	uint64_t job;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'c')
			slurm_conf = optarg;
		else {
			fputs(usage_text, opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : EXIT_UNKNOWN;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return EXIT_UNKNOWN;
	}
	if (svm_parse_uint(argv[optind], 1, UINT32_MAX - 1, &job, &err) != 0 ||
	    svm_slurm_job_requeueing((uint32_t)job, slurm_conf, &requeueing, &err) != 0) {
		fprintf(stderr, PREFIX "%s\n", err.msg);
		return EXIT_UNKNOWN;
	}
	printf("job %u is %sbeing requeued\n", (unsigned)job, requeueing ? "" : "not ");
	return requeueing ? EXIT_REQUEUEING : EXIT_NOT_REQUEUEING;
}
