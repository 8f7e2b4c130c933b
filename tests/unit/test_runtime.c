#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "spank_vm/runtime.h"
#include "spank_vm/save_command.h"

static int make_root(void **state)
{
	char *dir = strdup("/tmp/svm-runtime-XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int remove_root(void **state)
{
	struct svm_err err;
	char *dir = *state;

	assert_int_equal(svm_remove_tree_at(AT_FDCWD, dir, &err), 0);
	free(dir);
	return 0;
}

static void test_job_file_round_trip_and_modes(void **state)
{
	const char *root = *state;
	char path[512], buf[64];
	struct svm_err err;
	struct stat st;

	assert_int_equal(svm_job_dir_create(root, 42, &err), 0);
	assert_int_equal(svm_job_dir_create(root, 42, &err), 0); /* twice is fine */
	snprintf(path, sizeof(path), "%s/a/b/node1", root);
	assert_int_equal(svm_job_dir_create(path, 42, &err), 0); /* parents are created */
	snprintf(path, sizeof(path), "%s/a/b/node1/42", root);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(svm_job_file_write(root, 42, "request", "format=1\n", &err), 0);
	assert_int_equal(svm_job_file_read(root, 42, "request", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "format=1\n");
	snprintf(path, sizeof(path), "%s/42", root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	snprintf(path, sizeof(path), "%s/42/request", root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/42/.request.tmp", root);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_read_refuses_oversize_file(void **state)
{
	const char *root = *state;
	char buf[8];
	struct svm_err err;

	assert_int_equal(svm_job_dir_create(root, 7, &err), 0);
	assert_int_equal(svm_job_file_write(root, 7, "big", "0123456789", &err), 0);
	assert_int_equal(svm_job_file_read(root, 7, "big", buf, sizeof(buf), &err), -1);
	assert_non_null(strstr(err.msg, "larger"));
}

static void test_remove_does_not_follow_symlinks(void **state)
{
	const char *root = *state;
	char victim[512], link_path[512], sub[512];
	struct svm_err err;
	FILE *f;

	/* A file outside the job dir that a planted link points to must survive. */
	snprintf(victim, sizeof(victim), "%s/victim", root);
	f = fopen(victim, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(svm_job_dir_create(root, 9, &err), 0);
	snprintf(sub, sizeof(sub), "%s/9/sub", root);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(link_path, sizeof(link_path), "%s/9/sub/link", root);
	assert_int_equal(symlink(root, link_path), 0);
	assert_int_equal(svm_job_dir_remove(root, 9, &err), 0);
	assert_int_equal(access(victim, F_OK), 0);
	snprintf(sub, sizeof(sub), "%s/9", root);
	assert_int_equal(access(sub, F_OK), -1);
	assert_int_equal(svm_job_dir_remove(root, 9, &err), 0); /* absent is fine */
}

static void test_create_refuses_planted_symlink(void **state)
{
	const char *root = *state;
	char link_path[512];
	struct svm_err err;

	snprintf(link_path, sizeof(link_path), "%s/13", root);
	assert_int_equal(symlink("/tmp", link_path), 0);
	assert_int_equal(svm_job_dir_create(root, 13, &err), -1);
	assert_non_null(strstr(err.msg, "not a directory owned"));
	assert_int_equal(svm_job_dir_remove(root, 13, &err), 0);
	assert_int_equal(access("/tmp", F_OK), 0);
}

static void test_save_command_names_the_guest_and_its_checkpoint(void **state)
{
	struct svm_save_guest g = {.exe = "spank-vm-provision",
	                           .runtime_dir = "/run/spank_vm/n1",
	                           .job_id = 42,
	                           .node = "n1",
	                           .name = "spank_vm-n0-42",
	                           .uid = 1000,
	                           .gid = 100,
	                           .guest_dir = "/run/spank_vm/n1/42/guest",
	                           .checkpoint_dir = "/scratch/ck"};
	struct svm_save_command cmd = {.argv = {NULL}};
	char line[1024] = "";

	(void)state;
	svm_save_command(&cmd, &g);
	for (char **arg = cmd.argv; *arg != NULL; arg++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s",
		         arg == cmd.argv ? "" : " ", *arg);
	assert_string_equal(line,
	                    "spank-vm-provision save --name spank_vm-n0-42 --job 42 --node n1 "
	                    "--owner 1000:100 --dir /run/spank_vm/n1/42/guest "
	                    "--checkpoint-stage /run/spank_vm/n1/42/checkpoint-stage "
	                    "--checkpoint /scratch/ck");
	g.keep_running = true;
	g.uri = "qemu:///system";
	svm_save_command(&cmd, &g);
	assert_string_equal(cmd.argv[16], "--keep-running");
	/* Resumed in a new QEMU, the guest joins the job's cgroups again. */
	assert_string_equal(cmd.argv[17], "--job-cgroups-file");
	assert_string_equal(cmd.argv[18], "/run/spank_vm/n1/42/cgroups");
	assert_string_equal(cmd.argv[20], "qemu:///system");
	assert_null(cmd.argv[21]);
}

static void test_domain_default_name(void **state)
{
	char name[24];

	(void)state;
	assert_int_equal(svm_domain_default_name("svm1", 42, name, sizeof(name)), 0);
	assert_string_equal(name, "spank_vm-svm1-42");
	assert_int_equal(svm_domain_default_name("a-much-longer-node", 42, name, sizeof(name)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_job_file_round_trip_and_modes, make_root,
	                                        remove_root),
	        cmocka_unit_test_setup_teardown(test_read_refuses_oversize_file, make_root,
	                                        remove_root),
	        cmocka_unit_test_setup_teardown(test_remove_does_not_follow_symlinks, make_root,
	                                        remove_root),
	        cmocka_unit_test_setup_teardown(test_create_refuses_planted_symlink, make_root,
	                                        remove_root),
	        cmocka_unit_test(test_save_command_names_the_guest_and_its_checkpoint),
	        cmocka_unit_test(test_domain_default_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
