/* A small XML writer over a growing buffer. Every attribute value and every
 * text node goes through one escaping routine, so no value can change the
 * structure of the document: & < > " ' are written as entities, tab, CR and LF
 * as character references (so they survive attribute normalisation and
 * round-trip exactly), and the characters XML 1.0 cannot carry at all (other
 * C0 controls, invalid UTF-8, U+FFFE/U+FFFF) make the document fail instead of
 * being passed through.
 *
 * Errors are sticky: after the first one every call is a no-op, and
 * svm_xml_finish() reports it. Renderers therefore write straight-line code and
 * check once at the end. Element and attribute names are the caller's
 * constants; they are checked to be plain XML names and must stay valid until
 * the element is closed. */
#ifndef SPANK_VM_XML_WRITER_H
#define SPANK_VM_XML_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"

#define SVM_XML_DEPTH_MAX 16
/* Refuse to grow a document past this; a domain XML is a few KiB. */
#define SVM_XML_SIZE_MAX (16u * 1024 * 1024)

struct svm_xml {
	char *buf;
	size_t len;
	size_t cap;
	unsigned depth;
	const char *open[SVM_XML_DEPTH_MAX]; /* names of the open elements */
	bool in_start_tag;                   /* attributes may still follow */
	bool has_text;                       /* the innermost element holds text */
	bool failed;
	struct svm_err err;
};

void svm_xml_init(struct svm_xml *xml);

/* Opens <name ...>; attributes come next, then children or text, then svm_xml_end(). */
void svm_xml_start(struct svm_xml *xml, const char *name);
void svm_xml_attr(struct svm_xml *xml, const char *name, const char *value);
void svm_xml_attr_uint(struct svm_xml *xml, const char *name, uint64_t value);
/* Text content of the innermost element; it then takes no child elements. */
void svm_xml_text(struct svm_xml *xml, const char *text);
void svm_xml_end(struct svm_xml *xml);

/* <name>text</name> and <name>value</name>. */
void svm_xml_leaf(struct svm_xml *xml, const char *name, const char *text);
void svm_xml_leaf_uint(struct svm_xml *xml, const char *name, uint64_t value);

/* Records an error found by the caller while rendering, so that it is reported
 * by svm_xml_finish() like the writer's own. Only the first error is kept. */
void svm_xml_fail(struct svm_xml *xml, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the document: on success hands the NUL-terminated text to *out (free()
 * it) and returns 0; otherwise frees the buffer, sets err and returns -1. An
 * element left open is an error. */
int svm_xml_finish(struct svm_xml *xml, char **out, struct svm_err *err);

/* Frees the buffer of a document that is abandoned without svm_xml_finish(). */
void svm_xml_dispose(struct svm_xml *xml);

/* Writes value escaped as above into *out (malloc'ed) for callers that need
 * the escaped form alone; 0 or -1 with err set. */
int svm_xml_escape(const char *value, char **out, struct svm_err *err);

#endif
