#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spank_vm/cgroup.h"
#include "spank_vm/values.h"

/* True if the comma-separated controller list names "cpuset". */
static int names_cpuset(const char *list, size_t len)
{
	while (len > 0) {
		const char *comma = memchr(list, ',', len);
		size_t n = comma ? (size_t)(comma - list) : len;

		if (n == 6 && memcmp(list, "cpuset", 6) == 0)
			return 1;
		if (comma == NULL)
			break;
		len -= n + 1;
		list = comma + 1;
	}
	return 0;
}

/* Parses one "ID:CONTROLLERS:PATH" line; sets *v1 or *v2 to its path. */
static void scan_line(const char *line, size_t len, const char **v1, const char **v2,
                      size_t *v1_len, size_t *v2_len)
{
	const char *c1 = memchr(line, ':', len), *c2;

	if (c1 == NULL)
		return;
	c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line));
	if (c2 == NULL)
		return;
	if (c2 == c1 + 1 && c1 - line == 1 && line[0] == '0') {
		*v2 = c2 + 1;
		*v2_len = len - (size_t)(c2 + 1 - line);
	} else if (names_cpuset(c1 + 1, (size_t)(c2 - c1 - 1))) {
		*v1 = c2 + 1;
		*v1_len = len - (size_t)(c2 + 1 - line);
	}
}

int svm_cgroup_cpuset_dir(const char *proc_cgroup, const char *cgroup_root, char *out, size_t len,
                          struct svm_err *err)
{
	const char *v1 = NULL, *v2 = NULL, *p = proc_cgroup;
	size_t v1_len = 0, v2_len = 0;
	int n;

	while (*p != '\0') {
		size_t line_len = strcspn(p, "\n");

		scan_line(p, line_len, &v1, &v2, &v1_len, &v2_len);
		p += line_len + (p[line_len] == '\n');
	}
	if (v1 != NULL)
		n = snprintf(out, len, "%s/cpuset%.*s", cgroup_root, (int)v1_len, v1);
	else if (v2 != NULL)
		n = snprintf(out, len, "%s%.*s", cgroup_root, (int)v2_len, v2);
	else
		return svm_err_set(err, "the process is in no cpuset cgroup");
	if (n < 0 || (size_t)n >= len)
		return svm_err_set(err, "cpuset cgroup path is too long");
	if (strstr(out, "/../") != NULL || (n >= 3 && strcmp(out + n - 3, "/..") == 0))
		return svm_err_set(err, "cpuset cgroup path '%s' is not normalised", out);
	if (n > 1 && out[n - 1] == '/')
		out[n - 1] = '\0';
	return 0;
}

void svm_cgroup_job_level(char *dir)
{
	char *job = NULL;

	/* The last "/job_<digits>" component; what follows it is per step. */
	for (char *p = strstr(dir, "/job_"); p != NULL; p = strstr(p + 1, "/job_")) {
		size_t digits = strspn(p + 5, "0123456789");

		if (digits > 0 && (p[5 + digits] == '/' || p[5 + digits] == '\0'))
			job = p + 5 + digits;
	}
	if (job != NULL)
		*job = '\0';
}

/* Reads a small pseudo-file whole (bounded by len). */
int svm_cgroup_read_cpus(const char *dir, struct svm_cpuset *out, struct svm_err *err)
{
	static const char *const files[] = {"cpuset.effective_cpus", "cpuset.cpus.effective",
	                                    "cpuset.cpus"};
	char path[4096], text[8192];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (svm_read_small_file(path, text, sizeof(text), NULL) != 0)
			continue;
		text[strcspn(text, "\n")] = '\0';
		return svm_cpuset_parse(text, SVM_CPUSET_MAX - 1, out, err);
	}
	return svm_err_errno(err, errno, "cannot read the CPUs of cgroup %s", dir);
}

int svm_cgroup_job_cpus_of_pid(pid_t pid, const char *cgroup_root, struct svm_cpuset *out,
                               struct svm_err *err)
{
	char path[64], text[8192], dir[4096];

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (svm_read_small_file(path, text, sizeof(text), NULL) != 0)
		return svm_err_errno(err, errno, "cannot read %s", path);
	if (svm_cgroup_cpuset_dir(text, cgroup_root, dir, sizeof(dir), err) != 0)
		return -1;
	svm_cgroup_job_level(dir);
	return svm_cgroup_read_cpus(dir, out, err);
}

/* ---- the guest in the job's cgroups ---- */

static bool controller_in(const char *list, size_t len, const char *name)
{
	size_t name_len = strlen(name);

	while (len > 0) {
		const char *comma = memchr(list, ',', len);
		size_t n = comma ? (size_t)(comma - list) : len;

		if (n == name_len && memcmp(list, name, n) == 0)
			return true;
		if (comma == NULL)
			break;
		len -= n + 1;
		list = comma + 1;
	}
	return false;
}

/* A v1 hierarchy the guest joins: one that limits or accounts, and neither
 * freezer nor devices (cgroup.h says why). */
static bool joined_hierarchy(const char *list, size_t len)
{
	if (controller_in(list, len, "freezer") || controller_in(list, len, "devices"))
		return false;
	return controller_in(list, len, "cpuset") || controller_in(list, len, "memory") ||
	       controller_in(list, len, "cpuacct") || controller_in(list, len, "cpu");
}

static bool has_job_component(const char *path, size_t len)
{
	for (size_t i = 0; i + 5 < len; i++) {
		size_t digits;

		if (memcmp(path + i, "/job_", 5) != 0)
			continue;
		digits = strspn(path + i + 5, "0123456789");
		if (digits > 0 && i + 5 + digits <= len &&
		    (i + 5 + digits == len || path[i + 5 + digits] == '/'))
			return true;
	}
	return false;
}

static int add_dir(struct svm_cgroup_dirs *out, const char *root, const char *mount,
                   size_t mount_len, const char *path, size_t path_len, struct svm_err *err)
{
	char *dir;
	int n;

	/* A hierarchy Slurm does not manage here (the task sits at its root). */
	if (!has_job_component(path, path_len))
		return 0;
	if (out->n >= SVM_CGROUP_DIRS_MAX)
		return svm_err_set(err, "the task is in too many cgroup hierarchies");
	dir = out->dir[out->n];
	n = mount_len > 0 ? snprintf(dir, sizeof(out->dir[0]), "%s/%.*s%.*s", root, (int)mount_len,
	                             mount, (int)path_len, path)
	                  : snprintf(dir, sizeof(out->dir[0]), "%s%.*s", root, (int)path_len, path);
	if (n < 0 || (size_t)n >= sizeof(out->dir[0]))
		return svm_err_set(err, "cgroup path is too long");
	if (strstr(dir, "/../") != NULL || strstr(dir, "/./") != NULL ||
	    (n >= 3 && strcmp(dir + n - 3, "/..") == 0))
		return svm_err_set(err, "cgroup path '%s' is not normalised", dir);
	out->n++;
	return 0;
}

int svm_cgroup_guest_dirs(const char *proc_cgroup, const char *cgroup_root,
                          struct svm_cgroup_dirs *out, struct svm_err *err)
{
	const char *unified = NULL, *p = proc_cgroup;
	size_t unified_len = 0;
	bool v1_controllers = false;

	out->n = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		const char *c1 = memchr(p, ':', len), *c2 = NULL;

		if (c1 != NULL)
			c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p));
		if (c2 != NULL && c2 == c1 + 1) {
			unified = c2 + 1;
			unified_len = len - (size_t)(c2 + 1 - p);
		} else if (c2 != NULL && strncmp(c1 + 1, "name=", 5) != 0) {
			size_t list_len = (size_t)(c2 - c1 - 1);

			v1_controllers = true;
			if (joined_hierarchy(c1 + 1, list_len) &&
			    add_dir(out, cgroup_root, c1 + 1, list_len, c2 + 1,
			            len - (size_t)(c2 + 1 - p), err) != 0)
				return -1;
		}
		p += len + (p[len] == '\n');
	}
	/* Hybrid hosts have a unified hierarchy without controllers: v1 rules. */
	if (!v1_controllers && unified != NULL &&
	    add_dir(out, cgroup_root, "", 0, unified, unified_len, err) != 0)
		return -1;
	if (out->n == 0)
		return svm_err_set(err, "the job's task is in no Slurm job cgroup that limits or "
		                        "accounts");
	return 0;
}

int svm_cgroup_join(const struct svm_cgroup_dirs *dirs, pid_t pid, struct svm_err *err)
{
	char path[4096 + 16], text[32];
	int len = snprintf(text, sizeof(text), "%d\n", (int)pid);

	for (unsigned i = 0; i < dirs->n; i++) {
		int fd;
		ssize_t n;

		snprintf(path, sizeof(path), "%s/cgroup.procs", dirs->dir[i]);
		fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return svm_err_errno(err, errno, "cannot open %s", path);
		n = write(fd, text, (size_t)len);
		if (n != len) {
			svm_err_errno(err, n < 0 ? errno : EIO, "cannot move pid %d into %s",
			              (int)pid, dirs->dir[i]);
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

void svm_cgroup_remove_job_dirs(const struct svm_cgroup_dirs *dirs)
{
	for (unsigned i = 0; i < dirs->n; i++) {
		char dir[sizeof(dirs->dir[0])];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", dirs->dir[i]);
		/* Up to the job's directory, then the user's ("uid_N") above it. */
		for (;;) {
			bool job_level;

			slash = strrchr(dir, '/');
			if (slash == NULL)
				break;
			job_level = strncmp(slash, "/job_", 5) == 0;
			if (rmdir(dir) != 0)
				break;
			*slash = '\0';
			if (job_level) {
				slash = strrchr(dir, '/');
				if (slash != NULL && strncmp(slash, "/uid_", 5) == 0)
					rmdir(dir);
				break;
			}
		}
	}
}

/* ---- a task's memory cgroup (spank-vm-oom-mark) ---- */

static bool last_component_is(const char *path, size_t len, const char *prefix, bool digits)
{
	size_t start = len, prefix_len = strlen(prefix);

	while (start > 0 && path[start - 1] != '/')
		start--;
	if (start == 0 || len - start <= prefix_len ||
	    memcmp(path + start, prefix, prefix_len) != 0)
		return false;
	return !digits ||
	       strspn(path + start + prefix_len, "0123456789") == len - start - prefix_len;
}

static int task_dir(char *out, size_t len, const char *head, size_t head_len, const char *path,
                    size_t path_len, const char *tail, unsigned task, struct svm_err *err)
{
	int n;

	if (!has_job_component(path, path_len) ||
	    !last_component_is(path, path_len, "step_", false))
		return svm_err_set(err, "slurmstepd's cgroup '%.*s' is not a Slurm step's",
		                   (int)path_len, path);
	n = snprintf(out, len, "%.*s%.*s%s/task_%u", (int)head_len, head, (int)path_len, path, tail,
	             task);
	if (n < 0 || (size_t)n >= len)
		return svm_err_set(err, "cgroup path is too long");
	return 0;
}

int svm_cgroup_task_memory_dir(const char *stepd_proc_cgroup, const char *cgroup_root,
                               unsigned task, char *out, size_t len, struct svm_err *err)
{
	const char *unified = NULL, *p = stepd_proc_cgroup;
	size_t unified_len = 0, root_len = strlen(cgroup_root);
	char head[512];

	while (*p != '\0') {
		size_t line_len = strcspn(p, "\n");
		const char *c1 = memchr(p, ':', line_len), *c2 = NULL;

		if (c1 != NULL)
			c2 = memchr(c1 + 1, ':', line_len - (size_t)(c1 + 1 - p));
		if (c2 != NULL && c2 == c1 + 1) {
			unified = c2 + 1;
			unified_len = line_len - (size_t)(c2 + 1 - p);
		} else if (c2 != NULL && controller_in(c1 + 1, (size_t)(c2 - c1 - 1), "memory")) {
			/* v1: slurmstepd sits in the step's memory cgroup, its
			 * tasks in task_N below it. */
			int n = snprintf(head, sizeof(head), "%s/%.*s", cgroup_root,
			                 (int)(c2 - c1 - 1), c1 + 1);

			if (n < 0 || (size_t)n >= sizeof(head))
				return svm_err_set(err, "cgroup path is too long");
			return task_dir(out, len, head, (size_t)n, c2 + 1,
			                line_len - (size_t)(c2 + 1 - p), "", task, err);
		}
		p += line_len + (p[line_len] == '\n');
	}
	if (unified == NULL)
		return svm_err_set(err, "slurmstepd is in no memory cgroup");
	/* v2: slurmstepd in step_N/slurm, the tasks in step_N/user/task_N. */
	if (unified_len >= 6 && memcmp(unified + unified_len - 6, "/slurm", 6) == 0)
		unified_len -= 6;
	return task_dir(out, len, cgroup_root, root_len, unified, unified_len, "/user", task, err);
}

int svm_cgroup_check_task_dir(const char *dir, const char *cgroup_root, struct svm_err *err)
{
	size_t root_len = strlen(cgroup_root), len = strlen(dir);

	if (svm_check_abs_path(dir, err) != 0)
		return -1;
	if (strncmp(dir, cgroup_root, root_len) != 0 || dir[root_len] != '/' ||
	    !has_job_component(dir, len) || !last_component_is(dir, len, "task_", true))
		return svm_err_set(err,
		                   "'%s' is not a Slurm task's cgroup (%s/.../job_N/.../task_N)",
		                   dir, cgroup_root);
	return 0;
}
