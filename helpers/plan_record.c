#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spank_vm/plan_record.h"

struct writer {
	char *buf;
	size_t len, used;
	int overflow;
};

static void put(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct writer *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->used, w->len - w->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= w->len - w->used)
		w->overflow = 1;
	else
		w->used += (size_t)n;
}

static void put_cpuset(struct writer *w, const char *key, const struct svm_cpuset *set)
{
	char list[4096];

	if (svm_cpuset_format(set, list, sizeof(list)) >= sizeof(list))
		w->overflow = 1;
	put(w, "%s=%s\n", key, list);
}

int svm_plan_record(const struct svm_plan *plan, char *buf, size_t len, struct svm_err *err)
{
	struct writer w = {buf, len, 0, 0};
	char line[512], list[4096];

	if (len == 0)
		return svm_err_set(err, "plan record: no room");
	buf[0] = '\0';
	svm_plan_describe(plan, line, sizeof(line));
	put(&w, "describe=%s\n", line);
	put(&w, "hypervisor=%s\nvcpus=%u\ntopology=%ux%ux%u\n",
	    svm_hypervisor_name(plan->hypervisor), plan->nvcpus, plan->sockets, plan->cores,
	    plan->threads);
	put_cpuset(&w, "host_pus", &plan->host_pus);
	put(&w, "vcpu_pus=");
	for (unsigned i = 0; i < plan->nvcpus; i++)
		put(&w, "%s%u", i ? "," : "", plan->vcpu_pu[i]);
	put(&w, "\n");
	put_cpuset(&w, "emulator_pus", &plan->emulator_pus);
	put_cpuset(&w, "host_nodes", &plan->host_nodes);
	put(&w, "cells=");
	for (unsigned i = 0; i < plan->ncells; i++) {
		svm_cpuset_format(&plan->cells[i].vcpus, list, sizeof(list));
		put(&w, "%s%u:%s:%llu", i ? ";" : "", plan->cells[i].host_node, list,
		    (unsigned long long)plan->cells[i].mem_mib);
	}
	put(&w, "\nguest_mib=%llu\nhard_limit_mib=%llu\nhugepages=%s\n",
	    (unsigned long long)plan->guest_mib, (unsigned long long)plan->hard_limit_mib,
	    svm_hugepages_name(plan->hugepages));
	if (w.overflow)
		return svm_err_set(err, "plan record does not fit in %zu bytes", len);
	return 0;
}
