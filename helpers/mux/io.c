/* Frames into output queues, and queues out to non-blocking sockets. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "mux.h"

/* Room reserved for one small frame: an ERROR with its longest text fits. */
#define SMALL_FRAME 2048

int mux_set_nonblock(int fd, struct svm_err *err)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return svm_err_errno(err, errno, "fcntl O_NONBLOCK");
	return 0;
}

int mux_flush(int fd, struct svm_byte_queue *q, struct svm_err *err)
{
	size_t len;
	const uint8_t *front = svm_byte_queue_front(q, &len);
	ssize_t n;

	while (len > 0) {
		n = send(fd, front, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		/* A virtio port (the mux in a guest) is no socket; it was opened
		 * non-blocking and SIGPIPE is ignored. */
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, front, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return svm_err_errno(err, errno, "send");
		svm_byte_queue_consume(q, (size_t)n);
		front = svm_byte_queue_front(q, &len);
	}
	return 0;
}

static void store_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int mux_put_frame(struct svm_byte_queue *q, uint8_t type, uint32_t session, const uint8_t *payload,
                  size_t len, struct svm_err *err)
{
	struct svm_proto_buf buf;

	if (svm_byte_queue_reserve(q, SVM_PROTO_HEADER_SIZE + len, &buf, err) != 0)
		return -1;
	memset(buf.data, 0, SVM_PROTO_HEADER_SIZE);
	store_u32(buf.data, (uint32_t)len);
	buf.data[4] = type;
	store_u32(buf.data + 8, session);
	if (len > 0)
		memcpy(buf.data + SVM_PROTO_HEADER_SIZE, payload, len);
	buf.len = SVM_PROTO_HEADER_SIZE + len;
	svm_byte_queue_commit(q, &buf);
	return 0;
}

int mux_put_error(struct svm_byte_queue *q, uint32_t session, uint32_t code, const char *fmt, ...)
{
	char text[SVM_PROTO_MAX_ERROR_TEXT + 1];
	struct svm_proto_buf buf;
	struct svm_err err;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if ((size_t)len >= sizeof(text))
		len = (int)sizeof(text) - 1;
	if (svm_byte_queue_reserve(q, SMALL_FRAME, &buf, &err) != 0 ||
	    svm_proto_encode_error(&buf, session, code, text, (size_t)len, &err) != 0) {
		mux_log("cannot queue an ERROR: %s", err.msg);
		return -1;
	}
	svm_byte_queue_commit(q, &buf);
	return 0;
}

/* The small encoders share one shape: reserve, encode, commit. */
static int put_small(struct svm_byte_queue *q,
                     int (*encode)(struct svm_proto_buf *, uint32_t, uint64_t, struct svm_err *),
                     uint32_t session, uint64_t value)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (svm_byte_queue_reserve(q, SMALL_FRAME, &buf, &err) != 0 ||
	    encode(&buf, session, value, &err) != 0) {
		mux_log("cannot queue a frame: %s", err.msg);
		return -1;
	}
	svm_byte_queue_commit(q, &buf);
	return 0;
}

static int encode_close(struct svm_proto_buf *buf, uint32_t session, uint64_t unused,
                        struct svm_err *err)
{
	(void)unused;
	return svm_proto_encode_close(buf, session, err);
}

static int encode_hello(struct svm_proto_buf *buf, uint32_t unused_session, uint64_t unused,
                        struct svm_err *err)
{
	const struct svm_proto_hello hello = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};

	(void)unused_session;
	(void)unused;
	return svm_proto_encode_hello(buf, &hello, err);
}

static int encode_heartbeat(struct svm_proto_buf *buf, uint32_t unused_session, uint64_t nonce,
                            struct svm_err *err)
{
	(void)unused_session;
	return svm_proto_encode_heartbeat(buf, nonce, err);
}

int mux_put_close(struct svm_byte_queue *q, uint32_t session)
{
	return put_small(q, encode_close, session, 0);
}

int mux_put_hello(struct svm_byte_queue *q)
{
	return put_small(q, encode_hello, 0, 0);
}

int mux_put_heartbeat(struct svm_byte_queue *q, uint64_t nonce)
{
	return put_small(q, encode_heartbeat, 0, nonce);
}
