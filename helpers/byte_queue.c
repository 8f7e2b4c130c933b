/* Byte FIFO: one contiguous buffer with a moving head. Space is reclaimed by
 * moving the queued bytes to the start only when at least as many bytes were
 * consumed as remain, so each byte is moved a bounded number of times. */
#include <stdlib.h>
#include <string.h>

#include "spank_vm/byte_queue.h"

/* A queue that drained keeps at most this much memory between bursts. */
#define KEEP_WHEN_EMPTY (256u * 1024u)

void svm_byte_queue_init(struct svm_byte_queue *q)
{
	q->data = NULL;
	q->cap = 0;
	q->head = 0;
	q->tail = 0;
}

void svm_byte_queue_free(struct svm_byte_queue *q)
{
	free(q->data);
	svm_byte_queue_init(q);
}

size_t svm_byte_queue_len(const struct svm_byte_queue *q)
{
	return q->tail - q->head;
}

static int grow(struct svm_byte_queue *q, size_t need, struct svm_err *err)
{
	size_t cap = q->cap > 0 ? q->cap : 4096;
	uint8_t *data;

	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return svm_err_set(err, "byte queue: %zu bytes is too large", need);
		cap *= 2;
	}
	data = realloc(q->data, cap);
	if (data == NULL)
		return svm_err_set(err, "byte queue: out of memory for %zu bytes", cap);
	q->data = data;
	q->cap = cap;
	return 0;
}

int svm_byte_queue_reserve(struct svm_byte_queue *q, size_t room, struct svm_proto_buf *buf,
                           struct svm_err *err)
{
	size_t len = svm_byte_queue_len(q);

	if (q->cap - q->tail < room && q->head > 0 && q->head >= len) {
		memmove(q->data, q->data + q->head, len);
		q->head = 0;
		q->tail = len;
	}
	if (q->cap - q->tail < room) {
		if (room > SIZE_MAX - q->tail)
			return svm_err_set(err, "byte queue: %zu bytes is too large", room);
		if (grow(q, q->tail + room, err) != 0)
			return -1;
	}
	svm_proto_buf_init(buf, q->data + q->tail, q->cap - q->tail);
	return 0;
}

void svm_byte_queue_commit(struct svm_byte_queue *q, const struct svm_proto_buf *buf)
{
	q->tail += buf->len;
}

int svm_byte_queue_append(struct svm_byte_queue *q, const void *bytes, size_t len,
                          struct svm_err *err)
{
	struct svm_proto_buf buf;

	if (len == 0)
		return 0;
	if (svm_byte_queue_reserve(q, len, &buf, err) != 0)
		return -1;
	memcpy(buf.data, bytes, len);
	buf.len = len;
	svm_byte_queue_commit(q, &buf);
	return 0;
}

const uint8_t *svm_byte_queue_front(const struct svm_byte_queue *q, size_t *len)
{
	*len = svm_byte_queue_len(q);
	return *len > 0 ? q->data + q->head : NULL;
}

void svm_byte_queue_consume(struct svm_byte_queue *q, size_t len)
{
	size_t have = svm_byte_queue_len(q);

	q->head += len < have ? len : have;
	if (q->head != q->tail)
		return;
	q->head = 0;
	q->tail = 0;
	if (q->cap > KEEP_WHEN_EMPTY) {
		free(q->data);
		q->data = NULL;
		q->cap = 0;
	}
}
