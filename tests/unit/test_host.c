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

/* As seen here: the extern step's task (its sleep) under jobacct_gather/cgroup. */
static const char extern_task_v1[] = "9:name=systemd:/\n"
                                     "8:pids:/\n"
                                     "7:blkio:/\n"
                                     "6:freezer:/slurm_svm1/uid_1001/job_1/step_extern\n"
                                     "5:devices:/slurm_svm1/uid_1001/job_1/step_extern\n"
                                     "4:memory:/slurm_svm1/uid_1001/job_1/step_extern/task_0\n"
                                     "3:cpuset:/slurm_svm1/uid_1001/job_1/step_extern\n"
                                     "2:cpuacct:/slurm_svm1/uid_1001/job_1/step_extern/task_0\n"
                                     "1:cpu:/\n"
                                     "0::/\n";

static void test_guest_joins_the_limiting_v1_hierarchies_only(void **state)
{
	struct svm_cgroup_dirs dirs;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_guest_dirs(extern_task_v1, "/sys/fs/cgroup", &dirs, &err), 0);
	/* Not freezer (Slurm's end-of-step SIGTERM), not devices, not cpu at "/". */
	assert_int_equal(dirs.n, 3);
	assert_string_equal(dirs.dir[0],
	                    "/sys/fs/cgroup/memory/slurm_svm1/uid_1001/job_1/step_extern/task_0");
	assert_string_equal(dirs.dir[1],
	                    "/sys/fs/cgroup/cpuset/slurm_svm1/uid_1001/job_1/step_extern");
	assert_string_equal(dirs.dir[2],
	                    "/sys/fs/cgroup/cpuacct/slurm_svm1/uid_1001/job_1/step_extern/task_0");
}

static void test_guest_cgroups_comounted_and_v2(void **state)
{
	struct svm_cgroup_dirs dirs;
	struct svm_err err;

	(void)state;
	assert_int_equal(
	        svm_cgroup_guest_dirs("4:cpu,cpuacct:/slurm/uid_5/job_7/step_extern/task_0\n"
	                              "3:cpuset:/slurm/uid_5/job_7/step_extern\n"
	                              "2:memory:/slurm/uid_5/job_7/step_extern/task_0\n"
	                              "0::/\n",
	                              "/cg", &dirs, &err),
	        0);
	assert_int_equal(dirs.n, 3);
	assert_string_equal(dirs.dir[0], "/cg/cpu,cpuacct/slurm/uid_5/job_7/step_extern/task_0");
	assert_int_equal(
	        svm_cgroup_guest_dirs(
	                "0::/system.slice/slurmstepd.scope/job_3/step_extern/user/task_0\n",
	                "/sys/fs/cgroup", &dirs, &err),
	        0);
	assert_int_equal(dirs.n, 1);
	assert_string_equal(dirs.dir[0], "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_3/"
	                                 "step_extern/user/task_0");
}

static void test_guest_cgroups_refuse_what_is_no_job(void **state)
{
	static const char *const bad[] = {
	        "3:cpuset:/\n",
	        "3:cpuset:/slurm/uid_5/job_/step_extern\n",
	        "3:cpuset:/slurm/uid_5/job_7x/step_extern\n",
	        "3:cpuset:/slurm/uid_5/job_7/../../../etc\n",
	        "0::/user.slice\n",
	        "6:freezer:/slurm/uid_5/job_7/step_extern\n",
	        "",
	};
	struct svm_cgroup_dirs dirs;
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(svm_cgroup_guest_dirs(bad[i], "/cg", &dirs, &err), -1);
		assert_true(strlen(err.msg) > 0);
	}
}

static void test_guest_cgroups_joined_and_removed(void **state)
{
	char root[] = "/tmp/svm-cgroup-XXXXXX", text[512], path[4200];
	struct svm_cgroup_dirs dirs;
	struct svm_err err;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path),
	         "mkdir -p %s/cpuset/s/uid_5/job_7/step_extern/task_0 %s/cpuset/s/uid_5/job_8 && "
	         "touch %s/cpuset/s/uid_5/job_7/step_extern/task_0/cgroup.procs",
	         root, root, root);
	assert_int_equal(system(path), 0);
	snprintf(text, sizeof(text), "3:cpuset:/s/uid_5/job_7/step_extern/task_0\n");
	assert_int_equal(svm_cgroup_guest_dirs(text, root, &dirs, &err), 0);
	/* In a plain directory the pid lands in the file. */
	assert_int_equal(svm_cgroup_join(&dirs, 1234, &err), 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", dirs.dir[0]);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_string_equal(text, "1234\n");
	/* Non-empty stays (here the file; in cgroupfs a process or a child). */
	svm_cgroup_remove_job_dirs(&dirs);
	assert_int_equal(access(dirs.dir[0], F_OK), 0);
	unlink(path);
	svm_cgroup_remove_job_dirs(&dirs);
	snprintf(path, sizeof(path), "%s/cpuset/s/uid_5/job_7", root);
	assert_int_equal(access(path, F_OK), -1);
	/* The user's directory holds another job: it stays, and so does "s". */
	snprintf(path, sizeof(path), "%s/cpuset/s/uid_5/job_8", root);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "rm -rf %s", root);
	assert_int_equal(system(path), 0);
}

static void test_task_memory_dir_from_slurmstepd_v1_and_v2(void **state)
{
	char dir[512];
	struct svm_err err;

	(void)state;
	/* v1: slurmstepd sits in the step's memory cgroup (task/cgroup). */
	assert_int_equal(
	        svm_cgroup_task_memory_dir("6:freezer:/slurm_svm1/uid_1001/job_5/step_batch\n"
	                                   "5:memory:/slurm_svm1/uid_1001/job_5/step_batch\n"
	                                   "4:cpu,cpuacct:/\n0::/\n",
	                                   "/sys/fs/cgroup", 0, dir, sizeof(dir), &err),
	        0);
	assert_string_equal(dir,
	                    "/sys/fs/cgroup/memory/slurm_svm1/uid_1001/job_5/step_batch/task_0");
	assert_int_equal(svm_cgroup_task_memory_dir("3:memory:/slurm/uid_5/job_7/step_0\n", "/cg",
	                                            12, dir, sizeof(dir), &err),
	                 0);
	assert_string_equal(dir, "/cg/memory/slurm/uid_5/job_7/step_0/task_12");
	/* v2: slurmstepd in step_N/slurm, the tasks in step_N/user. */
	assert_int_equal(
	        svm_cgroup_task_memory_dir("0::/system.slice/slurmstepd.scope/job_3/step_1/slurm\n",
	                                   "/sys/fs/cgroup", 2, dir, sizeof(dir), &err),
	        0);
	assert_string_equal(
	        dir, "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_3/step_1/user/task_2");
	/* Not a step's: no memory hierarchy, no job, no step. */
	assert_int_equal(svm_cgroup_task_memory_dir("4:cpuset:/slurm/uid_5/job_7/step_0\n", "/cg",
	                                            0, dir, sizeof(dir), &err),
	                 -1);
	assert_int_equal(svm_cgroup_task_memory_dir("3:memory:/user.slice\n", "/cg", 0, dir,
	                                            sizeof(dir), &err),
	                 -1);
	assert_int_equal(svm_cgroup_task_memory_dir("3:memory:/slurm/uid_5/job_7\n", "/cg", 0, dir,
	                                            sizeof(dir), &err),
	                 -1);
	assert_int_equal(svm_cgroup_task_memory_dir("3:memory:/slurm/uid_5/job_7/step_0\n", "/cg",
	                                            0, dir, 20, &err),
	                 -1);
}

static void test_task_dir_check_wants_a_slurm_task_below_the_root(void **state)
{
	static const char *const bad[] = {
	        "relative/job_5/step_0/task_0",
	        "/tmp/job_5/step_0/task_0",
	        "/sys/fs/cgroup/memory/slurm/uid_1/step_0/task_0",
	        "/sys/fs/cgroup/memory/slurm/uid_1/job_5/step_0",
	        "/sys/fs/cgroup/memory/slurm/uid_1/job_5/step_0/task_",
	        "/sys/fs/cgroup/memory/slurm/uid_1/job_5/step_0/task_0x",
	        "/sys/fs/cgroup/memory/slurm/uid_1/job_5/../../../task_0",
	        "/sys/fs/cgroupx/job_5/step_0/task_0",
	};
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_cgroup_check_task_dir(
	                         "/sys/fs/cgroup/memory/slurm/uid_1/job_5/step_batch/task_0",
	                         "/sys/fs/cgroup", &err),
	                 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(svm_cgroup_check_task_dir(bad[i], "/sys/fs/cgroup", &err), -1);
		assert_true(strlen(err.msg) > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cgroup_v1_cpuset_line_is_found_among_others),
	        cmocka_unit_test(test_cgroup_v1_cpuset_in_a_joined_hierarchy),
	        cmocka_unit_test(test_cgroup_v2_unified_line),
	        cmocka_unit_test(test_guest_joins_the_limiting_v1_hierarchies_only),
	        cmocka_unit_test(test_guest_cgroups_comounted_and_v2),
	        cmocka_unit_test(test_guest_cgroups_refuse_what_is_no_job),
	        cmocka_unit_test(test_guest_cgroups_joined_and_removed),
	        cmocka_unit_test(test_task_memory_dir_from_slurmstepd_v1_and_v2),
	        cmocka_unit_test(test_task_dir_check_wants_a_slurm_task_below_the_root),
	        cmocka_unit_test(test_cgroup_refuses_missing_and_dotdot),
	        cmocka_unit_test(test_cgroup_reads_cpus_from_the_first_file_present),
	        cmocka_unit_test(test_plan_record_lists_pins_cells_and_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
