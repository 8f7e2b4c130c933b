#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/request.h"

static void test_vm_alone_means_default_image(void **state)
{
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, NULL, "host", &err), 0);
	assert_true(req.enabled);
	assert_string_equal(req.image, "host");
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "", "host", &err), 0);
	assert_string_equal(req.image, "host");
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "centos7", "host", &err), 0);
	assert_string_equal(req.image, "centos7");
}

static void test_bad_option_values_name_the_option(void **state)
{
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "../../etc/passwd", "host", &err), -1);
	assert_non_null(strstr(err.msg, "--vm: image name"));
	assert_int_equal(svm_request_set(&req, SVM_OPT_HYPERVISOR, "vmware", "host", &err), -1);
	assert_string_equal(err.msg,
	                    "--vm-hypervisor: unknown value 'vmware' (accepted: kvm, qemu, xen)");
	assert_int_equal(svm_request_set(&req, SVM_OPT_HUGEPAGES, "4M", "host", &err), -1);
	assert_non_null(strstr(err.msg, "--vm-hugepages"));
	assert_int_equal(svm_request_set(&req, SVM_OPT_NET, "bridge", "host", &err), -1);
	assert_non_null(strstr(err.msg, "none, cluster"));
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT, "rel/dir", "host", &err), -1);
	assert_non_null(strstr(err.msg, "--vm-checkpoint"));
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_SIGNAL, "HUP", "host", &err), -1);
	assert_string_equal(err.msg, "--vm-checkpoint-signal: expected USR1 or USR2, got 'HUP'");
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_SIGNAL, NULL, "host", &err), -1);
}

static void test_checkpoint_signal_needs_checkpoint(void **state)
{
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "img", "host", &err), 0);
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_SIGNAL, "SIGUSR2", "h", &err), 0);
	assert_int_equal(req.checkpoint_signal, SIGUSR2);
	assert_int_equal(svm_request_check(&req, SVM_SEEN_VM | SVM_SEEN_CHECKPOINT_SIGNAL, &err),
	                 -1);
	assert_string_equal(err.msg, "--vm-checkpoint-signal needs --vm-checkpoint=DIR (where "
	                             "the job's guest is saved)");
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT, "/ck", "h", &err), 0);
	assert_int_equal(
	        svm_request_check(
	                &req, SVM_SEEN_VM | SVM_SEEN_CHECKPOINT_SIGNAL | SVM_SEEN_CHECKPOINT, &err),
	        0);
}

static void test_checkpoint_fallback_and_interval(void **state)
{
	static const struct {
		const char *text;
		uint32_t seconds; /* 0: refused */
	} intervals[] = {
	        {"10", 10},  {"10s", 10}, {"30m", 1800}, {"2h", 7200}, {"168h", 604800},
	        {"9", 0},    {"9s", 0},   {"169h", 0},   {"0", 0},     {"", 0},
	        {"m", 0},    {"5x", 0},   {"-5m", 0},    {"1.5h", 0},  {"99999999999999h", 0},
	        {" 30m", 0}, {"30 m", 0}, {"30M", 0},
	};
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "img", "host", &err), 0);
	for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
		int rc = svm_request_set(&req, SVM_OPT_CHECKPOINT_INTERVAL, intervals[i].text, "h",
		                         &err);

		assert_int_equal(rc, intervals[i].seconds ? 0 : -1);
		if (rc == 0)
			assert_int_equal(req.checkpoint_interval_s, intervals[i].seconds);
		else
			assert_non_null(strstr(err.msg, "--vm-checkpoint-interval: expected a time "
			                                "from 10s to 168h"));
	}
	assert_int_equal(svm_request_check(&req, SVM_SEEN_VM, &err), -1);
	assert_string_equal(err.msg, "--vm-checkpoint-interval needs --vm-checkpoint=DIR (where "
	                             "the job's guest is saved)");
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_FALLBACK, "maybe", "h", &err),
	                 -1);
	assert_string_equal(err.msg,
	                    "--vm-checkpoint-fallback: expected fail or fresh, got 'maybe'");
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_FALLBACK, "fresh", "h", &err), 0);
	assert_true(req.checkpoint_fresh);
	assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT, "/ck", "h", &err), 0);
	assert_int_equal(svm_request_check(&req, SVM_SEEN_VM, &err), 0);
	req.checkpoint_interval_s = 0;
	req.checkpoint_dir[0] = '\0';
	assert_int_equal(svm_request_check(&req, SVM_SEEN_VM, &err), -1);
	assert_non_null(strstr(err.msg, "--vm-checkpoint-fallback needs --vm-checkpoint=DIR"));
}

static void test_hugepages_alone_means_2m(void **state)
{
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_HUGEPAGES, NULL, "host", &err), 0);
	assert_int_equal(req.hugepages, SVM_HUGEPAGES_2M);
}

static void test_vm_options_without_vm_are_refused(void **state)
{
	struct svm_request req;
	struct svm_err err;

	(void)state;
	svm_request_init(&req);
	assert_int_equal(svm_request_set(&req, SVM_OPT_NET, "cluster", "host", &err), 0);
	assert_int_equal(svm_request_check(&req, SVM_SEEN_NET, &err), -1);
	assert_non_null(strstr(err.msg, "--vm-net needs --vm"));
	assert_int_equal(svm_request_check(&req, 0, &err), 0);
	assert_int_equal(svm_request_set(&req, SVM_OPT_VM, NULL, "host", &err), 0);
	assert_int_equal(svm_request_check(&req, SVM_SEEN_NET | SVM_SEEN_VM, &err), 0);
}

static void test_record_round_trips_hostile_paths(void **state)
{
	static const char *const paths[] = {"/scratch/ck", "/a b/c%d", "/x=y z/\xc3\xa9",
	                                    "/;rm -rf"};
	char text[SVM_REQUEST_MAX];
	struct svm_request req, back;
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		svm_request_init(&req);
		assert_int_equal(svm_request_set(&req, SVM_OPT_VM, "img", "host", &err), 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT, paths[i], "h", &err), 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_HYPERVISOR, "qemu", "h", &err), 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_DEBUG, NULL, "h", &err), 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_SIGNAL,
		                                 i % 2 ? "USR1" : "USR2", "h", &err),
		                 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_FALLBACK,
		                                 i % 2 ? "fresh" : "fail", "h", &err),
		                 0);
		assert_int_equal(svm_request_set(&req, SVM_OPT_CHECKPOINT_INTERVAL,
		                                 i % 2 ? "45m" : "10", "h", &err),
		                 0);
		for (int sep = 0; sep < 2; sep++) {
			assert_int_equal(svm_request_encode(&req, sep ? '\n' : ' ', text,
			                                    sizeof(text), &err),
			                 0);
			assert_null(strchr(text, sep ? ' ' : '\n'));
			assert_int_equal(svm_request_decode(&back, text, &err), 0);
			assert_memory_equal(&req, &back, sizeof(req));
		}
	}
}

static void test_decode_refuses_forged_records(void **state)
{
	static const char *const bad[] = {
	        "",
	        "format=1",
	        "image=host",
	        "format=2 image=host",
	        "format=1 image=../x",
	        "format=1 image=host hypervisor=vmware",
	        "format=1 image=host checkpoint=relative",
	        "format=1 image=host checkpoint_signal=KILL",
	        "format=1 image=host checkpoint_signal=USR1 checkpoint_signal=USR1",
	        "format=1 image=host checkpoint=/a%2F..%2Fb/..",
	        "format=1 image=host checkpoint=/a%00b",
	        "format=1 image=host checkpoint=/a%zz",
	        "format=1 image=host checkpoint=/a%0Ab",
	        "format=1 image=host image=other",
	        "format=1 image=host root=1",
	        "format=1 image=host debug",
	        "format=1 image=host checkpoint_fallback=maybe",
	        "format=1 image=host checkpoint_interval=5",
	        "format=1 image=host checkpoint_interval=1h",
	};
	struct svm_request req;
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(svm_request_decode(&req, bad[i], &err), -1);
		assert_true(strlen(err.msg) > 0);
	}
	assert_int_equal(svm_request_decode(&req, "format=1 image=host", &err), 0);
	assert_int_equal(req.hypervisor, SVM_HV_UNSET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vm_alone_means_default_image),
	        cmocka_unit_test(test_bad_option_values_name_the_option),
	        cmocka_unit_test(test_hugepages_alone_means_2m),
	        cmocka_unit_test(test_checkpoint_signal_needs_checkpoint),
	        cmocka_unit_test(test_checkpoint_fallback_and_interval),
	        cmocka_unit_test(test_vm_options_without_vm_are_refused),
	        cmocka_unit_test(test_record_round_trips_hostile_paths),
	        cmocka_unit_test(test_decode_refuses_forged_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
