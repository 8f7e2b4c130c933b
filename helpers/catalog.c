#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spank_vm/catalog.h"

static int parse_format(const char *v, enum svm_image_format *out, struct svm_err *err)
{
	if (strcmp(v, "qcow2") == 0)
		*out = SVM_IMAGE_QCOW2;
	else if (strcmp(v, "raw") == 0)
		*out = SVM_IMAGE_RAW;
	else
		return svm_err_set(err, "format: unknown value (accepted: qcow2, raw)");
	return 0;
}

static int parse_boot(const char *v, enum svm_image_boot *out, struct svm_err *err)
{
	if (strcmp(v, "host-kernel") == 0)
		*out = SVM_BOOT_HOST_KERNEL;
	else if (strcmp(v, "disk") == 0)
		*out = SVM_BOOT_DISK;
	else
		return svm_err_set(err, "boot: unknown value (accepted: host-kernel, disk)");
	return 0;
}

static int parse_hypervisors(const char *v, unsigned *out, struct svm_err *err)
{
	char list[64], *save = NULL;

	if (strlen(v) >= sizeof(list))
		return svm_err_set(err, "hypervisors: too long");
	snprintf(list, sizeof(list), "%s", v);
	*out = 0;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum svm_hypervisor hv;

		if (svm_parse_hypervisor(tok, &hv, NULL) != 0)
			return svm_err_set(err, "hypervisors: unknown hypervisor (accepted: "
			                        "a list of kvm, qemu, xen)");
		*out |= 1u << hv;
	}
	return *out ? 0 : svm_err_set(err, "hypervisors: empty list");
}

/* The disk is a file name inside image_dir: same rule as image names. */
static int parse_disk(const char *v, struct svm_image *image, struct svm_err *err)
{
	if (svm_check_image_name(v, NULL) != 0)
		return svm_err_set(err, "disk: must be a file name inside image_dir "
		                        "([A-Za-z0-9._-], no '/')");
	snprintf(image->disk, sizeof(image->disk), "%s", v);
	return 0;
}

/* The same rule as the agent's spank_vm.root (helpers/agent/cmdline.c): a
 * kernel device name, so that every accepted entry boots. */
static int parse_root_device(const char *v, struct svm_image *image, struct svm_err *err)
{
	size_t name_len = strlen(v) > 5 ? strlen(v) - 5 : 0;

	if (strncmp(v, "/dev/", 5) != 0 || name_len == 0 || name_len > 31 || v[5] < 'a' ||
	    v[5] > 'z' || strspn(v + 5, "abcdefghijklmnopqrstuvwxyz0123456789") != name_len)
		return svm_err_set(err, "root: expected a device such as /dev/vda1 (/dev/ and a "
		                        "lowercase letter, then up to 30 lowercase letters and "
		                        "digits)");
	memcpy(image->root_device, v, 5 + name_len + 1);
	return 0;
}

static int apply(struct svm_image *image, const char *key, const char *v, struct svm_err *err)
{
	if (strcmp(key, "disk") == 0)
		return parse_disk(v, image, err);
	if (strcmp(key, "format") == 0)
		return parse_format(v, &image->format, err);
	if (strcmp(key, "hypervisors") == 0)
		return parse_hypervisors(v, &image->hypervisors, err);
	if (strcmp(key, "boot") == 0)
		return parse_boot(v, &image->boot, err);
	if (strcmp(key, "root") == 0)
		return parse_root_device(v, image, err);
	if (strcmp(key, "allow_root") == 0)
		return svm_parse_bool(v, &image->allow_root, err);
	if (strcmp(key, "agent") == 0)
		return svm_parse_bool(v, &image->agent, err);
	return svm_err_set(err,
	                   "unknown key '%.32s' (keys: disk, format, hypervisors, boot, "
	                   "root, allow_root, agent)",
	                   key);
}

static void defaults(struct svm_image *image, const char *name)
{
	memset(image, 0, sizeof(*image));
	snprintf(image->name, sizeof(image->name), "%s", name);
	image->format = SVM_IMAGE_QCOW2;
	image->hypervisors = (1u << SVM_HV_KVM) | (1u << SVM_HV_QEMU);
	image->boot = SVM_BOOT_HOST_KERNEL;
	snprintf(image->root_device, sizeof(image->root_device), "/dev/vda");
	image->agent = true;
}

/* One line: blank, comment, or key=value (surrounding blanks trimmed). */
static int parse_line(struct svm_image *image, char *line, unsigned lineno, struct svm_err *err)
{
	char *eq, *key = line + strspn(line, " \t"), *end;
	struct svm_err why;

	if (*key == '\0' || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (eq == NULL)
		return svm_err_set(err, "image %s, line %u: expected key=value", image->name,
		                   lineno);
	for (end = eq; end > key && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	eq++;
	eq += strspn(eq, " \t");
	for (end = eq + strlen(eq); end > eq && (end[-1] == ' ' || end[-1] == '\t');)
		*--end = '\0';
	if (apply(image, key, eq, &why) != 0)
		return svm_err_set(err, "image %s, line %u: %s", image->name, lineno, why.msg);
	return 0;
}

int svm_image_parse(const char *name, const char *text, struct svm_image *image,
                    struct svm_err *err)
{
	char line[512];
	unsigned lineno = 0;

	if (svm_check_image_name(name, err) != 0)
		return -1;
	defaults(image, name);
	while (*text != '\0') {
		size_t n = strcspn(text, "\n");

		lineno++;
		if (n >= sizeof(line))
			return svm_err_set(err, "image %s, line %u: too long", name, lineno);
		memcpy(line, text, n);
		line[n] = '\0';
		if (strchr(line, '\r') != NULL)
			return svm_err_set(err, "image %s, line %u: carriage return", name, lineno);
		if (parse_line(image, line, lineno, err) != 0)
			return -1;
		text += n + (text[n] == '\n');
	}
	if (image->disk[0] == '\0')
		return svm_err_set(err, "image %s: no disk= line", name);
	return 0;
}

bool svm_image_supports(const struct svm_image *image, enum svm_hypervisor hv)
{
	return (image->hypervisors >> hv) & 1u;
}

const char *svm_image_format_name(enum svm_image_format format)
{
	return format == SVM_IMAGE_RAW ? "raw" : "qcow2";
}

int svm_catalog_load(const char *image_dir, const char *name, struct svm_image *image,
                     struct svm_err *err)
{
	char path[4096], text[SVM_CATALOG_MAX_ENTRY + 1];
	ssize_t n;
	int fd;

	if (svm_check_image_name(name, err) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s%s", image_dir, name, SVM_CATALOG_SUFFIX);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? svm_err_set(err,
		                                     "no image named '%s' in this site's "
		                                     "catalog",
		                                     name)
		                       : svm_err_errno(err, errno, "cannot open %s", path);
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 0)
		return svm_err_errno(err, errno, "cannot read %s", path);
	if ((size_t)n > SVM_CATALOG_MAX_ENTRY)
		return svm_err_set(err, "%s is larger than %d bytes", path, SVM_CATALOG_MAX_ENTRY);
	text[n] = '\0';
	if (memchr(text, '\0', (size_t)n) != NULL)
		return svm_err_set(err, "%s is not text", path);
	return svm_image_parse(name, text, image, err);
}

static int is_entry(const struct dirent *d)
{
	size_t n = strlen(d->d_name), suffix = strlen(SVM_CATALOG_SUFFIX);
	struct svm_err ignored;
	char name[SVM_IMAGE_NAME_MAX + 1];

	if (n <= suffix || n - suffix > SVM_IMAGE_NAME_MAX ||
	    strcmp(d->d_name + n - suffix, SVM_CATALOG_SUFFIX) != 0)
		return 0;
	memcpy(name, d->d_name, n - suffix);
	name[n - suffix] = '\0';
	/* Only names a user could ask for. */
	return svm_check_image_name(name, &ignored) == 0;
}

int svm_catalog_names(const char *image_dir, char *out, size_t len, struct svm_err *err)
{
	struct dirent **entries = NULL;
	int n = scandir(image_dir, &entries, is_entry, alphasort);
	size_t used = 0;

	if (n < 0)
		return svm_err_errno(err, errno, "cannot list %s", image_dir);
	if (len > 0)
		out[0] = '\0';
	for (int i = 0; i < n; i++) {
		int name_len = (int)(strlen(entries[i]->d_name) - strlen(SVM_CATALOG_SUFFIX));
		int w = snprintf(out + used, len - used, "%s%.*s", used ? ", " : "", name_len,
		                 entries[i]->d_name);

		if (w < 0 || (size_t)w >= len - used) {
			if (len >= 4)
				snprintf(out + len - 4, 4, "...");
			used = len - 1;
		} else {
			used += (size_t)w;
		}
	}
	for (int i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return 0;
}
