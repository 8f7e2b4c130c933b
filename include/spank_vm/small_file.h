/* Reading the kernel's small files (cgroup, proc) and our own records. */
#ifndef SPANK_VM_SMALL_FILE_H
#define SPANK_VM_SMALL_FILE_H

#include <stddef.h>

#include "spank_vm/error.h"

/* The whole file, NUL-terminated, cut at len - 1 bytes; no symbolic link
 * followed. err may be NULL. */
int svm_read_small_file(const char *path, char *buf, size_t len, struct svm_err *err);

#endif
