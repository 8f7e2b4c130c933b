#include <stdio.h>
#include <string.h>

#include "spank_vm/plan_record.h"
#include "spank_vm/text_writer.h"

static void put_cpuset(struct svm_text_writer *w, const char *key, const struct svm_cpuset *set)
{
	char list[4096];

	if (svm_cpuset_format(set, list, sizeof(list)) >= sizeof(list))
		w->overflow = true;
	svm_text_put(w, "%s=%s\n", key, list);
}

int svm_plan_record(const struct svm_plan *plan, char *buf, size_t len, struct svm_err *err)
{
	struct svm_text_writer w = {buf, len, 0, false};
	char line[512], list[4096];

	if (len == 0)
		return svm_err_set(err, "plan record: no room");
	buf[0] = '\0';
	svm_plan_describe(plan, line, sizeof(line));
	svm_text_put(&w, "describe=%s\n", line);
	svm_text_put(&w, "hypervisor=%s\nvcpus=%u\ntopology=%ux%ux%u\n",
	             svm_hypervisor_name(plan->hypervisor), plan->nvcpus, plan->sockets,
	             plan->cores, plan->threads);
	put_cpuset(&w, "host_pus", &plan->host_pus);
	svm_text_put(&w, "vcpu_pus=");
	for (unsigned i = 0; i < plan->nvcpus; i++)
		svm_text_put(&w, "%s%u", i ? "," : "", plan->vcpu_pu[i]);
	svm_text_put(&w, "\n");
	put_cpuset(&w, "emulator_pus", &plan->emulator_pus);
	put_cpuset(&w, "host_nodes", &plan->host_nodes);
	svm_text_put(&w, "cells=");
	for (unsigned i = 0; i < plan->ncells; i++) {
		svm_cpuset_format(&plan->cells[i].vcpus, list, sizeof(list));
		svm_text_put(&w, "%s%u:%s:%llu", i ? ";" : "", plan->cells[i].host_node, list,
		             (unsigned long long)plan->cells[i].mem_mib);
	}
	svm_text_put(&w, "\nguest_mib=%llu\nhard_limit_mib=%llu\nhugepages=%s\n",
	             (unsigned long long)plan->guest_mib, (unsigned long long)plan->hard_limit_mib,
	             svm_hugepages_name(plan->hugepages));
	if (w.overflow)
		return svm_err_set(err, "plan record does not fit in %zu bytes", len);
	return 0;
}
