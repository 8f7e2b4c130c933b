#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spank_vm/runtime.h"
#include "spank_vm/values.h"

int svm_job_dir(const char *runtime_dir, uint32_t job_id, char *buf, size_t len,
                struct svm_err *err)
{
	int n = snprintf(buf, len, "%s/%u", runtime_dir, job_id);

	if (n < 0 || (size_t)n >= len)
		return svm_err_set(err, "runtime directory path is too long");
	return 0;
}

static int mkdir_mode(const char *path, mode_t mode, struct svm_err *err)
{
	struct stat st;

	if (mkdir(path, mode) != 0 && errno != EEXIST)
		return svm_err_errno(err, errno, "cannot create %s", path);
	/* An existing path must be a real directory owned by root, or a user
	 * could have planted a link to redirect what root writes next. */
	if (lstat(path, &st) != 0)
		return svm_err_errno(err, errno, "cannot stat %s", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return svm_err_set(err, "%s exists but is not a directory owned by uid %u", path,
		                   (unsigned)geteuid());
	if ((st.st_mode & 07777) != mode && chmod(path, mode) != 0)
		return svm_err_errno(err, errno, "cannot chmod %s", path);
	return 0;
}

/* Creates the missing parents of path (0755), as `mkdir -p` would. */
static int mkdir_parents(const char *path, struct svm_err *err)
{
	char buf[SVM_PATH_MAX + 1];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return svm_err_set(err, "path is too long: %s", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return svm_err_errno(err, errno, "cannot create %s", buf);
		*p = '/';
	}
	return 0;
}

int svm_job_dir_create(const char *runtime_dir, uint32_t job_id, struct svm_err *err)
{
	char path[SVM_PATH_MAX + 16];

	if (mkdir_parents(runtime_dir, err) != 0 || mkdir_mode(runtime_dir, 0755, err) != 0)
		return -1;
	if (svm_job_dir(runtime_dir, job_id, path, sizeof(path), err) != 0)
		return -1;
	return mkdir_mode(path, 0711, err);
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int svm_job_file_write(const char *runtime_dir, uint32_t job_id, const char *name,
                       const char *content, struct svm_err *err)
{
	char dir[SVM_PATH_MAX + 16], tmp[SVM_PATH_MAX + 64], final[SVM_PATH_MAX + 64];
	int fd = -1, rc = -1;

	if (svm_job_dir(runtime_dir, job_id, dir, sizeof(dir), err) != 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(final, sizeof(final), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		svm_err_errno(err, errno, "cannot create %s", tmp);
		goto out;
	}
	if (write_all(fd, content, strlen(content)) != 0 || fsync(fd) != 0) {
		svm_err_errno(err, errno, "cannot write %s", tmp);
		goto out;
	}
	if (rename(tmp, final) != 0) {
		svm_err_errno(err, errno, "cannot rename %s to %s", tmp, final);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int svm_job_file_read(const char *runtime_dir, uint32_t job_id, const char *name, char *buf,
                      size_t len, struct svm_err *err)
{
	char path[SVM_PATH_MAX + 64];
	size_t used = 0;
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/%u/%s", runtime_dir, job_id, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", path);
	while (used + 1 < len) {
		ssize_t n = read(fd, buf + used, len - used - 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			svm_err_errno(err, errno, "cannot read %s", path);
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	if (used + 1 >= len) {
		svm_err_set(err, "%s is larger than %zu bytes", path, len - 1);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int remove_entries(int dir_fd, struct svm_err *err)
{
	DIR *dir = fdopendir(dir_fd);
	struct dirent *entry;
	int rc = 0;

	if (dir == NULL) {
		close(dir_fd);
		return svm_err_errno(err, errno, "cannot list directory");
	}
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (svm_remove_tree_at(dirfd(dir), entry->d_name, err) != 0)
			rc = -1;
	}
	closedir(dir);
	return rc;
}

int svm_remove_tree_at(int parent_fd, const char *name, struct svm_err *err)
{
	int fd;

	if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return svm_err_errno(err, errno, "cannot remove %s", name);
	/* O_NOFOLLOW + O_DIRECTORY: only descend into a real directory. */
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : svm_err_errno(err, errno, "cannot open %s", name);
	if (remove_entries(fd, err) != 0)
		return -1;
	if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		return svm_err_errno(err, errno, "cannot remove directory %s", name);
	return 0;
}

int svm_job_dir_remove(const char *runtime_dir, uint32_t job_id, struct svm_err *err)
{
	char name[16];
	int parent, rc;

	parent = open(runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return errno == ENOENT ? 0
		                       : svm_err_errno(err, errno, "cannot open %s", runtime_dir);
	snprintf(name, sizeof(name), "%u", job_id);
	rc = svm_remove_tree_at(parent, name, err);
	close(parent);
	return rc;
}

pid_t svm_job_mux_pid(const char *runtime_dir, const char *helper_dir, uint32_t job_id)
{
	return svm_job_helper_pid(runtime_dir, helper_dir, job_id, SVM_JOB_MUX_PID_FILE,
	                          SVM_MUX_HELPER);
}

pid_t svm_job_helper_pid(const char *runtime_dir, const char *helper_dir, uint32_t job_id,
                         const char *pid_file, const char *helper)
{
	char text[32], exe[SVM_PATH_MAX + 32], link[64], target[SVM_PATH_MAX + 32];
	ssize_t n;
	uint64_t pid;

	if (svm_job_file_read(runtime_dir, job_id, pid_file, text, sizeof(text), NULL) != 0)
		return 0;
	text[strcspn(text, "\n")] = '\0';
	if (svm_parse_uint(text, 2, INT32_MAX, &pid, NULL) != 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	snprintf(exe, sizeof(exe), "%s/%s", helper_dir, helper);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return strcmp(target, exe) == 0 ? (pid_t)pid : 0;
}

static bool marker_is(const char *marker, bool present)
{
	return (faccessat(AT_FDCWD, marker, F_OK, AT_SYMLINK_NOFOLLOW) == 0) == present;
}

bool svm_mux_wait_marker(const char *marker, pid_t mux, bool present, unsigned timeout_s)
{
	const long tick_ms = 50;
	const struct timespec tick = {0, tick_ms * 1000000L};

	for (long waited = 0; waited < (long)timeout_s * 1000; waited += tick_ms) {
		if (marker_is(marker, present))
			return true;
		if (kill(mux, 0) != 0)
			return false;
		nanosleep(&tick, NULL);
	}
	return marker_is(marker, present);
}

int svm_job_checkpoint_lock(const char *runtime_dir, uint32_t job_id, struct svm_err *err)
{
	char path[SVM_PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%u/%s", runtime_dir, job_id, SVM_CHECKPOINT_STAGE);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "job %u was not started to be checkpointed (%s)",
		                     job_id, path);
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			svm_err_errno(err, errno, "cannot lock %s", path);
			close(fd);
			return -1;
		}
	}
	return fd;
}

int svm_domain_default_name(const char *node, uint32_t job, char *buf, size_t len)
{
	int n = snprintf(buf, len, "spank_vm-%s-%u", node, job);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}
