#include <stdarg.h>
#include <stdio.h>

#include "spank_vm/text_writer.h"

void svm_text_put(struct svm_text_writer *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->used, w->len - w->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= w->len - w->used)
		w->overflow = true;
	else
		w->used += (size_t)n;
}
