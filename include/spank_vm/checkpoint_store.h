/* A checkpoint on disk: PARENT/spank_vm-job<ID>/ holding "manifest",
 * "memory" and "disk.qcow2" (checkpoint.h).
 *
 * Writing never leaves something that looks valid and is not: the files go
 * into PARENT/.spank_vm-job<ID>.partial, each fsynced, the manifest last
 * (through a temporary name); the directory is then swapped with the old
 * checkpoint in one rename (RENAME_EXCHANGE), the parent fsynced, and only
 * then is the old one removed. A crash leaves the old checkpoint or the new
 * one under the name, and at most a ".partial" that loading ignores and the
 * next save removes.
 *
 * Loading trusts nothing in the directory: no links followed, only regular
 * files, the manifest decoded strictly, each file's size and SHA-256 checked
 * against it while it is copied out; errors name the file and the fault.
 * Every function works on directory descriptors, so that the caller can run
 * it as the checkpoint's owner (the files are the user's). */
#ifndef SPANK_VM_CHECKPOINT_STORE_H
#define SPANK_VM_CHECKPOINT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "spank_vm/checkpoint.h"
#include "spank_vm/checkpoint_name.h"
#include "spank_vm/error.h"

/* Copies in_fd from its current offset to its end into out_fd (out_fd -1:
 * only reads), and gives the size and SHA-256 of what went through. */
int svm_ckpt_copy(int in_fd, int out_fd, struct svm_ckpt_file *result, struct svm_err *err);

/* Starts a checkpoint of job_id under parent_fd: removes a stale partial
 * directory and makes a fresh one (mode 0700), returned in *partial_fd. */
int svm_ckpt_begin(int parent_fd, uint32_t job_id, int *partial_fd, struct svm_err *err);

/* Creates file id in the partial directory for writing (0600). */
int svm_ckpt_create_file(int partial_fd, enum svm_ckpt_file_id id, int *fd, struct svm_err *err);

/* Writes the manifest into the partial directory, syncs everything and puts
 * the checkpoint in place of the old one (see above); closes partial_fd. */
int svm_ckpt_commit(int parent_fd, int partial_fd, const struct svm_ckpt_manifest *m,
                    struct svm_err *err);

/* Opens job_id's checkpoint under parent_fd and decodes its manifest (which
 * must be job_id's). Returns 1 when there is none, 0 when *dir_fd is open. */
int svm_ckpt_open(int parent_fd, uint32_t job_id, int *dir_fd, struct svm_ckpt_manifest *m,
                  struct svm_err *err);

/* Copies file id of an opened checkpoint into out_fd (-1: only checks it),
 * failing unless its size and SHA-256 are the manifest's. */
int svm_ckpt_copy_verified(int dir_fd, enum svm_ckpt_file_id id, const struct svm_ckpt_manifest *m,
                           int out_fd, struct svm_err *err);

/* Removes job_id's checkpoint and any partial one; 0 also when none exists. */
int svm_ckpt_remove(int parent_fd, uint32_t job_id, struct svm_err *err);

#endif
