#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spank_vm/checkpoint_store.h"
#include "spank_vm/runtime.h"

#define JOB 77
/* SHA-256 of "abc" (FIPS 180-2, appendix B.1). */
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct fixture {
	char dir[64];
	int parent;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_ckpt_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->parent = open(f->dir, O_RDONLY | O_DIRECTORY);
	*state = f;
	return f->parent < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int top = open("/tmp", O_RDONLY | O_DIRECTORY);

	svm_remove_tree_at(top, f->dir + strlen("/tmp/"), NULL);
	close(top);
	close(f->parent);
	free(f);
	return 0;
}

/* A manifest of a 2-vCPU, 1-cell guest; files filled in by write_checkpoint(). */
static struct svm_ckpt_manifest *manifest(void)
{
	struct svm_ckpt_manifest *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->format = SVM_CKPT_FORMAT;
	m->job_id = JOB;
	strcpy(m->node, "svm1");
	m->hypervisor = SVM_HV_QEMU;
	strcpy(m->image, "tiny");
	memset(m->image_digest, 'a', SVM_CKPT_SHA256_HEX);
	m->nvcpus = 2;
	m->sockets = m->threads = 1;
	m->cores = 2;
	m->ncells = 1;
	svm_cpuset_add(&m->cells[0].vcpus, 0);
	svm_cpuset_add(&m->cells[0].vcpus, 1);
	m->cells[0].mem_mib = m->guest_mib = 256;
	return m;
}

static void write_file(int partial, enum svm_ckpt_file_id id, const char *content,
                       struct svm_ckpt_manifest *m)
{
	int fd, src = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	struct svm_err err;

	assert_true(src >= 0);
	assert_int_equal(write(src, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(lseek(src, 0, SEEK_SET), 0);
	assert_int_equal(svm_ckpt_create_file(partial, id, &fd, &err), 0);
	if (svm_ckpt_copy(src, fd, &m->files[id], &err) != 0)
		fail_msg("copy: %s", err.msg);
	close(fd);
	close(src);
}

/* Saves a checkpoint whose memory file holds `memory`. */
static void write_checkpoint(int parent, const char *memory)
{
	struct svm_ckpt_manifest *m = manifest();
	struct svm_err err;
	int partial;

	if (svm_ckpt_begin(parent, JOB, &partial, &err) != 0)
		fail_msg("begin: %s", err.msg);
	write_file(partial, SVM_CKPT_FILE_MEMORY, memory, m);
	write_file(partial, SVM_CKPT_FILE_DISK, "disk", m);
	if (svm_ckpt_commit(parent, partial, m, &err) != 0)
		fail_msg("commit: %s", err.msg);
	free(m);
}

/* Loads the checkpoint and copies its memory file out; returns its text, or
 * NULL with the error in err. */
static char *load_memory(int parent, struct svm_err *err)
{
	struct svm_ckpt_manifest *m = calloc(1, sizeof(*m));
	int dir = -1, out = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	char *text = NULL;
	ssize_t n;

	assert_non_null(m);
	assert_true(out >= 0);
	if (svm_ckpt_open(parent, JOB, &dir, m, err) != 0 ||
	    svm_ckpt_copy_verified(dir, SVM_CKPT_FILE_DISK, m, -1, err) != 0 ||
	    svm_ckpt_copy_verified(dir, SVM_CKPT_FILE_MEMORY, m, out, err) != 0)
		goto out;
	text = calloc(1, 4096);
	assert_non_null(text);
	n = pread(out, text, 4095, 0);
	assert_true(n >= 0);
out:
	if (dir >= 0)
		close(dir);
	close(out);
	free(m);
	return text;
}

static void test_copy_hashes_what_it_copies(void **state)
{
	struct svm_ckpt_file result;
	struct svm_err err;
	int src = open("/tmp", O_TMPFILE | O_RDWR, 0600);

	(void)state;
	assert_int_equal(write(src, "abc", 3), 3);
	assert_int_equal(lseek(src, 0, SEEK_SET), 0);
	assert_int_equal(svm_ckpt_copy(src, -1, &result, &err), 0);
	assert_int_equal(result.size, 3);
	assert_string_equal(result.sha256, SHA256_ABC);
	close(src);
}

static void test_saved_checkpoint_loads_and_replaces_the_old_one(void **state)
{
	struct fixture *f = *state;
	struct svm_err err;
	char *memory, partial[SVM_CKPT_DIR_MAX];
	struct stat st;

	write_checkpoint(f->parent, "first state");
	memory = load_memory(f->parent, &err);
	if (memory == NULL)
		fail_msg("load: %s", err.msg);
	assert_string_equal(memory, "first state");
	free(memory);
	write_checkpoint(f->parent, "second state");
	memory = load_memory(f->parent, &err);
	assert_non_null(memory);
	assert_string_equal(memory, "second state");
	free(memory);
	svm_ckpt_dir_name(JOB, true, partial, sizeof(partial));
	assert_int_equal(fstatat(f->parent, partial, &st, 0), -1);
}

static void test_no_checkpoint_is_not_an_error(void **state)
{
	struct fixture *f = *state;
	struct svm_ckpt_manifest *m = manifest();
	struct svm_err err;
	int dir;

	assert_int_equal(svm_ckpt_open(f->parent, JOB, &dir, m, &err), 1);
	free(m);
}

/* A save cut off before its commit leaves only a partial directory: there
 * is still no checkpoint, and the next save starts over. */
static void test_an_unfinished_save_is_not_a_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct svm_ckpt_manifest *m = manifest();
	struct svm_err err;
	int partial, dir;
	char *memory;

	assert_int_equal(svm_ckpt_begin(f->parent, JOB, &partial, &err), 0);
	write_file(partial, SVM_CKPT_FILE_MEMORY, "half", m);
	close(partial);
	assert_int_equal(svm_ckpt_open(f->parent, JOB, &dir, m, &err), 1);
	write_checkpoint(f->parent, "whole");
	memory = load_memory(f->parent, &err);
	assert_non_null(memory);
	assert_string_equal(memory, "whole");
	free(memory);
	free(m);
}

static int ckpt_dir(int parent)
{
	char name[SVM_CKPT_DIR_MAX];
	int fd;

	svm_ckpt_dir_name(JOB, false, name, sizeof(name));
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	return fd;
}

static void assert_load_fails(int parent, const char *fragment)
{
	struct svm_err err;
	char *memory = load_memory(parent, &err);

	if (memory != NULL)
		fail_msg("loaded '%s', expected an error with '%s'", memory, fragment);
	if (strstr(err.msg, fragment) == NULL)
		fail_msg("error '%s' lacks '%s'", err.msg, fragment);
}

static void test_damaged_checkpoints_are_refused_with_the_reason(void **state)
{
	struct fixture *f = *state;
	int dir, fd;

	write_checkpoint(f->parent, "0123456789");
	dir = ckpt_dir(f->parent);
	fd = openat(dir, "memory", O_WRONLY);
	assert_int_equal(ftruncate(fd, 4), 0);
	close(fd);
	assert_load_fails(f->parent, "memory has 4 bytes, the manifest says 10 (truncated)");

	write_checkpoint(f->parent, "0123456789");
	close(dir);
	dir = ckpt_dir(f->parent);
	fd = openat(dir, "memory", O_WRONLY);
	assert_int_equal(pwrite(fd, "X", 1, 3), 1);
	close(fd);
	assert_load_fails(f->parent, "memory does not match its checksum");

	write_checkpoint(f->parent, "0123456789");
	close(dir);
	dir = ckpt_dir(f->parent);
	assert_int_equal(unlinkat(dir, "memory", 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", dir, "memory"), 0);
	assert_load_fails(f->parent, "checkpoint file memory");

	assert_int_equal(unlinkat(dir, "memory", 0), 0);
	assert_int_equal(mkfifoat(dir, "memory", 0600), 0);
	assert_load_fails(f->parent, "memory is not a regular file");

	assert_int_equal(unlinkat(dir, "manifest", 0), 0);
	assert_load_fails(f->parent, "no manifest");
	close(dir);
}

/* A checkpoint directory that is a link, or holds another job's manifest. */
static void test_a_checkpoint_not_of_this_job_is_refused(void **state)
{
	struct fixture *f = *state;
	struct svm_ckpt_manifest *m = manifest();
	char other[SVM_CKPT_DIR_MAX], mine[SVM_CKPT_DIR_MAX];
	struct svm_err err;
	int dir;

	write_checkpoint(f->parent, "state");
	svm_ckpt_dir_name(JOB, false, mine, sizeof(mine));
	svm_ckpt_dir_name(JOB + 1, false, other, sizeof(other));
	assert_int_equal(renameat(f->parent, mine, f->parent, other), 0);
	assert_int_equal(symlinkat(other, f->parent, mine), 0);
	assert_load_fails(f->parent, "checkpoint spank_vm-job77");
	assert_int_equal(svm_ckpt_open(f->parent, JOB + 1, &dir, m, &err), -1);
	assert_non_null(strstr(err.msg, "the manifest is job 77's, not job 78's"));
	free(m);
}

static void test_remove_takes_the_checkpoint_and_any_partial(void **state)
{
	struct fixture *f = *state;
	struct svm_ckpt_manifest *m = manifest();
	struct svm_err err;
	int partial, dir;
	struct stat st;
	char name[SVM_CKPT_DIR_MAX];

	write_checkpoint(f->parent, "state");
	assert_int_equal(svm_ckpt_begin(f->parent, JOB, &partial, &err), 0);
	close(partial);
	assert_int_equal(svm_ckpt_remove(f->parent, JOB, &err), 0);
	assert_int_equal(svm_ckpt_open(f->parent, JOB, &dir, m, &err), 1);
	svm_ckpt_dir_name(JOB, true, name, sizeof(name));
	assert_int_equal(fstatat(f->parent, name, &st, 0), -1);
	assert_int_equal(svm_ckpt_remove(f->parent, JOB, &err), 0);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_copy_hashes_what_it_copies),
	        cmocka_unit_test_setup_teardown(
	                test_saved_checkpoint_loads_and_replaces_the_old_one, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_checkpoint_is_not_an_error, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_an_unfinished_save_is_not_a_checkpoint, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_damaged_checkpoints_are_refused_with_the_reason, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_a_checkpoint_not_of_this_job_is_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_remove_takes_the_checkpoint_and_any_partial,
	                                        setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
