/* libFuzzer target for the wire protocol codec (helpers/proto.c).
 *
 * Besides "no crash, no sanitizer report", three properties abort on failure:
 * - the reader yields the same frames and the same verdict whether the input
 *   arrives in one piece or in chunks of any size;
 * - every decoder, run on every payload, accepts or refuses without reading
 *   outside it;
 * - whatever a decoder accepts, the encoder writes, the reader reads back and
 *   the decoder decodes to the same message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/proto.h"

static struct svm_proto_reader whole_reader, chunk_reader, check_reader;
static struct svm_proto_exec exec_first, exec_again;
static uint8_t encoded[SVM_PROTO_MAX_FRAME];

static const uint8_t all_types[] = {
        SVM_PROTO_MSG_HELLO, SVM_PROTO_MSG_READY,  SVM_PROTO_MSG_HEARTBEAT, SVM_PROTO_MSG_POWEROFF,
        SVM_PROTO_MSG_ERROR, SVM_PROTO_MSG_EXEC,   SVM_PROTO_MSG_STARTED,   SVM_PROTO_MSG_DATA,
        SVM_PROTO_MSG_EOF,   SVM_PROTO_MSG_WINDOW, SVM_PROTO_MSG_SIGNAL,    SVM_PROTO_MSG_EXIT,
        SVM_PROTO_MSG_CLOSE,
};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_proto: %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool same_bytes(struct svm_proto_bytes a, struct svm_proto_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* ---- Encode what was decoded, read it back ------------------------------------------ */

static enum svm_proto_peer sender_of(uint8_t type)
{
	bool agent_only = type == SVM_PROTO_MSG_READY || type == SVM_PROTO_MSG_STARTED ||
	                  type == SVM_PROTO_MSG_EXIT;

	return agent_only ? SVM_PROTO_AGENT : SVM_PROTO_HOST;
}

/* A payload decoded under another type may carry a session id that type
 * cannot use; the round trip is about the payload, so pick one that fits. */
static uint32_t session_for(uint8_t type, uint32_t session)
{
	if (type < SVM_PROTO_MSG_ERROR)
		return 0;
	if (type > SVM_PROTO_MSG_ERROR && session == 0)
		return 1;
	return session;
}

static struct svm_proto_frame read_back(const struct svm_proto_buf *buf, uint8_t type)
{
	struct svm_proto_frame frame = {0};
	struct svm_err err;
	size_t used = 0;

	svm_proto_reader_init(&check_reader, sender_of(type));
	CHECK(svm_proto_reader_next(&check_reader, buf->data, buf->len, &used, &frame, &err) == 1);
	CHECK(used == buf->len && frame.type == type);
	return frame;
}

static void same_exec(const struct svm_proto_exec *a, const struct svm_proto_exec *b)
{
	CHECK(a->argc == b->argc && a->envc == b->envc && a->ngroups == b->ngroups);
	for (size_t i = 0; i < a->argc; i++)
		CHECK(same_bytes(a->argv[i], b->argv[i]));
	for (size_t i = 0; i < a->envc; i++)
		CHECK(same_bytes(a->env[i], b->env[i]));
	CHECK(memcmp(a->groups, b->groups, a->ngroups * sizeof(a->groups[0])) == 0);
	CHECK(same_bytes(a->cwd, b->cwd));
	CHECK(a->uid == b->uid && a->gid == b->gid && a->umask == b->umask);
	CHECK(a->flags == b->flags && a->extra_fd == b->extra_fd);
}

static void round_trip_exec(const struct svm_proto_frame *frame)
{
	struct svm_proto_buf buf;
	struct svm_proto_frame again;
	struct svm_err err;

	if (svm_proto_decode_exec(frame, &exec_first, &err) != 0)
		return;
	svm_proto_buf_init(&buf, encoded, sizeof(encoded));
	CHECK(svm_proto_encode_exec(&buf, session_for(frame->type, frame->session), &exec_first,
	                            &err) == 0);
	again = read_back(&buf, SVM_PROTO_MSG_EXEC);
	CHECK(svm_proto_decode_exec(&again, &exec_again, &err) == 0);
	same_exec(&exec_first, &exec_again);
}

static void round_trip_ready(const struct svm_proto_frame *frame)
{
	struct svm_proto_ready first, again;
	struct svm_proto_buf buf;
	struct svm_proto_frame reread;
	struct svm_err err;

	if (svm_proto_decode_ready(frame, &first, &err) != 0)
		return;
	svm_proto_buf_init(&buf, encoded, sizeof(encoded));
	CHECK(svm_proto_encode_ready(&buf, &first, &err) == 0);
	reread = read_back(&buf, SVM_PROTO_MSG_READY);
	CHECK(svm_proto_decode_ready(&reread, &again, &err) == 0);
	CHECK(same_bytes(first.boot_id, again.boot_id));
	CHECK(same_bytes(first.kernel_release, again.kernel_release));
	CHECK(first.vcpus == again.vcpus && first.memory_kib == again.memory_kib);
}

static void round_trip_hello(const struct svm_proto_frame *frame)
{
	struct svm_proto_hello first, again;
	struct svm_proto_buf buf;
	struct svm_proto_frame reread;
	struct svm_err err;
	uint16_t version = 0;

	if (svm_proto_decode_hello(frame, &first, &err) != 0)
		return;
	svm_proto_buf_init(&buf, encoded, sizeof(encoded));
	CHECK(svm_proto_encode_hello(&buf, &first, &err) == 0);
	reread = read_back(&buf, SVM_PROTO_MSG_HELLO);
	CHECK(svm_proto_decode_hello(&reread, &again, &err) == 0);
	CHECK(first.min_version == again.min_version && first.max_version == again.max_version);
	CHECK(svm_proto_negotiate(&first, &again, &version, &err) == 0);
	CHECK(version == first.max_version);
}

/* Messages whose payload has one encoding: re-encoding must give it back. */
static void same_payload(const struct svm_proto_frame *frame, const struct svm_proto_buf *buf)
{
	struct svm_proto_frame reread = read_back(buf, frame->type);

	CHECK(reread.len == frame->len);
	CHECK(frame->len == 0 || memcmp(reread.payload, frame->payload, frame->len) == 0);
}

static void round_trip_stream_messages(const struct svm_proto_frame *frame,
                                       struct svm_proto_buf *buf, uint32_t session)
{
	struct svm_proto_data data;
	struct svm_proto_window window;
	uint8_t stream;
	struct svm_err err;

	if (frame->type == SVM_PROTO_MSG_DATA && svm_proto_decode_data(frame, &data, &err) == 0) {
		CHECK(svm_proto_encode_data(buf, session, data.stream, data.bytes.data,
		                            data.bytes.len, &err) == 0);
		same_payload(frame, buf);
	}
	if (frame->type == SVM_PROTO_MSG_EOF && svm_proto_decode_eof(frame, &stream, &err) == 0) {
		CHECK(svm_proto_encode_eof(buf, session, stream, &err) == 0);
		same_payload(frame, buf);
	}
	if (frame->type == SVM_PROTO_MSG_WINDOW &&
	    svm_proto_decode_window(frame, &window, &err) == 0) {
		CHECK(svm_proto_encode_window(buf, session, &window, &err) == 0);
		same_payload(frame, buf);
	}
}

static void round_trip_fixed(const struct svm_proto_frame *frame)
{
	uint32_t session = session_for(frame->type, frame->session);
	struct svm_proto_error error;
	struct svm_proto_exit status;
	struct svm_proto_buf buf;
	uint64_t nonce;
	uint32_t value;
	struct svm_err err;

	svm_proto_buf_init(&buf, encoded, sizeof(encoded));
	if (frame->type == SVM_PROTO_MSG_HEARTBEAT &&
	    svm_proto_decode_heartbeat(frame, &nonce, &err) == 0) {
		CHECK(svm_proto_encode_heartbeat(&buf, nonce, &err) == 0);
		same_payload(frame, &buf);
	}
	if (frame->type == SVM_PROTO_MSG_ERROR &&
	    svm_proto_decode_error(frame, &error, &err) == 0) {
		CHECK(svm_proto_encode_error(&buf, session, error.code,
		                             (const char *)error.text.data, error.text.len,
		                             &err) == 0);
		same_payload(frame, &buf);
	}
	if (frame->type == SVM_PROTO_MSG_STARTED &&
	    svm_proto_decode_started(frame, &value, &err) == 0) {
		CHECK(svm_proto_encode_started(&buf, session, value, &err) == 0);
		same_payload(frame, &buf);
	}
	if (frame->type == SVM_PROTO_MSG_SIGNAL &&
	    svm_proto_decode_signal(frame, &value, &err) == 0) {
		CHECK(svm_proto_encode_signal(&buf, session, value, &err) == 0);
		same_payload(frame, &buf);
	}
	if (frame->type == SVM_PROTO_MSG_EXIT && svm_proto_decode_exit(frame, &status, &err) == 0) {
		CHECK(svm_proto_encode_exit(&buf, session, &status, &err) == 0);
		same_payload(frame, &buf);
	}
	round_trip_stream_messages(frame, &buf, session);
}

static void round_trip_empty(const struct svm_proto_frame *frame)
{
	struct svm_proto_buf buf;
	struct svm_err err;

	if (svm_proto_decode_empty(frame, &err) != 0)
		return;
	svm_proto_buf_init(&buf, encoded, sizeof(encoded));
	if (frame->type == SVM_PROTO_MSG_CLOSE)
		CHECK(svm_proto_encode_close(&buf, session_for(frame->type, frame->session),
		                             &err) == 0);
	else
		CHECK(svm_proto_encode_poweroff(&buf, &err) == 0);
	same_payload(frame, &buf);
}

/* Every payload goes through every decoder, whatever type its frame had. */
static void decode_as_every_type(const struct svm_proto_frame *frame)
{
	for (size_t i = 0; i < sizeof(all_types); i++) {
		struct svm_proto_frame as = *frame;

		as.type = all_types[i];
		round_trip_hello(&as);
		round_trip_ready(&as);
		round_trip_exec(&as);
		round_trip_fixed(&as);
		if (as.type == SVM_PROTO_MSG_CLOSE || as.type == SVM_PROTO_MSG_POWEROFF)
			round_trip_empty(&as);
	}
}

/* ---- Flow control driven by the frames ----------------------------------------------- */

/* The reader's side of one connection: DATA spends the sender's credit, which
 * the reader returns as it consumes; the sender's WINDOWs grow its own credit.
 * Whatever the frames say, both ends' invariants hold. */
struct flow_model {
	struct svm_proto_recv_window window;
	struct svm_proto_send_credit credit;
};

static void flow_model_init(struct flow_model *flow)
{
	svm_proto_recv_window_init(&flow->window);
	svm_proto_send_credit_init(&flow->credit);
}

static void flow_model_step(struct flow_model *flow, enum svm_proto_peer sender,
                            const struct svm_proto_frame *frame)
{
	struct svm_proto_data data;
	struct svm_proto_window window;
	uint32_t increment = 0;
	struct svm_err err;

	if (svm_proto_decode_data(frame, &data, &err) == 0 &&
	    svm_proto_check_stream(sender, frame->type, data.stream, &err) == 0 &&
	    svm_proto_recv_window_receive(&flow->window, data.bytes.len, &err) == 0)
		CHECK(svm_proto_recv_window_consume(&flow->window, data.bytes.len / 2 + 1,
		                                    &increment, &err) == 0);
	if (svm_proto_decode_window(frame, &window, &err) == 0 &&
	    svm_proto_check_stream(sender, frame->type, window.stream, &err) == 0 &&
	    svm_proto_send_credit_grant(&flow->credit, window.increment, &err) == 0)
		CHECK(svm_proto_send_credit_sendable(&flow->credit, SIZE_MAX) > 0);
	CHECK(flow->window.available + flow->window.buffered + flow->window.unreported ==
	      flow->window.size);
	CHECK(increment == 0 || increment >= flow->window.size / 2);
}

/* ---- One piece against chunks --------------------------------------------------------- */

struct frames {
	struct svm_proto_frame *list;
	size_t count;
	int verdict; /* of the last reader call: 0 more needed, -1 error */
	uint32_t error_code;
};

static void read_whole(const uint8_t *data, size_t size, enum svm_proto_peer sender,
                       struct frames *out)
{
	struct flow_model flow;
	struct svm_err err;
	size_t used = 0;
	int rc = 0;

	flow_model_init(&flow);
	svm_proto_reader_init(&whole_reader, sender);
	while (size > 0 && rc >= 0) {
		rc = svm_proto_reader_next(&whole_reader, data, size, &used, &out->list[out->count],
		                           &err);
		CHECK(used <= size);
		if (rc == 1) {
			flow_model_step(&flow, sender, &out->list[out->count]);
			decode_as_every_type(&out->list[out->count++]);
		}
		data += used;
		size -= used;
	}
	out->verdict = rc < 0 ? -1 : 0;
	out->error_code = whole_reader.error_code;
}

/* Chunk sizes come from the input itself, so that a crash reproduces. */
static size_t next_chunk(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return (*state % 4 == 0) ? *state % 4096 + 1 : *state % 16 + 1;
}

static void read_chunked(const uint8_t *data, size_t size, enum svm_proto_peer sender,
                         const struct frames *whole)
{
	struct svm_proto_frame frame;
	struct svm_err err;
	uint32_t state = 2463534242u ^ (uint32_t)size ^ (size > 0 ? data[0] * 16777619u : 0);
	size_t count = 0, used = 0;
	int rc = 0;

	svm_proto_reader_init(&chunk_reader, sender);
	while (size > 0 && rc >= 0) {
		size_t chunk = next_chunk(&state);

		chunk = chunk < size ? chunk : size;
		rc = svm_proto_reader_next(&chunk_reader, data, chunk, &used, &frame, &err);
		CHECK(used <= chunk);
		CHECK(rc != 0 || used == chunk);
		if (rc == 1) {
			const struct svm_proto_frame *expected = &whole->list[count++];

			CHECK(count <= whole->count);
			CHECK(frame.type == expected->type && frame.session == expected->session);
			CHECK(frame.len == expected->len);
			CHECK(frame.len == 0 ||
			      memcmp(frame.payload, expected->payload, frame.len) == 0);
		}
		data += used;
		size -= used;
	}
	CHECK(count == whole->count);
	CHECK((rc < 0 ? -1 : 0) == whole->verdict);
	CHECK(chunk_reader.error_code == whole->error_code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum svm_proto_peer senders[] = {SVM_PROTO_HOST, SVM_PROTO_AGENT};
	struct frames whole = {0};

	/* Every frame takes at least a header; one more slot for the last call. */
	whole.list = calloc(size / SVM_PROTO_HEADER_SIZE + 1, sizeof(*whole.list));
	CHECK(whole.list != NULL);
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		whole.count = 0;
		read_whole(data, size, senders[i], &whole);
		read_chunked(data, size, senders[i], &whole);
	}
	free(whole.list);
	return 0;
}
