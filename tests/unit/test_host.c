/* The host side of the allocation: cgroup lookup and the recorded plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plan_support.h"
#include "spank_vm/cgroup.h"
#include "spank_vm/plan_record.h"

static void test_cgroup_v1_cpuset_line_is_found_among_others(void **state)
{
	static const char text[] = "12:pids:/slurm_n1/uid_5/job_7/step_extern\n"
	                           "8:cpuset:/slurm_n1/uid_5/job_7/step_extern/slurm\n"
	                           "5:cpu,cpuacct:/\n"
	                           "0::/\n";
	char dir[256];
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_cpuset_dir(text, "/sys/fs/cgroup", dir, sizeof(dir), &err), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/cpuset/slurm_n1/uid_5/job_7/step_extern/slurm");
	svm_cgroup_job_level(dir);
	assert_string_equal(dir, "/sys/fs/cgroup/cpuset/slurm_n1/uid_5/job_7");
}

static void test_cgroup_v1_cpuset_in_a_joined_hierarchy(void **state)
{
	static const char text[] = "3:cpuset,cpu:/a/job_12\n";
	char dir[256];
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_cpuset_dir(text, "/cg", dir, sizeof(dir), &err), 0);
	assert_string_equal(dir, "/cg/cpuset/a/job_12");
	svm_cgroup_job_level(dir);
	assert_string_equal(dir, "/cg/cpuset/a/job_12");
}

static void test_cgroup_v2_unified_line(void **state)
{
	static const char text[] = "0::/system.slice/slurmstepd.scope/job_3/step_0/user/task_0\n";
	char dir[256];
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_cpuset_dir(text, "/sys/fs/cgroup", dir, sizeof(dir), &err), 0);
	svm_cgroup_job_level(dir);
	assert_string_equal(dir, "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_3");
}

static void test_cgroup_refuses_missing_and_dotdot(void **state)
{
	char dir[256];
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_cpuset_dir("4:memory:/x\n", "/cg", dir, sizeof(dir), &err), -1);
	assert_non_null(strstr(err.msg, "no cpuset cgroup"));
	assert_int_equal(
	        svm_cgroup_cpuset_dir("2:cpuset:/../../etc\n", "/cg", dir, sizeof(dir), &err), -1);
	/* "job_" without digits is not Slurm's job level. */
	snprintf(dir, sizeof(dir), "/cg/cpuset/job_x/step_0");
	svm_cgroup_job_level(dir);
	assert_string_equal(dir, "/cg/cpuset/job_x/step_0");
}

static void test_cgroup_reads_cpus_from_the_first_file_present(void **state)
{
	char dir[] = "/tmp/svm-cgroup-XXXXXX", path[128];
	struct svm_cpuset cpus;
	struct svm_err err;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(svm_cgroup_read_cpus(dir, &cpus, &err), -1);
	snprintf(path, sizeof(path), "%s/cpuset.cpus", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0-1,4\n", f);
	fclose(f);
	assert_int_equal(svm_cgroup_read_cpus(dir, &cpus, &err), 0);
	assert_string_equal(support_list(&cpus), "0-1,4");
	snprintf(path, sizeof(path), "%s/cpuset.effective_cpus", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("4\n", f);
	fclose(f);
	assert_int_equal(svm_cgroup_read_cpus(dir, &cpus, &err), 0);
	assert_string_equal(support_list(&cpus), "4");
	unlink(path);
	snprintf(path, sizeof(path), "%s/cpuset.cpus", dir);
	unlink(path);
	rmdir(dir);
}

static void test_plan_record_lists_pins_cells_and_memory(void **state)
{
	hwloc_topology_t topo = support_synthetic("pack:2 numa:1 core:2 pu:2");
	struct svm_plan_input in = support_input(topo, "1-2", NULL, 4096);
	struct svm_plan plan;
	char record[4096];
	struct svm_err err;

	(void)state;
	in.mem_reserve_mib = 1024;
	support_plan(&in, &plan);
	assert_int_equal(svm_plan_record(&plan, record, sizeof(record), &err), 0);
	assert_non_null(strstr(record, "\nvcpus=4\n"));
	assert_non_null(strstr(record, "\ntopology=2x1x2\n"));
	assert_non_null(strstr(record, "\nhost_pus=2-5\n"));
	assert_non_null(strstr(record, "\nvcpu_pus=2,3,4,5\n"));
	assert_non_null(strstr(record, "\nhost_nodes=0-1\n"));
	assert_non_null(strstr(record, "\ncells=0:0-1:1536;1:2-3:1536\n"));
	assert_non_null(strstr(record, "\nguest_mib=3072\nhard_limit_mib=4096\n"));
	assert_int_equal(svm_plan_record(&plan, record, 64, &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cgroup_v1_cpuset_line_is_found_among_others),
	        cmocka_unit_test(test_cgroup_v1_cpuset_in_a_joined_hierarchy),
	        cmocka_unit_test(test_cgroup_v2_unified_line),
	        cmocka_unit_test(test_cgroup_refuses_missing_and_dotdot),
	        cmocka_unit_test(test_cgroup_reads_cpus_from_the_first_file_present),
	        cmocka_unit_test(test_plan_record_lists_pins_cells_and_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
