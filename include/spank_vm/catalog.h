/* The site image catalog: image_dir/<name>.image files, one per image that
 * users may name with --vm=NAME. Names are catalog keys, never paths: the
 * file a name leads to is always image_dir/<name>.image, and the disk it
 * names must be a plain file name inside image_dir.
 *
 * An entry is key=value lines ('#' starts a comment):
 *   disk=centos7.qcow2          file in image_dir (required)
 *   format=qcow2|raw            (default qcow2)
 *   hypervisors=kvm,qemu,xen    which hypervisors may boot it (default kvm,qemu)
 *   boot=host-kernel|disk       host-kernel: the node's kernel and spank_vm's
 *                               initramfs with the disk as root file system;
 *                               disk: the image boots itself (bootloader)
 *   root=/dev/vda1              host-kernel: the root device (default /dev/vda)
 *   allow_root=yes|no           whether jobs may run as root inside (default no)
 *   agent=yes|no                the image carries spank-vm-agent (default yes)
 */
#ifndef SPANK_VM_CATALOG_H
#define SPANK_VM_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "spank_vm/error.h"
#include "spank_vm/values.h"

#define SVM_CATALOG_SUFFIX    ".image"
#define SVM_CATALOG_MAX_ENTRY 4096

enum svm_image_format {
	SVM_IMAGE_QCOW2 = 0,
	SVM_IMAGE_RAW,
};

enum svm_image_boot {
	SVM_BOOT_HOST_KERNEL = 0,
	SVM_BOOT_DISK,
};

struct svm_image {
	char name[SVM_IMAGE_NAME_MAX + 1];
	char disk[SVM_IMAGE_NAME_MAX * 2 + 1]; /* file name inside image_dir */
	enum svm_image_format format;
	unsigned hypervisors; /* bit (1 << enum svm_hypervisor) */
	enum svm_image_boot boot;
	char root_device[64];
	bool allow_root;
	bool agent;
};

/* Parses an entry's text; name is the catalog key it was found under. */
int svm_image_parse(const char *name, const char *text, struct svm_image *image,
                    struct svm_err *err);

bool svm_image_supports(const struct svm_image *image, enum svm_hypervisor hv);

const char *svm_image_format_name(enum svm_image_format format);

/* Loads image_dir/<name>.image (name validated first). An unknown name says
 * so and lists nothing else: the error reaches the user. */
int svm_catalog_load(const char *image_dir, const char *name, struct svm_image *image,
                     struct svm_err *err);

/* The catalog's image names, sorted, ", "-separated, into out (truncated
 * with "..." if it does not fit); "" when image_dir has none. */
int svm_catalog_names(const char *image_dir, char *out, size_t len, struct svm_err *err);

#endif
