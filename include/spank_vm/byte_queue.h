/* A FIFO of bytes for non-blocking output: frames are appended at the tail
 * (encoded in place, or copied) and written out from the front as the peer
 * accepts them. Pure memory management, no I/O; the caller decides how large
 * a queue may grow (its length is the measure of a slow peer). */
#ifndef SPANK_VM_BYTE_QUEUE_H
#define SPANK_VM_BYTE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"
#include "spank_vm/proto.h"

struct svm_byte_queue {
	uint8_t *data;
	size_t cap;
	size_t head; /* first queued byte */
	size_t tail; /* one past the last queued byte */
};

void svm_byte_queue_init(struct svm_byte_queue *q);
void svm_byte_queue_free(struct svm_byte_queue *q);
size_t svm_byte_queue_len(const struct svm_byte_queue *q);

/* Makes at least room contiguous free bytes at the tail and points buf at
 * them, so that a codec encoder can write frames in place; then
 * svm_byte_queue_commit() adds what the encoder wrote. */
int svm_byte_queue_reserve(struct svm_byte_queue *q, size_t room, struct svm_proto_buf *buf,
                           struct svm_err *err);
void svm_byte_queue_commit(struct svm_byte_queue *q, const struct svm_proto_buf *buf);

int svm_byte_queue_append(struct svm_byte_queue *q, const void *bytes, size_t len,
                          struct svm_err *err);

/* The queued bytes, contiguous; *len is 0 when the queue is empty. */
const uint8_t *svm_byte_queue_front(const struct svm_byte_queue *q, size_t *len);
/* Drops len bytes (at most the queue's length) from the front. */
void svm_byte_queue_consume(struct svm_byte_queue *q, size_t len);

#endif
