#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spank_vm/error.h"

int svm_err_set(struct svm_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int svm_err_errno(struct svm_err *err, int errno_value, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	used = strlen(err->msg);
	snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", strerror(errno_value));
	return -1;
}
