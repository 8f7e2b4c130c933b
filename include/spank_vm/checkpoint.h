/* A checkpoint's manifest, and whether a checkpoint fits a new allocation.
 *
 * A checkpoint is a directory (checkpoint_store.h): the guest's memory state
 * as libvirt saved it, its disk overlay, and this manifest, which says what
 * the two files are (size, SHA-256) and what guest they hold: the job, the
 * image and its digest, the hypervisor, and the guest's shape (vCPUs, CPU
 * topology, NUMA cells, RAM). The shape is the guest's ABI: a restored guest
 * keeps it whatever the new allocation looks like, so only the pins (which
 * host PU runs each vCPU, which host node backs each cell) follow the new
 * allocation.
 *
 * The manifest is "key=value" lines; "format=" comes first, so that a newer
 * format is named as such instead of failing on its first unknown key.
 * Decoding is strict: every key once, no unknown key, every value in range,
 * the cells covering the vCPUs exactly and summing to the RAM. All pure. */
#ifndef SPANK_VM_CHECKPOINT_H
#define SPANK_VM_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/cpuset.h"
#include "spank_vm/error.h"
#include "spank_vm/plan.h"
#include "spank_vm/values.h"

#define SVM_CKPT_FORMAT       1
#define SVM_CKPT_MANIFEST     "manifest"
#define SVM_CKPT_MANIFEST_MAX 65536
#define SVM_CKPT_MAX_CELLS    64
#define SVM_CKPT_NODE_MAX     64
#define SVM_CKPT_SHA256_HEX   64

/* The files of a checkpoint besides its manifest, by their fixed names. */
enum svm_ckpt_file_id {
	SVM_CKPT_FILE_MEMORY = 0, /* "memory": libvirt's saved state */
	SVM_CKPT_FILE_DISK,       /* "disk.qcow2": the guest's overlay */
	SVM_CKPT_NFILES,
};

struct svm_ckpt_file {
	uint64_t size;
	char sha256[SVM_CKPT_SHA256_HEX + 1]; /* lower-case hex */
};

struct svm_ckpt_cell {
	struct svm_cpuset vcpus;
	uint64_t mem_mib;
	uint64_t hugepages;
};

struct svm_ckpt_manifest {
	unsigned format;
	uint32_t job_id;
	char node[SVM_CKPT_NODE_MAX + 1]; /* the node it was saved on */
	int64_t saved_at;                 /* seconds since the epoch */
	enum svm_hypervisor hypervisor;
	char image[SVM_IMAGE_NAME_MAX + 1];
	char image_digest[SVM_CKPT_SHA256_HEX + 1];
	unsigned nvcpus, sockets, cores, threads;
	bool x2apic;
	unsigned ncells;
	struct svm_ckpt_cell cells[SVM_CKPT_MAX_CELLS];
	uint64_t guest_mib;
	enum svm_hugepages hugepages;
	struct svm_ckpt_file files[SVM_CKPT_NFILES];
};

/* "memory" or "disk.qcow2". */
const char *svm_ckpt_file_name(enum svm_ckpt_file_id id);

/* Fills the guest's shape from the plan it was started with; the caller sets
 * the job, node, time, image and files. */
int svm_ckpt_manifest_set_shape(struct svm_ckpt_manifest *m, const struct svm_plan *plan,
                                struct svm_err *err);

/* Checks every field (as decoding does) and writes the manifest's text. */
int svm_ckpt_manifest_encode(const struct svm_ckpt_manifest *m, char *buf, size_t len,
                             struct svm_err *err);

/* Parses a NUL-terminated manifest; the error names the line and key. */
int svm_ckpt_manifest_decode(const char *text, struct svm_ckpt_manifest *m, struct svm_err *err);

/* Whether the checkpoint can run on the allocation planned in alloc for the
 * same image (name and current digest): same hypervisor and hugepages, at
 * least its vCPUs and RAM. If so, *out is the plan to restore it with: the
 * checkpoint's shape, vCPU i on alloc's vCPU i's PU, each cell bound to the
 * host node of the allocation's cell holding its first vCPU, emulator
 * threads and the hard limit from alloc. On error *out holds nothing. */
int svm_ckpt_fit(const struct svm_ckpt_manifest *m, const struct svm_plan *alloc, const char *image,
                 const char *image_digest, struct svm_plan *out, struct svm_err *err);

#endif
