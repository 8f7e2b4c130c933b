/* The guest's console log belongs to the job's user: libvirt would create
 * it as root (0600), and then neither the user nor the user's mux could read
 * why their guest did not come up. It is made here, before the domain, in
 * the guest directory (the user's): no symlink is followed, an existing log
 * (a guest restarted in the same directory) is kept and appended to. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provision.h"

int provision_prepare_console(const struct provision_opts *o, struct svm_err *err)
{
	int dir_fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), fd = -1,
	    rc = -1;
	struct stat st;

	if (dir_fd < 0)
		return svm_err_errno(err, errno, "cannot open the guest directory %s", o->dir);
	fd = openat(dir_fd, PROVISION_CONSOLE_LOG,
	            O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		svm_err_errno(err, errno, "cannot create %s/%s", o->dir, PROVISION_CONSOLE_LOG);
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		svm_err_set(err, "%s/%s is not a regular file", o->dir, PROVISION_CONSOLE_LOG);
		goto out;
	}
	if (fchown(fd, o->uid, o->gid) != 0 || fchmod(fd, 0600) != 0) {
		svm_err_errno(err, errno, "cannot give %s/%s to the job's user", o->dir,
		              PROVISION_CONSOLE_LOG);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	close(dir_fd);
	return rc;
}
