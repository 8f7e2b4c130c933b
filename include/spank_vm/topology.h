/* The host side of the allocation math: loading the node's hwloc topology the
 * way the plan needs it, mapping Slurm's abstract core numbers onto it, and
 * reading the free hugepages of each NUMA node. The plan itself (plan.h) is a
 * pure function; everything here that touches the host says so. */
#ifndef SPANK_VM_TOPOLOGY_H
#define SPANK_VM_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include <hwloc.h>

#include "spank_vm/cpuset.h"
#include "spank_vm/error.h"
#include "spank_vm/values.h"

/* Loads (host: reads /sys and /proc) the topology of this machine, or of a
 * topology XML file when xml_path is not NULL (slurmd keeps the node's in its
 * spool directory as hwloc_topo_whole.xml). Disallowed PUs and nodes are kept
 * (HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED): the extern step runs inside the
 * job's cpuset, and without the flag hwloc would drop every core outside it,
 * shifting the logical core numbers that Slurm's abstract ids refer to.
 * Destroy the result with hwloc_topology_destroy(). */
int svm_topology_load(const char *xml_path, hwloc_topology_t *out, struct svm_err *err);

/* Slurm's abstract core k is the k-th Core object in hwloc's logical order
 * (the order slurmd enumerates them in). A topology without a Core level
 * (some virtual machines report none) counts each PU as a core. */
unsigned svm_topology_ncores(hwloc_topology_t topo);
hwloc_obj_t svm_topology_core(hwloc_topology_t topo, unsigned k);

/* The host PUs (OS ids) of the abstract cores in `cores`: every PU of each
 * core, since Slurm allocates whole cores. A core beyond the topology is an
 * error naming it and the cores the node has. */
int svm_topology_cores_to_pus(hwloc_topology_t topo, const struct svm_cpuset *cores,
                              struct svm_cpuset *pus, struct svm_err *err);

/* Checks that every id in `pus` is a PU (OS id) of the topology; `what` names
 * the list in the message ("the job cpuset"). */
int svm_topology_check_pus(hwloc_topology_t topo, const struct svm_cpuset *pus, const char *what,
                           struct svm_err *err);

/* One more than the largest NUMA node OS id: the length of a per-node array
 * such as the free hugepage counts. At least 1. */
unsigned svm_topology_node_bound(hwloc_topology_t topo);

/* Page size in KiB of a hugepage setting; 0 for SVM_HUGEPAGES_NONE. */
uint64_t svm_hugepage_kib(enum svm_hugepages size);

/* Reads (host: sysfs) the free hugepages of the given size on NUMA nodes
 * 0 .. nnodes - 1 into free_pages[], from
 * <sysfs_root>/devices/system/node/node<N>/hugepages/hugepages-<kib>kB/free_hugepages.
 * sysfs_root is "/sys" on a real node (tests point it at a fake tree). A node
 * or page size that does not exist counts 0 free pages; on a kernel without
 * NUMA directories node 0 reads the global pool under kernel/mm/hugepages. */
int svm_hugepages_read_free(const char *sysfs_root, enum svm_hugepages size, uint64_t *free_pages,
                            size_t nnodes, struct svm_err *err);

#endif
