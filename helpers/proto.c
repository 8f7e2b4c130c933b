/* The guest agent wire protocol codec (doc/protocol.md). Pure: no I/O, no
 * allocation. Everything read from the wire is untrusted: every length is
 * checked against what is left before a byte is touched. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spank_vm/proto.h"

#define TLV_HEADER_SIZE 4
#define MAX_TLV_VALUE   (SVM_PROTO_MAX_PAYLOAD - TLV_HEADER_SIZE)
#define MAX_GUEST_PID   4194304u /* Linux PID_MAX_LIMIT */

/* ---- Little-endian integers --------------------------------------------------- */

static uint16_t load_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t load_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64(const uint8_t *p)
{
	return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32;
}

static void store_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void store_u32(uint8_t *p, uint32_t v)
{
	store_u16(p, (uint16_t)v);
	store_u16(p + 2, (uint16_t)(v >> 16));
}

static void store_u64(uint8_t *p, uint64_t v)
{
	store_u32(p, (uint32_t)v);
	store_u32(p + 4, (uint32_t)(v >> 32));
}

/* ---- Message types -------------------------------------------------------------- */

enum scope {
	CONNECTION, /* session id 0 */
	SESSION,    /* nonzero session id */
	EITHER,
};

#define BY_HOST  (1u << SVM_PROTO_HOST)
#define BY_AGENT (1u << SVM_PROTO_AGENT)
#define BY_BOTH  (BY_HOST | BY_AGENT)

struct type_rule {
	uint8_t type;
	const char *name;
	unsigned senders;
	enum scope scope;
};

static const struct type_rule type_rules[] = {
        {SVM_PROTO_MSG_HELLO, "HELLO", BY_BOTH, CONNECTION},
        {SVM_PROTO_MSG_READY, "READY", BY_AGENT, CONNECTION},
        {SVM_PROTO_MSG_HEARTBEAT, "HEARTBEAT", BY_BOTH, CONNECTION},
        {SVM_PROTO_MSG_POWEROFF, "POWEROFF", BY_HOST, CONNECTION},
        {SVM_PROTO_MSG_PAUSE, "PAUSE", BY_HOST, CONNECTION},
        {SVM_PROTO_MSG_PAUSED, "PAUSED", BY_AGENT, CONNECTION},
        {SVM_PROTO_MSG_RESUME, "RESUME", BY_HOST, CONNECTION},
        {SVM_PROTO_MSG_ERROR, "ERROR", BY_BOTH, EITHER},
        {SVM_PROTO_MSG_EXEC, "EXEC", BY_HOST, SESSION},
        {SVM_PROTO_MSG_STARTED, "STARTED", BY_AGENT, SESSION},
        {SVM_PROTO_MSG_DATA, "DATA", BY_BOTH, SESSION},
        {SVM_PROTO_MSG_EOF, "EOF", BY_BOTH, SESSION},
        {SVM_PROTO_MSG_WINDOW, "WINDOW", BY_BOTH, SESSION},
        {SVM_PROTO_MSG_SIGNAL, "SIGNAL", BY_HOST, SESSION},
        {SVM_PROTO_MSG_EXIT, "EXIT", BY_AGENT, SESSION},
        {SVM_PROTO_MSG_CLOSE, "CLOSE", BY_BOTH, SESSION},
};

static const struct type_rule *find_type_rule(uint8_t type)
{
	for (size_t i = 0; i < sizeof(type_rules) / sizeof(type_rules[0]); i++)
		if (type_rules[i].type == type)
			return &type_rules[i];
	return NULL;
}

const char *svm_proto_type_name(uint8_t type)
{
	const struct type_rule *rule = find_type_rule(type);

	return rule != NULL ? rule->name : "unknown";
}

static const char *peer_name(enum svm_proto_peer peer)
{
	return peer == SVM_PROTO_HOST ? "host" : "agent";
}

/* NULL when the session id suits the message type, else what is wrong. */
static const char *session_id_problem(const struct type_rule *rule, uint32_t session)
{
	if (rule->scope == SESSION && session == 0)
		return "needs a nonzero session id";
	if (rule->scope == CONNECTION && session != 0)
		return "must use session id 0";
	return NULL;
}

static const char *const error_names[] = {
        [SVM_PROTO_E_MALFORMED] = "malformed",
        [SVM_PROTO_E_UNKNOWN_TYPE] = "unknown type",
        [SVM_PROTO_E_VERSION] = "version",
        [SVM_PROTO_E_TOO_LARGE] = "too large",
        [SVM_PROTO_E_STATE] = "state",
        [SVM_PROTO_E_UNKNOWN_SESSION] = "unknown session",
        [SVM_PROTO_E_FLOW] = "flow control",
        [SVM_PROTO_E_IDENTITY_REFUSED] = "identity refused",
        [SVM_PROTO_E_EXEC_FAILED] = "exec failed",
        [SVM_PROTO_E_RESOURCE] = "resource",
        [SVM_PROTO_E_INTERNAL] = "internal",
        [SVM_PROTO_E_GUEST_LOST] = "guest lost",
};

const char *svm_proto_error_name(uint32_t code)
{
	if (code < sizeof(error_names) / sizeof(error_names[0]) && error_names[code] != NULL)
		return error_names[code];
	return "unknown error";
}

/* ---- Encoding: whole frames appended to a buffer ------------------------------ */

void svm_proto_buf_init(struct svm_proto_buf *buf, void *mem, size_t cap)
{
	buf->data = mem;
	buf->cap = cap;
	buf->len = 0;
}

/* Writes go through here so that each one is checked once; a frame that does
 * not fit is noticed at frame_end() and rolled back as a whole. */
struct frame_writer {
	struct svm_proto_buf *buf;
	uint8_t type;
	size_t start;
	size_t size; /* bytes the frame needs, counted even past an overflow */
	bool overflow;
};

static void put_bytes(struct frame_writer *w, const void *src, size_t len)
{
	struct svm_proto_buf *buf = w->buf;

	w->size += len;
	if (w->overflow || len > buf->cap - buf->len) {
		w->overflow = true;
		return;
	}
	if (len > 0)
		memcpy(buf->data + buf->len, src, len);
	buf->len += len;
}

static void put_u8(struct frame_writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void put_u16(struct frame_writer *w, uint16_t v)
{
	uint8_t bytes[2];

	store_u16(bytes, v);
	put_bytes(w, bytes, sizeof(bytes));
}

static void put_u32(struct frame_writer *w, uint32_t v)
{
	uint8_t bytes[4];

	store_u32(bytes, v);
	put_bytes(w, bytes, sizeof(bytes));
}

static void put_u64(struct frame_writer *w, uint64_t v)
{
	uint8_t bytes[8];

	store_u64(bytes, v);
	put_bytes(w, bytes, sizeof(bytes));
}

/* Callers check value lengths against MAX_TLV_VALUE first. */
static void put_tlv(struct frame_writer *w, uint16_t tag, const void *value, size_t len)
{
	put_u16(w, tag);
	put_u16(w, (uint16_t)len);
	put_bytes(w, value, len);
}

static void put_tlv_u32(struct frame_writer *w, uint16_t tag, uint32_t v)
{
	uint8_t bytes[4];

	store_u32(bytes, v);
	put_tlv(w, tag, bytes, sizeof(bytes));
}

static void put_tlv_u64(struct frame_writer *w, uint16_t tag, uint64_t v)
{
	uint8_t bytes[8];

	store_u64(bytes, v);
	put_tlv(w, tag, bytes, sizeof(bytes));
}

static int frame_begin(struct frame_writer *w, struct svm_proto_buf *buf, uint8_t type,
                       uint32_t session, struct svm_err *err)
{
	uint8_t header[SVM_PROTO_HEADER_SIZE] = {0};
	const char *problem = session_id_problem(find_type_rule(type), session);

	if (problem != NULL)
		return svm_err_set(err, "%s %s", svm_proto_type_name(type), problem);
	w->buf = buf;
	w->type = type;
	w->start = buf->len;
	w->size = 0;
	w->overflow = buf->len > buf->cap;
	header[4] = type;
	store_u32(header + 8, session);
	put_bytes(w, header, sizeof(header));
	return 0;
}

static int frame_end(struct frame_writer *w, struct svm_err *err)
{
	size_t payload = w->size - SVM_PROTO_HEADER_SIZE;
	const char *name = svm_proto_type_name(w->type);

	if (payload > SVM_PROTO_MAX_PAYLOAD || w->overflow) {
		w->buf->len = w->start;
		if (payload > SVM_PROTO_MAX_PAYLOAD)
			return svm_err_set(err, "%s payload of %zu bytes exceeds the maximum of %u",
			                   name, payload, SVM_PROTO_MAX_PAYLOAD);
		return svm_err_set(err, "%s frame of %zu bytes does not fit the %zu bytes left",
		                   name, w->size,
		                   w->start < w->buf->cap ? w->buf->cap - w->start : 0);
	}
	store_u32(w->buf->data + w->start, (uint32_t)payload);
	return 0;
}

/* ---- The incremental reader ------------------------------------------------------- */

void svm_proto_reader_init(struct svm_proto_reader *reader, enum svm_proto_peer sender)
{
	/* The payload buffer is left alone: it is only read after being written. */
	reader->sender = sender;
	reader->offset = 0;
	reader->header_have = 0;
	memset(&reader->current, 0, sizeof(reader->current));
	reader->payload_have = 0;
	reader->error_code = 0;
	reader->error.msg[0] = '\0';
}

static int reader_fail(struct svm_proto_reader *reader, uint32_t code, struct svm_err *err,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int reader_fail(struct svm_proto_reader *reader, uint32_t code, struct svm_err *err,
                       const char *fmt, ...)
{
	char *msg = reader->error.msg;
	int prefix;
	va_list ap;

	prefix = snprintf(msg, sizeof(reader->error.msg),
	                  "frame at byte %" PRIu64 " from the %s: ", reader->offset,
	                  peer_name(reader->sender));
	if (prefix > 0 && (size_t)prefix < sizeof(reader->error.msg)) {
		va_start(ap, fmt);
		vsnprintf(msg + prefix, sizeof(reader->error.msg) - (size_t)prefix, fmt, ap);
		va_end(ap);
	}
	reader->error_code = code;
	if (err != NULL)
		*err = reader->error;
	return -1;
}

/* Everything wrong with a header is found before its payload is buffered, so
 * a hostile length never costs memory. */
static int reader_check_header(struct svm_proto_reader *reader, struct svm_err *err)
{
	const uint8_t *h = reader->header;
	uint32_t len = load_u32(h);
	uint8_t type = h[4];
	uint8_t flags = h[5];
	uint16_t reserved = load_u16(h + 6);
	uint32_t session = load_u32(h + 8);
	const struct type_rule *rule = find_type_rule(type);
	const char *problem;

	if (len > SVM_PROTO_MAX_PAYLOAD)
		return reader_fail(reader, SVM_PROTO_E_TOO_LARGE, err,
		                   "payload length %" PRIu32 " exceeds the maximum of %u", len,
		                   SVM_PROTO_MAX_PAYLOAD);
	if (flags != 0 || reserved != 0)
		return reader_fail(reader, SVM_PROTO_E_MALFORMED, err,
		                   "flags 0x%02x and reserved 0x%04x must be 0", flags, reserved);
	if (rule == NULL)
		return reader_fail(reader, SVM_PROTO_E_UNKNOWN_TYPE, err,
		                   "unknown message type 0x%02x", type);
	if ((rule->senders & (1u << reader->sender)) == 0)
		return reader_fail(reader, SVM_PROTO_E_MALFORMED, err, "the %s never sends %s",
		                   peer_name(reader->sender), rule->name);
	problem = session_id_problem(rule, session);
	if (problem != NULL)
		return reader_fail(reader, SVM_PROTO_E_MALFORMED, err, "%s %s (got %" PRIu32 ")",
		                   rule->name, problem, session);
	reader->current.type = type;
	reader->current.session = session;
	reader->current.len = len;
	reader->current.payload = NULL;
	return 0;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Returns 1 once the current frame's payload is complete. */
static int reader_take_payload(struct svm_proto_reader *reader, const uint8_t *bytes, size_t len,
                               size_t *used, struct svm_proto_frame *frame)
{
	size_t want = reader->current.len - reader->payload_have;
	size_t take = min_size(want, len);

	if (want == 0) {
		reader->current.payload = reader->payload;
	} else if (reader->payload_have == 0 && take == want) {
		/* The whole payload is in the caller's bytes: lend it, no copy. */
		reader->current.payload = bytes;
	} else {
		memcpy(reader->payload + reader->payload_have, bytes, take);
		reader->payload_have += take;
		reader->current.payload = reader->payload;
	}
	*used += take;
	if (take < want)
		return 0;
	*frame = reader->current;
	reader->offset += SVM_PROTO_HEADER_SIZE + reader->current.len;
	reader->header_have = 0;
	reader->payload_have = 0;
	return 1;
}

int svm_proto_reader_next(struct svm_proto_reader *reader, const void *data, size_t len,
                          size_t *used, struct svm_proto_frame *frame, struct svm_err *err)
{
	const uint8_t *bytes = data;
	size_t take;

	*used = 0;
	if (reader->error_code != 0) {
		if (err != NULL)
			*err = reader->error;
		return -1;
	}
	if (len == 0)
		return 0;
	if (reader->header_have < SVM_PROTO_HEADER_SIZE) {
		take = min_size(SVM_PROTO_HEADER_SIZE - reader->header_have, len);
		memcpy(reader->header + reader->header_have, bytes, take);
		reader->header_have += take;
		*used = take;
		if (reader->header_have < SVM_PROTO_HEADER_SIZE)
			return 0;
		if (reader_check_header(reader, err) != 0)
			return -1;
	}
	return reader_take_payload(reader, bytes + *used, len - *used, used, frame);
}

/* ---- Decoding payloads -------------------------------------------------------------- */

struct cursor {
	const uint8_t *pos;
	size_t left;
	size_t offset; /* from the start of the payload, for messages */
};

static void cursor_init(struct cursor *c, const struct svm_proto_frame *frame)
{
	c->pos = frame->payload;
	c->left = frame->len;
	c->offset = 0;
}

static const uint8_t *take_bytes(struct cursor *c, size_t len)
{
	const uint8_t *at = c->pos;

	if (len > c->left)
		return NULL;
	c->pos += len;
	c->left -= len;
	c->offset += len;
	return at;
}

static int expect_frame(const struct svm_proto_frame *frame, uint8_t type, struct svm_err *err)
{
	if (frame->type != type)
		return svm_err_set(err, "expected a %s frame, got %s (0x%02x)",
		                   svm_proto_type_name(type), svm_proto_type_name(frame->type),
		                   frame->type);
	if (frame->len > SVM_PROTO_MAX_PAYLOAD || (frame->payload == NULL && frame->len != 0))
		return svm_err_set(err, "%s: invalid frame view", svm_proto_type_name(type));
	return 0;
}

/* For messages whose payload has one fixed size. */
static int expect_fixed(const struct svm_proto_frame *frame, uint8_t type, size_t len,
                        struct svm_err *err)
{
	if (expect_frame(frame, type, err) != 0)
		return -1;
	if (frame->len != len)
		return svm_err_set(err, "%s: payload is %zu bytes, expected %zu",
		                   svm_proto_type_name(type), frame->len, len);
	return 0;
}

struct tlv {
	uint16_t tag;
	struct svm_proto_bytes value;
};

/* 1: a field, 0: the end of the payload, -1: malformed. */
static int next_tlv(struct cursor *c, const char *what, struct tlv *field, struct svm_err *err)
{
	size_t at = c->offset;
	const uint8_t *head;

	if (c->left == 0)
		return 0;
	head = take_bytes(c, TLV_HEADER_SIZE);
	if (head == NULL)
		return svm_err_set(err, "%s: truncated field header at byte %zu (%zu bytes left)",
		                   what, at, c->left);
	field->tag = load_u16(head);
	field->value.len = load_u16(head + 2);
	field->value.data = take_bytes(c, field->value.len);
	if (field->value.data == NULL)
		return svm_err_set(err,
		                   "%s: field %u at byte %zu claims %zu bytes, only %zu remain",
		                   what, field->tag, at, field->value.len, c->left);
	return 1;
}

/* Fields that may appear once are remembered in *seen by tag. */
static int first_time(unsigned *seen, const char *what, const struct tlv *field,
                      struct svm_err *err)
{
	/* Bits by tag number: the optional bit aside (tags stay below 32). */
	unsigned bit = 1u << (field->tag & 31u);

	if (*seen & bit)
		return svm_err_set(err, "%s: field %u appears twice", what, field->tag);
	*seen |= bit;
	return 0;
}

static int tlv_u32(const char *what, const struct tlv *field, uint32_t *v, struct svm_err *err)
{
	if (field->value.len != 4)
		return svm_err_set(err, "%s: field %u is %zu bytes, expected 4", what, field->tag,
		                   field->value.len);
	*v = load_u32(field->value.data);
	return 0;
}

static int tlv_u64(const char *what, const struct tlv *field, uint64_t *v, struct svm_err *err)
{
	if (field->value.len != 8)
		return svm_err_set(err, "%s: field %u is %zu bytes, expected 8", what, field->tag,
		                   field->value.len);
	*v = load_u64(field->value.data);
	return 0;
}

static int unknown_tag(const char *what, const struct tlv *field, struct svm_err *err)
{
	if (field->tag & SVM_PROTO_TAG_OPTIONAL)
		return 0;
	return svm_err_set(err, "%s: unknown field %u (not marked optional)", what, field->tag);
}

static bool has_nul(struct svm_proto_bytes b)
{
	return b.len > 0 && memchr(b.data, '\0', b.len) != NULL;
}

static int check_stream(const char *what, uint8_t stream, struct svm_err *err)
{
	if (stream >= SVM_PROTO_STREAMS)
		return svm_err_set(err,
		                   "%s: stream %u is not a stream id (0 stdin, 1 stdout, 2 stderr, "
		                   "3 extra)",
		                   what, stream);
	return 0;
}

/* ---- HELLO -------------------------------------------------------------------------------- */

#define HELLO_SIZE 8

static int check_hello(const struct svm_proto_hello *hello, struct svm_err *err)
{
	if (hello->min_version < 1 || hello->min_version > hello->max_version)
		return svm_err_set(err, "HELLO: version range %u..%u is empty or starts at 0",
		                   hello->min_version, hello->max_version);
	return 0;
}

int svm_proto_encode_hello(struct svm_proto_buf *buf, const struct svm_proto_hello *hello,
                           struct svm_err *err)
{
	struct frame_writer w;

	if (check_hello(hello, err) != 0 || frame_begin(&w, buf, SVM_PROTO_MSG_HELLO, 0, err) != 0)
		return -1;
	put_bytes(&w, SVM_PROTO_MAGIC, 4);
	put_u16(&w, hello->min_version);
	put_u16(&w, hello->max_version);
	return frame_end(&w, err);
}

/* Bytes after the version range are ignored: HELLO is read before the
 * versions are agreed, so a later version may only extend it at the end. */
int svm_proto_decode_hello(const struct svm_proto_frame *frame, struct svm_proto_hello *hello,
                           struct svm_err *err)
{
	if (expect_frame(frame, SVM_PROTO_MSG_HELLO, err) != 0)
		return -1;
	if (frame->len < HELLO_SIZE)
		return svm_err_set(err, "HELLO: payload is %zu bytes, expected at least %d",
		                   frame->len, HELLO_SIZE);
	if (memcmp(frame->payload, SVM_PROTO_MAGIC, 4) != 0)
		return svm_err_set(err, "HELLO: bad magic, the peer does not speak this protocol");
	hello->min_version = load_u16(frame->payload + 4);
	hello->max_version = load_u16(frame->payload + 6);
	return check_hello(hello, err);
}

int svm_proto_negotiate(const struct svm_proto_hello *mine, const struct svm_proto_hello *theirs,
                        uint16_t *version, struct svm_err *err)
{
	uint16_t highest =
	        mine->max_version < theirs->max_version ? mine->max_version : theirs->max_version;
	uint16_t lowest =
	        mine->min_version > theirs->min_version ? mine->min_version : theirs->min_version;

	if (highest < lowest)
		return svm_err_set(err,
		                   "no common protocol version: we speak %u..%u, the peer %u..%u",
		                   mine->min_version, mine->max_version, theirs->min_version,
		                   theirs->max_version);
	*version = highest;
	return 0;
}

/* ---- READY -------------------------------------------------------------------------------- */

/* Both strings end up in logs: printable ASCII only. */
static int check_ready_text(const char *name, struct svm_proto_bytes text, struct svm_err *err)
{
	if (text.len == 0 || text.len > SVM_PROTO_MAX_READY_TEXT)
		return svm_err_set(err, "READY: %s is %zu bytes, expected 1..%d", name, text.len,
		                   SVM_PROTO_MAX_READY_TEXT);
	for (size_t i = 0; i < text.len; i++)
		if (text.data[i] < 0x20 || text.data[i] > 0x7e)
			return svm_err_set(err, "READY: %s has a non-printable byte 0x%02x", name,
			                   text.data[i]);
	return 0;
}

static int check_ready(const struct svm_proto_ready *ready, struct svm_err *err)
{
	if (check_ready_text("boot id", ready->boot_id, err) != 0 ||
	    check_ready_text("kernel release", ready->kernel_release, err) != 0)
		return -1;
	if (ready->vcpus == 0 || ready->memory_kib == 0)
		return svm_err_set(err,
		                   "READY: %" PRIu32 " vCPUs and %" PRIu64 " KiB: both must be "
		                   "nonzero",
		                   ready->vcpus, ready->memory_kib);
	return 0;
}

int svm_proto_encode_ready(struct svm_proto_buf *buf, const struct svm_proto_ready *ready,
                           struct svm_err *err)
{
	struct frame_writer w;

	if (check_ready(ready, err) != 0 || frame_begin(&w, buf, SVM_PROTO_MSG_READY, 0, err) != 0)
		return -1;
	put_tlv(&w, SVM_PROTO_READY_BOOT_ID, ready->boot_id.data, ready->boot_id.len);
	put_tlv(&w, SVM_PROTO_READY_KERNEL, ready->kernel_release.data, ready->kernel_release.len);
	put_tlv_u32(&w, SVM_PROTO_READY_VCPUS, ready->vcpus);
	put_tlv_u64(&w, SVM_PROTO_READY_MEMORY_KIB, ready->memory_kib);
	return frame_end(&w, err);
}

static int ready_take(struct svm_proto_ready *ready, const struct tlv *field, unsigned *seen,
                      struct svm_err *err)
{
	bool known =
	        field->tag >= SVM_PROTO_READY_BOOT_ID && field->tag <= SVM_PROTO_READY_MEMORY_KIB;

	if (!known)
		return unknown_tag("READY", field, err);
	if (first_time(seen, "READY", field, err) != 0)
		return -1;
	switch (field->tag) {
	case SVM_PROTO_READY_BOOT_ID:
		ready->boot_id = field->value;
		return 0;
	case SVM_PROTO_READY_KERNEL:
		ready->kernel_release = field->value;
		return 0;
	case SVM_PROTO_READY_VCPUS:
		return tlv_u32("READY", field, &ready->vcpus, err);
	default:
		return tlv_u64("READY", field, &ready->memory_kib, err);
	}
}

int svm_proto_decode_ready(const struct svm_proto_frame *frame, struct svm_proto_ready *ready,
                           struct svm_err *err)
{
	const unsigned required = 1u << SVM_PROTO_READY_BOOT_ID | 1u << SVM_PROTO_READY_KERNEL |
	                          1u << SVM_PROTO_READY_VCPUS | 1u << SVM_PROTO_READY_MEMORY_KIB;
	struct cursor c;
	struct tlv field;
	unsigned seen = 0;
	int more;

	if (expect_frame(frame, SVM_PROTO_MSG_READY, err) != 0)
		return -1;
	memset(ready, 0, sizeof(*ready));
	cursor_init(&c, frame);
	while ((more = next_tlv(&c, "READY", &field, err)) == 1)
		if (ready_take(ready, &field, &seen, err) != 0)
			return -1;
	if (more < 0)
		return -1;
	if ((seen & required) != required)
		return svm_err_set(err, "READY: boot id, kernel release, vCPUs and memory are all "
		                        "required");
	return check_ready(ready, err);
}

/* ---- HEARTBEAT, POWEROFF, CLOSE, ERROR ---------------------------------------------- */

int svm_proto_encode_heartbeat(struct svm_proto_buf *buf, uint64_t nonce, struct svm_err *err)
{
	struct frame_writer w;

	if (frame_begin(&w, buf, SVM_PROTO_MSG_HEARTBEAT, 0, err) != 0)
		return -1;
	put_u64(&w, nonce);
	return frame_end(&w, err);
}

int svm_proto_decode_heartbeat(const struct svm_proto_frame *frame, uint64_t *nonce,
                               struct svm_err *err)
{
	if (expect_fixed(frame, SVM_PROTO_MSG_HEARTBEAT, 8, err) != 0)
		return -1;
	*nonce = load_u64(frame->payload);
	return 0;
}

static int encode_empty(struct svm_proto_buf *buf, uint8_t type, uint32_t session,
                        struct svm_err *err)
{
	struct frame_writer w;

	if (frame_begin(&w, buf, type, session, err) != 0)
		return -1;
	return frame_end(&w, err);
}

int svm_proto_encode_poweroff(struct svm_proto_buf *buf, struct svm_err *err)
{
	return encode_empty(buf, SVM_PROTO_MSG_POWEROFF, 0, err);
}

int svm_proto_encode_connection_signal(struct svm_proto_buf *buf, enum svm_proto_type type,
                                       struct svm_err *err)
{
	if (type != SVM_PROTO_MSG_PAUSE && type != SVM_PROTO_MSG_PAUSED &&
	    type != SVM_PROTO_MSG_RESUME)
		return svm_err_set(err, "type 0x%02x is not PAUSE, PAUSED or RESUME",
		                   (unsigned)type);
	return encode_empty(buf, type, 0, err);
}

int svm_proto_encode_close(struct svm_proto_buf *buf, uint32_t session, struct svm_err *err)
{
	return encode_empty(buf, SVM_PROTO_MSG_CLOSE, session, err);
}

int svm_proto_decode_empty(const struct svm_proto_frame *frame, struct svm_err *err)
{
	switch (frame->type) {
	case SVM_PROTO_MSG_CLOSE:
	case SVM_PROTO_MSG_PAUSE:
	case SVM_PROTO_MSG_PAUSED:
	case SVM_PROTO_MSG_RESUME:
		return expect_fixed(frame, frame->type, 0, err);
	default:
		return expect_fixed(frame, SVM_PROTO_MSG_POWEROFF, 0, err);
	}
}

static int check_error(uint32_t code, size_t text_len, struct svm_err *err)
{
	if (code == 0)
		return svm_err_set(err, "ERROR: code 0 is not an error");
	if (text_len > SVM_PROTO_MAX_ERROR_TEXT)
		return svm_err_set(err, "ERROR: text of %zu bytes exceeds %d", text_len,
		                   SVM_PROTO_MAX_ERROR_TEXT);
	return 0;
}

int svm_proto_encode_error(struct svm_proto_buf *buf, uint32_t session, uint32_t code,
                           const char *text, size_t text_len, struct svm_err *err)
{
	struct frame_writer w;

	if (check_error(code, text_len, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_ERROR, session, err) != 0)
		return -1;
	put_u32(&w, code);
	put_bytes(&w, text, text_len);
	return frame_end(&w, err);
}

/* Codes this version does not know are accepted: an error report is worth
 * reading even when its code is newer than the reader. */
int svm_proto_decode_error(const struct svm_proto_frame *frame, struct svm_proto_error *error,
                           struct svm_err *err)
{
	if (expect_frame(frame, SVM_PROTO_MSG_ERROR, err) != 0)
		return -1;
	if (frame->len < 4)
		return svm_err_set(err, "ERROR: payload is %zu bytes, expected at least 4",
		                   frame->len);
	error->code = load_u32(frame->payload);
	error->text.data = frame->payload + 4;
	error->text.len = frame->len - 4;
	return check_error(error->code, error->text.len, err);
}

/* ---- STARTED, DATA, EOF, WINDOW, SIGNAL, EXIT ------------------------------------- */

static int check_pid(uint32_t pid, struct svm_err *err)
{
	if (pid == 0 || pid > MAX_GUEST_PID)
		return svm_err_set(err, "STARTED: pid %" PRIu32 " is outside 1..%u", pid,
		                   MAX_GUEST_PID);
	return 0;
}

int svm_proto_encode_started(struct svm_proto_buf *buf, uint32_t session, uint32_t pid,
                             struct svm_err *err)
{
	struct frame_writer w;

	if (check_pid(pid, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_STARTED, session, err) != 0)
		return -1;
	put_u32(&w, pid);
	return frame_end(&w, err);
}

int svm_proto_decode_started(const struct svm_proto_frame *frame, uint32_t *pid,
                             struct svm_err *err)
{
	if (expect_fixed(frame, SVM_PROTO_MSG_STARTED, 4, err) != 0)
		return -1;
	*pid = load_u32(frame->payload);
	return check_pid(*pid, err);
}

int svm_proto_encode_data(struct svm_proto_buf *buf, uint32_t session, uint8_t stream,
                          const void *bytes, size_t len, struct svm_err *err)
{
	struct frame_writer w;

	if (check_stream("DATA", stream, err) != 0)
		return -1;
	if (len == 0 || len > SVM_PROTO_MAX_DATA)
		return svm_err_set(err, "DATA: %zu bytes, expected 1..%u", len, SVM_PROTO_MAX_DATA);
	if (frame_begin(&w, buf, SVM_PROTO_MSG_DATA, session, err) != 0)
		return -1;
	put_u8(&w, stream);
	put_bytes(&w, bytes, len);
	return frame_end(&w, err);
}

int svm_proto_decode_data(const struct svm_proto_frame *frame, struct svm_proto_data *data,
                          struct svm_err *err)
{
	if (expect_frame(frame, SVM_PROTO_MSG_DATA, err) != 0)
		return -1;
	if (frame->len < 2)
		return svm_err_set(err,
		                   "DATA: payload is %zu bytes, expected a stream id and at "
		                   "least one byte",
		                   frame->len);
	data->stream = frame->payload[0];
	data->bytes.data = frame->payload + 1;
	data->bytes.len = frame->len - 1;
	return check_stream("DATA", data->stream, err);
}

int svm_proto_encode_eof(struct svm_proto_buf *buf, uint32_t session, uint8_t stream,
                         struct svm_err *err)
{
	struct frame_writer w;

	if (check_stream("EOF", stream, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_EOF, session, err) != 0)
		return -1;
	put_u8(&w, stream);
	return frame_end(&w, err);
}

int svm_proto_decode_eof(const struct svm_proto_frame *frame, uint8_t *stream, struct svm_err *err)
{
	if (expect_fixed(frame, SVM_PROTO_MSG_EOF, 1, err) != 0)
		return -1;
	*stream = frame->payload[0];
	return check_stream("EOF", *stream, err);
}

static int check_window(const struct svm_proto_window *window, struct svm_err *err)
{
	if (check_stream("WINDOW", window->stream, err) != 0)
		return -1;
	if (window->increment == 0)
		return svm_err_set(err, "WINDOW: an increment of 0 grants nothing");
	return 0;
}

int svm_proto_encode_window(struct svm_proto_buf *buf, uint32_t session,
                            const struct svm_proto_window *window, struct svm_err *err)
{
	struct frame_writer w;

	if (check_window(window, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_WINDOW, session, err) != 0)
		return -1;
	put_u8(&w, window->stream);
	put_u32(&w, window->increment);
	return frame_end(&w, err);
}

int svm_proto_decode_window(const struct svm_proto_frame *frame, struct svm_proto_window *window,
                            struct svm_err *err)
{
	if (expect_fixed(frame, SVM_PROTO_MSG_WINDOW, 5, err) != 0)
		return -1;
	window->stream = frame->payload[0];
	window->increment = load_u32(frame->payload + 1);
	return check_window(window, err);
}

static int check_signo(const char *what, uint32_t signo, struct svm_err *err)
{
	if (signo == 0 || signo > SVM_PROTO_MAX_SIGNAL)
		return svm_err_set(err, "%s: signal %" PRIu32 " is outside 1..%d", what, signo,
		                   SVM_PROTO_MAX_SIGNAL);
	return 0;
}

int svm_proto_encode_signal(struct svm_proto_buf *buf, uint32_t session, uint32_t signo,
                            struct svm_err *err)
{
	struct frame_writer w;

	if (check_signo("SIGNAL", signo, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_SIGNAL, session, err) != 0)
		return -1;
	put_u32(&w, signo);
	return frame_end(&w, err);
}

int svm_proto_decode_signal(const struct svm_proto_frame *frame, uint32_t *signo,
                            struct svm_err *err)
{
	if (expect_fixed(frame, SVM_PROTO_MSG_SIGNAL, 4, err) != 0)
		return -1;
	*signo = load_u32(frame->payload);
	return check_signo("SIGNAL", *signo, err);
}

#define EXIT_CORE_DUMPED   SVM_PROTO_EXIT_FLAG_CORE_DUMPED
#define EXIT_OUT_OF_MEMORY SVM_PROTO_EXIT_FLAG_OUT_OF_MEMORY

static int check_exit(const struct svm_proto_exit *status, struct svm_err *err)
{
	if (status->kind == SVM_PROTO_KILLED)
		return check_signo("EXIT", status->signo, err);
	if (status->kind != SVM_PROTO_EXITED)
		return svm_err_set(err, "EXIT: kind %d is neither exited (1) nor killed (2)",
		                   (int)status->kind);
	if (status->core_dumped)
		return svm_err_set(err, "EXIT: only a killed program dumps core");
	return 0;
}

int svm_proto_encode_exit(struct svm_proto_buf *buf, uint32_t session,
                          const struct svm_proto_exit *exit_status, struct svm_err *err)
{
	struct frame_writer w;
	bool killed = exit_status->kind == SVM_PROTO_KILLED;

	if (check_exit(exit_status, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_EXIT, session, err) != 0)
		return -1;
	put_u8(&w, (uint8_t)exit_status->kind);
	put_u8(&w, killed ? exit_status->signo : exit_status->code);
	put_u8(&w, (exit_status->core_dumped ? EXIT_CORE_DUMPED : 0) |
	                   (exit_status->out_of_memory ? EXIT_OUT_OF_MEMORY : 0));
	put_u8(&w, 0);
	return frame_end(&w, err);
}

int svm_proto_decode_exit(const struct svm_proto_frame *frame, struct svm_proto_exit *exit_status,
                          struct svm_err *err)
{
	const uint8_t *p = frame->payload;

	if (expect_fixed(frame, SVM_PROTO_MSG_EXIT, 4, err) != 0)
		return -1;
	if ((p[2] & ~(EXIT_CORE_DUMPED | EXIT_OUT_OF_MEMORY)) != 0 || p[3] != 0)
		return svm_err_set(err, "EXIT: flags 0x%02x or reserved 0x%02x has unknown bits",
		                   p[2], p[3]);
	memset(exit_status, 0, sizeof(*exit_status));
	exit_status->kind = (enum svm_proto_exit_kind)p[0];
	if (exit_status->kind == SVM_PROTO_KILLED)
		exit_status->signo = p[1];
	else
		exit_status->code = p[1];
	exit_status->core_dumped = (p[2] & EXIT_CORE_DUMPED) != 0;
	exit_status->out_of_memory = (p[2] & EXIT_OUT_OF_MEMORY) != 0;
	return check_exit(exit_status, err);
}

int svm_proto_check_stream(enum svm_proto_peer sender, uint8_t type, uint8_t stream,
                           struct svm_err *err)
{
	static const unsigned writers[SVM_PROTO_STREAMS] = {BY_HOST, BY_AGENT, BY_AGENT, BY_BOTH};
	const char *name = svm_proto_type_name(type);
	unsigned allowed;

	if (check_stream(name, stream, err) != 0)
		return -1;
	if (type == SVM_PROTO_MSG_DATA || type == SVM_PROTO_MSG_EOF)
		allowed = writers[stream];
	else if (type == SVM_PROTO_MSG_WINDOW)
		allowed = writers[stream] == BY_BOTH ? BY_BOTH : BY_BOTH & ~writers[stream];
	else
		return svm_err_set(err, "%s carries no stream id", name);
	if ((allowed & (1u << sender)) == 0)
		return svm_err_set(err, "%s: the %s may not send this for stream %u", name,
		                   peer_name(sender), stream);
	return 0;
}

/* ---- EXEC ------------------------------------------------------------------------------- */

void svm_proto_exec_init(struct svm_proto_exec *exec)
{
	/* The arrays are left alone: only their first argc/envc/ngroups are read. */
	exec->argc = 0;
	exec->envc = 0;
	exec->cwd.data = NULL;
	exec->cwd.len = 0;
	exec->uid = UINT32_MAX;
	exec->gid = UINT32_MAX;
	exec->ngroups = 0;
	exec->umask = SVM_PROTO_DEFAULT_UMASK;
	exec->flags = 0;
	exec->extra_fd = 0;
	exec->role = SVM_PROTO_ROLE_TASK;
}

/* execve() takes C strings: an embedded NUL would silently cut an argument. */
static int check_arg(size_t index, struct svm_proto_bytes arg, struct svm_err *err)
{
	if (arg.len > MAX_TLV_VALUE)
		return svm_err_set(err,
		                   "EXEC: argument %zu is %zu bytes, longer than a frame holds",
		                   index, arg.len);
	if (has_nul(arg))
		return svm_err_set(err, "EXEC: argument %zu contains a NUL byte", index);
	return 0;
}

/* NAME may hold any byte but '=' and NUL (Slurm exports names such as
 * BASH_FUNC_x%%); the value may hold anything but NUL, '=' and newlines included. */
static int check_env(size_t index, struct svm_proto_bytes entry, struct svm_err *err)
{
	const uint8_t *equals = entry.len > 0 ? memchr(entry.data, '=', entry.len) : NULL;

	if (entry.len > MAX_TLV_VALUE)
		return svm_err_set(err,
		                   "EXEC: environment entry %zu is %zu bytes, longer than a "
		                   "frame holds",
		                   index, entry.len);
	if (equals == NULL || equals == entry.data)
		return svm_err_set(err, "EXEC: environment entry %zu is not NAME=value", index);
	if (has_nul(entry))
		return svm_err_set(err, "EXEC: environment entry %zu contains a NUL byte", index);
	return 0;
}

static int check_id(const char *what, uint32_t id, struct svm_err *err)
{
	if (id > SVM_PROTO_MAX_ID)
		return svm_err_set(err, "EXEC: %s %" PRIu32 " is out of range (0..%u)", what, id,
		                   SVM_PROTO_MAX_ID);
	return 0;
}

static int check_cwd(struct svm_proto_bytes cwd, struct svm_err *err)
{
	if (cwd.len == 0 || cwd.len > SVM_PROTO_MAX_CWD)
		return svm_err_set(err, "EXEC: working directory of %zu bytes, expected 1..%d",
		                   cwd.len, SVM_PROTO_MAX_CWD);
	if (cwd.data[0] != '/' || has_nul(cwd))
		return svm_err_set(err, "EXEC: working directory is not an absolute path");
	return 0;
}

static int check_extra(const struct svm_proto_exec *exec, struct svm_err *err)
{
	bool wanted = (exec->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;

	if (wanted &&
	    (exec->extra_fd < SVM_PROTO_MIN_EXTRA_FD || exec->extra_fd > SVM_PROTO_MAX_EXTRA_FD))
		return svm_err_set(err, "EXEC: extra stream fd %" PRIu32 " is outside %d..%d",
		                   exec->extra_fd, SVM_PROTO_MIN_EXTRA_FD, SVM_PROTO_MAX_EXTRA_FD);
	if (!wanted && exec->extra_fd != 0)
		return svm_err_set(err, "EXEC: an extra stream fd without the extra stream flag");
	return 0;
}

static int check_exec_lists(const struct svm_proto_exec *exec, struct svm_err *err)
{
	if (exec->argc == 0 || exec->argc > SVM_PROTO_MAX_ARGS)
		return svm_err_set(err, "EXEC: %zu arguments, expected 1..%d", exec->argc,
		                   SVM_PROTO_MAX_ARGS);
	if (exec->envc > SVM_PROTO_MAX_ENV || exec->ngroups > SVM_PROTO_MAX_GROUPS)
		return svm_err_set(err,
		                   "EXEC: %zu environment entries and %zu groups (at most %d "
		                   "and %d)",
		                   exec->envc, exec->ngroups, SVM_PROTO_MAX_ENV,
		                   SVM_PROTO_MAX_GROUPS);
	for (size_t i = 0; i < exec->argc; i++)
		if (check_arg(i, exec->argv[i], err) != 0)
			return -1;
	for (size_t i = 0; i < exec->envc; i++)
		if (check_env(i, exec->env[i], err) != 0)
			return -1;
	for (size_t i = 0; i < exec->ngroups; i++)
		if (check_id("group", exec->groups[i], err) != 0)
			return -1;
	return 0;
}

/* What the decoder checks after parsing and the encoder before writing. */
static int check_exec(const struct svm_proto_exec *exec, struct svm_err *err)
{
	if (check_exec_lists(exec, err) != 0 || check_cwd(exec->cwd, err) != 0 ||
	    check_id("uid", exec->uid, err) != 0 || check_id("gid", exec->gid, err) != 0 ||
	    check_extra(exec, err) != 0)
		return -1;
	if (exec->umask > 0777)
		return svm_err_set(err, "EXEC: umask 0%" PRIo32 " exceeds 0777", exec->umask);
	if ((exec->flags & ~SVM_PROTO_EXEC_ALL_FLAGS) != 0)
		return svm_err_set(err, "EXEC: unknown flags 0x%" PRIx32, exec->flags);
	if (exec->role > SVM_PROTO_ROLE_BATCH)
		return svm_err_set(err, "EXEC: unknown role %" PRIu32, exec->role);
	return 0;
}

int svm_proto_exec_add_arg(struct svm_proto_exec *exec, const void *arg, size_t len,
                           struct svm_err *err)
{
	struct svm_proto_bytes bytes = {arg, len};

	if (exec->argc >= SVM_PROTO_MAX_ARGS)
		return svm_err_set(err, "EXEC: more than %d arguments", SVM_PROTO_MAX_ARGS);
	if (check_arg(exec->argc, bytes, err) != 0)
		return -1;
	exec->argv[exec->argc++] = bytes;
	return 0;
}

int svm_proto_exec_add_env(struct svm_proto_exec *exec, const void *entry, size_t len,
                           struct svm_err *err)
{
	struct svm_proto_bytes bytes = {entry, len};

	if (exec->envc >= SVM_PROTO_MAX_ENV)
		return svm_err_set(err, "EXEC: more than %d environment entries",
		                   SVM_PROTO_MAX_ENV);
	if (check_env(exec->envc, bytes, err) != 0)
		return -1;
	exec->env[exec->envc++] = bytes;
	return 0;
}

int svm_proto_exec_add_group(struct svm_proto_exec *exec, uint32_t gid, struct svm_err *err)
{
	if (exec->ngroups >= SVM_PROTO_MAX_GROUPS)
		return svm_err_set(err, "EXEC: more than %d groups", SVM_PROTO_MAX_GROUPS);
	if (check_id("group", gid, err) != 0)
		return -1;
	exec->groups[exec->ngroups++] = gid;
	return 0;
}

int svm_proto_encode_exec(struct svm_proto_buf *buf, uint32_t session,
                          const struct svm_proto_exec *exec, struct svm_err *err)
{
	struct frame_writer w;

	if (check_exec(exec, err) != 0 ||
	    frame_begin(&w, buf, SVM_PROTO_MSG_EXEC, session, err) != 0)
		return -1;
	for (size_t i = 0; i < exec->argc; i++)
		put_tlv(&w, SVM_PROTO_EXEC_ARG, exec->argv[i].data, exec->argv[i].len);
	for (size_t i = 0; i < exec->envc; i++)
		put_tlv(&w, SVM_PROTO_EXEC_ENV, exec->env[i].data, exec->env[i].len);
	put_tlv(&w, SVM_PROTO_EXEC_CWD, exec->cwd.data, exec->cwd.len);
	put_tlv_u32(&w, SVM_PROTO_EXEC_UID, exec->uid);
	put_tlv_u32(&w, SVM_PROTO_EXEC_GID, exec->gid);
	for (size_t i = 0; i < exec->ngroups; i++)
		put_tlv_u32(&w, SVM_PROTO_EXEC_GROUP, exec->groups[i]);
	put_tlv_u32(&w, SVM_PROTO_EXEC_UMASK, exec->umask);
	put_tlv_u32(&w, SVM_PROTO_EXEC_FLAGS, exec->flags);
	if (exec->flags & SVM_PROTO_EXEC_HAS_EXTRA)
		put_tlv_u32(&w, SVM_PROTO_EXEC_EXTRA_FD, exec->extra_fd);
	if (exec->role != SVM_PROTO_ROLE_TASK)
		put_tlv_u32(&w, SVM_PROTO_EXEC_ROLE, exec->role);
	return frame_end(&w, err);
}

/* Repeated fields: bounded by their array, checked one by one. */
static int exec_take_list(struct svm_proto_exec *exec, const struct tlv *field, struct svm_err *err)
{
	uint32_t gid = 0;

	switch (field->tag) {
	case SVM_PROTO_EXEC_ARG:
		return svm_proto_exec_add_arg(exec, field->value.data, field->value.len, err);
	case SVM_PROTO_EXEC_ENV:
		return svm_proto_exec_add_env(exec, field->value.data, field->value.len, err);
	default:
		if (tlv_u32("EXEC", field, &gid, err) != 0)
			return -1;
		return svm_proto_exec_add_group(exec, gid, err);
	}
}

static uint32_t *exec_scalar(struct svm_proto_exec *exec, uint16_t tag)
{
	switch (tag) {
	case SVM_PROTO_EXEC_UID:
		return &exec->uid;
	case SVM_PROTO_EXEC_GID:
		return &exec->gid;
	case SVM_PROTO_EXEC_UMASK:
		return &exec->umask;
	case SVM_PROTO_EXEC_FLAGS:
		return &exec->flags;
	case SVM_PROTO_EXEC_EXTRA_FD:
		return &exec->extra_fd;
	case SVM_PROTO_EXEC_ROLE:
		return &exec->role;
	default:
		return NULL;
	}
}

static int exec_take(struct svm_proto_exec *exec, const struct tlv *field, unsigned *seen,
                     struct svm_err *err)
{
	uint32_t *scalar = exec_scalar(exec, field->tag);

	if (field->tag == SVM_PROTO_EXEC_ARG || field->tag == SVM_PROTO_EXEC_ENV ||
	    field->tag == SVM_PROTO_EXEC_GROUP)
		return exec_take_list(exec, field, err);
	if (field->tag == SVM_PROTO_EXEC_CWD) {
		if (first_time(seen, "EXEC", field, err) != 0)
			return -1;
		exec->cwd = field->value;
		return 0;
	}
	if (scalar == NULL)
		return unknown_tag("EXEC", field, err);
	if (first_time(seen, "EXEC", field, err) != 0)
		return -1;
	return tlv_u32("EXEC", field, scalar, err);
}

int svm_proto_decode_exec(const struct svm_proto_frame *frame, struct svm_proto_exec *exec,
                          struct svm_err *err)
{
	const unsigned required =
	        1u << SVM_PROTO_EXEC_CWD | 1u << SVM_PROTO_EXEC_UID | 1u << SVM_PROTO_EXEC_GID;
	struct cursor c;
	struct tlv field;
	unsigned seen = 0;
	int more;

	if (expect_frame(frame, SVM_PROTO_MSG_EXEC, err) != 0)
		return -1;
	svm_proto_exec_init(exec);
	cursor_init(&c, frame);
	while ((more = next_tlv(&c, "EXEC", &field, err)) == 1)
		if (exec_take(exec, &field, &seen, err) != 0)
			return -1;
	if (more < 0)
		return -1;
	if ((seen & required) != required)
		return svm_err_set(err, "EXEC: working directory, uid and gid are required");
	return check_exec(exec, err);
}

/* ---- Flow control ------------------------------------------------------------------------ */

void svm_proto_send_credit_init(struct svm_proto_send_credit *credit)
{
	credit->bytes = SVM_PROTO_INITIAL_WINDOW;
}

size_t svm_proto_send_credit_sendable(const struct svm_proto_send_credit *credit, size_t want)
{
	return min_size(min_size(want, credit->bytes), SVM_PROTO_MAX_DATA);
}

int svm_proto_send_credit_spend(struct svm_proto_send_credit *credit, size_t len,
                                struct svm_err *err)
{
	if (len > credit->bytes)
		return svm_err_set(err,
		                   "flow control: %zu bytes to send, only %" PRIu32 " of credit",
		                   len, credit->bytes);
	credit->bytes -= (uint32_t)len;
	return 0;
}

int svm_proto_send_credit_grant(struct svm_proto_send_credit *credit, uint32_t increment,
                                struct svm_err *err)
{
	if (increment == 0 || increment > UINT32_MAX - credit->bytes)
		return svm_err_set(err,
		                   "flow control: increment %" PRIu32 " on top of %" PRIu32
		                   " is zero or overflows",
		                   increment, credit->bytes);
	credit->bytes += increment;
	return 0;
}

void svm_proto_recv_window_init(struct svm_proto_recv_window *window)
{
	window->size = SVM_PROTO_INITIAL_WINDOW;
	window->available = SVM_PROTO_INITIAL_WINDOW;
	window->buffered = 0;
	window->unreported = 0;
}

int svm_proto_recv_window_receive(struct svm_proto_recv_window *window, size_t len,
                                  struct svm_err *err)
{
	if (len > window->available)
		return svm_err_set(
		        err, "flow control: the peer sent %zu bytes with %" PRIu32 " of credit",
		        len, window->available);
	window->available -= (uint32_t)len;
	window->buffered += (uint32_t)len;
	return 0;
}

/* Credit goes back in batches of half a window: one WINDOW per few DATA
 * frames, and the sender never runs dry while the receiver keeps up. */
int svm_proto_recv_window_consume(struct svm_proto_recv_window *window, size_t len,
                                  uint32_t *increment, struct svm_err *err)
{
	*increment = 0;
	if (len > window->buffered)
		return svm_err_set(
		        err, "flow control: %zu bytes consumed, only %" PRIu32 " were received",
		        len, window->buffered);
	window->buffered -= (uint32_t)len;
	window->unreported += (uint32_t)len;
	if (window->unreported >= window->size / 2) {
		*increment = window->unreported;
		window->available += window->unreported;
		window->unreported = 0;
	}
	return 0;
}
