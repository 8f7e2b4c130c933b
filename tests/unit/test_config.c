#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/build_config.h"
#include "spank_vm/config.h"

static int parse(struct svm_config *cfg, struct svm_err *err, int argc, ...)
{
	char *argv[16];
	va_list ap;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	svm_config_defaults(cfg);
	return svm_config_parse(cfg, argc, argv, err);
}

static void test_defaults_are_documented_values(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 0), 0);
	assert_int_equal(cfg.hypervisor, SVM_HV_KVM);
	assert_string_equal(cfg.runtime_dir, "/run/spank_vm");
	assert_string_equal(cfg.default_image, "host");
	assert_int_equal(cfg.mem_reserve_mib, 256);
	assert_int_equal(cfg.boot_timeout_s, 60);
	assert_int_equal(cfg.heartbeat_timeout_s, 60);
	assert_int_equal(cfg.policy, SVM_POLICY_OPTIN);
	assert_true(cfg.hard_limit);
	assert_int_equal(parse(&cfg, &err, 1, "hard_limit=no"), 0);
	assert_false(cfg.hard_limit);
	assert_int_equal(parse(&cfg, &err, 1, "hard_limit=maybe"), -1);
	assert_non_null(strstr(err.msg, "hard_limit: malformed boolean 'maybe'"));
	assert_string_equal(cfg.slurm_commands, SPANK_VM_SLURM_BINDIR);
	assert_int_equal(parse(&cfg, &err, 1, "slurm_commands=/opt/slurm/bin"), 0);
	assert_string_equal(cfg.slurm_commands, "/opt/slurm/bin");
	assert_int_equal(parse(&cfg, &err, 1, "slurm_commands=no"), 0);
	assert_string_equal(cfg.slurm_commands, "");
	assert_int_equal(parse(&cfg, &err, 1, "slurm_commands=bin"), -1);
	assert_non_null(strstr(err.msg, "slurm_commands"));
	assert_non_null(strstr(err.msg, "an absolute path, no"));
	assert_string_equal(cfg.net_bridge, "");
	assert_string_equal(cfg.net_cidr, "10.200.0.0/16");
	assert_int_equal(parse(&cfg, &err, 2, "net_bridge=svmbr0", "net_cidr=172.20.0.0/14"), 0);
	assert_string_equal(cfg.net_bridge, "svmbr0");
	assert_string_equal(cfg.net_cidr, "172.20.0.0/14");
	assert_int_equal(parse(&cfg, &err, 1, "net_bridge=br0;reboot"), -1);
	assert_non_null(strstr(err.msg, "net_bridge: 'br0;reboot' (accepted: an interface name"));
	assert_int_equal(parse(&cfg, &err, 1, "net_cidr=10.0.0.0/24"), -1);
	assert_non_null(strstr(err.msg, "net_cidr: '10.0.0.0/24' (accepted: an IPv4 network"));
}

static void test_every_key_is_parsed(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 12, "hypervisor=qemu", "image_dir=/img",
	                       "default_image=centos7", "runtime_dir=/run/x",
	                       "helper_dir=/usr/lib/x", "kernel=/boot/k", "initrd=/boot/i",
	                       "mem_reserve=1G", "min_guest_mem=64M", "boot_timeout=120",
	                       "heartbeat_timeout=300", "policy=always"),
	                 0);
	assert_int_equal(cfg.hypervisor, SVM_HV_QEMU);
	assert_string_equal(cfg.image_dir, "/img");
	assert_string_equal(cfg.default_image, "centos7");
	assert_string_equal(cfg.runtime_dir, "/run/x");
	assert_string_equal(cfg.helper_dir, "/usr/lib/x");
	assert_string_equal(cfg.kernel, "/boot/k");
	assert_string_equal(cfg.initrd, "/boot/i");
	assert_int_equal(cfg.mem_reserve_mib, 1024);
	assert_int_equal(cfg.min_guest_mib, 64);
	assert_int_equal(cfg.boot_timeout_s, 120);
	assert_int_equal(cfg.heartbeat_timeout_s, 300);
	assert_int_equal(cfg.policy, SVM_POLICY_ALWAYS);
}

static void test_unknown_key_names_it_and_lists_keys(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 1, "hypervsior=kvm"), -1);
	assert_non_null(strstr(err.msg, "unknown key 'hypervsior'"));
	assert_non_null(strstr(err.msg, "hypervisor, image_dir"));
	assert_non_null(strstr(err.msg, "policy"));
}

static void test_bad_values_name_key_and_accepted_values(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 1, "hypervisor=vmware"), -1);
	assert_string_equal(err.msg, "plugstack.conf: hypervisor: unknown value 'vmware' "
	                             "(accepted: kvm, qemu, xen)");
	assert_int_equal(parse(&cfg, &err, 1, "policy=sometimes"), -1);
	assert_non_null(strstr(err.msg, "optin, always"));
	assert_int_equal(parse(&cfg, &err, 1, "runtime_dir=relative"), -1);
	assert_non_null(strstr(err.msg, "runtime_dir"));
	assert_int_equal(parse(&cfg, &err, 1, "mem_reserve=lots"), -1);
	assert_non_null(strstr(err.msg, "mem_reserve"));
	assert_int_equal(parse(&cfg, &err, 1, "boot_timeout=0"), -1);
	assert_int_equal(parse(&cfg, &err, 1, "heartbeat_timeout=5"), -1);
	assert_string_equal(err.msg, "plugstack.conf: heartbeat_timeout: 5 is out of range "
	                             "(accepted: 10 to 3600)");
	assert_int_equal(parse(&cfg, &err, 1, "default_image=../x"), -1);
}

static void test_malformed_and_repeated_arguments(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 1, "hypervisor"), -1);
	assert_non_null(strstr(err.msg, "not key=value"));
	assert_int_equal(parse(&cfg, &err, 1, "=kvm"), -1);
	assert_int_equal(parse(&cfg, &err, 2, "policy=optin", "policy=always"), -1);
	assert_non_null(strstr(err.msg, "twice"));
}

static void test_key_table_documents_every_key(void **state)
{
	size_t n = 0;

	(void)state;
	for (const struct svm_config_key *k = svm_config_keys; k->name != NULL; k++, n++) {
		assert_non_null(k->accepted);
		assert_non_null(k->default_value);
		assert_true(strlen(k->meaning) > 10);
	}
	assert_int_equal(n, 16);
}

static void test_runtime_dir_expands_node_name(void **state)
{
	struct svm_config cfg;
	struct svm_err err;

	(void)state;
	assert_int_equal(parse(&cfg, &err, 1, "runtime_dir=/run/spank_vm/%n"), 0);
	assert_int_equal(svm_config_expand_node(&cfg, "node7", &err), 0);
	assert_string_equal(cfg.runtime_dir, "/run/spank_vm/node7");
	assert_int_equal(parse(&cfg, &err, 1, "runtime_dir=/run/%n/x"), 0);
	assert_int_equal(svm_config_expand_node(&cfg, NULL, &err), -1);
	assert_int_equal(svm_config_expand_node(&cfg, "../..", &err), -1);
	assert_int_equal(parse(&cfg, &err, 1, "runtime_dir=/run/plain"), 0);
	assert_int_equal(svm_config_expand_node(&cfg, NULL, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_are_documented_values),
	        cmocka_unit_test(test_every_key_is_parsed),
	        cmocka_unit_test(test_unknown_key_names_it_and_lists_keys),
	        cmocka_unit_test(test_bad_values_name_key_and_accepted_values),
	        cmocka_unit_test(test_malformed_and_repeated_arguments),
	        cmocka_unit_test(test_key_table_documents_every_key),
	        cmocka_unit_test(test_runtime_dir_expands_node_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
