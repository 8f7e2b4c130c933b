#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan_support.h"
#include "spank_vm/topology.h"

/* Synthetic topologies (hwloc syntax). DUAL: 2 packages x 2 NUMA nodes x 8
 * cores x 2 PUs; NUMA node i holds cores 8i..8i+7 = PUs 16i..16i+15. */
#define T_SMALL "pack:1 core:2 pu:1"
#define T_DUAL  "pack:2 numa:2 core:8 pu:2"
#define T_256   "pack:2 numa:4 core:16 pu:2"

static void assert_pins(const struct svm_plan *plan, const unsigned *pus, unsigned n)
{
	assert_int_equal(plan->nvcpus, n);
	for (unsigned v = 0; v < n; v++)
		if (plan->vcpu_pu[v] != pus[v])
			fail_msg("vCPU %u pinned to PU %u, expected %u", v, plan->vcpu_pu[v],
			         pus[v]);
}

static void assert_shape(const struct svm_plan *plan, unsigned sockets, unsigned cores,
                         unsigned threads)
{
	if (plan->sockets != sockets || plan->cores != cores || plan->threads != threads)
		fail_msg("shape %ux%ux%u, expected %ux%ux%u", plan->sockets, plan->cores,
		         plan->threads, sockets, cores, threads);
}

static void assert_cell(const struct svm_plan *plan, unsigned i, unsigned host_node,
                        const char *vcpus, uint64_t mem_mib)
{
	const struct svm_plan_cell *cell;

	assert_true(i < plan->ncells);
	cell = &plan->cells[i];
	assert_int_equal(cell->host_node, host_node);
	assert_string_equal(support_list(&cell->vcpus), vcpus);
	assert_int_equal(cell->mem_mib, mem_mib);
}

static void test_plan_one_socket_two_cores_gives_two_pinned_vcpus(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_SMALL);
	struct svm_plan_input in = support_input(topo, "0-1", NULL, 1024);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 1}, 2);
	assert_shape(&plan, 1, 2, 1);
	assert_false(plan.x2apic);
	assert_int_equal(plan.ncells, 1);
	assert_cell(&plan, 0, 0, "0-1", 1024);
	assert_int_equal(plan.guest_mib, 1024);
	assert_int_equal(plan.hard_limit_mib, 1024);
	assert_string_equal(support_list(&plan.host_pus), "0-1");
	assert_string_equal(support_list(&plan.emulator_pus), "0-1");
	assert_string_equal(support_list(&plan.host_nodes), "0");
	assert_int_equal(plan.hugepage_kib, 0);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_mirrors_two_sockets_two_numa_smt(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "0-31", NULL, 65536);
	struct svm_plan plan;

	(void)state;
	in.mem_reserve_mib = 512;
	support_plan(&in, &plan);
	assert_int_equal(plan.nvcpus, 64);
	assert_shape(&plan, 2, 16, 2);
	assert_false(plan.x2apic);
	assert_int_equal(plan.ncells, 4);
	for (unsigned i = 0; i < 4; i++) {
		char vcpus[16];

		snprintf(vcpus, sizeof(vcpus), "%u-%u", 16 * i, 16 * i + 15);
		assert_cell(&plan, i, i, vcpus, (65536 - 512) / 4);
	}
	for (unsigned v = 0; v < 64; v++)
		assert_int_equal(plan.vcpu_pu[v], v);
	svm_plan_free(&plan);

	/* One core on each package: two sockets of one two-thread core. */
	in.abstract_cores = "0,16";
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 1, 32, 33}, 4);
	assert_shape(&plan, 2, 1, 2);
	assert_int_equal(plan.ncells, 2);
	assert_cell(&plan, 0, 0, "0-1", 32512);
	assert_cell(&plan, 1, 2, "2-3", 32512);
	assert_string_equal(support_list(&plan.host_nodes), "0,2");
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_four_numa_fixture_gives_four_strict_cells(void **state)
{
	hwloc_topology_t topo = support_fixture("four_numa.xml");
	struct svm_plan_input in = support_input(topo, "0-7", "0-15", 4000);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_int_equal(plan.nvcpus, 16);
	assert_shape(&plan, 2, 4, 2);
	assert_int_equal(plan.ncells, 4);
	assert_cell(&plan, 0, 0, "0-3", 1000);
	assert_cell(&plan, 1, 1, "4-7", 1000);
	assert_cell(&plan, 2, 2, "8-11", 1000);
	assert_cell(&plan, 3, 3, "12-15", 1000);
	assert_string_equal(support_list(&plan.host_nodes), "0-3");
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_keeps_a_non_contiguous_allocation_in_core_order(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "10,0-1,6,9", NULL, 10000);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 1, 2, 3, 12, 13, 18, 19, 20, 21}, 10);
	assert_shape(&plan, 1, 5, 2);
	assert_int_equal(plan.ncells, 2);
	assert_cell(&plan, 0, 0, "0-5", 6000);
	assert_cell(&plan, 1, 1, "6-9", 4000);
	assert_string_equal(support_list(&plan.host_pus), "0-3,12-13,18-21");
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_partial_smt_allocation_has_one_thread_per_core(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, NULL, "0-2", 1024);
	struct svm_plan plan;

	(void)state;
	/* Core 0 brings both siblings, core 1 only one. */
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 1, 2}, 3);
	assert_shape(&plan, 1, 3, 1);
	svm_plan_free(&plan);

	/* One sibling of every core: uniform, but still no SMT to show. */
	in.os_cpuset = "0,2,4,6";
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 2, 4, 6}, 4);
	assert_shape(&plan, 1, 4, 1);
	svm_plan_free(&plan);

	/* Whole cores keep their threads. */
	in.os_cpuset = "0-3";
	support_plan(&in, &plan);
	assert_shape(&plan, 1, 2, 2);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_splits_memory_by_numa_pus_exactly(void **state)
{
	hwloc_topology_t dual = support_synthetic(T_DUAL);
	hwloc_topology_t four = support_fixture("four_numa.xml");
	struct svm_plan_input in = support_input(dual, "5-8", NULL, 4096);
	struct svm_plan plan;

	(void)state;
	/* Cores 5-7 on node 0 (6 PUs), core 8 on node 1 (2 PUs). */
	in.mem_reserve_mib = 256;
	support_plan(&in, &plan);
	assert_int_equal(plan.guest_mib, 3840);
	assert_int_equal(plan.hard_limit_mib, 4096);
	assert_cell(&plan, 0, 0, "0-5", 2880);
	assert_cell(&plan, 1, 1, "6-7", 960);
	svm_plan_free(&plan);

	/* 1001 * 6/8 = 750.75 and 1001 * 2/8 = 250.25: the spare MiB goes to cell 0. */
	in.mem_reserve_mib = 0;
	in.job_mem_mib = 1001;
	support_plan(&in, &plan);
	assert_cell(&plan, 0, 0, "0-5", 751);
	assert_cell(&plan, 1, 1, "6-7", 250);
	svm_plan_free(&plan);

	/* 2 PUs on node 0, 6 on node 1: 250.75 and 752.25, cell 0 gets the spare. */
	in.abstract_cores = NULL;
	in.os_cpuset = "14-21";
	in.job_mem_mib = 1003;
	support_plan(&in, &plan);
	assert_cell(&plan, 0, 0, "0-1", 251);
	assert_cell(&plan, 1, 1, "2-7", 752);
	svm_plan_free(&plan);

	/* Three equal cells of 1000 MiB: 334 + 333 + 333. */
	in = support_input(four, NULL, "0-1,4-5,8-9", 1000);
	support_plan(&in, &plan);
	assert_int_equal(plan.ncells, 3);
	assert_cell(&plan, 0, 0, "0-1", 334);
	assert_cell(&plan, 1, 1, "2-3", 333);
	assert_cell(&plan, 2, 2, "4-5", 333);
	svm_plan_free(&plan);
	hwloc_topology_destroy(dual);
	hwloc_topology_destroy(four);
}

static void test_plan_full_256_pu_node_uses_x2apic_on_kvm(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_256);
	struct svm_plan_input in = support_input(topo, "0-127", NULL, 262144);
	struct svm_plan plan;

	(void)state;
	in.mem_reserve_mib = 1024;
	support_plan(&in, &plan);
	assert_int_equal(plan.nvcpus, 256);
	assert_shape(&plan, 2, 64, 2);
	/* Socket 1's APIC ids start at 128 and reach 255: past xAPIC. */
	assert_true(plan.x2apic);
	assert_int_equal(plan.ncells, 8);
	for (unsigned i = 0; i < 8; i++) {
		char vcpus[16];

		snprintf(vcpus, sizeof(vcpus), "%u-%u", 32 * i, 32 * i + 31);
		assert_cell(&plan, i, i, vcpus, 261120 / 8);
	}
	svm_plan_free(&plan);

	/* TCG has no x2APIC in QEMU 7.2: 256 vCPUs are one too many. */
	in.hypervisor = SVM_HV_QEMU;
	support_plan_fails(&in, "256 CPUs", "255 vCPUs of a qemu guest");
	hwloc_topology_destroy(topo);
}

/* interleaved.xml numbers PUs the way many Intel machines do: package 0 holds
 * the even CPUs, package 1 the odd ones, and SMT siblings are 8 apart; the
 * NUMA node of package 0 is node 1. Slurm's abstract core k is the k-th core
 * in hwloc's logical order, so core 1 is PUs 2 and 10, not PUs 2 and 3. */
static void test_plan_maps_abstract_cores_through_hwloc_logical_order(void **state)
{
	hwloc_topology_t topo = support_fixture("interleaved.xml");
	struct svm_plan_input in = support_input(topo, "1", NULL, 2048);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){2, 10}, 2);
	assert_cell(&plan, 0, 1, "0-1", 2048);
	svm_plan_free(&plan);

	in.abstract_cores = "4";
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){1, 9}, 2);
	assert_cell(&plan, 0, 0, "0-1", 2048);
	svm_plan_free(&plan);

	in.abstract_cores = "0-7";
	in.os_cpuset = "0-15";
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){0, 8, 2, 10, 4, 12, 6, 14, 1, 9, 3, 11, 5, 13, 7, 15}, 16);
	assert_shape(&plan, 2, 4, 2);
	/* Cells in host order: package 0's node (OS id 1) first. */
	assert_cell(&plan, 0, 1, "0-7", 1024);
	assert_cell(&plan, 1, 0, "8-15", 1024);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_refuses_a_cpuset_that_disagrees_with_the_abstract_cores(void **state)
{
	hwloc_topology_t topo = support_fixture("interleaved.xml");
	struct svm_plan_input in = support_input(topo, "1", "2,10", 2048);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	svm_plan_free(&plan);
	/* What an identity mapping of abstract core 1 would have produced. */
	in.os_cpuset = "2-3";
	support_plan_fails(&in, "abstract cores 1", "host PUs 2,10", "job cpuset 2-3");
	hwloc_topology_destroy(topo);
}

static void test_plan_uses_the_cpuset_alone(void **state)
{
	hwloc_topology_t topo = support_fixture("interleaved.xml");
	struct svm_plan_input in = support_input(topo, NULL, "1,9,3,11", 2048);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){1, 9, 3, 11}, 4);
	assert_shape(&plan, 1, 2, 2);
	assert_cell(&plan, 0, 0, "0-3", 2048);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

/* memory_tiers.xml: DDR nodes 0 and 1 on the packages, an HBM node 2 beside
 * node 0 and a CPU-less CXL node 3 attached to the machine. */
static void test_plan_ignores_hbm_and_cpu_less_nodes(void **state)
{
	hwloc_topology_t topo = support_fixture("memory_tiers.xml");
	struct svm_plan_input in = support_input(topo, "0-3", NULL, 2000);
	struct svm_plan plan;

	(void)state;
	assert_int_equal(hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE), 4);
	support_plan(&in, &plan);
	assert_int_equal(plan.ncells, 2);
	assert_cell(&plan, 0, 0, "0-3", 1000);
	assert_cell(&plan, 1, 1, "4-7", 1000);
	assert_string_equal(support_list(&plan.host_nodes), "0-1");
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_counts_pus_as_cores_without_a_core_level(void **state)
{
	hwloc_topology_t topo = support_synthetic("pack:1 pu:4");
	struct svm_plan_input in = support_input(topo, "1-2", NULL, 1024);
	struct svm_plan plan;

	(void)state;
	assert_int_equal(svm_topology_ncores(topo), 4);
	support_plan(&in, &plan);
	assert_pins(&plan, (unsigned[]){1, 2}, 2);
	assert_shape(&plan, 1, 2, 1);
	svm_plan_free(&plan);
	in.abstract_cores = "4";
	support_plan_fails(&in, "abstract core 4 is outside", "4 cores (0-3)");
	hwloc_topology_destroy(topo);
}

static void test_plan_sockets_fall_back_to_one_when_packages_are_uneven(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "0-1,16", NULL, 1024);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_shape(&plan, 1, 3, 2);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_qemu_flattens_shapes_whose_apic_ids_exceed_xapic(void **state)
{
	hwloc_topology_t three = support_synthetic("pack:3 core:40 pu:2");
	hwloc_topology_t smt3 = support_synthetic("pack:1 core:80 pu:3");
	struct svm_plan_input in = support_input(three, "0-119", NULL, 8192);
	struct svm_plan plan;

	(void)state;
	/* 3x40x2: socket 2 starts at APIC id 256. */
	in.hypervisor = SVM_HV_QEMU;
	support_plan(&in, &plan);
	assert_shape(&plan, 1, 120, 2);
	assert_false(plan.x2apic);
	svm_plan_free(&plan);
	in.hypervisor = SVM_HV_KVM;
	support_plan(&in, &plan);
	assert_shape(&plan, 3, 40, 2);
	assert_true(plan.x2apic);
	svm_plan_free(&plan);

	/* Three threads take two APIC id bits: 80 cores reach id 318. */
	in = support_input(smt3, "0-79", NULL, 8192);
	in.hypervisor = SVM_HV_QEMU;
	support_plan(&in, &plan);
	assert_shape(&plan, 1, 240, 1);
	svm_plan_free(&plan);
	in.hypervisor = SVM_HV_KVM;
	support_plan(&in, &plan);
	assert_shape(&plan, 1, 80, 3);
	assert_true(plan.x2apic);
	svm_plan_free(&plan);
	hwloc_topology_destroy(three);
	hwloc_topology_destroy(smt3);
}

static void test_plan_pins_emulator_to_allocation_or_reserved_cpus(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "2-3", NULL, 1024);
	struct svm_plan plan;

	(void)state;
	support_plan(&in, &plan);
	assert_string_equal(support_list(&plan.emulator_pus), "4-7");
	svm_plan_free(&plan);
	in.emulator_cpus = "";
	support_plan(&in, &plan);
	assert_string_equal(support_list(&plan.emulator_pus), "4-7");
	svm_plan_free(&plan);
	in.emulator_cpus = "62-63";
	support_plan(&in, &plan);
	assert_string_equal(support_list(&plan.emulator_pus), "62-63");
	svm_plan_free(&plan);
	in.emulator_cpus = "64";
	support_plan_fails(&in, "CPU 64 of the reserved emulator CPUs is not a PU", "PUs 0-63");
	in.emulator_cpus = "1;2";
	support_plan_fails(&in, "reserved emulator CPUs", "0-3,8");
	hwloc_topology_destroy(topo);
}

static void test_plan_hugepages_split_whole_pages_per_node(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "5-8", NULL, 4096);
	uint64_t free_pages[] = {1440, 480, 0, 0};
	struct svm_plan plan;

	(void)state;
	in.mem_reserve_mib = 256;
	in.hugepages = SVM_HUGEPAGES_2M;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 4;
	support_plan(&in, &plan);
	assert_int_equal(plan.hugepages, SVM_HUGEPAGES_2M);
	assert_int_equal(plan.hugepage_kib, 2048);
	assert_int_equal(plan.guest_mib, 3840);
	assert_cell(&plan, 0, 0, "0-5", 2880);
	assert_cell(&plan, 1, 1, "6-7", 960);
	assert_int_equal(plan.cells[0].hugepages, 1440);
	assert_int_equal(plan.cells[1].hugepages, 480);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_plan_hugepages_round_guest_ram_down_to_whole_pages(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "0-1", NULL, 4096);
	uint64_t free_pages[] = {3};
	struct svm_plan plan;

	(void)state;
	in.mem_reserve_mib = 256;
	in.hugepages = SVM_HUGEPAGES_1G;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 1;
	support_plan(&in, &plan);
	assert_int_equal(plan.guest_mib, 3072);
	assert_int_equal(plan.hard_limit_mib, 4096);
	assert_int_equal(plan.hugepage_kib, 1024 * 1024);
	assert_cell(&plan, 0, 0, "0-3", 3072);
	assert_int_equal(plan.cells[0].hugepages, 3);
	svm_plan_free(&plan);

	/* Less than one page left: below the minimum after rounding. */
	in.job_mem_mib = 1000;
	in.mem_reserve_mib = 0;
	support_plan_fails(&in, "guest RAM of 0 MiB after rounding down to whole hugepages",
	                   "minimum of 128 MiB");
	hwloc_topology_destroy(topo);
}

static void test_plan_hugepages_short_on_a_node_is_refused_naming_node_needed_free(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "5-8", NULL, 4096);
	uint64_t free_pages[] = {1440, 479};

	(void)state;
	in.mem_reserve_mib = 256;
	in.hugepages = SVM_HUGEPAGES_2M;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 2;
	support_plan_fails(&in, "2M hugepages on host NUMA node 1", "480 needed", "479 free");
	/* No counts at all: every node has none. */
	in.hugepages_free = NULL;
	in.hugepages_free_count = 0;
	support_plan_fails(&in, "node 0", "1440 needed", "0 free");
	hwloc_topology_destroy(topo);
}

static void test_plan_hugepages_cell_without_a_page_is_refused(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "5-8", NULL, 4096);
	uint64_t free_pages[] = {8, 8};

	(void)state;
	/* 3 pages of 1G over PUs 6:2 -> 2.25 and 0.75 -> 3 and 0. */
	in.mem_reserve_mib = 256;
	in.hugepages = SVM_HUGEPAGES_1G;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 2;
	support_plan_fails(&in, "cell 1 (host node 1) would get no hugepage");
	hwloc_topology_destroy(topo);
}

static void test_plan_hugepages_with_xen_is_refused(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_SMALL);
	struct svm_plan_input in = support_input(topo, "0-1", NULL, 4096);

	(void)state;
	in.hypervisor = SVM_HV_XEN;
	in.hugepages = SVM_HUGEPAGES_2M;
	support_plan_fails(&in, "not available with hypervisor xen", "kvm and qemu");
	hwloc_topology_destroy(topo);
}

static void test_plan_refuses_bad_allocations(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_SMALL);
	struct svm_plan_input in = support_input(topo, NULL, NULL, 1024);

	(void)state;
	support_plan_fails(&in, "no allocation given");
	in.abstract_cores = "";
	support_plan_fails(&in, "allocated cores", "empty");
	in.abstract_cores = "0-x";
	support_plan_fails(&in, "allocated cores", "0-3,8");
	in.abstract_cores = "0-2";
	support_plan_fails(&in, "abstract core 2 is outside", "2 cores (0-1)");
	in.abstract_cores = NULL;
	in.os_cpuset = "";
	support_plan_fails(&in, "job cpuset", "empty");
	in.os_cpuset = "0-2";
	support_plan_fails(&in, "CPU 2 of the job cpuset is not a PU", "PUs 0-1");
	in.os_cpuset = "0-1\n";
	support_plan_fails(&in, "job cpuset", "unexpected character");
	hwloc_topology_destroy(topo);
}

static void test_plan_refuses_bad_memory(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_SMALL);
	struct svm_plan_input in = support_input(topo, "0-1", NULL, 0);

	(void)state;
	support_plan_fails(&in, "S_JOB_ALLOC_MEM is 0");
	in.job_mem_mib = SVM_PLAN_MEM_MAX_MIB + 1;
	support_plan_fails(&in, "above the 1073741824 MiB");
	in.job_mem_mib = 1024;
	in.mem_reserve_mib = 1024;
	support_plan_fails(&in, "reserve of 1024 MiB leaves nothing");
	in.job_mem_mib = 200;
	in.mem_reserve_mib = 100;
	support_plan_fails(&in, "guest RAM of 100 MiB", "minimum of 128 MiB", "--mem");
	in.job_mem_mib = 500;
	in.mem_reserve_mib = 0;
	in.min_guest_mib = 512;
	support_plan_fails(&in, "guest RAM of 500 MiB", "minimum of 512 MiB");
	hwloc_topology_destroy(topo);
}

static void test_plan_cell_without_memory_is_refused(void **state)
{
	hwloc_topology_t topo = support_fixture("four_numa.xml");
	struct svm_plan_input in = support_input(topo, "0-7", NULL, 3);

	(void)state;
	/* 3 MiB over four equal cells: 0 + 1 spare each for cells 0-2, none for 3. */
	in.min_guest_mib = 1;
	support_plan_fails(&in, "cell 3 (host node 3) would get no MiB");
	hwloc_topology_destroy(topo);
}

static void test_plan_refuses_too_many_vcpus(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_256);
	struct svm_plan_input in = support_input(topo, "0-63", NULL, 65536);
	struct svm_plan plan;

	(void)state;
	in.hypervisor = SVM_HV_XEN;
	support_plan(&in, &plan);
	assert_int_equal(plan.nvcpus, 128);
	svm_plan_free(&plan);
	in.abstract_cores = "0-64";
	support_plan_fails(&in, "130 CPUs", "128 vCPUs of a xen guest");
	in.hypervisor = SVM_HV_KVM;
	in.abstract_cores = "0-1";
	in.max_vcpus = 3;
	support_plan_fails(&in, "4 CPUs", "more than the 3 vCPUs");
	in.max_vcpus = 289;
	support_plan_fails(&in, "maximum of 289 vCPUs is above the 288");
	hwloc_topology_destroy(topo);
}

static void test_plan_refuses_missing_topology_or_hypervisor(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_SMALL);
	struct svm_plan_input in = support_input(NULL, "0", NULL, 1024);

	(void)state;
	support_plan_fails(&in, "no host topology");
	in.topology = topo;
	in.hypervisor = SVM_HV_UNSET;
	support_plan_fails(&in, "accepted: kvm, qemu, xen");
	hwloc_topology_destroy(topo);
}

static void test_plan_describe_formats_one_log_line(void **state)
{
	hwloc_topology_t topo = support_synthetic(T_DUAL);
	struct svm_plan_input in = support_input(topo, "0-1", NULL, 4096);
	uint64_t free_pages[] = {8};
	struct svm_plan plan;
	char line[128], small[8];

	(void)state;
	in.mem_reserve_mib = 256;
	support_plan(&in, &plan);
	svm_plan_describe(&plan, line, sizeof(line));
	assert_string_equal(line, "4 vCPUs (1x2x2) on PUs 0-3, 1 NUMA cell, 3840 MiB");
	assert_int_equal(svm_plan_describe(&plan, small, sizeof(small)), strlen(line));
	assert_string_equal(small, "4 vCPUs");
	svm_plan_free(&plan);

	in.abstract_cores = "5-8";
	support_plan(&in, &plan);
	svm_plan_describe(&plan, line, sizeof(line));
	assert_string_equal(line, "8 vCPUs (1x4x2) on PUs 10-17, 2 NUMA cells, 3840 MiB");
	svm_plan_free(&plan);

	in.abstract_cores = NULL;
	in.os_cpuset = "1";
	in.hugepages = SVM_HUGEPAGES_1G;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 1;
	support_plan(&in, &plan);
	svm_plan_describe(&plan, line, sizeof(line));
	assert_string_equal(line, "1 vCPU (1x1x1) on PUs 1, 1 NUMA cell, 3072 MiB, 1G hugepages");
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_topology_load_keeps_disallowed_cpus_and_reads_xml(void **state)
{
	char path[4096];
	struct svm_err err = {""};
	hwloc_topology_t topo = NULL;

	(void)state;
	support_data_path("topologies/interleaved.xml", path, sizeof(path));
	assert_int_equal(svm_topology_load(path, &topo, &err), 0);
	assert_true(hwloc_topology_get_flags(topo) & HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
	assert_int_equal(svm_topology_ncores(topo), 8);
	assert_int_equal(svm_topology_node_bound(topo), 2);
	hwloc_topology_destroy(topo);

	support_data_path("topologies/memory_tiers.xml", path, sizeof(path));
	assert_int_equal(svm_topology_load(path, &topo, &err), 0);
	assert_int_equal(svm_topology_node_bound(topo), 4);
	hwloc_topology_destroy(topo);

	/* This machine, as the extern step would load it. */
	assert_int_equal(svm_topology_load(NULL, &topo, &err), 0);
	assert_true(svm_topology_ncores(topo) >= 1);
	hwloc_topology_destroy(topo);

	assert_int_equal(svm_topology_load("/nonexistent/topo.xml", &topo, &err), -1);
	assert_null(topo);
	assert_non_null(strstr(err.msg, "/nonexistent/topo.xml"));
}

static void put(const char *root, const char *relative, const char *text)
{
	char path[4096], *slash;

	snprintf(path, sizeof(path), "%s/%s", root, relative);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	if (text != NULL)
		support_write_file(path, text);
	else
		mkdir(path, 0755);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void remove_tree(const char *root)
{
	assert_int_equal(nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void test_hugepages_read_free_reads_sysfs_per_node(void **state)
{
	char root[] = "/tmp/svm-sysfs-XXXXXX";
	struct svm_err err = {""};
	uint64_t counts[4] = {99, 99, 99, 99};

	(void)state;
	assert_non_null(mkdtemp(root));
	put(root, "devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "12\n");
	put(root, "devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages", "1\n");
	put(root, "devices/system/node/node1/hugepages", NULL);
	put(root, "devices/system/node/node2/hugepages/hugepages-2048kB/free_hugepages", "7");
	assert_int_equal(svm_hugepages_read_free(root, SVM_HUGEPAGES_2M, counts, 4, &err), 0);
	assert_int_equal(counts[0], 12);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 7);
	assert_int_equal(counts[3], 0);
	assert_int_equal(svm_hugepages_read_free(root, SVM_HUGEPAGES_1G, counts, 4, &err), 0);
	assert_int_equal(counts[0], 1);
	assert_int_equal(counts[2], 0);

	put(root, "devices/system/node/node3/hugepages/hugepages-2048kB/free_hugepages", "-1\n");
	assert_int_equal(svm_hugepages_read_free(root, SVM_HUGEPAGES_2M, counts, 4, &err), -1);
	assert_non_null(strstr(err.msg, "not a page count"));
	assert_int_equal(svm_hugepages_read_free(root, SVM_HUGEPAGES_NONE, counts, 4, &err), -1);
	assert_non_null(strstr(err.msg, "accepted: 2M, 1G"));
	remove_tree(root);
}

static void test_hugepages_read_free_falls_back_to_the_global_pool(void **state)
{
	char root[] = "/tmp/svm-sysfs-XXXXXX";
	struct svm_err err = {""};
	uint64_t counts[2] = {99, 99};

	(void)state;
	assert_non_null(mkdtemp(root));
	put(root, "kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "5\n");
	assert_int_equal(svm_hugepages_read_free(root, SVM_HUGEPAGES_2M, counts, 2, &err), 0);
	assert_int_equal(counts[0], 5);
	assert_int_equal(counts[1], 0);
	remove_tree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plan_one_socket_two_cores_gives_two_pinned_vcpus),
	        cmocka_unit_test(test_plan_mirrors_two_sockets_two_numa_smt),
	        cmocka_unit_test(test_plan_four_numa_fixture_gives_four_strict_cells),
	        cmocka_unit_test(test_plan_keeps_a_non_contiguous_allocation_in_core_order),
	        cmocka_unit_test(test_plan_partial_smt_allocation_has_one_thread_per_core),
	        cmocka_unit_test(test_plan_splits_memory_by_numa_pus_exactly),
	        cmocka_unit_test(test_plan_full_256_pu_node_uses_x2apic_on_kvm),
	        cmocka_unit_test(test_plan_maps_abstract_cores_through_hwloc_logical_order),
	        cmocka_unit_test(test_plan_refuses_a_cpuset_that_disagrees_with_the_abstract_cores),
	        cmocka_unit_test(test_plan_uses_the_cpuset_alone),
	        cmocka_unit_test(test_plan_ignores_hbm_and_cpu_less_nodes),
	        cmocka_unit_test(test_plan_counts_pus_as_cores_without_a_core_level),
	        cmocka_unit_test(test_plan_sockets_fall_back_to_one_when_packages_are_uneven),
	        cmocka_unit_test(test_plan_qemu_flattens_shapes_whose_apic_ids_exceed_xapic),
	        cmocka_unit_test(test_plan_pins_emulator_to_allocation_or_reserved_cpus),
	        cmocka_unit_test(test_plan_hugepages_split_whole_pages_per_node),
	        cmocka_unit_test(test_plan_hugepages_round_guest_ram_down_to_whole_pages),
	        cmocka_unit_test(
	                test_plan_hugepages_short_on_a_node_is_refused_naming_node_needed_free),
	        cmocka_unit_test(test_plan_hugepages_cell_without_a_page_is_refused),
	        cmocka_unit_test(test_plan_hugepages_with_xen_is_refused),
	        cmocka_unit_test(test_plan_refuses_bad_allocations),
	        cmocka_unit_test(test_plan_refuses_bad_memory),
	        cmocka_unit_test(test_plan_cell_without_memory_is_refused),
	        cmocka_unit_test(test_plan_refuses_too_many_vcpus),
	        cmocka_unit_test(test_plan_refuses_missing_topology_or_hypervisor),
	        cmocka_unit_test(test_plan_describe_formats_one_log_line),
	        cmocka_unit_test(test_topology_load_keeps_disallowed_cpus_and_reads_xml),
	        cmocka_unit_test(test_hugepages_read_free_reads_sysfs_per_node),
	        cmocka_unit_test(test_hugepages_read_free_falls_back_to_the_global_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
