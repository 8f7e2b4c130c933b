/* The batch script lives in slurmd's spool on the host, which a guest booted
 * from a site image cannot see (and the default guest sees only through the
 * host's root). So the proxy ships it over the session itself: it opens the
 * script as the user, offers it on the session's extra stream, and runs a
 * fixed loader in the guest that copies the stream into a private file in
 * the guest's /tmp and execs it with the script's arguments. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"

/* $1 is the fd the stream arrives on, the rest are the script's arguments.
 * The fd is closed before the script runs, so the script sees no trace of
 * the loader but its file name. */
static const char loader[] = "fd=$1; shift\n"
                             "f=$(mktemp /tmp/slurm_script.XXXXXX) || exit 1\n"
                             "cat <&\"$fd\" >\"$f\" || exit 1\n"
                             "eval \"exec $fd<&-\"\n"
                             "chmod 700 \"$f\" || exit 1\n"
                             "exec \"$f\" \"$@\"\n";

char **exec_ship_script(char **argv, int *extra_fd, char *why, size_t why_len)
{
	static char fd_text[16];
	struct stat st;
	size_t argc = 0;
	char **out;
	int fd;

	while (argv[argc] != NULL)
		argc++;
	fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "cannot read the batch script %s: %s", argv[0],
		         fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	out = calloc(argc + 5, sizeof(*out));
	if (out == NULL) {
		snprintf(why, why_len, "out of memory");
		close(fd);
		return NULL;
	}
	snprintf(fd_text, sizeof(fd_text), "%d", fd);
	out[0] = "/bin/sh";
	out[1] = "-c";
	out[2] = (char *)loader;
	out[3] = argv[0]; /* the loader's $0: its messages name the script */
	out[4] = fd_text;
	memcpy(out + 5, argv + 1, argc * sizeof(*out)); /* with the final NULL */
	*extra_fd = fd;
	return out;
}
