#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/values.h"

static void test_size_accepts_units_and_bare_mib(void **state)
{
	static const struct {
		const char *in;
		uint64_t mib;
	} ok[] = {{"256", 256}, {"256M", 256},   {"256MiB", 256}, {"1G", 1024},
	          {"2g", 2048}, {"1T", 1048576}, {"1024K", 1},    {"4GB", 4096}};
	struct svm_err err;
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(svm_parse_size_mib(ok[i].in, &v, &err), 0);
		assert_int_equal(v, ok[i].mib);
	}
}

static void test_size_refuses_malformed_with_accepted_values(void **state)
{
	static const char *const bad[] = {
	        "",        "M", "-1M", "+5", " 5",   "5 M",   "0x10",
	        "1.5G",    "0", "0M",  "1X", "512K", "1024Q", "99999999999999999999",
	        "2097152T"};
	struct svm_err err;
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(svm_parse_size_mib(bad[i], &v, &err), -1);
		assert_true(strlen(err.msg) > 0);
	}
	svm_parse_size_mib("1.5G", &v, &err);
	assert_non_null(strstr(err.msg, "accepted"));
}

static void test_hypervisor_names_round_trip(void **state)
{
	enum svm_hypervisor hv;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_parse_hypervisor("kvm", &hv, &err), 0);
	assert_int_equal(hv, SVM_HV_KVM);
	assert_string_equal(svm_hypervisor_name(hv), "kvm");
	assert_int_equal(svm_parse_hypervisor("qemu", &hv, &err), 0);
	assert_int_equal(svm_parse_hypervisor("xen", &hv, &err), 0);
	assert_string_equal(svm_hypervisor_name(hv), "xen");
	assert_int_equal(svm_parse_hypervisor("KVM", &hv, &err), -1);
	assert_string_equal(err.msg, "unknown value 'KVM' (accepted: kvm, qemu, xen)");
	assert_int_equal(svm_parse_hypervisor(NULL, &hv, &err), -1);
}

static void test_error_message_neutralises_control_characters(void **state)
{
	enum svm_net net;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_parse_net("a\nb\x1b[31m'", &net, &err), -1);
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\x1b'));
}

static void test_error_message_bounds_long_values(void **state)
{
	char big[4096];
	enum svm_policy policy;
	struct svm_err err;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(svm_parse_policy(big, &policy, &err), -1);
	assert_true(strlen(err.msg) < 200);
	assert_non_null(strstr(err.msg, "..."));
}

static void test_image_names_are_catalog_keys_not_paths(void **state)
{
	static const char *const good[] = {"host", "centos7", "a", "img-2.1_x", "0abc"};
	static const char *const bad[] = {
	        "",         "../etc",
	        "a/b",      ".hidden",
	        "-x",       "a b",
	        "a\nb",     "/abs",
	        "..",       "x;rm",
	        "\xc3\xa9", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(svm_check_image_name(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(svm_check_image_name(bad[i], &err), -1);
	assert_non_null(strstr(err.msg, "accepted"));
}

static void test_abs_path_must_be_normalised(void **state)
{
	static const char *const good[] = {"/", "/scratch/ck", "/a.b/c-d/e_f", "/x/..y/y.."};
	static const char *const bad[] = {"",    "rel", "/a/../b", "/a/./b", "/a//b",
	                                  "/a/", "/..", "/a\n",    "/a\tb",  "./a"};
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(svm_check_abs_path(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(svm_check_abs_path(bad[i], &err), -1);
}

static void test_uint_and_bool(void **state)
{
	struct svm_err err;
	uint64_t v;
	bool b;

	(void)state;
	assert_int_equal(svm_parse_uint("60", 1, 3600, &v, &err), 0);
	assert_int_equal(v, 60);
	assert_int_equal(svm_parse_uint("0", 1, 3600, &v, &err), -1);
	assert_int_equal(svm_parse_uint("3601", 1, 3600, &v, &err), -1);
	assert_non_null(strstr(err.msg, "1 to 3600"));
	assert_int_equal(svm_parse_uint("6O", 1, 3600, &v, &err), -1);
	assert_int_equal(svm_parse_bool("yes", &b, &err), 0);
	assert_true(b);
	assert_int_equal(svm_parse_bool("0", &b, &err), 0);
	assert_false(b);
	assert_int_equal(svm_parse_bool("maybe", &b, &err), -1);
}

static void test_keyed_value_finds_whole_keys_only(void **state)
{
	/* memory.oom_control (v1) and memory.events (v2) as the kernel writes them. */
	const char *v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
	const char *v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
	uint64_t v = 99;

	(void)state;
	assert_int_equal(svm_keyed_value(v1, "oom_kill", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(svm_keyed_value(v1, "oom_kill_disable", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(svm_keyed_value(v2, "oom_kill", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(svm_keyed_value(v2, "oom", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(svm_keyed_value("oom_kill_disable 1\n", "oom_kill", &v), -1);
	assert_int_equal(svm_keyed_value("oom_kill x\n", "oom_kill", &v), -1);
	assert_int_equal(svm_keyed_value("oom_kill \n", "oom_kill", &v), -1);
	assert_int_equal(svm_keyed_value("oom_kill 99999999999999999999999\n", "oom_kill", &v), -1);
	assert_int_equal(svm_keyed_value("", "oom_kill", &v), -1);
	assert_int_equal(svm_keyed_value("oom_kill 7", "oom_kill", &v), 0);
	assert_int_equal(v, 7);
}

static void test_percent_encoding_round_trips_and_refuses_bad_escapes(void **state)
{
	static const char *const bad[] = {"%", "%4", "%G1", "a%00b", "%zz"};
	char enc[256], dec[256];

	(void)state;
	assert_int_equal(svm_percent_encode("/a b/%c\n\xc3\xa9", enc, sizeof(enc)), 0);
	assert_string_equal(enc, "/a%20b/%25c%0A%C3%A9");
	assert_int_equal(svm_percent_decode(enc, strlen(enc), dec, sizeof(dec)), 0);
	assert_string_equal(dec, "/a b/%c\n\xc3\xa9");
	assert_int_equal(svm_percent_decode("abc", 3, dec, 3), -1); /* no room for the NUL */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(svm_percent_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_size_accepts_units_and_bare_mib),
	        cmocka_unit_test(test_size_refuses_malformed_with_accepted_values),
	        cmocka_unit_test(test_hypervisor_names_round_trip),
	        cmocka_unit_test(test_error_message_neutralises_control_characters),
	        cmocka_unit_test(test_error_message_bounds_long_values),
	        cmocka_unit_test(test_image_names_are_catalog_keys_not_paths),
	        cmocka_unit_test(test_abs_path_must_be_normalised),
	        cmocka_unit_test(test_uint_and_bool),
	        cmocka_unit_test(test_keyed_value_finds_whole_keys_only),
	        cmocka_unit_test(test_percent_encoding_round_trips_and_refuses_bad_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
