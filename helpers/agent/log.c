/* Console messages. The agent's stderr is the guest console (the serial port
 * the host logs to console.log), so every line carries the agent's prefix. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

const char *agent_log_prefix = AGENT_LOG_PREFIX;

void agent_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One write per line, so lines of the kernel and of the agent do not
	 * interleave inside a line. */
	(void)dprintf(STDERR_FILENO, "%s%s\n", agent_log_prefix, line);
}

void agent_escape(const uint8_t *bytes, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		if (bytes[i] >= 0x20 && bytes[i] < 0x7f && bytes[i] != '\\')
			out[o++] = (char)bytes[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", bytes[i]);
	}
	if (cap > 0)
		out[o < cap ? o : cap - 1] = '\0';
}

double agent_uptime_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
