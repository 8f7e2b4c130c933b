/* How long one plan takes on a large node: 256 PUs in 8 NUMA nodes, the whole
 * node allocated (abstract cores and cpuset both given, so the cross-check
 * runs too). The extern step makes one plan per job, so anything under a
 * millisecond is invisible next to booting a guest. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "spank_vm/plan.h"

#define TOPOLOGY   "pack:2 numa:4 core:16 pu:2"
#define ITERATIONS 2000
#define TARGET_US  1000.0

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int plan_once(const struct svm_plan_input *in)
{
	struct svm_err err = {""};
	struct svm_plan plan;

	if (svm_plan_build(in, &plan, &err) < 0) {
		fprintf(stderr, "bench_plan: %s\n", err.msg);
		return -1;
	}
	svm_plan_free(&plan);
	return 0;
}

int main(void)
{
	hwloc_topology_t topo;
	struct svm_plan_input in = {
	        .abstract_cores = "0-127",
	        .os_cpuset = "0-255",
	        .job_mem_mib = 262144,
	        .mem_reserve_mib = 1024,
	        .hypervisor = SVM_HV_KVM,
	};
	double start, per_plan;
	int rc = 1;

	if (hwloc_topology_init(&topo) < 0)
		return 1;
	if (hwloc_topology_set_synthetic(topo, TOPOLOGY) < 0 || hwloc_topology_load(topo) < 0) {
		fprintf(stderr, "bench_plan: cannot load \"%s\"\n", TOPOLOGY);
		goto out;
	}
	in.topology = topo;
	if (plan_once(&in) < 0) /* warm up, and fail early on a bad input */
		goto out;
	start = now_us();
	for (int i = 0; i < ITERATIONS; i++)
		if (plan_once(&in) < 0)
			goto out;
	per_plan = (now_us() - start) / ITERATIONS;
	printf("plan 256 PUs / 8 NUMA: %.1f us per plan (target < %.0f us)\n", per_plan, TARGET_US);
	rc = 0;
out:
	hwloc_topology_destroy(topo);
	return rc;
}
