#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/plan.h"
#include "spank_vm/topology.h"

/* Highest x86 APIC id span a guest may use without x2APIC: QEMU refuses an
 * APIC id limit above 255 unless an interrupt-remapping IOMMU is configured. */
#define XAPIC_ID_SPAN_MAX 255

/* Lists quoted in messages are cut here; the message itself is SVM_ERR_MAX. */
#define LIST_QUOTE_MAX 120

struct builder {
	const struct svm_plan_input *in;
	hwloc_topology_t topo;
	struct svm_plan *plan;
	struct svm_err *err;
	unsigned max_vcpus;
	hwloc_obj_t *vcpu_node; /* the NUMA node local to each vCPU's PU */
	unsigned *package_pus;  /* allocated PUs per host package (logical index) */
	unsigned npackages;     /* length of package_pus */
	unsigned npus;          /* allocated PUs: the length of vcpu_pu */
	bool uniform_smt;       /* every allocated core brings as many PUs */
	unsigned pus_per_core;  /* that number, when uniform */
};

unsigned svm_plan_max_vcpus(enum svm_hypervisor hv)
{
	switch (hv) {
	case SVM_HV_KVM:
		return SVM_PLAN_MAX_VCPUS_KVM;
	case SVM_HV_QEMU:
		return SVM_PLAN_MAX_VCPUS_QEMU;
	case SVM_HV_XEN:
		return SVM_PLAN_MAX_VCPUS_XEN;
	default:
		return 0;
	}
}

static int check_settings(struct builder *b)
{
	const struct svm_plan_input *in = b->in;
	unsigned limit = svm_plan_max_vcpus(in->hypervisor);

	if (in->topology == NULL)
		return svm_err_set(b->err, "no host topology given to the plan");
	if (limit == 0)
		return svm_err_set(b->err, "no hypervisor chosen; accepted: kvm, qemu, xen");
	if (in->max_vcpus > limit)
		return svm_err_set(b->err,
		                   "a maximum of %u vCPUs is above the %u a %s guest can have",
		                   in->max_vcpus, limit, svm_hypervisor_name(in->hypervisor));
	if (in->hugepages != SVM_HUGEPAGES_NONE && svm_hugepage_kib(in->hugepages) == 0)
		return svm_err_set(b->err, "unknown hugepage setting; accepted: none, 2M, 1G");
	if (in->hugepages != SVM_HUGEPAGES_NONE && in->hypervisor == SVM_HV_XEN)
		return svm_err_set(b->err, "hugepages are not available with hypervisor xen; "
		                           "accepted with kvm and qemu");
	b->max_vcpus = in->max_vcpus ? in->max_vcpus : limit;
	return 0;
}

/* Parses a list and prefixes any error with what the list is. */
static int parse_list(const char *text, const char *what, struct svm_cpuset *out,
                      struct svm_err *err)
{
	struct svm_err why;

	if (svm_cpuset_parse(text, SVM_CPUSET_MAX - 1, out, &why) < 0)
		return svm_err_set(err, "%s: %s", what, why.msg);
	return 0;
}

static int check_lists_agree(const struct svm_cpuset *cores, const struct svm_cpuset *from_cores,
                             const struct svm_cpuset *cpuset, struct svm_err *err)
{
	char cores_text[LIST_QUOTE_MAX], pus_text[LIST_QUOTE_MAX], cpuset_text[LIST_QUOTE_MAX];

	if (svm_cpuset_equal(from_cores, cpuset))
		return 0;
	svm_cpuset_format(cores, cores_text, sizeof(cores_text));
	svm_cpuset_format(from_cores, pus_text, sizeof(pus_text));
	svm_cpuset_format(cpuset, cpuset_text, sizeof(cpuset_text));
	return svm_err_set(err,
	                   "Slurm's abstract cores %s (host PUs %s) do not match the job cpuset "
	                   "%s: the node's topology is not the one slurmd uses",
	                   cores_text, pus_text, cpuset_text);
}

/* The allocation as host PU OS ids; the cpuset wins when both are given. */
static int resolve_allocation(struct builder *b)
{
	const struct svm_plan_input *in = b->in;
	struct svm_cpuset cores, from_cores, cpuset;
	struct svm_cpuset *pus = &b->plan->host_pus;
	bool have_cores = in->abstract_cores != NULL, have_cpuset = in->os_cpuset != NULL;

	if (!have_cores && !have_cpuset)
		return svm_err_set(b->err, "no allocation given: neither Slurm's core list "
		                           "nor the job cpuset");
	if (have_cores && (parse_list(in->abstract_cores, "allocated cores", &cores, b->err) < 0 ||
	                   svm_topology_cores_to_pus(b->topo, &cores, &from_cores, b->err) < 0))
		return -1;
	if (have_cpuset && (parse_list(in->os_cpuset, "job cpuset", &cpuset, b->err) < 0 ||
	                    svm_topology_check_pus(b->topo, &cpuset, "the job cpuset", b->err) < 0))
		return -1;
	if (have_cores && have_cpuset &&
	    check_lists_agree(&cores, &from_cores, &cpuset, b->err) < 0)
		return -1;
	*pus = have_cpuset ? cpuset : from_cores;
	if (svm_cpuset_count(pus) > b->max_vcpus)
		return svm_err_set(b->err,
		                   "the allocation has %u CPUs, more than the %u vCPUs of a "
		                   "%s guest",
		                   svm_cpuset_count(pus), b->max_vcpus,
		                   svm_hypervisor_name(in->hypervisor));
	return 0;
}

static unsigned package_of(hwloc_topology_t topo, hwloc_obj_t core)
{
	hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, core);

	return pkg ? pkg->logical_index : 0;
}

/* The NUMA node a PU's memory is local to: the first NUMA node among the
 * memory children of its nearest ancestor that has any. The first is the
 * ordinary DRAM node; HBM next to it, or a CPU-less CXL node hanging off the
 * machine, is not where the kernel puts the job's memory by default. */
static hwloc_obj_t local_node(hwloc_obj_t pu)
{
	for (hwloc_obj_t obj = pu; obj != NULL; obj = obj->parent) {
		hwloc_obj_t mem = obj->memory_first_child;

		/* Memory-side caches sit between an object and its NUMA nodes. */
		while (mem != NULL && mem->type != HWLOC_OBJ_NUMANODE)
			mem = mem->memory_first_child;
		if (mem != NULL)
			return mem;
	}
	return NULL;
}

/* Appends the allocated PUs under obj as vCPUs and returns how many. A
 * depth-first walk visits them in logical order; it touches only this
 * subtree, where hwloc's "next PU inside a cpuset" would scan the whole PU
 * level for every core. */
static unsigned take_pus(struct builder *b, hwloc_obj_t obj)
{
	struct svm_plan *plan = b->plan;
	unsigned taken = 0;

	if (obj->type == HWLOC_OBJ_PU) {
		if (!svm_cpuset_has(&plan->host_pus, obj->os_index) || plan->nvcpus == b->npus)
			return 0;
		b->vcpu_node[plan->nvcpus] = local_node(obj);
		plan->vcpu_pu[plan->nvcpus++] = obj->os_index;
		return 1;
	}
	for (hwloc_obj_t child = obj->first_child; child != NULL; child = child->next_sibling)
		taken += take_pus(b, child);
	return taken;
}

/* Appends the allocated PUs of one core as vCPUs, in the core's PU order. */
static void take_core(struct builder *b, hwloc_obj_t core)
{
	unsigned taken = take_pus(b, core);

	if (taken == 0)
		return;
	b->package_pus[package_of(b->topo, core)] += taken;
	if (b->pus_per_core == 0)
		b->pus_per_core = taken;
	else if (b->pus_per_core != taken)
		b->uniform_smt = false;
}

static int order_vcpus(struct builder *b)
{
	struct svm_plan *plan = b->plan;
	unsigned npus = svm_cpuset_count(&plan->host_pus);
	unsigned ncores = svm_topology_ncores(b->topo);
	int npackages = hwloc_get_nbobjs_by_type(b->topo, HWLOC_OBJ_PACKAGE);

	if (npus == 0)
		return svm_err_set(b->err, "the allocation is empty");
	b->npus = npus;
	b->npackages = npackages > 0 ? (unsigned)npackages : 1;
	b->package_pus = calloc(b->npackages, sizeof(*b->package_pus));
	b->vcpu_node = calloc(npus, sizeof(*b->vcpu_node));
	plan->vcpu_pu = calloc(npus, sizeof(*plan->vcpu_pu));
	if (b->package_pus == NULL || b->vcpu_node == NULL || plan->vcpu_pu == NULL)
		return svm_err_set(b->err, "out of memory planning %u vCPUs", npus);
	b->uniform_smt = true;
	for (unsigned k = 0; k < ncores && plan->nvcpus < npus; k++)
		take_core(b, svm_topology_core(b->topo, k));
	if (plan->nvcpus != npus)
		return svm_err_set(b->err, "%u allocated PUs belong to no core of the topology",
		                   npus - plan->nvcpus);
	return 0;
}

static unsigned bits_for(unsigned count)
{
	unsigned bits = 0;

	while ((1u << bits) < count)
		bits++;
	return bits;
}

/* One more than the highest APIC id QEMU derives for this shape. */
static uint64_t apic_id_span(unsigned sockets, unsigned cores, unsigned threads)
{
	unsigned thread_bits = bits_for(threads), core_bits = bits_for(cores);

	return ((uint64_t)(sockets - 1) << (core_bits + thread_bits) |
	        (uint64_t)(cores - 1) << thread_bits | (threads - 1)) +
	       1;
}

/* The packages touched, if each holds the same number of allocated PUs; else 1. */
static unsigned uniform_sockets(const struct builder *b)
{
	unsigned touched = 0, per_package = 0;

	for (unsigned i = 0; i < b->npackages; i++) {
		if (b->package_pus[i] == 0)
			continue;
		if (per_package != 0 && b->package_pus[i] != per_package)
			return 1;
		per_package = b->package_pus[i];
		touched++;
	}
	return touched ? touched : 1;
}

static void choose_shape(struct builder *b)
{
	struct svm_plan *plan = b->plan;
	unsigned n = plan->nvcpus;
	unsigned threads = b->uniform_smt ? b->pus_per_core : 1;
	unsigned sockets = uniform_sockets(b);

	if (n % (sockets * threads) != 0)
		sockets = 1;
	if (plan->hypervisor == SVM_HV_KVM)
		plan->x2apic =
		        apic_id_span(sockets, n / (sockets * threads), threads) > XAPIC_ID_SPAN_MAX;
	if (plan->hypervisor == SVM_HV_QEMU) {
		if (apic_id_span(sockets, n / (sockets * threads), threads) > XAPIC_ID_SPAN_MAX)
			sockets = 1;
		if (apic_id_span(1, n / threads, threads) > XAPIC_ID_SPAN_MAX)
			threads = 1;
	}
	plan->sockets = sockets;
	plan->threads = threads;
	plan->cores = n / (sockets * threads);
}

/* Makes the next cell of the vCPUs local to `node` (NULL: every vCPU, for a
 * topology without NUMA objects), if there are any. */
static void fill_cell(struct builder *b, hwloc_obj_t node, unsigned host_node)
{
	struct svm_plan *plan = b->plan;
	struct svm_plan_cell *cell = &plan->cells[plan->ncells];

	for (unsigned v = 0; v < plan->nvcpus; v++) {
		if (node != NULL && b->vcpu_node[v] != node)
			continue;
		svm_cpuset_add(&cell->vcpus, v);
		cell->npus++;
	}
	if (cell->npus == 0)
		return;
	cell->host_node = host_node;
	svm_cpuset_add(&plan->host_nodes, host_node);
	plan->ncells++;
}

static int assign_cells(struct builder *b)
{
	struct svm_plan *plan = b->plan;
	int nnodes = hwloc_get_nbobjs_by_type(b->topo, HWLOC_OBJ_NUMANODE);
	hwloc_obj_t node = NULL;
	unsigned placed = 0;

	plan->cells = calloc(nnodes > 0 ? (size_t)nnodes : 1, sizeof(*plan->cells));
	if (plan->cells == NULL)
		return svm_err_set(b->err, "out of memory planning %d NUMA cells", nnodes);
	if (nnodes <= 0)
		fill_cell(b, NULL, 0);
	while ((node = hwloc_get_next_obj_by_type(b->topo, HWLOC_OBJ_NUMANODE, node)) != NULL)
		fill_cell(b, node, node->os_index);
	for (unsigned i = 0; i < plan->ncells; i++)
		placed += plan->cells[i].npus;
	if (placed != plan->nvcpus)
		return svm_err_set(b->err,
		                   "%u allocated PUs have no local NUMA node in the topology",
		                   plan->nvcpus - placed);
	return 0;
}

/* Splits `total` over the cells in proportion to their PUs; what floor()
 * leaves over (fewer units than cells) goes one unit each to the first cells. */
static void split_units(const struct svm_plan *plan, uint64_t total, uint64_t *share)
{
	uint64_t given = 0;

	for (unsigned i = 0; i < plan->ncells; i++) {
		share[i] = total * plan->cells[i].npus / plan->nvcpus;
		given += share[i];
	}
	for (unsigned i = 0; given < total; i++, given++)
		share[i]++;
}

static int check_guest_size(struct builder *b, uint64_t guest_mib, const char *after)
{
	const struct svm_plan_input *in = b->in;
	uint64_t min = in->min_guest_mib ? in->min_guest_mib : SVM_PLAN_MIN_GUEST_MIB_DEFAULT;

	if (guest_mib < min)
		return svm_err_set(b->err,
		                   "guest RAM of %" PRIu64 " MiB%s (job memory %" PRIu64
		                   " MiB - reserve %" PRIu64
		                   " MiB) is below the minimum of %" PRIu64
		                   " MiB; ask for more memory (--mem)",
		                   guest_mib, after, in->job_mem_mib, in->mem_reserve_mib, min);
	return 0;
}

static int plan_guest_ram(struct builder *b)
{
	const struct svm_plan_input *in = b->in;

	if (in->job_mem_mib == 0)
		return svm_err_set(b->err, "the job has no memory on this node (S_JOB_ALLOC_MEM "
		                           "is 0); ask for memory with --mem");
	if (in->job_mem_mib > SVM_PLAN_MEM_MAX_MIB)
		return svm_err_set(b->err,
		                   "job memory of %" PRIu64 " MiB is above the %" PRIu64
		                   " MiB spank_vm accepts",
		                   in->job_mem_mib, SVM_PLAN_MEM_MAX_MIB);
	if (in->mem_reserve_mib >= in->job_mem_mib)
		return svm_err_set(b->err,
		                   "the memory reserve of %" PRIu64 " MiB leaves nothing of "
		                   "the job's %" PRIu64 " MiB for the guest; ask for more memory",
		                   in->mem_reserve_mib, in->job_mem_mib);
	b->plan->hard_limit_mib = in->job_mem_mib;
	b->plan->guest_mib = in->job_mem_mib - in->mem_reserve_mib;
	return check_guest_size(b, b->plan->guest_mib, "");
}

static int check_no_empty_cell(struct builder *b, const uint64_t *share, const char *unit)
{
	for (unsigned i = 0; i < b->plan->ncells; i++)
		if (share[i] == 0)
			return svm_err_set(b->err,
			                   "guest NUMA cell %u (host node %u) would get no %s of "
			                   "the %" PRIu64 " MiB guest RAM; ask for more memory",
			                   i, b->plan->cells[i].host_node, unit,
			                   b->plan->guest_mib);
	return 0;
}

static int check_free_pages(struct builder *b, const struct svm_plan_cell *cell)
{
	const struct svm_plan_input *in = b->in;
	uint64_t free_pages = 0;

	if (in->hugepages_free != NULL && cell->host_node < in->hugepages_free_count)
		free_pages = in->hugepages_free[cell->host_node];
	if (free_pages < cell->hugepages)
		return svm_err_set(b->err,
		                   "not enough %s hugepages on host NUMA node %u: %" PRIu64
		                   " needed, %" PRIu64 " free",
		                   svm_hugepages_name(in->hugepages), cell->host_node,
		                   cell->hugepages, free_pages);
	return 0;
}

/* Whole pages per cell; the guest RAM is rounded down to them (see plan.h). */
static int split_hugepages(struct builder *b, uint64_t *share)
{
	struct svm_plan *plan = b->plan;
	uint64_t page_mib = svm_hugepage_kib(b->in->hugepages) / 1024;

	plan->hugepages = b->in->hugepages;
	plan->hugepage_kib = svm_hugepage_kib(b->in->hugepages);
	split_units(plan, plan->guest_mib / page_mib, share);
	plan->guest_mib = plan->guest_mib / page_mib * page_mib;
	if (check_guest_size(b, plan->guest_mib, " after rounding down to whole hugepages") < 0 ||
	    check_no_empty_cell(b, share, "hugepage") < 0)
		return -1;
	for (unsigned i = 0; i < plan->ncells; i++) {
		plan->cells[i].hugepages = share[i];
		plan->cells[i].mem_mib = share[i] * page_mib;
		if (check_free_pages(b, &plan->cells[i]) < 0)
			return -1;
	}
	return 0;
}

static int split_memory(struct builder *b)
{
	struct svm_plan *plan = b->plan;
	uint64_t *share = calloc(plan->ncells, sizeof(*share));
	int rc = -1;

	if (share == NULL)
		return svm_err_set(b->err, "out of memory splitting memory over %u cells",
		                   plan->ncells);
	if (b->in->hugepages != SVM_HUGEPAGES_NONE) {
		rc = split_hugepages(b, share);
		goto out;
	}
	split_units(plan, plan->guest_mib, share);
	if (check_no_empty_cell(b, share, "MiB") < 0)
		goto out;
	for (unsigned i = 0; i < plan->ncells; i++)
		plan->cells[i].mem_mib = share[i];
	rc = 0;
out:
	free(share);
	return rc;
}

static int place_emulator(struct builder *b)
{
	const char *reserved = b->in->emulator_cpus;
	struct svm_cpuset *emulator = &b->plan->emulator_pus;

	if (reserved == NULL || *reserved == '\0') {
		*emulator = b->plan->host_pus;
		return 0;
	}
	if (parse_list(reserved, "reserved emulator CPUs", emulator, b->err) < 0)
		return -1;
	return svm_topology_check_pus(b->topo, emulator, "the reserved emulator CPUs", b->err);
}

int svm_plan_build(const struct svm_plan_input *in, struct svm_plan *plan, struct svm_err *err)
{
	struct builder b = {.in = in, .topo = in->topology, .plan = plan, .err = err};
	int rc = -1;

	memset(plan, 0, sizeof(*plan));
	plan->hypervisor = in->hypervisor;
	if (check_settings(&b) < 0 || resolve_allocation(&b) < 0 || order_vcpus(&b) < 0)
		goto out;
	choose_shape(&b);
	if (assign_cells(&b) < 0 || plan_guest_ram(&b) < 0 || split_memory(&b) < 0 ||
	    place_emulator(&b) < 0)
		goto out;
	rc = 0;
out:
	free(b.package_pus);
	free(b.vcpu_node);
	if (rc < 0)
		svm_plan_free(plan);
	return rc;
}

void svm_plan_free(struct svm_plan *plan)
{
	free(plan->vcpu_pu);
	free(plan->cells);
	memset(plan, 0, sizeof(*plan));
}

size_t svm_plan_describe(const struct svm_plan *plan, char *buf, size_t size)
{
	char *pus = svm_cpuset_to_str(&plan->host_pus, NULL);
	char hugepages[32] = "";
	int n;

	if (plan->hugepages != SVM_HUGEPAGES_NONE)
		snprintf(hugepages, sizeof(hugepages), ", %s hugepages",
		         svm_hugepages_name(plan->hugepages));
	n = snprintf(buf, size, "%u vCPU%s (%ux%ux%u) on PUs %s, %u NUMA cell%s, %" PRIu64 " MiB%s",
	             plan->nvcpus, plan->nvcpus == 1 ? "" : "s", plan->sockets, plan->cores,
	             plan->threads, pus ? pus : "?", plan->ncells, plan->ncells == 1 ? "" : "s",
	             plan->guest_mib, hugepages);
	free(pus);
	return n > 0 ? (size_t)n : 0;
}
