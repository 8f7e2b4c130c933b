/* A job's disk: a qcow2 overlay in the guest's directory, backed by the
 * read-only site image, owned by the job's user (QEMU runs as that user), and
 * removed with the directory at teardown. The site image is never written. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "provision.h"

extern char **environ;

static int run_qemu_img(char *const argv[], struct svm_err *err)
{
	int status;
	pid_t pid;
	int rc = posix_spawnp(&pid, "qemu-img", NULL, NULL, argv, environ);

	if (rc != 0)
		return svm_err_errno(err, rc, "cannot run qemu-img");
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return svm_err_errno(err, errno, "waiting for qemu-img");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return svm_err_set(err, "qemu-img create failed (status %d)", status);
	return 0;
}

int provision_make_overlay(const struct provision_opts *o, const struct svm_image *image,
                           char *overlay, size_t len, struct svm_err *err)
{
	char base[4096];
	struct stat st;

	snprintf(base, sizeof(base), "%s/%s", o->image_dir, image->disk);
	if (stat(base, &st) != 0)
		return svm_err_errno(err, errno, "image %s: cannot use its disk %s", image->name,
		                     base);
	if (!S_ISREG(st.st_mode) || (st.st_mode & S_IROTH) == 0)
		return svm_err_set(err,
		                   "image %s: %s must be a world-readable file (guests run "
		                   "as the job's user)",
		                   image->name, base);
	if (snprintf(overlay, len, "%s/disk.qcow2", o->dir) >= (int)len)
		return svm_err_set(err, "overlay path too long");
	unlink(overlay);
	{
		char *argv[] = {(char *)"qemu-img",
		                (char *)"create",
		                (char *)"-q",
		                (char *)"-f",
		                (char *)"qcow2",
		                (char *)"-F",
		                (char *)svm_image_format_name(image->format),
		                (char *)"-b",
		                base,
		                overlay,
		                NULL};

		if (run_qemu_img(argv, err) != 0)
			return -1;
	}
	if (chown(overlay, o->uid, o->gid) != 0 || chmod(overlay, 0600) != 0) {
		svm_err_errno(err, errno, "cannot hand %s to uid %u", overlay, (unsigned)o->uid);
		unlink(overlay);
		return -1;
	}
	return 0;
}
