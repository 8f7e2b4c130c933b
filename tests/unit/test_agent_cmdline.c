/* The guest agent's kernel command line and fw_cfg words
 * (helpers/agent/cmdline.c): what the host tells the guest before the
 * channel is up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

static struct agent_config config;

static void expect_error(const char *cmdline, const char *expected)
{
	struct svm_err err = {""};

	if (agent_parse_cmdline(cmdline, &config, &err) != -1)
		fail_msg("'%s' was accepted", cmdline);
	if (strstr(err.msg, expected) == NULL)
		fail_msg("'%s': expected '%s' in '%s'", cmdline, expected, err.msg);
}

static void test_defaults_and_other_parameters(void **state)
{
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(agent_parse_cmdline("console=ttyS0 quiet root=/dev/sda1\n", &config, &err),
	                 0);
	assert_false(config.allow_root);
	assert_string_equal(config.root_device, "");
	assert_int_equal(config.nshares, 0);
}

static void test_shares_and_allow_root(void **state)
{
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(agent_parse_cmdline("quiet spank_vm.share=work:/home/a%20b "
	                                     "spank_vm.allow_root=1\tspank_vm.share=s1:/scratch",
	                                     &config, &err),
	                 0);
	assert_true(config.allow_root);
	assert_int_equal(config.nshares, 2);
	assert_string_equal(config.shares[0].tag, "work");
	assert_string_equal(config.shares[0].path, "/home/a b");
	assert_string_equal(config.shares[1].tag, "s1");
	assert_string_equal(config.shares[1].path, "/scratch");
	expect_error("spank_vm.share=work:/var/../etc", "empty, . or .. component");
	expect_error("spank_vm.share=hostroot:/x", "is the root file system's");
	expect_error("spank_vm.share=a:/x spank_vm.share=a:/y", "given twice");
	expect_error("spank_vm.share=a:/proc/x", "which the agent mounts itself");
	expect_error("spank_vm.allow_root=yes", "unknown or malformed");
	expect_error("spank_vm.colour=blue", "unknown or malformed");
	expect_error("spank_vm.share", "needs a value");
}

static void test_root_device(void **state)
{
	static const char *const good[] = {"/dev/vda", "/dev/vda1", "/dev/sda2", "/dev/nvme0n1p1",
	                                   "/dev/abcdefghijklmnopqrstuvwxyz01234"};
	struct svm_err err = {""};
	char line[128];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(line, sizeof(line), "console=ttyS0 spank_vm.root=%s quiet", good[i]);
		if (agent_parse_cmdline(line, &config, &err) != 0)
			fail_msg("'%s' refused: %s", good[i], err.msg);
		assert_string_equal(config.root_device, good[i]);
	}
	/* The value ends at a blank: nothing after it leaks into the device. */
	assert_int_equal(
	        agent_parse_cmdline("spank_vm.root=/dev/vdb\tspank_vm.allow_root=0", &config, &err),
	        0);
	assert_string_equal(config.root_device, "/dev/vdb");
}

static void test_root_device_refuses_anything_but_a_plain_name(void **state)
{
	static const char *const bad[] = {
	        "spank_vm.root=",
	        "spank_vm.root=/dev/",
	        "spank_vm.root=vda",
	        "spank_vm.root=/dev/../etc/passwd",
	        "spank_vm.root=/dev/vda/x",
	        "spank_vm.root=/dev/VDA",
	        "spank_vm.root=/dev/1vda",
	        "spank_vm.root=/dev/vda-1",
	        "spank_vm.root=/dev/vda%31",
	        "spank_vm.root=/sys/vda",
	        "spank_vm.root=/dev//vda",
	        "spank_vm.root=/dev/abcdefghijklmnopqrstuvwxyz012345", /* 32 characters */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], "must be /dev/NAME");
	expect_error("spank_vm.root", "needs a value");
	expect_error("spank_vm.root=/dev/vda spank_vm.root=/dev/vdb", "spank_vm.root given twice");
}

static void test_hostcall(void **state)
{
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(agent_parse_cmdline("quiet spank_vm.hostcall=1001:100:/usr/lib%3ax/"
	                                     "spank_vm:/opt/slurm/bin console=ttyS0",
	                                     &config, &err),
	                 0);
	assert_int_equal(config.hostcall_uid, 1001);
	assert_int_equal(config.hostcall_gid, 100);
	assert_string_equal(config.hostcall_helpers, "/usr/lib:x/spank_vm");
	assert_string_equal(config.hostcall_commands, "/opt/slurm/bin");
	assert_null(config.host_commands);
	expect_error("spank_vm.hostcall=0:0:/a:/b", "UID must be a number above 0");
	expect_error("spank_vm.hostcall=5:0:/a:/b", "GID must be a number above 0");
	expect_error("spank_vm.hostcall=5:5:/a", "needs UID:GID:HELPERS:COMMANDS");
	expect_error("spank_vm.hostcall=5:5:a:/b", "HELPERS must be an absolute");
	expect_error("spank_vm.hostcall=5:5:/a:b", "COMMANDS must be an absolute");
	expect_error("spank_vm.hostcall=5:5:/a:/b:/c", "more than UID:GID:HELPERS:COMMANDS");
	expect_error("spank_vm.hostcall=5:5:/a%zz:/b", "percent-encoded");
	expect_error("spank_vm.hostcall=x:5:/a:/b", "UID must be a number");
	expect_error("spank_vm.hostcall=5:5:/a:/b spank_vm.hostcall=5:5:/a:/b", "given twice");
}

static void test_job_network(void **state)
{
	struct svm_err err = {""};

	(void)state;
	static const char words[] = "spank_vm.net=10.200.7.2/24 spank_vm.hostname=svm2 "
	                            "spank_vm.hosts=10.200.7.1:svm1:svm2";

	assert_int_equal(agent_parse_cmdline("", &config, &err), 0);
	assert_int_equal(agent_parse_fw_cfg(words, strlen(words), &config, &err), 0);
	assert_int_equal(config.net_addr, 0x0ac80702u);
	assert_int_equal(config.net_prefix, 24);
	assert_string_equal(config.hostname, "svm2");
	assert_int_equal(config.hosts_first, 0x0ac80701u);
	assert_string_equal(config.hosts, "svm1:svm2");
	expect_error("spank_vm.net=10.200.7.2", "needs A.B.C.D/P");
	expect_error("spank_vm.net=10.200.7.2/31", "needs A.B.C.D/P");
	expect_error("spank_vm.net=10.200.7/24", "needs A.B.C.D/P");
	expect_error("spank_vm.net=0.0.0.0/24", "needs A.B.C.D/P");
	expect_error("spank_vm.net=10.0.0.1/24 spank_vm.net=10.0.0.2/24", "given twice");
	expect_error("spank_vm.hostname=a;b", "spank_vm.hostname: 1-63");
	expect_error("spank_vm.hostname=", "spank_vm.hostname: 1-63");
	expect_error("spank_vm.hosts=10.0.0.1", "needs A.B.C.D:NAME");
	expect_error("spank_vm.hosts=10.0.0.1:", "needs A.B.C.D:NAME");
	expect_error("spank_vm.hosts=10.0.0.1:a::b", "'' is not a host name");
	expect_error("spank_vm.hosts=10.0.0.1:a:", "ends with ':'");
	expect_error("spank_vm.hosts=10.0.0.1:a:b/c", "'b/c' is not a host name");
	expect_error("spank_vm.hosts=10.0.0.1:a,b", "'a,b' is not a host name");
}

static void expect_fw_cfg_error(const char *bytes, size_t len, const char *expected)
{
	struct svm_err err = {""};

	if (agent_parse_fw_cfg(bytes, len, &config, &err) != -1)
		fail_msg("fw_cfg '%.*s' was accepted", (int)len, bytes);
	if (strstr(err.msg, expected) == NULL)
		fail_msg("fw_cfg: expected '%s' in '%s'", expected, err.msg);
	if (strstr(err.msg, "fw_cfg opt/org.spank_vm/config: ") != err.msg)
		fail_msg("the error does not name the fw_cfg file: '%s'", err.msg);
}

/* The words a boot=disk guest finds in fw_cfg count as appended to its
 * command line. */
static void test_fw_cfg_words_add_to_the_command_line(void **state)
{
	static const char words[] = "spank_vm.share=share0:/home/a%2Cb spank_vm.allow_root=1\n";
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(agent_parse_cmdline("root=/dev/vda1 init=/sbin/spank-vm-agent "
	                                     "spank_vm.share=site:/site",
	                                     &config, &err),
	                 0);
	/* A trailing NUL, as a string entry may end. */
	assert_int_equal(agent_parse_fw_cfg(words, sizeof(words), &config, &err), 0);
	assert_true(config.allow_root);
	assert_int_equal(config.nshares, 2);
	assert_string_equal(config.shares[0].tag, "site");
	assert_string_equal(config.shares[1].tag, "share0");
	assert_string_equal(config.shares[1].path, "/home/a,b");
	/* The last allow_root wins; nothing else is reset. */
	assert_int_equal(agent_parse_words("spank_vm.allow_root=0", &config, &err), 0);
	assert_false(config.allow_root);
	assert_int_equal(config.nshares, 2);
	/* Empty: nothing to add. */
	assert_int_equal(agent_parse_fw_cfg("", 0, &config, &err), 0);
	assert_int_equal(agent_parse_fw_cfg("\0\0", 2, &config, &err), 0);
	assert_int_equal(config.nshares, 2);
}

static void test_fw_cfg_refuses_duplicates_nul_bytes_and_oversize(void **state)
{
	static char big[AGENT_FW_CFG_MAX + 1];
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(
	        agent_parse_cmdline("spank_vm.share=a:/x spank_vm.root=/dev/vda", &config, &err),
	        0);
	expect_fw_cfg_error("spank_vm.share=a:/y", 19, "share tag 'a' given twice");
	assert_int_equal(agent_parse_cmdline("spank_vm.root=/dev/vda", &config, &err), 0);
	expect_fw_cfg_error("spank_vm.root=/dev/vdb", 22, "spank_vm.root given twice");
	assert_int_equal(agent_parse_cmdline("", &config, &err), 0);
	/* A NUL would hide the words after it. */
	expect_fw_cfg_error("spank_vm.allow_root=0\0spank_vm.share=b:/y", 41, "a NUL byte inside");
	expect_fw_cfg_error("spank_vm.colour=blue", 20, "unknown or malformed");
	expect_fw_cfg_error("spank_vm.share=b:/x/../etc", 26, "empty, . or .. component");
	memset(big, ' ', sizeof(big));
	expect_fw_cfg_error(big, sizeof(big), "more than 16384 bytes");
	/* Exactly the limit is fine. */
	assert_int_equal(agent_parse_fw_cfg(big, AGENT_FW_CFG_MAX, &config, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_and_other_parameters),
	        cmocka_unit_test(test_shares_and_allow_root),
	        cmocka_unit_test(test_root_device),
	        cmocka_unit_test(test_root_device_refuses_anything_but_a_plain_name),
	        cmocka_unit_test(test_hostcall),
	        cmocka_unit_test(test_job_network),
	        cmocka_unit_test(test_fw_cfg_words_add_to_the_command_line),
	        cmocka_unit_test(test_fw_cfg_refuses_duplicates_nul_bytes_and_oversize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
