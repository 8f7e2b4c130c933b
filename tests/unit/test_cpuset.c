#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "spank_vm/cpuset.h"

struct parse_case {
	const char *text;
	unsigned max_id;
	const char *canonical; /* NULL: must be refused */
};

static const struct parse_case parse_cases[] = {
        {"0", 7, "0"},
        {"0-3,8", 15, "0-3,8"},
        {"3,1,2", 7, "1-3"},
        {"0-1,1-2", 7, "0-2"},
        {"5-5", 7, "5"},
        {"0,2", 7, "0,2"},
        {"4,4,4", 7, "4"},
        {"7", 7, "7"},
        {"0-8191", 8191, "0-8191"},
        {"10-12,0,63-64", 100, "0,10-12,63-64"},
        {"", 7, NULL},
        {"8", 7, NULL},
        {"0-8", 7, NULL},
        {"3-1", 7, NULL},
        {" 1", 7, NULL},
        {"1 ", 7, NULL},
        {"1,", 7, NULL},
        {",1", 7, NULL},
        {"1,,2", 7, NULL},
        {"1-", 7, NULL},
        {"-1", 7, NULL},
        {"1-2-3", 7, NULL},
        {"01", 7, NULL},
        {"+1", 7, NULL},
        {"1\n", 7, NULL},
        {"a", 7, NULL},
        {"0x1", 7, NULL},
        {"0-3:2", 7, NULL},
        {"99999999999999999999", 8191, NULL},
        {"8192", 8191, NULL},
};

static void test_cpuset_parse_accepts_canonical_lists_and_refuses_the_rest(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct svm_err err = {""};
		struct svm_cpuset set;
		char text[64];
		int rc = svm_cpuset_parse(c->text, c->max_id, &set, &err);

		if (c->canonical == NULL) {
			if (rc == 0)
				fail_msg("\"%s\" was accepted", c->text);
			/* The message says what would have been accepted. */
			assert_non_null(strstr(err.msg, "0-3,8"));
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\" was refused: %s", c->text, err.msg);
		svm_cpuset_format(&set, text, sizeof(text));
		assert_string_equal(text, c->canonical);
	}
}

static void test_cpuset_parse_refuses_null_and_names_the_bound(void **state)
{
	struct svm_err err = {""};
	struct svm_cpuset set;

	(void)state;
	assert_int_equal(svm_cpuset_parse(NULL, 7, &set, &err), -1);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(svm_cpuset_parse("0-9", 7, &set, &err), -1);
	assert_non_null(strstr(err.msg, "ids 0-7"));
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(svm_cpuset_parse("3-1", 7, &set, &err), -1);
	assert_non_null(strstr(err.msg, "below its start"));
}

static void test_cpuset_parse_error_does_not_echo_control_characters(void **state)
{
	struct svm_err err = {""};
	struct svm_cpuset set;

	(void)state;
	assert_int_equal(svm_cpuset_parse("1\n\x1b[2J\"", 7, &set, &err), -1);
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\x1b'));
	assert_non_null(strstr(err.msg, "\"1??[2J?\""));
}

static void test_cpuset_format_has_snprintf_semantics(void **state)
{
	struct svm_cpuset set;
	char small[4];

	(void)state;
	svm_cpuset_clear(&set);
	assert_int_equal(svm_cpuset_format(&set, small, sizeof(small)), 0);
	assert_string_equal(small, "");
	svm_cpuset_add(&set, 0);
	svm_cpuset_add(&set, 1);
	svm_cpuset_add(&set, 100);
	/* "0-1,100" needs 7 characters; 3 fit. */
	assert_int_equal(svm_cpuset_format(&set, small, sizeof(small)), 7);
	assert_string_equal(small, "0-1");
	assert_int_equal(svm_cpuset_format(&set, NULL, 0), 7);
}

static void test_cpuset_to_str_formats_the_worst_case_list(void **state)
{
	struct svm_cpuset set;
	char *text;

	(void)state;
	svm_cpuset_clear(&set);
	for (unsigned id = 0; id < SVM_CPUSET_MAX; id += 2)
		svm_cpuset_add(&set, id);
	text = svm_cpuset_to_str(&set, NULL);
	assert_non_null(text);
	assert_int_equal(strlen(text), svm_cpuset_format(&set, NULL, 0));
	assert_memory_equal(text, "0,2,4,", 6);
	assert_string_equal(text + strlen(text) - 10, ",8188,8190");
	free(text);
}

static void test_cpuset_ops_work_across_word_boundaries(void **state)
{
	struct svm_cpuset a, b, c;

	(void)state;
	svm_cpuset_clear(&a);
	svm_cpuset_clear(&b);
	assert_true(svm_cpuset_is_empty(&a));
	assert_int_equal(svm_cpuset_next(&a, 0), -1);
	assert_int_equal(svm_cpuset_last(&a), -1);
	assert_int_equal(svm_cpuset_add(&a, SVM_CPUSET_MAX), -1);
	assert_false(svm_cpuset_has(&a, SVM_CPUSET_MAX));
	assert_true(svm_cpuset_is_empty(&a));

	svm_cpuset_add(&a, 63);
	svm_cpuset_add(&a, 64);
	svm_cpuset_add(&a, SVM_CPUSET_MAX - 1);
	assert_int_equal(svm_cpuset_count(&a), 3);
	assert_int_equal(svm_cpuset_next(&a, 0), 63);
	assert_int_equal(svm_cpuset_next(&a, 64), 64);
	assert_int_equal(svm_cpuset_next(&a, 65), SVM_CPUSET_MAX - 1);
	assert_int_equal(svm_cpuset_next(&a, SVM_CPUSET_MAX), -1);
	assert_int_equal(svm_cpuset_last(&a), SVM_CPUSET_MAX - 1);

	svm_cpuset_add(&b, 64);
	assert_true(svm_cpuset_is_subset(&b, &a));
	assert_false(svm_cpuset_is_subset(&a, &b));
	c = a;
	svm_cpuset_and(&c, &b);
	assert_true(svm_cpuset_equal(&c, &b));
	c = a;
	svm_cpuset_andnot(&c, &b);
	assert_int_equal(svm_cpuset_count(&c), 2);
	assert_false(svm_cpuset_has(&c, 64));
	svm_cpuset_or(&c, &b);
	assert_true(svm_cpuset_equal(&c, &a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cpuset_parse_accepts_canonical_lists_and_refuses_the_rest),
	        cmocka_unit_test(test_cpuset_parse_refuses_null_and_names_the_bound),
	        cmocka_unit_test(test_cpuset_parse_error_does_not_echo_control_characters),
	        cmocka_unit_test(test_cpuset_format_has_snprintf_semantics),
	        cmocka_unit_test(test_cpuset_to_str_formats_the_worst_case_list),
	        cmocka_unit_test(test_cpuset_ops_work_across_word_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
