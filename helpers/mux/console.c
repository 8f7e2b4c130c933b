/* Why a guest never became ready is in its console log, not in the channel:
 * the agent's fatal line, or the kernel's panic. The mux quotes that line in
 * its error, which reaches the task's stderr. The log is the user's own (the
 * guest directory's), read after the mux dropped to the user. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mux.h"

#define CONSOLE_TAIL 16384

static const char *const reason_marks[] = {"spank_vm-agent: fatal:", "Kernel panic"};

static bool is_reason(const char *line)
{
	for (size_t i = 0; i < sizeof(reason_marks) / sizeof(reason_marks[0]); i++)
		if (strstr(line, reason_marks[i]) != NULL)
			return true;
	return false;
}

/* The last line of buf[0..len) that names a reason, made printable. */
static bool last_reason(char *buf, size_t len, char *out, size_t out_len)
{
	bool found = false;
	char *line = buf;

	buf[len] = '\0';
	while (line < buf + len) {
		char *end = strchrnul(line, '\n');

		*end = '\0';
		if (is_reason(line)) {
			size_t n = 0;

			for (const char *p = line; *p != '\0' && n + 1 < out_len; p++)
				if (*p != '\r')
					out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
			out[n] = '\0';
			found = true;
		}
		line = end + 1;
	}
	return found;
}

bool mux_console_reason(const char *path, char *out, size_t len)
{
	static char buf[CONSOLE_TAIL + 1];
	struct stat st;
	ssize_t n;
	int fd;

	if (path == NULL || len == 0)
		return false;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = pread(fd, buf, CONSOLE_TAIL,
		          st.st_size > CONSOLE_TAIL ? st.st_size - CONSOLE_TAIL : 0);
	close(fd);
	return n > 0 && last_reason(buf, (size_t)n, out, len);
}
