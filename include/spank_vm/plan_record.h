/* The plan as the extern step records it (runtime_dir/<jobid>/plan) for
 * admins, spank-vm-ctl and tests: "key=value" lines, lists in cpuset syntax. */
#ifndef SPANK_VM_PLAN_RECORD_H
#define SPANK_VM_PLAN_RECORD_H

#include <stddef.h>

#include "spank_vm/error.h"
#include "spank_vm/plan.h"

#define SVM_PLAN_FILE "plan"

/* Keys: describe, hypervisor, vcpus, topology (SxCxT), host_pus, vcpu_pus
 * (host PU of each vCPU in order, comma-separated), emulator_pus, host_nodes,
 * cells (per cell "node:vcpus:MiB" separated by ';'), guest_mib,
 * hard_limit_mib, hugepages. */
int svm_plan_record(const struct svm_plan *plan, char *buf, size_t len, struct svm_err *err);

#endif
