/* Parsers and validators for every value a user or admin can give spank_vm.
 * Each one takes an untrusted string, checks it completely, and on failure
 * names the value and what would have been accepted. */
#ifndef SPANK_VM_VALUES_H
#define SPANK_VM_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"

/* Longest image name, checkpoint path and other user strings we accept. */
#define SVM_IMAGE_NAME_MAX 64
#define SVM_PATH_MAX       1024

enum svm_hypervisor {
	SVM_HV_UNSET = 0,
	SVM_HV_KVM,
	SVM_HV_QEMU,
	SVM_HV_XEN,
};

enum svm_hugepages {
	SVM_HUGEPAGES_NONE = 0,
	SVM_HUGEPAGES_2M,
	SVM_HUGEPAGES_1G,
};

enum svm_net {
	SVM_NET_UNSET = 0,
	SVM_NET_NONE,
	SVM_NET_CLUSTER,
};

enum svm_policy {
	SVM_POLICY_OPTIN = 0,
	SVM_POLICY_ALWAYS,
};

int svm_parse_hypervisor(const char *s, enum svm_hypervisor *out, struct svm_err *err);
const char *svm_hypervisor_name(enum svm_hypervisor hv);

int svm_parse_hugepages(const char *s, enum svm_hugepages *out, struct svm_err *err);
const char *svm_hugepages_name(enum svm_hugepages hp);

int svm_parse_net(const char *s, enum svm_net *out, struct svm_err *err);
const char *svm_net_name(enum svm_net net);

int svm_parse_policy(const char *s, enum svm_policy *out, struct svm_err *err);
const char *svm_policy_name(enum svm_policy policy);

/* A memory size: digits with an optional K, M, G or T suffix (binary units,
 * an optional trailing "B" or "iB"); a bare number means MiB, as in Slurm's --mem.
 * Result in MiB; sizes under 1 MiB or over 1 PiB are refused. */
int svm_parse_size_mib(const char *s, uint64_t *out_mib, struct svm_err *err);

/* A whole number in [min, max]. */
int svm_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct svm_err *err);

int svm_parse_bool(const char *s, bool *out, struct svm_err *err);

/* Image names are keys of the image catalog, never paths: 1 to 64 characters
 * of [A-Za-z0-9._-], starting with a letter or digit. */
int svm_check_image_name(const char *s, struct svm_err *err);

/* An absolute, normalised path: starts with '/', no "." or ".." component,
 * no empty component, no control characters, at most SVM_PATH_MAX bytes. */
int svm_check_abs_path(const char *s, struct svm_err *err);

/* In the text of a flat keyed file (lines "KEY VALUE", as the kernel's
 * memory.events or memory.oom_control), the number of the line of key;
 * -1 when no line has it or its value is not a whole number. */
int svm_keyed_value(const char *text, const char *key, uint64_t *out);

/* Percent-encodes every byte outside [A-Za-z0-9/._-] as %XX; -1 if out is too
 * small. Used wherever a path must travel as one word (records, the guest's
 * kernel command line). */
int svm_percent_encode(const char *value, char *out, size_t len);

/* Decodes len bytes of in (which may be out itself: decoding never grows);
 * -1 for a malformed escape, a NUL byte, or no room in cap. */
int svm_percent_decode(const char *in, size_t len, char *out, size_t cap);

#endif
