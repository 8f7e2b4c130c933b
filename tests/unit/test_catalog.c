#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spank_vm/catalog.h"

static void test_entry_with_every_key(void **state)
{
	static const char text[] = "# CentOS 7 for legacy codes\n"
	                           "disk = centos7.qcow2\n"
	                           "format=raw\n"
	                           "hypervisors=kvm,xen\n"
	                           "boot=disk\n"
	                           "root=/dev/vda1\n"
	                           "allow_root=yes\n"
	                           "agent=no\n";
	struct svm_image image;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_image_parse("centos7", text, &image, &err), 0);
	assert_string_equal(image.name, "centos7");
	assert_string_equal(image.disk, "centos7.qcow2");
	assert_int_equal(image.format, SVM_IMAGE_RAW);
	assert_true(svm_image_supports(&image, SVM_HV_KVM));
	assert_false(svm_image_supports(&image, SVM_HV_QEMU));
	assert_true(svm_image_supports(&image, SVM_HV_XEN));
	assert_int_equal(image.boot, SVM_BOOT_DISK);
	assert_string_equal(image.root_device, "/dev/vda1");
	assert_true(image.allow_root);
	assert_false(image.agent);
}

static void test_defaults_need_only_a_disk(void **state)
{
	struct svm_image image;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_image_parse("small", "disk=small.img", &image, &err), 0);
	assert_int_equal(image.format, SVM_IMAGE_QCOW2);
	assert_true(svm_image_supports(&image, SVM_HV_QEMU));
	assert_false(svm_image_supports(&image, SVM_HV_XEN));
	assert_int_equal(image.boot, SVM_BOOT_HOST_KERNEL);
	assert_string_equal(image.root_device, "/dev/vda");
	assert_false(image.allow_root);
	assert_true(image.agent);
}

static void test_bad_entries_name_the_line_and_the_rule(void **state)
{
	static const struct {
		const char *text, *expected;
	} bad[] = {
	        {"format=qcow2\n", "no disk= line"},
	        {"disk=../etc/shadow\n", "line 1: disk: must be a file name"},
	        {"disk=/abs.qcow2\n", "disk: must be a file name"},
	        {"disk=a\nformat=vmdk\n", "line 2: format: unknown value (accepted: qcow2, raw)"},
	        {"disk=a\nhypervisors=kvm,vmware\n", "hypervisors: unknown hypervisor"},
	        {"disk=a\nboot=pxe\n", "boot: unknown value"},
	        {"disk=a\nroot=/etc/passwd\n", "root: expected a device"},
	        {"disk=a\nroot=/dev/vda1;rm\n", "root: expected a device"},
	        {"disk=a\nroot=/dev/1\n", "root: expected a device"},
	        {"disk=a\nroot=/dev/\n", "root: expected a device"},
	        {"disk=a\nroot=/dev/abcdefghijklmnopqrstuvwxyz012345\n", "root: expected a device"},
	        {"disk=a\nallow_root=sure\n", "malformed boolean"},
	        {"disk=a\ncolour=blue\n", "unknown key 'colour'"},
	        {"disk=a\r\n", "carriage return"},
	        {"disk=a\njust words\n", "line 2: expected key=value"},
	};
	struct svm_image image;
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(svm_image_parse("img", bad[i].text, &image, &err), -1);
		if (strstr(err.msg, bad[i].expected) == NULL)
			fail_msg("'%s': got '%s'", bad[i].text, err.msg);
	}
}

static void test_catalog_names_are_keys_not_paths(void **state)
{
	char dir[] = "/tmp/svm-catalog-XXXXXX", path[256];
	struct svm_image image;
	struct svm_err err;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ok.image", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("disk=ok.qcow2\n", f);
	fclose(f);
	assert_int_equal(svm_catalog_load(dir, "ok", &image, &err), 0);
	assert_string_equal(image.disk, "ok.qcow2");
	assert_int_equal(svm_catalog_load(dir, "missing", &image, &err), -1);
	assert_string_equal(err.msg, "no image named 'missing' in this site's catalog");
	assert_int_equal(svm_catalog_load(dir, "../ok", &image, &err), -1);
	assert_non_null(strstr(err.msg, "is not valid"));
	unlink(path);
	rmdir(dir);
}

static void touch(const char *dir, const char *name)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
}

static void test_catalog_lists_the_names_users_may_give(void **state)
{
	static const char *const files[] = {"zeta.image", "alpha.image",    "alpha.qcow2",
	                                    ".image",     "bad name.image", "notes.txt"};
	char dir[] = "/tmp/svm-catalog-XXXXXX", names[64], tiny[10], path[256];
	struct svm_err err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(svm_catalog_names(dir, names, sizeof(names), &err), 0);
	assert_string_equal(names, "");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		touch(dir, files[i]);
	assert_int_equal(svm_catalog_names(dir, names, sizeof(names), &err), 0);
	assert_string_equal(names, "alpha, zeta");
	assert_int_equal(svm_catalog_names(dir, tiny, sizeof(tiny), &err), 0);
	assert_string_equal(tiny, "alpha,...");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	assert_int_equal(svm_catalog_names(dir, names, sizeof(names), &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_entry_with_every_key),
	        cmocka_unit_test(test_defaults_need_only_a_disk),
	        cmocka_unit_test(test_bad_entries_name_the_line_and_the_rule),
	        cmocka_unit_test(test_catalog_names_are_keys_not_paths),
	        cmocka_unit_test(test_catalog_lists_the_names_users_may_give),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
