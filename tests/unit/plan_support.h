/* Helpers shared by the plan and domain XML tests: topologies, files, and
 * running virt-xml-validate. Failures end the current test through cmocka. */
#ifndef SPANK_VM_TEST_PLAN_SUPPORT_H
#define SPANK_VM_TEST_PLAN_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hwloc.h>

#include "spank_vm/domain_xml.h"
#include "spank_vm/plan.h"

/* A topology from an hwloc synthetic description ("pack:2 core:4 pu:2"). */
hwloc_topology_t support_synthetic(const char *description);

/* A topology from tests/unit/topologies/<name>. */
hwloc_topology_t support_fixture(const char *name);

/* Plan inputs with the defaults the tests start from: kvm, no reserve, no
 * hugepages, the allocation given by `cores` and/or `cpuset`. */
struct svm_plan_input support_input(hwloc_topology_t topo, const char *cores, const char *cpuset,
                                    uint64_t job_mib);

/* Builds a plan that must succeed; the error message is printed if not. */
void support_plan(const struct svm_plan_input *in, struct svm_plan *plan);

/* Builds a plan that must fail with a message containing every one of the
 * fragments: support_plan_fails(&in, "first", "second"). */
#define support_plan_fails(in, ...)                                                                \
	support_plan_fails_with((in), (const char *const[]){__VA_ARGS__, NULL})
void support_plan_fails_with(const struct svm_plan_input *in, const char *const fragments[]);

/* The canonical list of a set, in a static buffer (one per call site line is
 * enough: the tests compare it at once). */
const char *support_list(const struct svm_cpuset *set);

/* Path under tests/unit (SVM_TEST_DATA_DIR). */
const char *support_data_path(const char *relative, char *buf, size_t size);

char *support_read_file(const char *path);
void support_write_file(const char *path, const char *text);

/* The identity the XML tests render: fixed name, UUID, paths, two shares,
 * and a disk image when with_disk. */
struct svm_domain_spec support_spec(bool with_disk);

/* Runs `virt-xml-validate FILE domain` on the document; true when it
 * validates. On failure the validator's output is printed with the document. */
bool support_validates(const char *domain_xml);

#endif
