#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/proto.h"

/* Large codec objects live here, not on the test's stack. */
static struct svm_proto_reader reader;
static struct svm_proto_exec exec_in, exec_out;
static uint8_t wire[4 * SVM_PROTO_MAX_FRAME];

#define BYTES(s) ((struct svm_proto_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static bool bytes_equal(struct svm_proto_bytes a, struct svm_proto_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Feeds the whole buffer and expects exactly one frame that uses all of it. */
static void read_one(enum svm_proto_peer sender, const struct svm_proto_buf *buf,
                     struct svm_proto_frame *frame)
{
	struct svm_err err = {{0}};
	size_t used = 0;

	svm_proto_reader_init(&reader, sender);
	assert_int_equal(svm_proto_reader_next(&reader, buf->data, buf->len, &used, frame, &err),
	                 1);
	assert_int_equal(used, buf->len);
}

/* Feeds bytes and returns the reader's verdict on them: 1 frame, 0 more, -1 error. */
static int feed_all(enum svm_proto_peer sender, const uint8_t *bytes, size_t len,
                    struct svm_err *err)
{
	struct svm_proto_frame frame;
	size_t used = 0;
	int rc = 0;

	svm_proto_reader_init(&reader, sender);
	while (len > 0 && rc >= 0) {
		rc = svm_proto_reader_next(&reader, bytes, len, &used, &frame, err);
		bytes += used;
		len -= used;
	}
	return rc;
}

static size_t raw_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, uint16_t reserved,
                         uint32_t session)
{
	const uint8_t header[SVM_PROTO_HEADER_SIZE] = {(uint8_t)len,
	                                               (uint8_t)(len >> 8),
	                                               (uint8_t)(len >> 16),
	                                               (uint8_t)(len >> 24),
	                                               type,
	                                               flags,
	                                               (uint8_t)reserved,
	                                               (uint8_t)(reserved >> 8),
	                                               (uint8_t)session,
	                                               (uint8_t)(session >> 8),
	                                               (uint8_t)(session >> 16),
	                                               (uint8_t)(session >> 24)};

	memcpy(out, header, sizeof(header));
	return sizeof(header);
}

/* A hand-made TLV payload, for inputs the encoder refuses to write. */
struct raw_payload {
	uint8_t bytes[SVM_PROTO_MAX_PAYLOAD];
	size_t len;
};

static struct raw_payload raw;

static void raw_tlv(struct raw_payload *p, uint16_t tag, const void *value, size_t len)
{
	assert_true(p->len + 4 + len <= sizeof(p->bytes));
	p->bytes[p->len++] = (uint8_t)tag;
	p->bytes[p->len++] = (uint8_t)(tag >> 8);
	p->bytes[p->len++] = (uint8_t)len;
	p->bytes[p->len++] = (uint8_t)(len >> 8);
	if (len > 0)
		memcpy(p->bytes + p->len, value, len);
	p->len += len;
}

static struct svm_proto_frame raw_frame(uint8_t type, uint32_t session, const struct raw_payload *p)
{
	return (struct svm_proto_frame){type, session, p->bytes, p->len};
}

static void exec_minimal(struct svm_proto_exec *exec)
{
	struct svm_err err;

	svm_proto_exec_init(exec);
	assert_int_equal(svm_proto_exec_add_arg(exec, "/bin/true", 9, &err), 0);
	exec->cwd = BYTES("/");
	exec->uid = 1000;
	exec->gid = 1000;
}

/* ---- Round trips ------------------------------------------------------------------ */

static void test_connection_messages_round_trip(void **state)
{
	const struct svm_proto_hello hello = {1, 3};
	const struct svm_proto_ready ready = {BYTES("5e0f8c3a-1d2b-4c5d-9e8f-0a1b2c3d4e5f"),
	                                      BYTES("6.1.0-18-amd64"), 4, 8u * 1024 * 1024};
	struct svm_proto_buf buf;
	struct svm_proto_frame frame;
	struct svm_proto_hello hello_back;
	struct svm_proto_ready ready_back;
	struct svm_proto_error error_back;
	uint64_t nonce = 0;
	struct svm_err err;

	(void)state;
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_hello(&buf, &hello, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(frame.session, 0);
	assert_int_equal(svm_proto_decode_hello(&frame, &hello_back, &err), 0);
	assert_int_equal(hello_back.min_version, 1);
	assert_int_equal(hello_back.max_version, 3);

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_ready(&buf, &ready, &err), 0);
	read_one(SVM_PROTO_AGENT, &buf, &frame);
	assert_int_equal(svm_proto_decode_ready(&frame, &ready_back, &err), 0);
	assert_true(bytes_equal(ready.boot_id, ready_back.boot_id));
	assert_true(bytes_equal(ready.kernel_release, ready_back.kernel_release));
	assert_int_equal(ready_back.vcpus, 4);
	assert_int_equal(ready_back.memory_kib, 8u * 1024 * 1024);

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_heartbeat(&buf, 0x0123456789abcdefull, &err), 0);
	read_one(SVM_PROTO_AGENT, &buf, &frame);
	assert_int_equal(svm_proto_decode_heartbeat(&frame, &nonce, &err), 0);
	assert_true(nonce == 0x0123456789abcdefull);

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_poweroff(&buf, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(frame.type, SVM_PROTO_MSG_POWEROFF);
	assert_int_equal(svm_proto_decode_empty(&frame, &err), 0);

	/* Version 2's quiescing: PAUSE and RESUME from the host, PAUSED from
	 * the agent, each only in its direction. */
	for (int i = 0; i < 3; i++) {
		static const uint8_t types[] = {SVM_PROTO_MSG_PAUSE, SVM_PROTO_MSG_PAUSED,
		                                SVM_PROTO_MSG_RESUME};
		enum svm_proto_peer sender =
		        types[i] == SVM_PROTO_MSG_PAUSED ? SVM_PROTO_AGENT : SVM_PROTO_HOST;
		enum svm_proto_peer other =
		        sender == SVM_PROTO_HOST ? SVM_PROTO_AGENT : SVM_PROTO_HOST;

		svm_proto_buf_init(&buf, wire, sizeof(wire));
		assert_int_equal(svm_proto_encode_connection_signal(&buf, types[i], &err), 0);
		read_one(sender, &buf, &frame);
		assert_int_equal(frame.type, types[i]);
		assert_int_equal(frame.session, 0);
		assert_int_equal(svm_proto_decode_empty(&frame, &err), 0);
		assert_int_equal(feed_all(other, buf.data, buf.len, &err), -1);
	}
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_connection_signal(&buf, SVM_PROTO_MSG_CLOSE, &err), -1);

	for (uint32_t session = 0; session < 2; session++) {
		svm_proto_buf_init(&buf, wire, sizeof(wire));
		assert_int_equal(svm_proto_encode_error(&buf, session, SVM_PROTO_E_VERSION,
		                                        "no common version", 17, &err),
		                 0);
		read_one(SVM_PROTO_AGENT, &buf, &frame);
		assert_int_equal(frame.session, session);
		assert_int_equal(svm_proto_decode_error(&frame, &error_back, &err), 0);
		assert_int_equal(error_back.code, SVM_PROTO_E_VERSION);
		assert_true(bytes_equal(error_back.text, BYTES("no common version")));
	}
}

static void test_session_messages_round_trip(void **state)
{
	const struct svm_proto_exit exits[] = {
	        {SVM_PROTO_EXITED, 0, 0, false, false}, {SVM_PROTO_EXITED, 255, 0, false, false},
	        {SVM_PROTO_KILLED, 0, 9, false, false}, {SVM_PROTO_KILLED, 0, 11, true, false},
	        {SVM_PROTO_EXITED, 0, 0, false, true},  {SVM_PROTO_KILLED, 0, 9, true, true},
	};
	const struct svm_proto_window window = {SVM_PROTO_EXTRA, 131072};
	static uint8_t big[SVM_PROTO_MAX_DATA];
	struct svm_proto_buf buf;
	struct svm_proto_frame frame;
	struct svm_proto_data data;
	struct svm_proto_window window_back;
	struct svm_proto_exit exit_back;
	uint32_t value = 0;
	uint8_t stream = 0;
	struct svm_err err;

	(void)state;
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_started(&buf, 7, 4242, &err), 0);
	read_one(SVM_PROTO_AGENT, &buf, &frame);
	assert_int_equal(svm_proto_decode_started(&frame, &value, &err), 0);
	assert_int_equal(value, 4242);
	assert_int_equal(frame.session, 7);

	memset(big, 0xa5, sizeof(big));
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_data(&buf, 7, SVM_PROTO_STDERR, big, sizeof(big), &err),
	                 0);
	assert_int_equal(buf.len, SVM_PROTO_MAX_FRAME);
	read_one(SVM_PROTO_AGENT, &buf, &frame);
	assert_int_equal(svm_proto_decode_data(&frame, &data, &err), 0);
	assert_int_equal(data.stream, SVM_PROTO_STDERR);
	assert_true(bytes_equal(data.bytes, (struct svm_proto_bytes){big, sizeof(big)}));

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_eof(&buf, 7, SVM_PROTO_STDIN, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(svm_proto_decode_eof(&frame, &stream, &err), 0);
	assert_int_equal(stream, SVM_PROTO_STDIN);

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_window(&buf, 7, &window, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(svm_proto_decode_window(&frame, &window_back, &err), 0);
	assert_int_equal(window_back.stream, window.stream);
	assert_int_equal(window_back.increment, window.increment);

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_signal(&buf, 7, 15, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(svm_proto_decode_signal(&frame, &value, &err), 0);
	assert_int_equal(value, 15);

	for (size_t i = 0; i < sizeof(exits) / sizeof(exits[0]); i++) {
		svm_proto_buf_init(&buf, wire, sizeof(wire));
		assert_int_equal(svm_proto_encode_exit(&buf, 7, &exits[i], &err), 0);
		read_one(SVM_PROTO_AGENT, &buf, &frame);
		assert_int_equal(svm_proto_decode_exit(&frame, &exit_back, &err), 0);
		assert_int_equal(exit_back.kind, exits[i].kind);
		assert_int_equal(exit_back.code, exits[i].code);
		assert_int_equal(exit_back.signo, exits[i].signo);
		assert_int_equal(exit_back.core_dumped, exits[i].core_dumped);
		assert_int_equal(exit_back.out_of_memory, exits[i].out_of_memory);
	}

	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_close(&buf, 0xffffffffu, &err), 0);
	read_one(SVM_PROTO_AGENT, &buf, &frame);
	assert_int_equal(frame.type, SVM_PROTO_MSG_CLOSE);
	assert_int_equal(frame.session, 0xffffffffu);
	assert_int_equal(svm_proto_decode_empty(&frame, &err), 0);
}

static void assert_exec_equal(const struct svm_proto_exec *a, const struct svm_proto_exec *b)
{
	assert_int_equal(a->argc, b->argc);
	for (size_t i = 0; i < a->argc; i++)
		assert_true(bytes_equal(a->argv[i], b->argv[i]));
	assert_int_equal(a->envc, b->envc);
	for (size_t i = 0; i < a->envc; i++)
		assert_true(bytes_equal(a->env[i], b->env[i]));
	assert_true(bytes_equal(a->cwd, b->cwd));
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->ngroups, b->ngroups);
	assert_memory_equal(a->groups, b->groups, a->ngroups * sizeof(a->groups[0]));
	assert_int_equal(a->umask, b->umask);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->extra_fd, b->extra_fd);
	assert_int_equal(a->role, b->role);
}

static void test_exec_round_trips_hostile_argv_and_env(void **state)
{
	static const struct svm_proto_bytes args[] = {
	        BYTES("/usr/bin/printf"),
	        BYTES("a b  c"),
	        BYTES("'single' \"double\""),
	        BYTES("line1\nline2\r\n"),
	        BYTES(""),
	        BYTES("\xff\xfe\x80 not utf-8 \xc3"),
	        BYTES("$(rm -rf /) `x` ;|&"),
	        BYTES("--opt=a=b"),
	        BYTES(""),
	};
	static const struct svm_proto_bytes env[] = {
	        BYTES("PATH=/usr/bin:/bin"),
	        BYTES("EQ=a=b==c="),
	        BYTES("NL=first\nsecond\n"),
	        BYTES("EMPTY="),
	        BYTES("BASH_FUNC_module%%=() {  eval x\n}"),
	        BYTES("BIN=\x01\xff\x7f"),
	};
	struct svm_proto_buf buf;
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	svm_proto_exec_init(&exec_in);
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
		assert_int_equal(svm_proto_exec_add_arg(&exec_in, args[i].data, args[i].len, &err),
		                 0);
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		assert_int_equal(svm_proto_exec_add_env(&exec_in, env[i].data, env[i].len, &err),
		                 0);
	exec_in.cwd = BYTES("/home/user/dir with space/\xe9t\xe9");
	exec_in.uid = 1000;
	exec_in.gid = 100;
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_exec(&buf, 3, &exec_in, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), 0);
	assert_exec_equal(&exec_in, &exec_out);
	assert_int_equal(exec_out.umask, 022);
}

static void test_exec_round_trips_identity_and_extra_stream(void **state)
{
	struct svm_proto_buf buf;
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	exec_minimal(&exec_in);
	exec_in.uid = 0;
	exec_in.gid = SVM_PROTO_MAX_ID;
	for (uint32_t g = 0; g < SVM_PROTO_MAX_GROUPS; g++)
		assert_int_equal(svm_proto_exec_add_group(&exec_in, g * 1000003u, &err), 0);
	assert_int_equal(svm_proto_exec_add_group(&exec_in, 5, &err), -1);
	assert_non_null(strstr(err.msg, "more than 4096 groups"));
	exec_in.umask = 0777;
	exec_in.flags = SVM_PROTO_EXEC_HAS_STDIN | SVM_PROTO_EXEC_HAS_EXTRA;
	exec_in.extra_fd = 5;
	exec_in.role = SVM_PROTO_ROLE_BATCH;
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_exec(&buf, 9, &exec_in, &err), 0);
	read_one(SVM_PROTO_HOST, &buf, &frame);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), 0);
	assert_exec_equal(&exec_in, &exec_out);
}

/* ---- The incremental reader -------------------------------------------------------- */

/* A stream of every message the agent sends, with a maximal DATA frame that
 * any chunking splits. */
static size_t agent_stream(uint8_t *out, size_t cap)
{
	static uint8_t payload[SVM_PROTO_MAX_DATA];
	const struct svm_proto_hello hello = {1, 1};
	const struct svm_proto_ready ready = {BYTES("boot"), BYTES("6.1"), 2, 1024};
	const struct svm_proto_window window = {SVM_PROTO_STDIN, 4096};
	const struct svm_proto_exit status = {SVM_PROTO_EXITED, 3, 0, false, false};
	struct svm_proto_buf buf;
	struct svm_err err;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	svm_proto_buf_init(&buf, out, cap);
	assert_int_equal(svm_proto_encode_hello(&buf, &hello, &err), 0);
	assert_int_equal(svm_proto_encode_ready(&buf, &ready, &err), 0);
	assert_int_equal(svm_proto_encode_heartbeat(&buf, 1, &err), 0);
	assert_int_equal(svm_proto_encode_started(&buf, 1, 100, &err), 0);
	assert_int_equal(svm_proto_encode_data(&buf, 1, SVM_PROTO_STDOUT, "x", 1, &err), 0);
	assert_int_equal(
	        svm_proto_encode_data(&buf, 2, SVM_PROTO_STDERR, payload, sizeof(payload), &err),
	        0);
	assert_int_equal(svm_proto_encode_window(&buf, 1, &window, &err), 0);
	assert_int_equal(svm_proto_encode_eof(&buf, 1, SVM_PROTO_STDOUT, &err), 0);
	assert_int_equal(svm_proto_encode_exit(&buf, 1, &status, &err), 0);
	assert_int_equal(svm_proto_encode_error(&buf, 2, SVM_PROTO_E_EXEC_FAILED, "nope", 4, &err),
	                 0);
	assert_int_equal(svm_proto_encode_close(&buf, 1, &err), 0);
	return buf.len;
}

#define STREAM_FRAMES 11

/* Reads the stream in chunks from next_chunk() and checks each frame against
 * the ones read from the stream in one piece. */
static void expect_frames(const uint8_t *stream, size_t len, const struct svm_proto_frame *expected,
                          size_t (*next_chunk)(void))
{
	struct svm_proto_frame frame;
	struct svm_err err;
	size_t count = 0, pos = 0, used = 0;

	svm_proto_reader_init(&reader, SVM_PROTO_AGENT);
	while (pos < len) {
		size_t chunk = next_chunk();
		size_t end = pos + (chunk < len - pos ? chunk : len - pos);

		while (pos < end) {
			int rc = svm_proto_reader_next(&reader, stream + pos, end - pos, &used,
			                               &frame, &err);

			assert_int_not_equal(rc, -1);
			pos += used;
			if (rc == 0)
				continue;
			assert_true(count < STREAM_FRAMES);
			assert_int_equal(frame.type, expected[count].type);
			assert_int_equal(frame.session, expected[count].session);
			assert_int_equal(frame.len, expected[count].len);
			assert_memory_equal(frame.payload, expected[count].payload, frame.len);
			count++;
		}
	}
	assert_int_equal(count, STREAM_FRAMES);
}

static size_t chunk_one(void)
{
	return 1;
}

static size_t chunk_random(void)
{
	return (size_t)(rand() % 3 == 0 ? rand() % 13 + 1 : rand() % 70000 + 1);
}

static void test_decoder_gives_same_frames_byte_by_byte_and_in_random_chunks(void **state)
{
	struct svm_proto_frame whole[STREAM_FRAMES];
	struct svm_err err;
	size_t len = agent_stream(wire, sizeof(wire));
	size_t pos = 0, used = 0, count = 0;

	(void)state;
	svm_proto_reader_init(&reader, SVM_PROTO_AGENT);
	while (pos < len) {
		assert_true(count < STREAM_FRAMES);
		assert_int_equal(svm_proto_reader_next(&reader, wire + pos, len - pos, &used,
		                                       &whole[count], &err),
		                 1);
		/* In one piece, every payload is lent from the caller's bytes. */
		if (whole[count].len > 0)
			assert_ptr_equal(whole[count].payload, wire + pos + SVM_PROTO_HEADER_SIZE);
		pos += used;
		count++;
	}
	assert_int_equal(count, STREAM_FRAMES);
	expect_frames(wire, len, whole, chunk_one);
	srand(20240611);
	for (int round = 0; round < 50; round++)
		expect_frames(wire, len, whole, chunk_random);
}

static void test_oversize_length_fails_before_buffering(void **state)
{
	uint8_t header[SVM_PROTO_HEADER_SIZE];
	struct svm_proto_frame frame;
	struct svm_err err = {{0}};
	size_t used = 0;

	(void)state;
	raw_header(header, 0xffffffffu, SVM_PROTO_MSG_DATA, 0, 0, 1);
	svm_proto_reader_init(&reader, SVM_PROTO_HOST);
	assert_int_equal(
	        svm_proto_reader_next(&reader, header, sizeof(header), &used, &frame, &err), -1);
	assert_int_equal(reader.error_code, SVM_PROTO_E_TOO_LARGE);
	assert_non_null(strstr(err.msg, "payload length 4294967295 exceeds the maximum of 65536"));

	raw_header(header, SVM_PROTO_MAX_PAYLOAD + 1, SVM_PROTO_MSG_DATA, 0, 0, 1);
	assert_int_equal(feed_all(SVM_PROTO_HOST, header, sizeof(header), &err), -1);
	assert_int_equal(reader.error_code, SVM_PROTO_E_TOO_LARGE);
}

static void test_reader_stays_failed_after_an_error(void **state)
{
	uint8_t bytes[2 * SVM_PROTO_HEADER_SIZE];
	struct svm_proto_frame frame;
	struct svm_err err = {{0}};
	size_t used = 99;

	(void)state;
	raw_header(bytes, 0, SVM_PROTO_MSG_CLOSE, 0, 1, 1);
	raw_header(bytes + SVM_PROTO_HEADER_SIZE, 0, SVM_PROTO_MSG_CLOSE, 0, 0, 1);
	svm_proto_reader_init(&reader, SVM_PROTO_HOST);
	assert_int_equal(svm_proto_reader_next(&reader, bytes, sizeof(bytes), &used, &frame, &err),
	                 -1);
	err.msg[0] = '\0';
	assert_int_equal(svm_proto_reader_next(&reader, bytes + SVM_PROTO_HEADER_SIZE,
	                                       SVM_PROTO_HEADER_SIZE, &used, &frame, &err),
	                 -1);
	assert_int_equal(used, 0);
	assert_non_null(strstr(err.msg, "reserved 0x0001 must be 0"));
}

/* Each header here is well-formed in length but wrong in one field. */
static void test_bad_headers_are_refused_with_a_code_and_message(void **state)
{
	static const struct {
		enum svm_proto_peer sender;
		uint8_t type, flags;
		uint16_t reserved;
		uint32_t session;
		uint32_t code;
		const char *message;
	} cases[] = {
	        {SVM_PROTO_HOST, SVM_PROTO_MSG_CLOSE, 0, 0x100, 1, SVM_PROTO_E_MALFORMED,
	         "reserved 0x0100 must be 0"},
	        {SVM_PROTO_HOST, SVM_PROTO_MSG_CLOSE, 0x80, 0, 1, SVM_PROTO_E_MALFORMED,
	         "flags 0x80"},
	        {SVM_PROTO_HOST, 0x42, 0, 0, 1, SVM_PROTO_E_UNKNOWN_TYPE,
	         "unknown message type 0x42"},
	        {SVM_PROTO_HOST, 0x00, 0, 0, 0, SVM_PROTO_E_UNKNOWN_TYPE,
	         "unknown message type 0x00"},
	        {SVM_PROTO_AGENT, SVM_PROTO_MSG_EXEC, 0, 0, 1, SVM_PROTO_E_MALFORMED,
	         "the agent never sends EXEC"},
	        {SVM_PROTO_HOST, SVM_PROTO_MSG_EXIT, 0, 0, 1, SVM_PROTO_E_MALFORMED,
	         "the host never sends EXIT"},
	        {SVM_PROTO_HOST, SVM_PROTO_MSG_DATA, 0, 0, 0, SVM_PROTO_E_MALFORMED,
	         "DATA needs a nonzero session id"},
	        {SVM_PROTO_AGENT, SVM_PROTO_MSG_CLOSE, 0, 0, 0, SVM_PROTO_E_MALFORMED,
	         "CLOSE needs a nonzero session id"},
	        {SVM_PROTO_HOST, SVM_PROTO_MSG_HELLO, 0, 0, 5, SVM_PROTO_E_MALFORMED,
	         "HELLO must use session id 0 (got 5)"},
	};
	uint8_t header[SVM_PROTO_HEADER_SIZE];
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_header(header, 0, cases[i].type, cases[i].flags, cases[i].reserved,
		           cases[i].session);
		err.msg[0] = '\0';
		assert_int_equal(feed_all(cases[i].sender, header, sizeof(header), &err), -1);
		assert_int_equal(reader.error_code, cases[i].code);
		if (strstr(err.msg, cases[i].message) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].message);
		assert_non_null(strstr(err.msg, "frame at byte 0"));
	}
}

static void test_error_names_the_offset_of_the_bad_frame(void **state)
{
	uint8_t bytes[2 * SVM_PROTO_HEADER_SIZE];
	struct svm_err err;

	(void)state;
	raw_header(bytes, 0, SVM_PROTO_MSG_CLOSE, 0, 0, 1);
	raw_header(bytes + SVM_PROTO_HEADER_SIZE, 0, 0x99, 0, 0, 1);
	assert_int_equal(feed_all(SVM_PROTO_HOST, bytes, sizeof(bytes), &err), -1);
	assert_non_null(strstr(err.msg, "frame at byte 12 from the host"));
}

/* ---- Malformed payloads -------------------------------------------------------------- */

struct field {
	uint16_t tag;
	const char *value;
	size_t len;
};

#define F(tag, literal)                                                                            \
	{                                                                                          \
		(tag), (literal), sizeof(literal) - 1                                              \
	}
#define FU32(tag, v)                                                                               \
	{                                                                                          \
		(tag),                                                                             \
		        (const char[4]){(char)((v)&0xff), (char)(((v) >> 8) & 0xff),               \
		                        (char)(((v) >> 16) & 0xff), (char)(((v) >> 24) & 0xff)},   \
		        4                                                                          \
	}
#define ARG       SVM_PROTO_EXEC_ARG
#define ENV       SVM_PROTO_EXEC_ENV
#define CWD       SVM_PROTO_EXEC_CWD
#define UID       SVM_PROTO_EXEC_UID
#define GID       SVM_PROTO_EXEC_GID
#define VALID_ID  F(ARG, "/bin/true"), F(CWD, "/"), FU32(UID, 1000), FU32(GID, 1000)
#define MAX_FIELD 8

static void raw_fields(const struct field *fields)
{
	raw.len = 0;
	for (size_t i = 0; i < MAX_FIELD && fields[i].value != NULL; i++)
		raw_tlv(&raw, fields[i].tag, fields[i].value, fields[i].len);
}

static void test_exec_with_bad_fields_is_refused(void **state)
{
	const struct {
		struct field fields[MAX_FIELD];
		const char *message;
	} cases[] = {
	        {{F(CWD, "/"), FU32(UID, 1), FU32(GID, 1)}, "0 arguments"},
	        {{VALID_ID, F(ARG, "a\0b")}, "argument 1 contains a NUL byte"},
	        {{VALID_ID, F(ENV, "NOEQUALS")}, "environment entry 0 is not NAME=value"},
	        {{VALID_ID, F(ENV, "=value")}, "environment entry 0 is not NAME=value"},
	        {{VALID_ID, F(ENV, "A=\0")}, "environment entry 0 contains a NUL byte"},
	        {{F(ARG, "x"), F(CWD, "relative"), FU32(UID, 1), FU32(GID, 1)},
	         "not an absolute path"},
	        {{F(ARG, "x"), FU32(UID, 1), FU32(GID, 1)}, "working directory, uid and gid"},
	        {{F(ARG, "x"), F(CWD, "/"), FU32(UID, 1)}, "working directory, uid and gid"},
	        {{F(ARG, "x"), F(CWD, "/"), FU32(UID, 0xffffffffu), FU32(GID, 1)},
	         "uid 4294967295 is out of range"},
	        {{F(ARG, "x"), F(CWD, "/"), FU32(UID, 1), FU32(GID, 0xffffffffu)},
	         "gid 4294967295 is out of range"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_GROUP, 0xffffffffu)},
	         "group 4294967295 is out of range"},
	        {{VALID_ID, FU32(UID, 2)}, "field 4 appears twice"},
	        {{VALID_ID, F(CWD, "/tmp")}, "field 3 appears twice"},
	        {{VALID_ID, F(SVM_PROTO_EXEC_UMASK, "\1\0")}, "field 7 is 2 bytes, expected 4"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_UMASK, 01000)}, "umask 01000 exceeds 0777"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_FLAGS, 4)}, "unknown flags 0x4"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_FLAGS, 2)}, "extra stream fd 0 is outside 3..1023"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_FLAGS, 2), FU32(SVM_PROTO_EXEC_EXTRA_FD, 2)},
	         "extra stream fd 2 is outside"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_EXTRA_FD, 5)}, "without the extra stream flag"},
	        {{VALID_ID, F(10, "xterm")}, "unknown field 10 (not marked optional)"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_ROLE, 2)}, "unknown role 2"},
	        {{VALID_ID, FU32(SVM_PROTO_EXEC_ROLE, 1), FU32(SVM_PROTO_EXEC_ROLE, 1)},
	         "appears twice"},
	};
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_fields(cases[i].fields);
		frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
		err.msg[0] = '\0';
		assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
		if (strstr(err.msg, cases[i].message) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].message);
	}
}

static void test_exec_skips_unknown_optional_fields(void **state)
{
	const struct field fields[MAX_FIELD] = {VALID_ID, F(SVM_PROTO_TAG_OPTIONAL | 77, "future"),
	                                        F(ARG, "two")};
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	raw_fields(fields);
	frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), 0);
	assert_int_equal(exec_out.argc, 2);
	assert_true(bytes_equal(exec_out.argv[1], BYTES("two")));
}

static void test_truncated_tlv_is_refused(void **state)
{
	const struct field fields[MAX_FIELD] = {VALID_ID};
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	raw_fields(fields);
	for (size_t cut = 1; cut < 4; cut++) {
		frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
		frame.len = raw.len + cut;
		raw.bytes[raw.len] = ARG;
		raw.bytes[raw.len + 1] = 0;
		raw.bytes[raw.len + 2] = 0;
		err.msg[0] = '\0';
		assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
		assert_non_null(strstr(err.msg, "truncated field header"));
	}
}

static void test_tlv_length_past_the_end_is_refused(void **state)
{
	const struct field fields[MAX_FIELD] = {VALID_ID, F(ARG, "abcdef")};
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	raw_fields(fields);
	frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
	frame.len -= 1; /* the last argument now claims one byte more than is left */
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
	assert_non_null(strstr(err.msg, "claims 6 bytes, only 5 remain"));

	raw.len = 0;
	raw_tlv(&raw, ARG, "x", 1);
	raw.bytes[2] = 0xff; /* length 0x00ff, far past the payload */
	frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
	assert_non_null(strstr(err.msg, "claims 255 bytes, only 1 remain"));
}

static void test_too_many_args_or_env_entries_are_refused(void **state)
{
	const struct field fields[MAX_FIELD] = {VALID_ID};
	struct svm_proto_frame frame;
	struct svm_err err;

	(void)state;
	raw_fields(fields);
	for (int i = 0; i < SVM_PROTO_MAX_ARGS; i++)
		raw_tlv(&raw, ARG, "", 0);
	frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
	assert_non_null(strstr(err.msg, "more than 4096 arguments"));

	raw_fields(fields);
	for (int i = 0; i <= SVM_PROTO_MAX_ENV; i++)
		raw_tlv(&raw, ENV, "A=", 2);
	frame = raw_frame(SVM_PROTO_MSG_EXEC, 1, &raw);
	assert_int_equal(svm_proto_decode_exec(&frame, &exec_out, &err), -1);
	assert_non_null(strstr(err.msg, "more than 4096 environment entries"));
}

static void test_bad_stream_ids_are_refused(void **state)
{
	const uint8_t data[] = {4, 'x'}, eof[] = {9}, window[] = {7, 1, 0, 0, 0};
	struct svm_proto_frame frame;
	struct svm_proto_data data_back;
	struct svm_proto_window window_back;
	struct svm_proto_buf buf;
	uint8_t stream = 0;
	struct svm_err err;

	(void)state;
	frame = (struct svm_proto_frame){SVM_PROTO_MSG_DATA, 1, data, sizeof(data)};
	assert_int_equal(svm_proto_decode_data(&frame, &data_back, &err), -1);
	assert_non_null(strstr(err.msg, "DATA: stream 4 is not a stream id"));
	frame = (struct svm_proto_frame){SVM_PROTO_MSG_EOF, 1, eof, sizeof(eof)};
	assert_int_equal(svm_proto_decode_eof(&frame, &stream, &err), -1);
	assert_non_null(strstr(err.msg, "EOF: stream 9"));
	frame = (struct svm_proto_frame){SVM_PROTO_MSG_WINDOW, 1, window, sizeof(window)};
	assert_int_equal(svm_proto_decode_window(&frame, &window_back, &err), -1);
	assert_non_null(strstr(err.msg, "WINDOW: stream 7"));
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_data(&buf, 1, 4, "x", 1, &err), -1);
	assert_int_equal(buf.len, 0);
}

static void test_streams_flow_only_in_their_direction(void **state)
{
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_HOST, SVM_PROTO_MSG_DATA, 0, &err), 0);
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_AGENT, SVM_PROTO_MSG_DATA, 0, &err), -1);
	assert_non_null(strstr(err.msg, "the agent may not send this for stream 0"));
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_AGENT, SVM_PROTO_MSG_EOF, 1, &err), 0);
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_HOST, SVM_PROTO_MSG_EOF, 2, &err), -1);
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_HOST, SVM_PROTO_MSG_WINDOW, 1, &err), 0);
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_AGENT, SVM_PROTO_MSG_WINDOW, 0, &err), 0);
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_HOST, SVM_PROTO_MSG_WINDOW, 0, &err), -1);
	for (int sender = SVM_PROTO_HOST; sender <= SVM_PROTO_AGENT; sender++) {
		assert_int_equal(svm_proto_check_stream(sender, SVM_PROTO_MSG_DATA, 3, &err), 0);
		assert_int_equal(svm_proto_check_stream(sender, SVM_PROTO_MSG_WINDOW, 3, &err), 0);
		assert_int_equal(svm_proto_check_stream(sender, SVM_PROTO_MSG_DATA, 4, &err), -1);
	}
	assert_int_equal(svm_proto_check_stream(SVM_PROTO_HOST, SVM_PROTO_MSG_SIGNAL, 0, &err), -1);
}

static void test_fixed_payloads_with_bad_values_are_refused(void **state)
{
	static const struct {
		uint8_t type;
		const char *payload;
		size_t len;
		const char *message;
	} cases[] = {
	        {SVM_PROTO_MSG_HELLO, "SVMP\1\0", 6, "at least 8"},
	        {SVM_PROTO_MSG_HELLO, "HTTP\1\0\1\0", 8, "bad magic"},
	        {SVM_PROTO_MSG_HELLO, "SVMP\2\0\1\0", 8, "version range 2..1"},
	        {SVM_PROTO_MSG_HELLO, "SVMP\0\0\1\0", 8, "starts at 0"},
	        {SVM_PROTO_MSG_HEARTBEAT, "1234567", 7, "payload is 7 bytes, expected 8"},
	        {SVM_PROTO_MSG_POWEROFF, "x", 1, "payload is 1 bytes, expected 0"},
	        {SVM_PROTO_MSG_CLOSE, "x", 1, "CLOSE: payload is 1 bytes"},
	        {SVM_PROTO_MSG_PAUSE, "x", 1, "PAUSE: payload is 1 bytes"},
	        {SVM_PROTO_MSG_PAUSED, "xy", 2, "PAUSED: payload is 2 bytes"},
	        {SVM_PROTO_MSG_RESUME, "x", 1, "RESUME: payload is 1 bytes"},
	        {SVM_PROTO_MSG_ERROR, "\0\0\0\0oops", 8, "code 0 is not an error"},
	        {SVM_PROTO_MSG_ERROR, "\1\0", 2, "expected at least 4"},
	        {SVM_PROTO_MSG_STARTED, "\0\0\0\0", 4, "pid 0 is outside"},
	        {SVM_PROTO_MSG_STARTED, "\1\0\0\1", 4, "pid 16777217 is outside"},
	        {SVM_PROTO_MSG_DATA, "\1", 1, "at least one byte"},
	        {SVM_PROTO_MSG_EOF, "", 0, "payload is 0 bytes, expected 1"},
	        {SVM_PROTO_MSG_WINDOW, "\1\0\0\0\0", 5, "increment of 0"},
	        {SVM_PROTO_MSG_WINDOW, "\1\0\0\0\0\0", 6, "payload is 6 bytes"},
	        {SVM_PROTO_MSG_SIGNAL, "\0\0\0\0", 4, "signal 0 is outside 1..64"},
	        {SVM_PROTO_MSG_SIGNAL, "\x41\0\0\0", 4, "signal 65 is outside"},
	        {SVM_PROTO_MSG_EXIT, "\3\0\0\0", 4, "kind 3 is neither"},
	        {SVM_PROTO_MSG_EXIT, "\1\0\1\0", 4, "only a killed program dumps core"},
	        {SVM_PROTO_MSG_EXIT, "\2\0\0\0", 4, "signal 0 is outside"},
	        {SVM_PROTO_MSG_EXIT, "\2\x09\4\0", 4, "unknown bits"},
	        {SVM_PROTO_MSG_EXIT, "\1\0\0\1", 4, "unknown bits"},
	};
	struct svm_proto_hello hello;
	struct svm_proto_error error;
	struct svm_proto_data data;
	struct svm_proto_window window;
	struct svm_proto_exit status;
	struct svm_proto_frame frame;
	uint64_t nonce;
	uint32_t value;
	uint8_t stream;
	struct svm_err err;
	int rc = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		frame = (struct svm_proto_frame){cases[i].type, 1,
		                                 (const uint8_t *)cases[i].payload, cases[i].len};
		err.msg[0] = '\0';
		switch (cases[i].type) {
		case SVM_PROTO_MSG_HELLO:
			rc = svm_proto_decode_hello(&frame, &hello, &err);
			break;
		case SVM_PROTO_MSG_HEARTBEAT:
			rc = svm_proto_decode_heartbeat(&frame, &nonce, &err);
			break;
		case SVM_PROTO_MSG_ERROR:
			rc = svm_proto_decode_error(&frame, &error, &err);
			break;
		case SVM_PROTO_MSG_STARTED:
			rc = svm_proto_decode_started(&frame, &value, &err);
			break;
		case SVM_PROTO_MSG_DATA:
			rc = svm_proto_decode_data(&frame, &data, &err);
			break;
		case SVM_PROTO_MSG_EOF:
			rc = svm_proto_decode_eof(&frame, &stream, &err);
			break;
		case SVM_PROTO_MSG_WINDOW:
			rc = svm_proto_decode_window(&frame, &window, &err);
			break;
		case SVM_PROTO_MSG_SIGNAL:
			rc = svm_proto_decode_signal(&frame, &value, &err);
			break;
		case SVM_PROTO_MSG_EXIT:
			rc = svm_proto_decode_exit(&frame, &status, &err);
			break;
		default:
			rc = svm_proto_decode_empty(&frame, &err);
		}
		assert_int_equal(rc, -1);
		if (strstr(err.msg, cases[i].message) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].message);
	}
}

static void test_ready_requires_every_field_and_skips_optional_ones(void **state)
{
	struct svm_proto_ready ready;
	struct svm_proto_frame frame;
	struct svm_err err;
	const struct field good[MAX_FIELD] = {
	        F(SVM_PROTO_READY_BOOT_ID, "b"), F(SVM_PROTO_READY_KERNEL, "k"),
	        FU32(SVM_PROTO_READY_VCPUS, 2), F(SVM_PROTO_READY_MEMORY_KIB, "\0\4\0\0\0\0\0\0"),
	        F(SVM_PROTO_TAG_OPTIONAL | 9, "agent 2.0")};
	const struct field missing[MAX_FIELD] = {F(SVM_PROTO_READY_BOOT_ID, "b"),
	                                         FU32(SVM_PROTO_READY_VCPUS, 2)};
	const struct field control[MAX_FIELD] = {
	        F(SVM_PROTO_READY_BOOT_ID, "b\n"), F(SVM_PROTO_READY_KERNEL, "k"),
	        FU32(SVM_PROTO_READY_VCPUS, 2), F(SVM_PROTO_READY_MEMORY_KIB, "\1\0\0\0\0\0\0\0")};

	(void)state;
	raw_fields(good);
	frame = raw_frame(SVM_PROTO_MSG_READY, 0, &raw);
	assert_int_equal(svm_proto_decode_ready(&frame, &ready, &err), 0);
	assert_int_equal(ready.memory_kib, 1024);
	raw_fields(missing);
	frame = raw_frame(SVM_PROTO_MSG_READY, 0, &raw);
	assert_int_equal(svm_proto_decode_ready(&frame, &ready, &err), -1);
	assert_non_null(strstr(err.msg, "all required"));
	raw_fields(control);
	frame = raw_frame(SVM_PROTO_MSG_READY, 0, &raw);
	assert_int_equal(svm_proto_decode_ready(&frame, &ready, &err), -1);
	assert_non_null(strstr(err.msg, "boot id has a non-printable byte 0x0a"));
	raw_tlv(&raw, 5, "x", 1);
	frame = raw_frame(SVM_PROTO_MSG_READY, 0, &raw);
	assert_int_equal(svm_proto_decode_ready(&frame, &ready, &err), -1);
	assert_non_null(strstr(err.msg, "unknown field 5"));
}

static void test_decoder_refuses_a_frame_of_another_type(void **state)
{
	const uint8_t payload[4] = {1, 0, 0, 0};
	struct svm_proto_frame frame = {SVM_PROTO_MSG_SIGNAL, 1, payload, sizeof(payload)};
	uint32_t pid = 0;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_proto_decode_started(&frame, &pid, &err), -1);
	assert_string_equal(err.msg, "expected a STARTED frame, got SIGNAL (0x15)");
}

/* ---- Encoders ---------------------------------------------------------------------------- */

static void test_encoder_leaves_buffer_unchanged_when_a_frame_does_not_fit(void **state)
{
	uint8_t small[SVM_PROTO_HEADER_SIZE + 10];
	struct svm_proto_buf buf;
	struct svm_err err;

	(void)state;
	svm_proto_buf_init(&buf, small, sizeof(small));
	assert_int_equal(svm_proto_encode_signal(&buf, 1, 2, &err), 0);
	assert_int_equal(buf.len, SVM_PROTO_HEADER_SIZE + 4);
	assert_int_equal(svm_proto_encode_signal(&buf, 1, 2, &err), -1);
	assert_int_equal(buf.len, SVM_PROTO_HEADER_SIZE + 4);
	assert_string_equal(err.msg, "SIGNAL frame of 16 bytes does not fit the 6 bytes left");
}

static void test_encoder_refuses_what_the_decoder_would_refuse(void **state)
{
	static uint8_t arg[30000];
	const struct svm_proto_hello empty_range = {2, 1};
	const struct svm_proto_exit core_without_signal = {SVM_PROTO_EXITED, 1, 0, true, false};
	struct svm_proto_buf buf;
	struct svm_err err;

	(void)state;
	svm_proto_buf_init(&buf, wire, sizeof(wire));
	assert_int_equal(svm_proto_encode_hello(&buf, &empty_range, &err), -1);
	assert_int_equal(svm_proto_encode_exit(&buf, 1, &core_without_signal, &err), -1);
	assert_int_equal(svm_proto_encode_close(&buf, 0, &err), -1);
	assert_string_equal(err.msg, "CLOSE needs a nonzero session id");
	assert_int_equal(svm_proto_encode_data(&buf, 1, 1, "", 0, &err), -1);
	assert_int_equal(svm_proto_encode_signal(&buf, 1, 65, &err), -1);
	assert_int_equal(svm_proto_encode_started(&buf, 1, 0, &err), -1);
	assert_int_equal(svm_proto_encode_error(&buf, 0, 0, "", 0, &err), -1);

	exec_minimal(&exec_in);
	exec_in.uid = UINT32_MAX;
	assert_int_equal(svm_proto_encode_exec(&buf, 1, &exec_in, &err), -1);
	assert_non_null(strstr(err.msg, "uid 4294967295 is out of range"));
	assert_int_equal(svm_proto_exec_add_env(&exec_in, "X", 1, &err), -1);
	assert_int_equal(svm_proto_exec_add_arg(&exec_in, "a\0", 2, &err), -1);

	exec_minimal(&exec_in);
	memset(arg, 'a', sizeof(arg));
	assert_int_equal(svm_proto_exec_add_arg(&exec_in, arg, sizeof(arg), &err), 0);
	assert_int_equal(svm_proto_exec_add_arg(&exec_in, arg, sizeof(arg), &err), 0);
	assert_int_equal(svm_proto_encode_exec(&buf, 1, &exec_in, &err), 0);
	assert_int_equal(svm_proto_exec_add_arg(&exec_in, arg, sizeof(arg), &err), 0);
	assert_int_equal(svm_proto_encode_exec(&buf, 1, &exec_in, &err), -1);
	assert_non_null(strstr(err.msg, "exceeds the maximum of 65536"));
	assert_true(buf.len < SVM_PROTO_MAX_FRAME);
	assert_int_equal(buf.len,
	                 SVM_PROTO_HEADER_SIZE + 4 + 9 + 2 * (4 + sizeof(arg)) + 5 + 4 * (4 + 4));
	assert_int_equal(buf.data[SVM_PROTO_HEADER_SIZE + 4 + 9], SVM_PROTO_EXEC_ARG);
}

static void test_version_negotiation_picks_the_highest_common_version(void **state)
{
	const struct svm_proto_hello agent = {1, 3}, host = {2, 5}, future = {4, 6};
	uint16_t version = 0;
	struct svm_err err;

	(void)state;
	assert_int_equal(svm_proto_negotiate(&host, &agent, &version, &err), 0);
	assert_int_equal(version, 3);
	assert_int_equal(svm_proto_negotiate(&agent, &host, &version, &err), 0);
	assert_int_equal(version, 3);
	assert_int_equal(svm_proto_negotiate(&agent, &future, &version, &err), -1);
	assert_string_equal(err.msg, "no common protocol version: we speak 1..3, the peer 4..6");
}

/* ---- Flow control ------------------------------------------------------------------------- */

static void test_send_credit_limits_data_and_grows_with_window(void **state)
{
	struct svm_proto_send_credit credit;
	struct svm_err err;

	(void)state;
	svm_proto_send_credit_init(&credit);
	assert_int_equal(svm_proto_send_credit_sendable(&credit, 1u << 20), SVM_PROTO_MAX_DATA);
	for (int i = 0; i < 4; i++)
		assert_int_equal(svm_proto_send_credit_spend(&credit, SVM_PROTO_MAX_DATA, &err), 0);
	assert_int_equal(credit.bytes, 4);
	assert_int_equal(svm_proto_send_credit_sendable(&credit, 100), 4);
	assert_int_equal(svm_proto_send_credit_spend(&credit, 5, &err), -1);
	assert_int_equal(credit.bytes, 4);
	assert_int_equal(svm_proto_send_credit_grant(&credit, 0, &err), -1);
	assert_int_equal(svm_proto_send_credit_grant(&credit, UINT32_MAX - 3, &err), -1);
	assert_non_null(strstr(err.msg, "overflows"));
	assert_int_equal(svm_proto_send_credit_grant(&credit, 131072, &err), 0);
	assert_int_equal(credit.bytes, 131076);
	assert_int_equal(svm_proto_send_credit_spend(&credit, 131076, &err), 0);
	assert_int_equal(svm_proto_send_credit_sendable(&credit, 1), 0);
}

static void test_recv_window_returns_credit_in_half_window_batches(void **state)
{
	struct svm_proto_recv_window window;
	uint32_t increment = 99;
	struct svm_err err;

	(void)state;
	svm_proto_recv_window_init(&window);
	assert_int_equal(svm_proto_recv_window_receive(&window, 200000, &err), 0);
	assert_int_equal(svm_proto_recv_window_receive(&window, 70000, &err), -1);
	assert_non_null(strstr(err.msg, "sent 70000 bytes with 62144 of credit"));
	assert_int_equal(svm_proto_recv_window_consume(&window, 100000, &increment, &err), 0);
	assert_int_equal(increment, 0);
	assert_int_equal(svm_proto_recv_window_consume(&window, 50000, &increment, &err), 0);
	assert_int_equal(increment, 150000);
	assert_int_equal(window.available, 212144);
	assert_int_equal(svm_proto_recv_window_consume(&window, 50001, &increment, &err), -1);
	assert_int_equal(window.available + window.buffered + window.unreported, window.size);
}

/* Both ends under random traffic: the sender's credit always equals what the
 * receiver will accept, and the sender is never stuck while data waits. */
static void test_flow_control_ends_agree_under_random_traffic(void **state)
{
	struct svm_proto_send_credit credit;
	struct svm_proto_recv_window window;
	uint32_t increment = 0;
	struct svm_err err;

	(void)state;
	srand(7);
	svm_proto_send_credit_init(&credit);
	svm_proto_recv_window_init(&window);
	for (int step = 0; step < 200000; step++) {
		if (rand() % 2) {
			size_t n = svm_proto_send_credit_sendable(&credit, (size_t)rand() % 70000);

			if (n > 0) {
				assert_int_equal(svm_proto_send_credit_spend(&credit, n, &err), 0);
				assert_int_equal(svm_proto_recv_window_receive(&window, n, &err),
				                 0);
			}
		} else {
			size_t n =
			        window.buffered == 0 ? 0 : (size_t)rand() % (window.buffered + 1);

			assert_int_equal(
			        svm_proto_recv_window_consume(&window, n, &increment, &err), 0);
			if (increment > 0)
				assert_int_equal(
				        svm_proto_send_credit_grant(&credit, increment, &err), 0);
		}
		assert_int_equal(credit.bytes, window.available);
		assert_int_equal(window.available + window.buffered + window.unreported,
		                 window.size);
		assert_true(credit.bytes > 0 || window.buffered > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_connection_messages_round_trip),
	        cmocka_unit_test(test_session_messages_round_trip),
	        cmocka_unit_test(test_exec_round_trips_hostile_argv_and_env),
	        cmocka_unit_test(test_exec_round_trips_identity_and_extra_stream),
	        cmocka_unit_test(test_decoder_gives_same_frames_byte_by_byte_and_in_random_chunks),
	        cmocka_unit_test(test_oversize_length_fails_before_buffering),
	        cmocka_unit_test(test_reader_stays_failed_after_an_error),
	        cmocka_unit_test(test_bad_headers_are_refused_with_a_code_and_message),
	        cmocka_unit_test(test_error_names_the_offset_of_the_bad_frame),
	        cmocka_unit_test(test_exec_with_bad_fields_is_refused),
	        cmocka_unit_test(test_exec_skips_unknown_optional_fields),
	        cmocka_unit_test(test_truncated_tlv_is_refused),
	        cmocka_unit_test(test_tlv_length_past_the_end_is_refused),
	        cmocka_unit_test(test_too_many_args_or_env_entries_are_refused),
	        cmocka_unit_test(test_bad_stream_ids_are_refused),
	        cmocka_unit_test(test_streams_flow_only_in_their_direction),
	        cmocka_unit_test(test_fixed_payloads_with_bad_values_are_refused),
	        cmocka_unit_test(test_ready_requires_every_field_and_skips_optional_ones),
	        cmocka_unit_test(test_decoder_refuses_a_frame_of_another_type),
	        cmocka_unit_test(test_encoder_leaves_buffer_unchanged_when_a_frame_does_not_fit),
	        cmocka_unit_test(test_encoder_refuses_what_the_decoder_would_refuse),
	        cmocka_unit_test(test_version_negotiation_picks_the_highest_common_version),
	        cmocka_unit_test(test_send_credit_limits_data_and_grows_with_window),
	        cmocka_unit_test(test_recv_window_returns_credit_in_half_window_batches),
	        cmocka_unit_test(test_flow_control_ends_agree_under_random_traffic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
