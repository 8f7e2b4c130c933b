#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/xml_writer.h"

#define INITIAL_CAP 4096

static void vfail(struct svm_xml *xml, const char *fmt, va_list ap)
{
	if (xml->failed)
		return;
	xml->failed = true;
	vsnprintf(xml->err.msg, sizeof(xml->err.msg), fmt, ap);
}

void svm_xml_fail(struct svm_xml *xml, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(xml, fmt, ap);
	va_end(ap);
}

void svm_xml_init(struct svm_xml *xml)
{
	memset(xml, 0, sizeof(*xml));
}

void svm_xml_dispose(struct svm_xml *xml)
{
	free(xml->buf);
	svm_xml_init(xml);
}

/* Makes room for `extra` more bytes plus a NUL; false (and failed) if it cannot. */
static bool reserve(struct svm_xml *xml, size_t extra)
{
	size_t need, cap;
	char *grown;

	if (xml->failed)
		return false;
	if (extra > SVM_XML_SIZE_MAX || xml->len + extra + 1 > SVM_XML_SIZE_MAX) {
		svm_xml_fail(xml, "XML document would exceed %u bytes", SVM_XML_SIZE_MAX);
		return false;
	}
	need = xml->len + extra + 1;
	if (need <= xml->cap)
		return true;
	cap = xml->cap ? xml->cap : INITIAL_CAP;
	while (cap < need)
		cap *= 2;
	grown = realloc(xml->buf, cap);
	if (grown == NULL) {
		svm_xml_fail(xml, "out of memory growing an XML document to %zu bytes", cap);
		return false;
	}
	xml->buf = grown;
	xml->cap = cap;
	return true;
}

static void append(struct svm_xml *xml, const char *s, size_t n)
{
	if (!reserve(xml, n))
		return;
	memcpy(xml->buf + xml->len, s, n);
	xml->len += n;
	xml->buf[xml->len] = '\0';
}

static void append_str(struct svm_xml *xml, const char *s)
{
	append(xml, s, strlen(s));
}

static void append_indent(struct svm_xml *xml, unsigned depth)
{
	for (unsigned i = 0; i < depth; i++)
		append(xml, "  ", 2);
}

/* Length of the UTF-8 sequence at s if it encodes a character XML 1.0 allows
 * (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]), else 0. */
static size_t xml_char_len(const unsigned char *s)
{
	uint32_t cp, min;
	size_t n;

	if (s[0] < 0x80)
		return (s[0] >= 0x20 || s[0] == '\t' || s[0] == '\n' || s[0] == '\r') ? 1 : 0;
	if ((s[0] & 0xE0) == 0xC0) {
		n = 2, cp = s[0] & 0x1F, min = 0x80;
	} else if ((s[0] & 0xF0) == 0xE0) {
		n = 3, cp = s[0] & 0x0F, min = 0x800;
	} else if ((s[0] & 0xF8) == 0xF0) {
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	/* A NUL ends the loop as a bad continuation byte, so we never read past it. */
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE ||
	    cp == 0xFFFF)
		return 0;
	return n;
}

/* Tab, LF and CR become references: a parser would turn them into spaces in
 * attributes and fold CR LF in text, so the value would not round-trip. */
static const char *entity_for(unsigned char c)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '"':
		return "&quot;";
	case '\'':
		return "&apos;";
	case '\t':
		return "&#9;";
	case '\n':
		return "&#10;";
	case '\r':
		return "&#13;";
	default:
		return NULL;
	}
}

static void append_escaped(struct svm_xml *xml, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	while (*p != '\0' && !xml->failed) {
		size_t n = xml_char_len(p);
		const char *entity;

		if (n == 0) {
			svm_xml_fail(
			        xml,
			        "a value contains byte 0x%02x at offset %zu, which XML cannot "
			        "carry; accepted: valid UTF-8 without control characters other "
			        "than tab, CR and LF",
			        *p, (size_t)(p - (const unsigned char *)value));
			return;
		}
		entity = n == 1 ? entity_for(*p) : NULL;
		if (entity != NULL)
			append_str(xml, entity);
		else
			append(xml, (const char *)p, n);
		p += n;
	}
}

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool check_name(struct svm_xml *xml, const char *name)
{
	if (xml->failed)
		return false;
	if (name == NULL || !is_name_start(name[0]))
		goto bad;
	for (const char *p = name + 1; *p != '\0'; p++)
		if (!is_name_char(*p))
			goto bad;
	return true;
bad:
	svm_xml_fail(xml, "invalid XML name \"%.32s\"", name ? name : "(null)");
	return false;
}

void svm_xml_start(struct svm_xml *xml, const char *name)
{
	if (!check_name(xml, name))
		return;
	if (xml->depth == SVM_XML_DEPTH_MAX) {
		svm_xml_fail(xml, "<%s> nests deeper than %d elements", name, SVM_XML_DEPTH_MAX);
		return;
	}
	if (xml->depth == 0 && xml->len > 0) {
		svm_xml_fail(xml, "<%s> would be a second root element", name);
		return;
	}
	if (xml->has_text) {
		svm_xml_fail(xml, "<%s> inside <%s>, which already holds text", name,
		             xml->open[xml->depth - 1]);
		return;
	}
	if (xml->in_start_tag)
		append(xml, ">", 1);
	if (xml->len > 0)
		append(xml, "\n", 1);
	append_indent(xml, xml->depth);
	append(xml, "<", 1);
	append_str(xml, name);
	xml->open[xml->depth++] = name;
	xml->in_start_tag = true;
	xml->has_text = false;
}

void svm_xml_attr(struct svm_xml *xml, const char *name, const char *value)
{
	if (!check_name(xml, name))
		return;
	if (!xml->in_start_tag) {
		svm_xml_fail(xml, "attribute %s outside a start tag", name);
		return;
	}
	if (value == NULL) {
		svm_xml_fail(xml, "attribute %s of <%s> has no value", name,
		             xml->open[xml->depth - 1]);
		return;
	}
	append(xml, " ", 1);
	append_str(xml, name);
	append(xml, "='", 2);
	append_escaped(xml, value);
	append(xml, "'", 1);
}

void svm_xml_attr_uint(struct svm_xml *xml, const char *name, uint64_t value)
{
	char digits[24];

	snprintf(digits, sizeof(digits), "%" PRIu64, value);
	svm_xml_attr(xml, name, digits);
}

void svm_xml_text(struct svm_xml *xml, const char *text)
{
	if (xml->failed)
		return;
	if (xml->depth == 0) {
		svm_xml_fail(xml, "text outside the root element");
		return;
	}
	if (text == NULL) {
		svm_xml_fail(xml, "<%s> has no text", xml->open[xml->depth - 1]);
		return;
	}
	if (xml->in_start_tag)
		append(xml, ">", 1);
	else if (!xml->has_text) {
		svm_xml_fail(xml, "text after the child elements of <%s>",
		             xml->open[xml->depth - 1]);
		return;
	}
	xml->in_start_tag = false;
	xml->has_text = true;
	append_escaped(xml, text);
}

void svm_xml_end(struct svm_xml *xml)
{
	const char *name;

	if (xml->failed)
		return;
	if (xml->depth == 0) {
		svm_xml_fail(xml, "end of an element that was never started");
		return;
	}
	name = xml->open[--xml->depth];
	if (xml->in_start_tag) {
		append(xml, "/>", 2);
	} else {
		if (!xml->has_text) {
			append(xml, "\n", 1);
			append_indent(xml, xml->depth);
		}
		append(xml, "</", 2);
		append_str(xml, name);
		append(xml, ">", 1);
	}
	/* The parent now has a child: no attributes or text for it any more. */
	xml->in_start_tag = false;
	xml->has_text = false;
}

void svm_xml_leaf(struct svm_xml *xml, const char *name, const char *text)
{
	svm_xml_start(xml, name);
	svm_xml_text(xml, text);
	svm_xml_end(xml);
}

void svm_xml_leaf_uint(struct svm_xml *xml, const char *name, uint64_t value)
{
	char digits[24];

	snprintf(digits, sizeof(digits), "%" PRIu64, value);
	svm_xml_leaf(xml, name, digits);
}

int svm_xml_finish(struct svm_xml *xml, char **out, struct svm_err *err)
{
	*out = NULL;
	if (!xml->failed && xml->depth > 0)
		svm_xml_fail(xml, "element <%s> left open", xml->open[xml->depth - 1]);
	if (!xml->failed && xml->len == 0)
		svm_xml_fail(xml, "empty XML document");
	append(xml, "\n", 1);
	if (xml->failed) {
		if (err != NULL)
			*err = xml->err;
		svm_xml_dispose(xml);
		return -1;
	}
	*out = xml->buf;
	svm_xml_init(xml);
	return 0;
}

int svm_xml_escape(const char *value, char **out, struct svm_err *err)
{
	struct svm_xml xml;

	*out = NULL;
	if (value == NULL)
		return svm_err_set(err, "no value to escape");
	svm_xml_init(&xml);
	/* An empty value still needs a buffer to hand over. */
	reserve(&xml, strlen(value));
	append_escaped(&xml, value);
	if (xml.failed) {
		if (err != NULL)
			*err = xml.err;
		svm_xml_dispose(&xml);
		return -1;
	}
	xml.buf[xml.len] = '\0';
	*out = xml.buf;
	return 0;
}
