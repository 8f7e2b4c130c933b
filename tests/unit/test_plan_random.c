/* Randomized invariants of the plan: thousands of random allocations on random
 * synthetic topologies with shuffled OS numbering. The seed is printed; set
 * SVM_TEST_SEED to replay a failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_support.h"
#include "spank_vm/domain_xml.h"
#include "spank_vm/topology.h"

#define TOPOLOGIES           40
#define ALLOCATIONS_PER_TOPO 100
/* Every this many plans one is rendered and run through virt-xml-validate. */
#define VALIDATE_EVERY 97

static uint64_t rng_state;

/* splitmix64: the same sequence on every libc. */
static uint64_t rnd64(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rnd(unsigned bound)
{
	return (unsigned)(rnd64() % bound);
}

struct fixture {
	hwloc_topology_t topo;
	char description[4096];
	hwloc_obj_t pu_by_os[SVM_CPUSET_MAX];
	unsigned ncores;
};

/* "a,b,c" of a random permutation of 0 .. n - 1. */
static void append_permutation(char *buf, size_t size, unsigned n)
{
	unsigned perm[512];
	size_t len = strlen(buf);

	assert_true(n <= 512);
	for (unsigned i = 0; i < n; i++)
		perm[i] = i;
	for (unsigned i = n; i > 1; i--) {
		unsigned j = rnd(i), t = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%u", i ? "," : "", perm[i]);
	assert_true(len < size);
}

static void random_topology(struct fixture *f)
{
	unsigned packs = 1 + rnd(4), numas = 1 + rnd(3), cores = 1 + rnd(8), pus = 1 + rnd(4);
	size_t len;
	hwloc_obj_t pu = NULL;

	snprintf(f->description, sizeof(f->description), "pack:%u numa:%u(indexes=", packs, numas);
	append_permutation(f->description, sizeof(f->description), packs * numas);
	len = strlen(f->description);
	snprintf(f->description + len, sizeof(f->description) - len,
	         ") core:%u pu:%u(indexes=", cores, pus);
	append_permutation(f->description, sizeof(f->description), packs * numas * cores * pus);
	len = strlen(f->description);
	snprintf(f->description + len, sizeof(f->description) - len, ")");
	f->topo = support_synthetic(f->description);
	memset(f->pu_by_os, 0, sizeof(f->pu_by_os));
	while ((pu = hwloc_get_next_obj_by_type(f->topo, HWLOC_OBJ_PU, pu)) != NULL)
		f->pu_by_os[pu->os_index] = pu;
	f->ncores = svm_topology_ncores(f->topo);
}

struct allocation {
	char cores[4096];
	char cpuset[4096];
	struct svm_cpuset pus;
	bool use_cores, use_cpuset;
};

static void random_allocation(const struct fixture *f, struct allocation *a)
{
	struct svm_cpuset cores;
	unsigned percent = 1 + rnd(100);
	hwloc_obj_t pu = NULL;

	svm_cpuset_clear(&cores);
	svm_cpuset_clear(&a->pus);
	a->use_cores = rnd(3) != 0;
	if (a->use_cores) {
		for (unsigned k = 0; k < f->ncores; k++)
			if (rnd(100) < percent)
				svm_cpuset_add(&cores, k);
		if (svm_cpuset_is_empty(&cores))
			svm_cpuset_add(&cores, rnd(f->ncores));
		assert_int_equal(svm_topology_cores_to_pus(f->topo, &cores, &a->pus, NULL), 0);
		a->use_cpuset = rnd(2) != 0;
	} else {
		while ((pu = hwloc_get_next_obj_by_type(f->topo, HWLOC_OBJ_PU, pu)) != NULL)
			if (rnd(100) < percent)
				svm_cpuset_add(&a->pus, pu->os_index);
		if (svm_cpuset_is_empty(&a->pus))
			svm_cpuset_add(&a->pus,
			               hwloc_get_obj_by_type(f->topo, HWLOC_OBJ_PU, 0)->os_index);
		a->use_cpuset = true;
	}
	assert_true(svm_cpuset_format(&cores, a->cores, sizeof(a->cores)) < sizeof(a->cores));
	assert_true(svm_cpuset_format(&a->pus, a->cpuset, sizeof(a->cpuset)) < sizeof(a->cpuset));
}

static unsigned bits_for(unsigned n)
{
	unsigned bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

static uint64_t apic_span(const struct svm_plan *p)
{
	unsigned tb = bits_for(p->threads), cb = bits_for(p->cores);

	return (((uint64_t)(p->sockets - 1) << (cb + tb)) | ((uint64_t)(p->cores - 1) << tb) |
	        (p->threads - 1)) +
	       1;
}

static hwloc_obj_t core_of(const struct fixture *f, unsigned pu_os)
{
	hwloc_obj_t pu = f->pu_by_os[pu_os];
	hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(f->topo, HWLOC_OBJ_CORE, pu);

	return core ? core : pu;
}

static void check_pinning(const struct fixture *f, const struct allocation *a,
                          const struct svm_plan *p)
{
	struct svm_cpuset pinned;

	svm_cpuset_clear(&pinned);
	assert_int_equal(p->nvcpus, svm_cpuset_count(&a->pus));
	for (unsigned v = 0; v < p->nvcpus; v++) {
		assert_true(svm_cpuset_has(&a->pus, p->vcpu_pu[v]));
		assert_false(svm_cpuset_has(&pinned, p->vcpu_pu[v]));
		svm_cpuset_add(&pinned, p->vcpu_pu[v]);
	}
	assert_true(svm_cpuset_equal(&pinned, &a->pus));
	assert_true(svm_cpuset_equal(&p->emulator_pus, &a->pus));
	/* SMT siblings are consecutive: once the core changes, it never returns. */
	for (unsigned v = 1; v < p->nvcpus; v++) {
		hwloc_obj_t core = core_of(f, p->vcpu_pu[v]);

		if (core == core_of(f, p->vcpu_pu[v - 1]))
			continue;
		for (unsigned u = 0; u < v; u++)
			assert_ptr_not_equal(core_of(f, p->vcpu_pu[u]), core);
	}
	/* With threads > 1, each guest core is one host core. */
	for (unsigned v = 0; p->threads > 1 && v < p->nvcpus; v++)
		assert_ptr_equal(core_of(f, p->vcpu_pu[v]),
		                 core_of(f, p->vcpu_pu[v - v % p->threads]));
}

static void check_shape(const struct svm_plan *p)
{
	assert_int_equal(p->sockets * p->cores * p->threads, p->nvcpus);
	if (p->hypervisor == SVM_HV_QEMU)
		assert_true(apic_span(p) <= 255);
	if (p->hypervisor == SVM_HV_KVM)
		assert_int_equal(p->x2apic, apic_span(p) > 255);
	else
		assert_false(p->x2apic);
}

static void check_cells(const struct fixture *f, const struct svm_plan_input *in,
                        const struct svm_plan *p)
{
	struct svm_cpuset seen;
	uint64_t mem = 0;
	int last_node = -1;

	svm_cpuset_clear(&seen);
	for (unsigned i = 0; i < p->ncells; i++) {
		const struct svm_plan_cell *c = &p->cells[i];
		hwloc_obj_t node = hwloc_get_numanode_obj_by_os_index(f->topo, c->host_node);

		assert_non_null(node);
		assert_true((int)node->logical_index > last_node);
		last_node = (int)node->logical_index;
		assert_int_equal(svm_cpuset_count(&c->vcpus), c->npus);
		assert_true(c->mem_mib > 0);
		mem += c->mem_mib;
		for (int v = svm_cpuset_next(&c->vcpus, 0); v >= 0;
		     v = svm_cpuset_next(&c->vcpus, v + 1)) {
			assert_true((unsigned)v < p->nvcpus);
			assert_false(svm_cpuset_has(&seen, v));
			svm_cpuset_add(&seen, v);
			assert_true(hwloc_bitmap_isset(node->cpuset, p->vcpu_pu[v]));
		}
		if (p->hugepage_kib != 0)
			assert_int_equal(c->mem_mib, c->hugepages * (p->hugepage_kib / 1024));
	}
	assert_int_equal(svm_cpuset_count(&seen), p->nvcpus);
	assert_int_equal(mem, p->guest_mib);
	assert_int_equal(p->hard_limit_mib, in->job_mem_mib);
	if (p->hugepage_kib == 0)
		assert_int_equal(p->guest_mib, in->job_mem_mib - in->mem_reserve_mib);
	else
		assert_int_equal(p->guest_mib, (in->job_mem_mib - in->mem_reserve_mib) / 2 * 2);
}

static void validate_rendering(const struct svm_plan *plan)
{
	struct svm_domain_spec spec = support_spec(true);
	struct svm_err err = {""};
	char *xml = NULL;

	if (plan->hypervisor == SVM_HV_XEN)
		spec.nshares = 0;
	if (svm_domain_xml(plan, &spec, &xml, &err) < 0)
		fail_msg("rendering failed: %s", err.msg);
	if (!support_validates(xml))
		fail_msg("a random plan's domain XML does not validate");
	free(xml);
}

static const uint64_t plenty[64] = {[0 ... 63] = UINT64_MAX};

static void random_input(const struct fixture *f, const struct allocation *a,
                         struct svm_plan_input *in)
{
	static const enum svm_hypervisor hvs[] = {SVM_HV_KVM, SVM_HV_QEMU, SVM_HV_XEN};

	*in = support_input(f->topo, a->use_cores ? a->cores : NULL,
	                    a->use_cpuset ? a->cpuset : NULL, 0);
	in->hypervisor = hvs[rnd(3)];
	in->mem_reserve_mib = rnd(1024);
	in->job_mem_mib = in->mem_reserve_mib + 1024 + rnd(1u << 20);
	if (in->hypervisor != SVM_HV_XEN && rnd(4) == 0) {
		in->hugepages = SVM_HUGEPAGES_2M;
		in->hugepages_free = plenty;
		in->hugepages_free_count = 64;
	}
}

static void test_plan_invariants_hold_for_random_allocations(void **state)
{
	const char *seed_env = getenv("SVM_TEST_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : UINT64_C(20240611);
	unsigned plans = 0, refused = 0;
	struct fixture *f = malloc(sizeof(*f));
	struct allocation a;

	(void)state;
	assert_non_null(f);
	rng_state = seed;
	print_message("seed %" PRIu64 " (set SVM_TEST_SEED to replay)\n", seed);
	for (unsigned t = 0; t < TOPOLOGIES; t++) {
		random_topology(f);
		for (unsigned i = 0; i < ALLOCATIONS_PER_TOPO; i++) {
			struct svm_plan_input in;
			struct svm_err err = {""};
			struct svm_plan plan;

			random_allocation(f, &a);
			random_input(f, &a, &in);
			if (svm_cpuset_count(&a.pus) > svm_plan_max_vcpus(in.hypervisor)) {
				support_plan_fails(&in, "vCPUs of a");
				refused++;
				continue;
			}
			if (svm_plan_build(&in, &plan, &err) < 0)
				fail_msg("topology \"%s\", cores \"%s\", cpuset \"%s\": %s",
				         f->description,
				         in.abstract_cores ? in.abstract_cores : "-",
				         in.os_cpuset ? in.os_cpuset : "-", err.msg);
			check_pinning(f, &a, &plan);
			check_shape(&plan);
			check_cells(f, &in, &plan);
			if (++plans % VALIDATE_EVERY == 0)
				validate_rendering(&plan);
			svm_plan_free(&plan);
		}
		hwloc_topology_destroy(f->topo);
	}
	print_message("%u plans checked, %u refused for too many vCPUs\n", plans, refused);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plan_invariants_hold_for_random_allocations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
