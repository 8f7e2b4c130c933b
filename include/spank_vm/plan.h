/* The guest plan: what Slurm allocated to the job on this node, turned into a
 * guest's vCPUs, pinning, CPU topology, NUMA cells and memory.
 *
 * svm_plan_build() is a pure function of its inputs (the topology is loaded by
 * the caller, the free hugepage counts are passed in), so it is unit-tested on
 * synthetic and XML topologies. The rules, and the choices where the host
 * cannot be mirrored exactly:
 *
 * - Allocation. Slurm's abstract core k is the k-th hwloc Core in logical
 *   order (topology.h) and brings all its PUs. When the job's cpuset (OS ids,
 *   what the kernel enforces) is given too, it must name exactly those PUs;
 *   a mismatch is an error naming both. The cpuset alone is enough.
 * - vCPUs. One per allocated PU, pinned 1:1, numbered by core (logical order)
 *   then PU, so SMT siblings get consecutive vCPUs.
 * - Guest CPU topology, sockets x cores x threads == vCPUs always:
 *   threads = allocated PUs per allocated core when every core contributes the
 *   same number, else 1 (a partial-SMT allocation, e.g. a cpuset holding one
 *   sibling of some core, then looks like a machine without SMT: a guest
 *   scheduler that believes two vCPUs share a core when they do not would
 *   make worse choices than one that sees no SMT at all);
 *   sockets = host packages touched when each holds the same number of
 *   allocated PUs (so guest socket i really is one host package), else 1;
 *   cores = vCPUs / (sockets * threads).
 *   x86 APIC ids: QEMU derives them from the shape (bit fields for thread,
 *   core, socket), and ids above 254 need x2APIC, which QEMU 7.2 offers only
 *   with KVM and an interrupt-remapping IOMMU. kvm keeps the mirrored shape
 *   and sets `x2apic` when the ids go past 254 (the domain XML then adds the
 *   IOMMU and the split irqchip it needs); qemu (TCG, no x2APIC in 7.2)
 *   falls back to sockets = 1, then threads = 1, which always fits.
 * - Maximum vCPUs: kvm 288 (QEMU 7.2's q35 machine limit), qemu 255 (xAPIC
 *   ids without x2APIC), xen 128 (Xen's HVM_MAX_VCPUS). A caller may set a
 *   lower maximum, not a higher one.
 * - NUMA cells: the host NUMA nodes local to allocated PUs, in host (logical)
 *   order. A PU's local node is the first NUMA node attached to its nearest
 *   ancestor that has memory (the DRAM node), so an HBM node beside it or a
 *   CPU-less CXL node attached to the whole machine never becomes a cell.
 *   Each cell is bound strictly to its host node (OS id). A topology without
 *   NUMA objects counts as one node 0.
 * - Memory. Guest RAM = job memory - mem_reserve; hard limit = job memory.
 *   Cell i gets floor(guest * PUs_i / PUs) MiB, and the MiB left over go one
 *   each to the first cells, so the cells sum exactly to the guest RAM.
 *   A cell that would get no memory is an error.
 * - Hugepages. The guest RAM is rounded DOWN to whole pages: the page count
 *   floor(guest / page) is split across the cells like the MiB above, and the
 *   guest RAM becomes pages * page size (so with 1G pages up to 1023 MiB of
 *   the job's memory stays unused; the describe line shows the result). The
 *   rounded RAM must still reach min_guest_mib, every cell needs a page, and
 *   each host node must have the cell's page count free (input). Xen guests
 *   cannot use hugepages (libxl has no such setting): an error.
 * - Emulator threads run on the allocation's PUs, or on the reserved host CPU
 *   list when one is configured (it must name PUs of the topology).
 *
 * Errors, never silent clamps: no or empty allocation, cores or CPUs outside
 * the topology, abstract list and cpuset disagreeing, job memory 0 or above
 * SVM_PLAN_MEM_MAX_MIB, reserve >= job memory, guest RAM below min_guest_mib,
 * vCPUs above the maximum, hugepages short on a node (message names node,
 * needed and free pages). */
#ifndef SPANK_VM_PLAN_H
#define SPANK_VM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hwloc.h>

#include "spank_vm/cpuset.h"
#include "spank_vm/error.h"
#include "spank_vm/values.h"

#define SVM_PLAN_MIN_GUEST_MIB_DEFAULT 128
#define SVM_PLAN_MAX_VCPUS_KVM         288
#define SVM_PLAN_MAX_VCPUS_QEMU        255
#define SVM_PLAN_MAX_VCPUS_XEN         128
/* 1 PiB: larger job memory is a caller's bug, not a node. */
#define SVM_PLAN_MEM_MAX_MIB (UINT64_C(1) << 30)

struct svm_plan_input {
	const char *abstract_cores; /* S_JOB_ALLOC_CORES ("0-3,8"), or NULL */
	const char *os_cpuset;      /* the job's cpuset.cpus, no newline, or NULL */
	hwloc_topology_t topology;  /* loaded by the caller, see svm_topology_load() */
	uint64_t job_mem_mib;       /* S_JOB_ALLOC_MEM */
	uint64_t mem_reserve_mib;
	uint64_t min_guest_mib; /* 0: SVM_PLAN_MIN_GUEST_MIB_DEFAULT */
	enum svm_hypervisor hypervisor;
	enum svm_hugepages hugepages;
	const char *emulator_cpus; /* reserved host CPUs (OS ids); NULL or "": the allocation */
	unsigned max_vcpus;        /* 0: the hypervisor's maximum */
	/* Free pages of the requested hugepage size per host NUMA node, indexed
	 * by node OS id (svm_hugepages_read_free()); a node past the end has none. */
	const uint64_t *hugepages_free;
	size_t hugepages_free_count;
};

struct svm_plan_cell {
	unsigned host_node;      /* OS id of the host NUMA node */
	struct svm_cpuset vcpus; /* guest vCPU ids */
	unsigned npus;           /* == count of vcpus */
	uint64_t mem_mib;
	uint64_t hugepages; /* pages on host_node; 0 without hugepages */
};

struct svm_plan {
	enum svm_hypervisor hypervisor;
	unsigned nvcpus;
	unsigned *vcpu_pu; /* vCPU i runs on host PU (OS id) vcpu_pu[i] */
	unsigned sockets, cores, threads;
	bool x2apic;                    /* kvm: APIC ids above 254, the guest needs x2APIC */
	struct svm_cpuset host_pus;     /* the allocation, OS ids */
	struct svm_cpuset emulator_pus; /* where the emulator threads run */
	struct svm_cpuset host_nodes;   /* OS ids of the cells' host nodes */
	unsigned ncells;
	struct svm_plan_cell *cells; /* in host order */
	uint64_t guest_mib;
	uint64_t hard_limit_mib;
	enum svm_hugepages hugepages;
	uint64_t hugepage_kib; /* 0 without hugepages */
};

/* The largest vCPU count spank_vm gives a guest of this hypervisor (0 for an
 * unknown one). */
unsigned svm_plan_max_vcpus(enum svm_hypervisor hv);

/* Builds the plan; on error *plan holds nothing to free. */
int svm_plan_build(const struct svm_plan_input *in, struct svm_plan *plan, struct svm_err *err);

void svm_plan_free(struct svm_plan *plan);

/* One line for logs, e.g. "4 vCPUs (1x2x2) on PUs 0-3, 2 NUMA cells, 3840 MiB",
 * with snprintf semantics (returns the length the whole line needs). */
size_t svm_plan_describe(const struct svm_plan *plan, char *buf, size_t size);

#endif
