/* spank-vm-mux: owns one guest's agent channel and multiplexes every task's
 * session over it (doc/protocol.md; the design is in helpers/mux/README.md). */
#ifndef SPANK_VM_MUX_H
#define SPANK_VM_MUX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/byte_queue.h"
#include "spank_vm/error.h"
#include "spank_vm/proto.h"

#define MUX_PREFIX "spank_vm-mux: "

/* Exit statuses of spank-vm-mux. */
#define MUX_EXIT_OK         0 /* powered off on SIGTERM, or the guest shut down cleanly */
#define MUX_EXIT_START      1 /* bad options, or the guest never became ready */
#define MUX_EXIT_GUEST_LOST 2 /* the agent channel closed or stopped answering */

/* A client's open sessions at most, and the whole mux's. */
#define MUX_MAX_SESSIONS_PER_CLIENT 256
#define MUX_MAX_SESSIONS            4096

struct mux_opts {
	const char *agent_socket;
	const char *agent_device;    /* instead of agent_socket: a virtio port (in a guest) */
	const char *hostcall_socket; /* the guest's host call port: spank-vm-hostcall serves it */
	const char *slurm_commands;  /* ... running the Slurm commands of this directory */
	uint32_t requeue_job;        /* nonzero: this job's requeue pauses the guest (requeue.c) */
	const char *slurm_conf;      /* for asking Slurm about it; NULL: libslurm's default */
	const char *listen_path;
	const char *log_path;
	const char *pid_file;
	const char *console_path;  /* the guest's console log: why it never got ready */
	double ready_timeout;      /* seconds for connect + HELLO + READY */
	double heartbeat_interval; /* seconds between HEARTBEATs */
	double heartbeat_timeout; /* silent this long with a HEARTBEAT unanswered: the agent is dead
	                           */
	int ready_fd;             /* -1: none */
	bool foreground;
	bool have_uid, have_gid;
	uid_t uid;
	gid_t gid;
};

struct mux_client;

/* The agent connection across a save (pause.c, doc/protocol.md 7.1). A
 * saver that never sends SIGUSR2 leaves the guest detached this long. */
#define MUX_DETACHED_MAX_S 600.0
enum mux_channel {
	MUX_CHANNEL_LIVE,     /* frames flow both ways */
	MUX_CHANNEL_PAUSING,  /* PAUSE sent, PAUSED awaited */
	MUX_CHANNEL_DETACHED, /* hung up after PAUSED: the guest may be saved */
	MUX_CHANNEL_RESUMING, /* reconnected, HELLO and RESUME sent, READY awaited */
};

/* One task's session, known to the client by client_id and to the agent by
 * guest_id. Each side sends CLOSE once and receives it once; the session is
 * forgotten when all four have happened (a vanished client counts as both). */
struct mux_session {
	uint32_t guest_id;
	uint32_t client_id;
	struct mux_client *client; /* NULL once the client is gone */
	uint32_t flags;            /* SVM_PROTO_EXEC_HAS_* */
	bool started, exited;
	bool agent_eof[SVM_PROTO_STREAMS];  /* EOF the agent sent (1, 2, 3) */
	bool client_eof[SVM_PROTO_STREAMS]; /* EOF the client sent (0, 3) */
	/* What the agent may still send the client (granted by the client's
	 * WINDOWs) and the client the agent: the mux checks both ends keep to
	 * their credit, so it never holds more than the windows allow. */
	struct svm_proto_send_credit agent_credit[SVM_PROTO_STREAMS];
	struct svm_proto_send_credit client_credit[SVM_PROTO_STREAMS];
	bool close_to_agent, close_from_agent, close_to_client, close_from_client;
};

struct mux_client {
	int fd;
	uid_t uid;
	pid_t pid;
	struct svm_proto_reader *reader;
	struct svm_byte_queue out;
	bool hello_seen;
	uint16_t version; /* agreed in its HELLO */
	bool gone;        /* to be freed at the end of this loop turn */
	uint32_t last_exec_id;
	size_t sessions;
	struct mux_client *next;
};

struct mux {
	const struct mux_opts *opts;
	int agent_fd;
	int listen_fd;
	int signal_fd;
	struct svm_proto_reader *agent_reader;
	/* The connection's own frames (HELLO, RESUME; what preceded PAUSE):
	 * written before agent_out, which holds the sessions' frames and waits
	 * while the channel is not live. */
	struct svm_byte_queue agent_first;
	struct svm_byte_queue agent_out;
	enum mux_channel channel;
	uint16_t agent_version;                       /* agreed with the agent on this connection */
	uint8_t ready_payload[SVM_PROTO_MAX_PAYLOAD]; /* the agent's READY, relayed as is */
	size_t ready_len;
	bool agent_ready;
	uint32_t last_guest_id;
	struct mux_session **sessions; /* sorted by guest_id (ids only grow) */
	size_t nsessions, session_cap;
	struct mux_client *clients;
	uint64_t heartbeat_nonce;
	double heartbeat_sent; /* 0: no HEARTBEAT outstanding */
	double heartbeat_due;  /* when the next one goes out */
	double agent_heard;    /* when bytes last came from the agent */
	bool stop;             /* leave the loop */
	int exit_code;
	char stop_reason[SVM_ERR_MAX + 64];
	pid_t hostcall_pid; /* spank-vm-hostcall, or 0 */
	bool requeue_hold;  /* Slurm is requeueing the job: its guest waits to be saved */
};

/* log.c */
int mux_log_open(const char *path, struct svm_err *err);
/* Where log lines go, for a child's stderr. */
int mux_log_fd(void);
void mux_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Peer text is untrusted: non-printable bytes become \xNN. */
void mux_escape(const uint8_t *bytes, size_t len, char *out, size_t out_size);
double mux_now(void);
/* Formats err and returns code: for checks that answer with a protocol error code. */
uint32_t mux_fault(struct svm_err *err, uint32_t code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* io.c: non-blocking helpers shared by the channel and the clients. */
int mux_set_nonblock(int fd, struct svm_err *err);
/* Writes what the peer accepts now; -1 when the peer is gone. */
int mux_flush(int fd, struct svm_byte_queue *q, struct svm_err *err);
/* A frame whose payload is already valid, with a new session id. */
int mux_put_frame(struct svm_byte_queue *q, uint8_t type, uint32_t session, const uint8_t *payload,
                  size_t len, struct svm_err *err);
int mux_put_error(struct svm_byte_queue *q, uint32_t session, uint32_t code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int mux_put_close(struct svm_byte_queue *q, uint32_t session);
int mux_put_hello(struct svm_byte_queue *q);
int mux_put_heartbeat(struct svm_byte_queue *q, uint64_t nonce);

/* hostcall.c: spank-vm-hostcall, the guest's host call port's server */
void mux_hostcall_start(struct mux *m);
void mux_hostcall_stop(struct mux *m);

/* agent.c */
int mux_agent_connect(struct mux *m, struct svm_err *err);
void mux_agent_input(struct mux *m, const uint8_t *bytes, size_t len);
void mux_agent_lost(struct mux *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mux_send_to_agent(struct mux *m, uint8_t type, uint32_t guest_id, const uint8_t *payload,
                       size_t len);

/* pause.c: SIGUSR1 pauses and detaches, SIGUSR2 reattaches and resumes */
void mux_pause(struct mux *m);
void mux_paused(struct mux *m, const struct svm_proto_frame *f);
void mux_resume(struct mux *m);
void mux_resumed(struct mux *m, const struct svm_proto_frame *f);
/* Drops the detached marker at exit. */
void mux_pause_cleanup(struct mux *m);

/* requeue.c: a --vm-checkpoint job that Slurm ends to requeue it. Whether the
 * SIGTERM (the mux's own, or one a task proxy relays) is held back, the guest
 * paused for its save instead of powered off or signalled. */
bool mux_requeue_holds(struct mux *m);

/* client.c */
void mux_client_accept(struct mux *m);
void mux_client_input(struct mux *m, struct mux_client *c, const uint8_t *bytes, size_t len);
/* why: NULL for a client that simply left. */
void mux_client_drop(struct mux *m, struct mux_client *c, const char *why);
void mux_send_to_client(struct mux *m, struct mux_session *s, uint8_t type, const uint8_t *payload,
                        size_t len);
/* Bytes a client's queue may hold before the client counts as broken. */
size_t mux_client_queue_limit(const struct mux_client *c);

/* session.c */
struct mux_session *mux_session_new(struct mux *m, struct mux_client *c, uint32_t client_id,
                                    uint32_t flags);
struct mux_session *mux_session_by_guest(struct mux *m, uint32_t guest_id);
struct mux_session *mux_session_by_client(struct mux *m, const struct mux_client *c,
                                          uint32_t client_id);
/* Whether the session has this stream: stdin and the extra stream only when
 * its EXEC asked for them. */
bool mux_session_stream_open(const struct mux_session *s, uint8_t stream);
/* Forgets the session once both sides have closed it. */
void mux_session_settle(struct mux *m, struct mux_session *s);
/* Ends a session one side broke, toward both sides: the faulty side gets the
 * ERROR (the agent only when it is at fault), both get CLOSE. */
void mux_session_fail(struct mux *m, struct mux_session *s, uint32_t code, const char *text,
                      bool agent_at_fault);

/* loop.c */
int mux_run(struct mux *m);

/* console.c: the console's last line that says why the guest stopped (the
 * agent's fatal line, a kernel panic), printable, into out. */
bool mux_console_reason(const char *path, char *out, size_t len);

#endif
