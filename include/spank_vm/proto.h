/* The wire protocol between spank-vm-mux (host) and spank-vm-agent (guest):
 * a pure codec, no I/O. doc/protocol.md is the specification; this header
 * names its constants and gives both ends one encoder and one decoder.
 *
 * Every decoder validates every field and never reads outside the bytes it
 * was given; every encoder refuses what the decoder would refuse, so a frame
 * this library writes is always one the peer accepts. Decoded byte strings
 * are views into the frame's payload, valid as long as the payload is. */
#ifndef SPANK_VM_PROTO_H
#define SPANK_VM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"

#define SVM_PROTO_VERSION_MIN 1
#define SVM_PROTO_VERSION_MAX 3
/* PAUSE, PAUSED and RESUME need version 2 on the connection. */
#define SVM_PROTO_VERSION_PAUSE 2
/* EXIT's out-of-memory flag is only sent on a version 3 connection. */
#define SVM_PROTO_VERSION_OOM 3
#define SVM_PROTO_MAGIC       "SVMP" /* first 4 payload bytes of HELLO */

#define SVM_PROTO_HEADER_SIZE 12
#define SVM_PROTO_MAX_PAYLOAD 65536u
#define SVM_PROTO_MAX_FRAME   (SVM_PROTO_HEADER_SIZE + SVM_PROTO_MAX_PAYLOAD)
#define SVM_PROTO_MAX_DATA    (SVM_PROTO_MAX_PAYLOAD - 1u) /* DATA: 1 byte of stream id */

#define SVM_PROTO_INITIAL_WINDOW (256u * 1024u)

#define SVM_PROTO_MAX_ARGS       4096
#define SVM_PROTO_MAX_ENV        4096
#define SVM_PROTO_MAX_GROUPS     4096
#define SVM_PROTO_MAX_CWD        4095 /* PATH_MAX without its NUL */
#define SVM_PROTO_MAX_ERROR_TEXT 1024
#define SVM_PROTO_MAX_READY_TEXT 64 /* boot id, kernel release (utsname field size) */
#define SVM_PROTO_MAX_SIGNAL     64
#define SVM_PROTO_MIN_EXTRA_FD   3
#define SVM_PROTO_MAX_EXTRA_FD   1023
#define SVM_PROTO_MAX_ID         0xfffffffeu /* uid/gid; (uid_t)-1 means "unchanged" */
#define SVM_PROTO_DEFAULT_UMASK  022u

enum svm_proto_peer {
	SVM_PROTO_HOST = 1,
	SVM_PROTO_AGENT = 2,
};

enum svm_proto_type {
	/* Connection messages: session id 0. */
	SVM_PROTO_MSG_HELLO = 0x01,
	SVM_PROTO_MSG_READY = 0x02,
	SVM_PROTO_MSG_HEARTBEAT = 0x03,
	SVM_PROTO_MSG_POWEROFF = 0x04,
	/* Version 2: the host quiesces the channel before the guest is saved,
	 * and takes its sessions over on the next connection. */
	SVM_PROTO_MSG_PAUSE = 0x06,
	SVM_PROTO_MSG_PAUSED = 0x07,
	SVM_PROTO_MSG_RESUME = 0x08,
	/* Either: session 0 for the connection, nonzero for one session. */
	SVM_PROTO_MSG_ERROR = 0x05,
	/* Session messages: nonzero session id. */
	SVM_PROTO_MSG_EXEC = 0x10,
	SVM_PROTO_MSG_STARTED = 0x11,
	SVM_PROTO_MSG_DATA = 0x12,
	SVM_PROTO_MSG_EOF = 0x13,
	SVM_PROTO_MSG_WINDOW = 0x14,
	SVM_PROTO_MSG_SIGNAL = 0x15,
	SVM_PROTO_MSG_EXIT = 0x16,
	SVM_PROTO_MSG_CLOSE = 0x17,
};

enum svm_proto_stream {
	SVM_PROTO_STDIN = 0,
	SVM_PROTO_STDOUT = 1,
	SVM_PROTO_STDERR = 2,
	SVM_PROTO_EXTRA = 3,
};
#define SVM_PROTO_STREAMS 4

enum svm_proto_error_code {
	SVM_PROTO_E_MALFORMED = 1,
	SVM_PROTO_E_UNKNOWN_TYPE = 2,
	SVM_PROTO_E_VERSION = 3,
	SVM_PROTO_E_TOO_LARGE = 4,
	SVM_PROTO_E_STATE = 5,
	SVM_PROTO_E_UNKNOWN_SESSION = 6,
	SVM_PROTO_E_FLOW = 7,
	SVM_PROTO_E_IDENTITY_REFUSED = 8,
	SVM_PROTO_E_EXEC_FAILED = 9,
	SVM_PROTO_E_RESOURCE = 10,
	SVM_PROTO_E_INTERNAL = 11,
	SVM_PROTO_E_GUEST_LOST = 12,
};

/* TLV tags with this bit may be skipped by a receiver that does not know
 * them; without it, an unknown tag makes the whole message malformed. */
#define SVM_PROTO_TAG_OPTIONAL 0x8000u

enum svm_proto_ready_tag {
	SVM_PROTO_READY_BOOT_ID = 1,
	SVM_PROTO_READY_KERNEL = 2,
	SVM_PROTO_READY_VCPUS = 3,
	SVM_PROTO_READY_MEMORY_KIB = 4,
};

enum svm_proto_exec_tag {
	SVM_PROTO_EXEC_ARG = 1,
	SVM_PROTO_EXEC_ENV = 2,
	SVM_PROTO_EXEC_CWD = 3,
	SVM_PROTO_EXEC_UID = 4,
	SVM_PROTO_EXEC_GID = 5,
	SVM_PROTO_EXEC_GROUP = 6,
	SVM_PROTO_EXEC_UMASK = 7,
	SVM_PROTO_EXEC_FLAGS = 8,
	SVM_PROTO_EXEC_EXTRA_FD = 9,
	/* 10 TERM and 11 PTY_SIZE are reserved for a later version. */
	/* Optional (an older agent runs the program as a task): the role of
	 * the program in its job, SVM_PROTO_ROLE_*. */
	SVM_PROTO_EXEC_ROLE = SVM_PROTO_TAG_OPTIONAL | 12,
};

/* Values of the EXEC ROLE field. */
#define SVM_PROTO_ROLE_TASK  0u /* the default */
#define SVM_PROTO_ROLE_BATCH 1u /* the job's batch script: adopted after a restore */

/* Bits of the EXEC FLAGS field. */
#define SVM_PROTO_EXEC_HAS_STDIN 0x1u /* stream 0 exists; otherwise stdin is /dev/null */
#define SVM_PROTO_EXEC_HAS_EXTRA 0x2u /* stream 3 exists, at fd EXTRA_FD in the program */
#define SVM_PROTO_EXEC_ALL_FLAGS (SVM_PROTO_EXEC_HAS_STDIN | SVM_PROTO_EXEC_HAS_EXTRA)

/* A byte string inside a payload; not NUL-terminated. */
struct svm_proto_bytes {
	const uint8_t *data;
	size_t len;
};

/* ---- Frames ---------------------------------------------------------------- */

struct svm_proto_frame {
	uint8_t type;
	uint32_t session;
	const uint8_t *payload;
	size_t len;
};

/* An output buffer that encoders append whole frames to. An encoder that
 * fails leaves len unchanged, so the caller can flush and retry. */
struct svm_proto_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
};

void svm_proto_buf_init(struct svm_proto_buf *buf, void *mem, size_t cap);

/* The incremental decoder of one direction of the channel. Large (it holds
 * one maximal payload): allocate it once per connection, not on a small
 * stack. After an error it stays failed: framing is lost for good. */
struct svm_proto_reader {
	enum svm_proto_peer sender;
	uint64_t offset; /* stream offset of the frame being read, for messages */
	uint8_t header[SVM_PROTO_HEADER_SIZE];
	size_t header_have;
	struct svm_proto_frame current;
	size_t payload_have;
	uint32_t error_code; /* 0 while healthy, else the ERROR code to send */
	struct svm_err error;
	uint8_t payload[SVM_PROTO_MAX_PAYLOAD];
};

/* sender: who writes the bytes this reader reads (frames the sender may not
 * send are refused). */
void svm_proto_reader_init(struct svm_proto_reader *reader, enum svm_proto_peer sender);

/* Takes bytes from data[0..len) until one frame is complete or data runs out;
 * *used tells how many were taken. Returns 1 with *frame set, 0 when more
 * bytes are needed, -1 on a protocol error (reader->error_code says which).
 * frame->payload points into data or into the reader and is valid until the
 * next call, as long as data is. */
int svm_proto_reader_next(struct svm_proto_reader *reader, const void *data, size_t len,
                          size_t *used, struct svm_proto_frame *frame, struct svm_err *err);

const char *svm_proto_type_name(uint8_t type);
const char *svm_proto_error_name(uint32_t code);

/* ---- Connection messages ---------------------------------------------------- */

struct svm_proto_hello {
	uint16_t min_version;
	uint16_t max_version;
};

/* The version both sides use: the highest one both support. */
int svm_proto_negotiate(const struct svm_proto_hello *mine, const struct svm_proto_hello *theirs,
                        uint16_t *version, struct svm_err *err);

struct svm_proto_ready {
	struct svm_proto_bytes boot_id;
	struct svm_proto_bytes kernel_release;
	uint32_t vcpus;
	uint64_t memory_kib;
};

struct svm_proto_error {
	uint32_t code;
	struct svm_proto_bytes text;
};

int svm_proto_encode_hello(struct svm_proto_buf *buf, const struct svm_proto_hello *hello,
                           struct svm_err *err);
int svm_proto_decode_hello(const struct svm_proto_frame *frame, struct svm_proto_hello *hello,
                           struct svm_err *err);

int svm_proto_encode_ready(struct svm_proto_buf *buf, const struct svm_proto_ready *ready,
                           struct svm_err *err);
int svm_proto_decode_ready(const struct svm_proto_frame *frame, struct svm_proto_ready *ready,
                           struct svm_err *err);

int svm_proto_encode_heartbeat(struct svm_proto_buf *buf, uint64_t nonce, struct svm_err *err);
int svm_proto_decode_heartbeat(const struct svm_proto_frame *frame, uint64_t *nonce,
                               struct svm_err *err);

int svm_proto_encode_poweroff(struct svm_proto_buf *buf, struct svm_err *err);
/* PAUSE, PAUSED, RESUME: connection messages without payload. */
int svm_proto_encode_connection_signal(struct svm_proto_buf *buf, enum svm_proto_type type,
                                       struct svm_err *err);

/* session 0: an error of the whole connection. text need not be NUL-terminated. */
int svm_proto_encode_error(struct svm_proto_buf *buf, uint32_t session, uint32_t code,
                           const char *text, size_t text_len, struct svm_err *err);
int svm_proto_decode_error(const struct svm_proto_frame *frame, struct svm_proto_error *error,
                           struct svm_err *err);

/* POWEROFF, PAUSE, PAUSED, RESUME and CLOSE: the payload must be empty. */
int svm_proto_decode_empty(const struct svm_proto_frame *frame, struct svm_err *err);

/* ---- Sessions --------------------------------------------------------------- */

/* An EXEC request. Large (about 150 KiB): allocate it, do not put it on a
 * small stack. Decoded strings are views into the frame; for encoding, the
 * caller points them at its own memory. */
struct svm_proto_exec {
	size_t argc;
	struct svm_proto_bytes argv[SVM_PROTO_MAX_ARGS];
	size_t envc;
	struct svm_proto_bytes env[SVM_PROTO_MAX_ENV]; /* "NAME=value" */
	struct svm_proto_bytes cwd;
	uint32_t uid;
	uint32_t gid;
	size_t ngroups;
	uint32_t groups[SVM_PROTO_MAX_GROUPS];
	uint32_t umask;
	uint32_t flags;    /* SVM_PROTO_EXEC_HAS_* */
	uint32_t extra_fd; /* with SVM_PROTO_EXEC_HAS_EXTRA only */
	uint32_t role;     /* SVM_PROTO_ROLE_* */
};

/* Empty request: no args, no env, no groups, uid and gid unset, umask 022. */
void svm_proto_exec_init(struct svm_proto_exec *exec);
int svm_proto_exec_add_arg(struct svm_proto_exec *exec, const void *arg, size_t len,
                           struct svm_err *err);
int svm_proto_exec_add_env(struct svm_proto_exec *exec, const void *entry, size_t len,
                           struct svm_err *err);
int svm_proto_exec_add_group(struct svm_proto_exec *exec, uint32_t gid, struct svm_err *err);

struct svm_proto_data {
	uint8_t stream;
	struct svm_proto_bytes bytes;
};

struct svm_proto_window {
	uint8_t stream;
	uint32_t increment;
};

enum svm_proto_exit_kind {
	SVM_PROTO_EXITED = 1,
	SVM_PROTO_KILLED = 2,
};

/* EXIT's payload: kind, value, flags (these bits), reserved. */
#define SVM_PROTO_EXIT_FLAGS_BYTE         2
#define SVM_PROTO_EXIT_FLAG_CORE_DUMPED   0x1u
#define SVM_PROTO_EXIT_FLAG_OUT_OF_MEMORY 0x2u /* version 3 */

struct svm_proto_exit {
	enum svm_proto_exit_kind kind;
	uint8_t code;  /* SVM_PROTO_EXITED */
	uint8_t signo; /* SVM_PROTO_KILLED */
	bool core_dumped;
	/* The guest's out-of-memory killer ended a process of the session (not
	 * necessarily the program itself): version 3. */
	bool out_of_memory;
};

int svm_proto_encode_exec(struct svm_proto_buf *buf, uint32_t session,
                          const struct svm_proto_exec *exec, struct svm_err *err);
int svm_proto_decode_exec(const struct svm_proto_frame *frame, struct svm_proto_exec *exec,
                          struct svm_err *err);

int svm_proto_encode_started(struct svm_proto_buf *buf, uint32_t session, uint32_t pid,
                             struct svm_err *err);
int svm_proto_decode_started(const struct svm_proto_frame *frame, uint32_t *pid,
                             struct svm_err *err);

/* len must be 1..SVM_PROTO_MAX_DATA. */
int svm_proto_encode_data(struct svm_proto_buf *buf, uint32_t session, uint8_t stream,
                          const void *bytes, size_t len, struct svm_err *err);
int svm_proto_decode_data(const struct svm_proto_frame *frame, struct svm_proto_data *data,
                          struct svm_err *err);

int svm_proto_encode_eof(struct svm_proto_buf *buf, uint32_t session, uint8_t stream,
                         struct svm_err *err);
int svm_proto_decode_eof(const struct svm_proto_frame *frame, uint8_t *stream, struct svm_err *err);

int svm_proto_encode_window(struct svm_proto_buf *buf, uint32_t session,
                            const struct svm_proto_window *window, struct svm_err *err);
int svm_proto_decode_window(const struct svm_proto_frame *frame, struct svm_proto_window *window,
                            struct svm_err *err);

int svm_proto_encode_signal(struct svm_proto_buf *buf, uint32_t session, uint32_t signo,
                            struct svm_err *err);
int svm_proto_decode_signal(const struct svm_proto_frame *frame, uint32_t *signo,
                            struct svm_err *err);

int svm_proto_encode_exit(struct svm_proto_buf *buf, uint32_t session,
                          const struct svm_proto_exit *exit_status, struct svm_err *err);
int svm_proto_decode_exit(const struct svm_proto_frame *frame, struct svm_proto_exit *exit_status,
                          struct svm_err *err);

int svm_proto_encode_close(struct svm_proto_buf *buf, uint32_t session, struct svm_err *err);

/* Whether sender may send a DATA or EOF (it writes the stream) or a WINDOW
 * (it reads the stream) for this stream. Streams a session did not ask for
 * in its EXEC flags are the session state machine's business, not this one's. */
int svm_proto_check_stream(enum svm_proto_peer sender, uint8_t type, uint8_t stream,
                           struct svm_err *err);

/* ---- Flow control, one per stream and direction ------------------------------ */

/* The sending end: bytes of DATA it may still send. */
struct svm_proto_send_credit {
	uint32_t bytes;
};

void svm_proto_send_credit_init(struct svm_proto_send_credit *credit);
/* How many of want bytes may go into the next DATA frame (0: wait for WINDOW). */
size_t svm_proto_send_credit_sendable(const struct svm_proto_send_credit *credit, size_t want);
int svm_proto_send_credit_spend(struct svm_proto_send_credit *credit, size_t len,
                                struct svm_err *err);
/* A WINDOW arrived. Refuses a zero increment or one that overflows 32 bits. */
int svm_proto_send_credit_grant(struct svm_proto_send_credit *credit, uint32_t increment,
                                struct svm_err *err);

/* The receiving end. Invariant: available + buffered + unreported == size. */
struct svm_proto_recv_window {
	uint32_t size;       /* SVM_PROTO_INITIAL_WINDOW */
	uint32_t available;  /* what the sender may still send */
	uint32_t buffered;   /* received, not yet consumed */
	uint32_t unreported; /* consumed, not yet returned with WINDOW */
};

void svm_proto_recv_window_init(struct svm_proto_recv_window *window);
/* DATA of len bytes arrived; more than the sender's credit is a FLOW error. */
int svm_proto_recv_window_receive(struct svm_proto_recv_window *window, size_t len,
                                  struct svm_err *err);
/* len buffered bytes were delivered. *increment is nonzero when a WINDOW with
 * that increment is due now (at least half the window was consumed). */
int svm_proto_recv_window_consume(struct svm_proto_recv_window *window, size_t len,
                                  uint32_t *increment, struct svm_err *err);

#endif
