/* The job network's address math (helpers/net.c): every guest of a job gets a
 * distinct address in the job's /24, derived from the job id alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/net.h"

static void expect_cidr_error(const char *text, const char *expected)
{
	struct svm_net_cidr cidr;
	struct svm_err err = {""};

	if (svm_net_parse_cidr(text, &cidr, &err) != -1)
		fail_msg("'%s' was accepted", text);
	if (strstr(err.msg, expected) == NULL)
		fail_msg("'%s': expected '%s' in '%s'", text, expected, err.msg);
}

static void test_cidr_parsing(void **state)
{
	struct svm_net_cidr cidr;
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(svm_net_parse_cidr("10.200.0.0/16", &cidr, &err), 0);
	assert_int_equal(cidr.base, 0x0ac80000u);
	assert_int_equal(cidr.prefix, 16);
	assert_int_equal(svm_net_parse_cidr("172.16.0.0/12", &cidr, &err), 0);
	assert_int_equal(svm_net_parse_cidr("192.168.2.0/23", &cidr, &err), 0);
	expect_cidr_error("10.200.0.0/24", "P from 8 to 23");
	expect_cidr_error("10.0.0.0/7", "P from 8 to 23");
	expect_cidr_error("10.200.0.0", "not an IPv4 network");
	expect_cidr_error("10.200.0/16", "not an IPv4 network");
	expect_cidr_error("10.256.0.0/16", "not an IPv4 network");
	expect_cidr_error("10.200.0.0.0/16", "not an IPv4 network");
	expect_cidr_error("10..0.0/16", "not an IPv4 network");
	expect_cidr_error("1000.0.0.0/16", "not an IPv4 network");
	expect_cidr_error(" 10.0.0.0/16", "not an IPv4 network");
	expect_cidr_error("10.200.1.0/16", "host bits set");
}

static void test_guest_addresses(void **state)
{
	struct svm_net_cidr cidr;
	struct svm_net_guest g;
	char addr[SVM_NET_ADDR_LEN], mac[SVM_NET_MAC_LEN];

	(void)state;
	assert_int_equal(svm_net_parse_cidr("10.200.0.0/16", &cidr, NULL), 0);
	assert_int_equal(svm_net_guest(&cidr, 1234, 1, 2, &g, NULL), 0);
	svm_net_addr_str(g.subnet, addr);
	assert_string_equal(addr, "10.200.210.0"); /* 1234 mod 256 = 210 */
	svm_net_addr_str(g.addr, addr);
	assert_string_equal(addr, "10.200.210.2");
	svm_net_mac_str(g.mac, mac);
	assert_string_equal(mac, "52:54:0a:c8:d2:02");
	svm_net_addr_str(svm_net_node_addr(g.subnet, 0), addr);
	assert_string_equal(addr, "10.200.210.1");
	/* The last node of the largest job takes .254, never the broadcast. */
	assert_int_equal(svm_net_guest(&cidr, 7, 253, 254, &g, NULL), 0);
	svm_net_addr_str(g.addr, addr);
	assert_string_equal(addr, "10.200.7.254");
}

static void test_consecutive_jobs_get_distinct_subnets(void **state)
{
	struct svm_net_cidr cidr;
	struct svm_net_guest a, b;

	(void)state;
	assert_int_equal(svm_net_parse_cidr("10.0.0.0/8", &cidr, NULL), 0);
	for (uint32_t job = 1; job < 70000; job += 997) {
		for (uint32_t next = 1; next < 64; next++) {
			assert_int_equal(svm_net_guest(&cidr, job, 0, 1, &a, NULL), 0);
			assert_int_equal(svm_net_guest(&cidr, job + next, 0, 1, &b, NULL), 0);
			assert_int_not_equal(a.subnet, b.subnet);
			assert_int_equal(a.subnet >> 24, 10);
		}
	}
}

static void test_job_size_and_index_are_checked(void **state)
{
	struct svm_net_cidr cidr = {0x0ac80000u, 16};
	struct svm_net_guest g;
	struct svm_err err = {""};

	(void)state;
	assert_int_equal(svm_net_guest(&cidr, 1, 0, 255, &g, &err), -1);
	assert_non_null(strstr(err.msg, "1 to 254 nodes, not 255"));
	assert_int_equal(svm_net_guest(&cidr, 1, 2, 2, &g, &err), -1);
	assert_non_null(strstr(err.msg, "node index 2"));
	assert_int_equal(svm_net_guest(&cidr, 1, 0, 0, &g, &err), -1);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(svm_net_valid_hostname("svm1", 4));
	assert_true(svm_net_valid_hostname("node-0042", 9));
	assert_false(svm_net_valid_hostname("", 0));
	assert_false(svm_net_valid_hostname("-x", 2));
	assert_false(svm_net_valid_hostname("a b", 3));
	assert_false(svm_net_valid_hostname("a\nb", 3));
	assert_false(svm_net_valid_hostname("a.b", 3));
	assert_true(svm_net_valid_bridge("svmbr0"));
	assert_true(svm_net_valid_bridge("br-job.1_x"));
	assert_false(svm_net_valid_bridge(""));
	assert_false(svm_net_valid_bridge("a23456789012345x"));
	assert_false(svm_net_valid_bridge("br/0"));
	assert_false(svm_net_valid_bridge("br 0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cidr_parsing),
	        cmocka_unit_test(test_guest_addresses),
	        cmocka_unit_test(test_consecutive_jobs_get_distinct_subnets),
	        cmocka_unit_test(test_job_size_and_index_are_checked),
	        cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
