/* Which kernel and initramfs a guest boots: the ones the site configured, or
 * the newest host kernel and the default guest image built for it by
 * spank-vm-image in image_dir. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provision.h"

#define KERNEL_PREFIX "vmlinuz-"

static int is_kernel(const struct dirent *entry)
{
	return strncmp(entry->d_name, KERNEL_PREFIX, strlen(KERNEL_PREFIX)) == 0;
}

static int newest_kernel(char *out, size_t len, struct svm_err *err)
{
	struct dirent **entries = NULL;
	int n = scandir("/boot", &entries, is_kernel, versionsort);

	if (n < 0)
		return svm_err_errno(err, errno, "cannot list /boot");
	if (n > 0)
		snprintf(out, len, "/boot/%s", entries[n - 1]->d_name);
	for (int i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return n > 0 ? 0 : svm_err_set(err, "no kernel in /boot (set kernel= in plugstack.conf)");
}

int provision_boot_files(const struct provision_opts *o, char *kernel, size_t klen, char *initrd,
                         size_t ilen, struct svm_err *err)
{
	const char *base;

	if (o->kernel != NULL)
		snprintf(kernel, klen, "%s", o->kernel);
	else if (newest_kernel(kernel, klen, err) != 0)
		return -1;
	if (o->initrd != NULL) {
		snprintf(initrd, ilen, "%s", o->initrd);
		return 0;
	}
	base = strrchr(kernel, '/');
	base = base ? base + 1 : kernel;
	if (strncmp(base, KERNEL_PREFIX, strlen(KERNEL_PREFIX)) != 0 || o->image_dir == NULL)
		return svm_err_set(err,
		                   "no initramfs for %s: give --initrd, or --image-dir with "
		                   "the default guest image",
		                   kernel);
	snprintf(initrd, ilen, "%s/initrd-%s.img", o->image_dir, base + strlen(KERNEL_PREFIX));
	if (access(initrd, R_OK) != 0)
		return svm_err_set(err,
		                   "the default guest image for %s is not built: run "
		                   "spank-vm-image --kernel %s --out %s",
		                   base, kernel, o->image_dir);
	return 0;
}
