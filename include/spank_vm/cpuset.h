/* A set of CPU ids (host PUs, Slurm abstract cores, guest vCPUs, NUMA nodes)
 * and its text form, the Linux/Slurm list syntax "0-3,8".
 *
 * The set is a fixed-size plain bitmap: no allocation, copyable by assignment,
 * and independent of hwloc so that code which only moves lists around does not
 * need the topology library. */
#ifndef SPANK_VM_CPUSET_H
#define SPANK_VM_CPUSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"

/* Ids 0 .. SVM_CPUSET_MAX - 1: the largest NR_CPUS a Linux x86_64 kernel is built with. */
#define SVM_CPUSET_MAX 8192u

struct svm_cpuset {
	uint64_t words[SVM_CPUSET_MAX / 64];
};

void svm_cpuset_clear(struct svm_cpuset *set);

/* Returns -1 (and leaves the set alone) when id >= SVM_CPUSET_MAX. */
int svm_cpuset_add(struct svm_cpuset *set, unsigned id);
bool svm_cpuset_has(const struct svm_cpuset *set, unsigned id);
unsigned svm_cpuset_count(const struct svm_cpuset *set);
bool svm_cpuset_is_empty(const struct svm_cpuset *set);
bool svm_cpuset_equal(const struct svm_cpuset *a, const struct svm_cpuset *b);
/* True when every id of sub is in super. */
bool svm_cpuset_is_subset(const struct svm_cpuset *sub, const struct svm_cpuset *super);

/* dst = dst | src, dst = dst & src, dst = dst & ~src. */
void svm_cpuset_or(struct svm_cpuset *dst, const struct svm_cpuset *src);
void svm_cpuset_and(struct svm_cpuset *dst, const struct svm_cpuset *src);
void svm_cpuset_andnot(struct svm_cpuset *dst, const struct svm_cpuset *src);

/* The smallest id >= from that is in the set, or -1. Iterate with
 * for (int id = svm_cpuset_next(s, 0); id >= 0; id = svm_cpuset_next(s, id + 1)) */
int svm_cpuset_next(const struct svm_cpuset *set, unsigned from);
/* The largest id in the set, or -1 when it is empty. */
int svm_cpuset_last(const struct svm_cpuset *set);

/* Parses a list such as "0-3,8" strictly: comma-separated ids or ranges
 * "a-b" with a <= b, decimal without sign, spaces or leading zeros, every id
 * <= max_id, at least one id. Overlapping or repeated entries are merged.
 * A trailing newline (as read from a cgroup file) is NOT accepted: strip it.
 * On error *out is unspecified and the message quotes the list and says what
 * is accepted. */
int svm_cpuset_parse(const char *text, unsigned max_id, struct svm_cpuset *out,
                     struct svm_err *err);

/* Formats the canonical list (ascending, runs of two or more ids as "a-b",
 * "" for the empty set) with snprintf semantics: writes at most size bytes
 * including the terminating NUL and returns the length the full list needs. */
size_t svm_cpuset_format(const struct svm_cpuset *set, char *buf, size_t size);

/* The canonical list in a malloc'ed string (free() it), or NULL with err set. */
char *svm_cpuset_to_str(const struct svm_cpuset *set, struct svm_err *err);

#endif
