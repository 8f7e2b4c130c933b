#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "spank_vm/xml_writer.h"

struct escape_case {
	const char *value;
	const char *escaped; /* NULL: must be refused */
};

static const struct escape_case escape_cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a&b", "a&amp;b"},
        {"<tag>", "&lt;tag&gt;"},
        {"'\"", "&apos;&quot;"},
        {"a\tb\nc\rd", "a&#9;b&#10;c&#13;d"},
        {"&amp;", "&amp;amp;"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5"},
        {"\x7f", "\x7f"},
        {"a\x01"
         "b",
         NULL},
        {"\x1b[0m", NULL},
        {"\xff", NULL},
        {"\xc0\xaf", NULL},         /* overlong '/' */
        {"\xed\xa0\x80", NULL},     /* surrogate */
        {"\xef\xbf\xbe", NULL},     /* U+FFFE */
        {"\xe2\x82", NULL},         /* truncated */
        {"\xf4\x90\x80\x80", NULL}, /* above U+10FFFF */
        {"\x80", NULL},             /* lone continuation byte */
};

static void test_xml_escape_writes_entities_and_refuses_what_xml_cannot_carry(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
		const struct escape_case *c = &escape_cases[i];
		struct svm_err err = {""};
		char *out = NULL;
		int rc = svm_xml_escape(c->value, &out, &err);

		if (c->escaped == NULL) {
			if (rc == 0)
				fail_msg("case %zu was accepted as \"%s\"", i, out);
			assert_null(out);
			assert_non_null(strstr(err.msg, "valid UTF-8"));
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu was refused: %s", i, err.msg);
		assert_string_equal(out, c->escaped);
		free(out);
	}
}

static void test_xml_writer_formats_nested_elements(void **state)
{
	struct svm_xml xml;
	char *doc = NULL;

	(void)state;
	svm_xml_init(&xml);
	svm_xml_start(&xml, "domain");
	svm_xml_attr(&xml, "type", "kvm");
	svm_xml_leaf(&xml, "name", "a<b");
	svm_xml_start(&xml, "features");
	svm_xml_start(&xml, "acpi");
	svm_xml_end(&xml);
	svm_xml_end(&xml);
	svm_xml_start(&xml, "vcpu");
	svm_xml_attr_uint(&xml, "current", 18446744073709551615u);
	svm_xml_text(&xml, "4");
	svm_xml_end(&xml);
	svm_xml_leaf_uint(&xml, "memory", 128);
	svm_xml_end(&xml);
	assert_int_equal(svm_xml_finish(&xml, &doc, NULL), 0);
	assert_string_equal(doc, "<domain type='kvm'>\n"
	                         "  <name>a&lt;b</name>\n"
	                         "  <features>\n"
	                         "    <acpi/>\n"
	                         "  </features>\n"
	                         "  <vcpu current='18446744073709551615'>4</vcpu>\n"
	                         "  <memory>128</memory>\n"
	                         "</domain>\n");
	free(doc);
}

/* Each misuse, and the fragment its message must contain. */
static void misuse_unclosed(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
}

static void misuse_attr_after_child(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_leaf(xml, "b", "x");
	svm_xml_attr(xml, "c", "d");
	svm_xml_end(xml);
}

static void misuse_text_after_child(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_leaf(xml, "b", "x");
	svm_xml_text(xml, "y");
	svm_xml_end(xml);
}

static void misuse_child_after_text(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_text(xml, "y");
	svm_xml_leaf(xml, "b", "x");
	svm_xml_end(xml);
}

static void misuse_second_root(struct svm_xml *xml)
{
	svm_xml_leaf(xml, "a", "x");
	svm_xml_leaf(xml, "b", "x");
}

static void misuse_bad_name(struct svm_xml *xml)
{
	svm_xml_start(xml, "a b");
	svm_xml_end(xml);
}

static void misuse_bad_attr_name(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_attr(xml, "x='1' y", "2");
	svm_xml_end(xml);
}

static void misuse_end_without_start(struct svm_xml *xml)
{
	svm_xml_end(xml);
}

static void misuse_too_deep(struct svm_xml *xml)
{
	for (int i = 0; i <= SVM_XML_DEPTH_MAX; i++)
		svm_xml_start(xml, "a");
}

static void misuse_null_value(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_attr(xml, "b", NULL);
	svm_xml_end(xml);
}

static void misuse_empty(struct svm_xml *xml)
{
	(void)xml;
}

/* The first error sticks; later ones do not overwrite it. */
static void misuse_two_errors(struct svm_xml *xml)
{
	svm_xml_start(xml, "a");
	svm_xml_text(xml, "\x02");
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void misuse_caller_failure(struct svm_xml *xml)
{
	svm_xml_leaf(xml, "a", "x");
	svm_xml_fail(xml, "the plan has %d cells", 0);
}

static const struct {
	void (*write)(struct svm_xml *xml);
	const char *fragment;
} misuses[] = {
        {misuse_unclosed, "left open"},
        {misuse_attr_after_child, "outside a start tag"},
        {misuse_text_after_child, "after the child elements"},
        {misuse_child_after_text, "already holds text"},
        {misuse_second_root, "second root"},
        {misuse_bad_name, "invalid XML name"},
        {misuse_bad_attr_name, "invalid XML name"},
        {misuse_end_without_start, "never started"},
        {misuse_too_deep, "deeper than"},
        {misuse_null_value, "has no value"},
        {misuse_empty, "empty XML document"},
        {misuse_two_errors, "byte 0x02"},
        {misuse_caller_failure, "the plan has 0 cells"},
};

static void test_xml_writer_reports_the_first_misuse_and_frees_the_document(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(misuses) / sizeof(misuses[0]); i++) {
		struct svm_err err = {""};
		struct svm_xml xml;
		char *doc = (char *)"untouched";

		svm_xml_init(&xml);
		misuses[i].write(&xml);
		assert_int_equal(svm_xml_finish(&xml, &doc, &err), -1);
		assert_null(doc);
		if (strstr(err.msg, misuses[i].fragment) == NULL)
			fail_msg("misuse %zu: \"%s\" does not mention \"%s\"", i, err.msg,
			         misuses[i].fragment);
	}
}

static void test_xml_writer_dispose_frees_an_abandoned_document(void **state)
{
	struct svm_xml xml;

	(void)state;
	svm_xml_init(&xml);
	svm_xml_start(&xml, "a");
	svm_xml_leaf(&xml, "b", "text");
	svm_xml_dispose(&xml);
	assert_null(xml.buf);
	/* Under ASan a leak here fails the test. */
}

static const char hostile[] = "x' y=\"z\" <evil>&amp;</evil>\n\t\r]]><!-- --><?pi?>";

static void test_xml_writer_values_round_trip_through_libxml2(void **state)
{
	struct svm_xml xml;
	xmlDocPtr parsed;
	xmlNodePtr root, child;
	xmlChar *attr, *text;
	char *doc = NULL;
	int elements = 0;

	(void)state;
	svm_xml_init(&xml);
	svm_xml_start(&xml, "root");
	svm_xml_attr(&xml, "value", hostile);
	svm_xml_leaf(&xml, "child", hostile);
	svm_xml_end(&xml);
	assert_int_equal(svm_xml_finish(&xml, &doc, NULL), 0);

	parsed = xmlReadMemory(doc, (int)strlen(doc), "mem.xml", NULL, XML_PARSE_NONET);
	assert_non_null(parsed);
	root = xmlDocGetRootElement(parsed);
	assert_string_equal((const char *)root->name, "root");
	for (child = root->children; child != NULL; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			elements++;
	assert_int_equal(elements, 1);
	assert_null(root->properties->next); /* one attribute, not three */
	attr = xmlGetProp(root, (const xmlChar *)"value");
	text = xmlNodeGetContent(xmlFirstElementChild(root));
	assert_string_equal((const char *)attr, hostile);
	assert_string_equal((const char *)text, hostile);
	xmlFree(attr);
	xmlFree(text);
	xmlFreeDoc(parsed);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_xml_escape_writes_entities_and_refuses_what_xml_cannot_carry),
	        cmocka_unit_test(test_xml_writer_formats_nested_elements),
	        cmocka_unit_test(test_xml_writer_reports_the_first_misuse_and_frees_the_document),
	        cmocka_unit_test(test_xml_writer_dispose_frees_an_abandoned_document),
	        cmocka_unit_test(test_xml_writer_values_round_trip_through_libxml2),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	xmlCleanupParser();
	return rc;
}
