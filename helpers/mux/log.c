/* The mux's log: one line per event, prefixed, to --log or stderr. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mux.h"

static FILE *log_file;

int mux_log_open(const char *path, struct svm_err *err)
{
	FILE *f = fopen(path, "ae");

	if (f == NULL)
		return svm_err_errno(err, errno, "cannot open the log %s", path);
	setvbuf(f, NULL, _IOLBF, 0);
	log_file = f;
	return 0;
}

int mux_log_fd(void)
{
	return log_file != NULL ? fileno(log_file) : STDERR_FILENO;
}

void mux_log(const char *fmt, ...)
{
	FILE *out = log_file != NULL ? log_file : stderr;
	va_list ap;

	fputs(MUX_PREFIX, out);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
}

void mux_escape(const uint8_t *bytes, size_t len, char *out, size_t out_size)
{
	size_t used = 0;

	for (size_t i = 0; i < len && used + 5 < out_size; i++) {
		if (bytes[i] >= 0x20 && bytes[i] < 0x7f && bytes[i] != '\\')
			out[used++] = (char)bytes[i];
		else
			used += (size_t)snprintf(out + used, out_size - used, "\\x%02x", bytes[i]);
	}
	if (out_size > 0)
		out[used < out_size ? used : out_size - 1] = '\0';
}

double mux_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint32_t mux_fault(struct svm_err *err, uint32_t code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}
