/* A bounded text buffer that records are formatted into line by line: each
 * svm_text_put() appends, and the first one that does not fit marks the
 * writer as overflowed (and every later one does nothing), so that the
 * caller checks once at the end. */
#ifndef SPANK_VM_TEXT_WRITER_H
#define SPANK_VM_TEXT_WRITER_H

#include <stdbool.h>
#include <stddef.h>

struct svm_text_writer {
	char *buf;
	size_t len, used;
	bool overflow;
};

void svm_text_put(struct svm_text_writer *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#endif
