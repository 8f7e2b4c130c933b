/* Kernel modules from the initramfs. The image ships the modules the agent
 * needs and the lines of modules.dep that name them; the agent resolves the
 * order itself (no modprobe in the guest): each module's dependencies first,
 * then the module, through finit_module(2). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent.h"

#define MAX_DEPTH 16 /* modules.dep is flat; this only stops a corrupt file */
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

struct module_db {
	char dir[256]; /* /lib/modules/<release> */
	char *dep;     /* modules.dep, with a leading '\n' so every line starts with one */
};

/* The whole file, after a '\n' and NUL-terminated. */
static int read_text(const char *path, char **out, struct svm_err *err)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0)
		return svm_err_errno(err, errno, "open %s", path);
	if (fstat(fd, &st) != 0 || (text = malloc((size_t)st.st_size + 2)) == NULL) {
		svm_err_errno(err, errno, "cannot load %s", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + 1 + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			svm_err_errno(err, n < 0 ? errno : EIO, "read %s", path);
			goto out;
		}
		len += (size_t)n;
	}
	text[0] = '\n';
	text[len + 1] = '\0';
	*out = text;
	text = NULL;
	rc = 0;
out:
	free(text);
	close(fd);
	return rc;
}

/* "kernel/fs/9p/9p.ko" -> "9p": modules.dep spells '-' where names use '_'. */
static bool file_is_module(const char *file, size_t len, const char *name)
{
	const char *base = file;
	size_t n = strlen(name);

	for (size_t i = 0; i < len; i++)
		if (file[i] == '/')
			base = file + i + 1;
	if ((size_t)(file + len - base) < n + 3)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = base[i] == '-' ? '_' : base[i];

		if (c != (name[i] == '-' ? '_' : name[i]))
			return false;
	}
	return strncmp(base + n, ".ko", 3) == 0;
}

/* The modules.dep line of a module: its file, ':', its dependencies. */
static const char *find_line(const struct module_db *db, const char *name, size_t *file_len)
{
	const char *line = db->dep;

	while ((line = strchr(line, '\n')) != NULL) {
		const char *colon;

		line++;
		colon = strchr(line, ':');
		if (colon == NULL)
			return NULL;
		if (memchr(line, '\n', (size_t)(colon - line)) == NULL &&
		    file_is_module(line, (size_t)(colon - line), name)) {
			*file_len = (size_t)(colon - line);
			return line;
		}
	}
	return NULL;
}

static int insert_file(const struct module_db *db, const char *file, size_t len,
                       struct svm_err *err)
{
	char path[512];
	int fd, flags = 0, rc = 0;

	if (snprintf(path, sizeof(path), "%s/%.*s", db->dir, (int)len, file) >= (int)sizeof(path))
		return svm_err_set(err, "module path too long: %.*s", (int)len, file);
	if (len > 3 && strncmp(file + len - 3, ".ko", 3) != 0)
		flags = MODULE_INIT_COMPRESSED_FILE;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "open %s", path);
	if (syscall(SYS_finit_module, fd, "", flags) != 0 && errno != EEXIST)
		rc = svm_err_errno(err, errno, "finit_module %s", path);
	close(fd);
	return rc;
}

/* Dependencies listed on a module's line come in modprobe's order (the last
 * one needs nothing else of the list), so they load back to front. */
static int load_file(const struct module_db *db, const char *file, size_t len, int depth,
                     struct svm_err *err);

static int load_deps(const struct module_db *db, const char *deps, int depth, struct svm_err *err)
{
	const char *end = strchrnul(deps, '\n');
	const char *p = end;

	while (p > deps) {
		const char *word_end, *word;

		while (p > deps && (p[-1] == ' ' || p[-1] == '\t'))
			p--;
		word_end = p;
		while (p > deps && p[-1] != ' ' && p[-1] != '\t')
			p--;
		word = p;
		if (word_end > word &&
		    load_file(db, word, (size_t)(word_end - word), depth + 1, err) != 0)
			return -1;
	}
	return 0;
}

static int load_file(const struct module_db *db, const char *file, size_t len, int depth,
                     struct svm_err *err)
{
	const char *line = db->dep;

	if (depth > MAX_DEPTH)
		return svm_err_set(err, "modules.dep nests deeper than %d", MAX_DEPTH);
	/* Its own line, to load what it needs first. */
	while ((line = strchr(line, '\n')) != NULL) {
		line++;
		if (strncmp(line, file, len) == 0 && line[len] == ':') {
			if (load_deps(db, line + len + 1, depth, err) != 0)
				return -1;
			break;
		}
	}
	return insert_file(db, file, len, err);
}

static int open_db(struct module_db *db, struct svm_err *err)
{
	struct utsname uts;
	char path[300];

	if (uname(&uts) != 0)
		return svm_err_errno(err, errno, "uname");
	snprintf(db->dir, sizeof(db->dir), "/lib/modules/%s", uts.release);
	snprintf(path, sizeof(path), "%s/modules.dep", db->dir);
	return read_text(path, &db->dep, err);
}

int agent_load_modules(const char *const *names, size_t count, struct svm_err *err)
{
	struct module_db db = {.dep = NULL};
	int rc = -1;

	if (open_db(&db, err) != 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		size_t len;
		const char *line = find_line(&db, names[i], &len);

		/* Not shipped: built into this kernel (the image checked
		 * modules.builtin), or the mount that needs it says so. */
		if (line == NULL)
			continue;
		if (load_file(&db, line, len, 0, err) != 0)
			goto out;
	}
	rc = 0;
out:
	free(db.dep);
	return rc;
}
