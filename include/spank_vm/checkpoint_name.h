/* Where a job's checkpoint lives in its checkpoint directory: named here,
 * apart from the store (checkpoint_store.h), for the programs that only look
 * for one and must not link the store's hashing. */
#ifndef SPANK_VM_CHECKPOINT_NAME_H
#define SPANK_VM_CHECKPOINT_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVM_CKPT_DIR_MAX 64

/* "spank_vm-job<ID>" (or ".spank_vm-job<ID>.partial" when partial). */
void svm_ckpt_dir_name(uint32_t job_id, bool partial, char *buf, size_t size);

#endif
