#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provision.h"
#include "spank_vm/cgroup.h"
#include "spank_vm/plan_record.h"
#include "spank_vm/runtime.h"
#include "spank_vm/topology.h"

static int hugepages_free(hwloc_topology_t topo, enum svm_hugepages size, uint64_t **out,
                          size_t *count, struct svm_err *err)
{
	size_t n = svm_topology_node_bound(topo);

	*out = NULL;
	*count = 0;
	if (size == SVM_HUGEPAGES_NONE)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (*out == NULL)
		return svm_err_set(err, "out of memory");
	*count = n;
	return svm_hugepages_read_free("/sys", size, *out, n, err);
}

int provision_build_plan(const struct provision_opts *o, struct svm_plan *plan, struct svm_err *err)
{
	struct svm_plan_input in = {0};
	hwloc_topology_t topo = NULL;
	struct svm_cpuset job_cpus;
	char *cpus_text = NULL;
	uint64_t *free_pages = NULL;
	size_t nfree = 0;
	int rc = -1;

	if (svm_topology_load(o->topology_xml, &topo, err) != 0)
		return -1;
	in.os_cpuset = o->cpuset;
	if (o->cgroup_pid > 0) {
		if (svm_cgroup_job_cpus_of_pid(o->cgroup_pid, "/sys/fs/cgroup", &job_cpus, err) !=
		    0)
			goto out;
		cpus_text = svm_cpuset_to_str(&job_cpus, err);
		if (cpus_text == NULL)
			goto out;
		in.os_cpuset = cpus_text;
	}
	if (hugepages_free(topo, o->hugepages, &free_pages, &nfree, err) != 0)
		goto out;
	in.abstract_cores = o->cores;
	in.topology = topo;
	in.job_mem_mib = o->mem_mib;
	in.mem_reserve_mib = o->reserve_mib;
	in.min_guest_mib = o->min_guest_mib;
	in.hypervisor = o->hypervisor;
	in.hugepages = o->hugepages;
	in.emulator_cpus = o->emulator_cpus;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = nfree;
	rc = svm_plan_build(&in, plan, err);
out:
	free(free_pages);
	free(cpus_text);
	hwloc_topology_destroy(topo);
	return rc;
}

/* Atomic write (temp, fsync, rename) of a world-readable record. */
static int write_record(const char *path, const char *text, struct svm_err *err)
{
	char tmp[4096];
	FILE *f;
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return svm_err_set(err, "path too long: %s", path);
	f = fopen(tmp, "wxe");
	if (f == NULL && errno == EEXIST && unlink(tmp) == 0)
		f = fopen(tmp, "wxe");
	if (f == NULL)
		return svm_err_errno(err, errno, "cannot create %s", tmp);
	if (fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = svm_err_errno(err, errno, "cannot write %s", tmp);
	if (fclose(f) != 0 && rc == 0)
		rc = svm_err_errno(err, errno, "cannot write %s", tmp);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = svm_err_errno(err, errno, "cannot rename %s", tmp);
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int provision_record_plan(const struct svm_plan *plan, const char *path, struct svm_err *err)
{
	char record[16384];

	if (svm_plan_record(plan, record, sizeof(record), err) != 0)
		return -1;
	return write_record(path, record, err);
}

int provision_cmd_plan(const struct provision_opts *o, struct svm_err *err)
{
	struct svm_plan plan;
	char record[16384];
	int rc;

	if (provision_build_plan(o, &plan, err) != 0)
		return -1;
	if (o->out != NULL)
		rc = provision_record_plan(&plan, o->out, err);
	else if ((rc = svm_plan_record(&plan, record, sizeof(record), err)) == 0 &&
	         fputs(record, stdout) == EOF)
		rc = svm_err_errno(err, errno, "stdout");
	svm_plan_free(&plan);
	return rc;
}
