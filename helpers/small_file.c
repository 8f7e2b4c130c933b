#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "spank_vm/small_file.h"

int svm_read_small_file(const char *path, char *buf, size_t len, struct svm_err *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t used = 0;
	ssize_t n = 0;

	if (fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", path);
	while (used + 1 < len) {
		n = read(fd, buf + used, len - used - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	if (n < 0)
		svm_err_errno(err, errno, "cannot read %s", path);
	close(fd);
	buf[used] = '\0';
	return n < 0 ? -1 : 0;
}
