/* spank-vm-exec: the task proxy. One process, one poll() loop: it runs the
 * task's program in the guest through spank-vm-mux and stands in for it on
 * the host (stdio, the extra stream, signals, exit status). helpers/exec/README.md. */
#ifndef SPANK_VM_EXEC_H
#define SPANK_VM_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spank_vm/byte_queue.h"
#include "spank_vm/proto.h"

#define EXEC_PREFIX "spank_vm: "

/* Exit statuses of the proxy itself (the program's own status otherwise). */
#define EXEC_EXIT_USAGE       64  /* bad command line, or a task EXEC cannot carry */
#define EXEC_EXIT_UNAVAILABLE 69  /* the mux socket did not accept within --wait-timeout */
#define EXEC_EXIT_INTERNAL    70  /* the proxy's own failure (memory, poll) */
#define EXEC_EXIT_PROTOCOL    76  /* ERROR from the mux or agent, or the connection was lost */
#define EXEC_EXIT_NOPERM      77  /* the mux or the guest refused the task's identity */
#define EXEC_EXIT_CANNOT_EXEC 126 /* the guest could not chdir or execve the program */

#define EXEC_SESSION 1u /* the proxy's one session */

/* Bytes from the guest to a host fd (stdout, stderr, the extra fd). */
struct exec_sink {
	int fd;
	bool is_socket;
	bool chunked; /* pipes and ttys: writes of PIPE_BUF after POLLOUT never block */
	bool eof;     /* the guest sent EOF: finish the queue, then done */
	bool broken;  /* the reader went away: bytes are dropped from now on */
	bool done;
	struct svm_byte_queue q;
	struct svm_proto_recv_window window;
};

/* Bytes from a host fd to the guest (stdin, the extra fd). */
struct exec_source {
	int fd;
	bool open; /* the EXEC asked for this stream and no EOF went yet */
	bool is_socket;
	struct svm_proto_send_credit credit;
};

struct exec_proxy {
	int sock;
	int signal_fd;
	struct svm_proto_reader *reader;
	struct svm_byte_queue out;
	bool hello_seen, ready, exec_sent, exited, close_sent, close_received;
	bool write_lost; /* the mux stopped reading: what it sent last still counts */
	struct svm_proto_exit status;
	uint32_t flags;
	struct exec_sink sinks[SVM_PROTO_STREAMS];     /* 1, 2, 3 */
	struct exec_source sources[SVM_PROTO_STREAMS]; /* 0, 3 */
	int requeue_signal;        /* --vm-checkpoint-signal: requeue the job on it (requeue.c) */
	bool guest_lost;           /* the mux said the guest itself is gone */
	uint64_t guest_memory_kib; /* from READY */
	int fail_code;             /* nonzero: stop with this exit status and message */
	char fail_msg[1200];
};

/* script.c: the argv that runs the batch script argv[0] in the guest, the
 * script itself offered on *extra_fd (opened here); NULL and why if the
 * script cannot be read. */
char **exec_ship_script(char **argv, int *extra_fd, char *why, size_t why_len);

/* requeue.c: asks Slurm to requeue this task's job (scontrol requeue, as the
 * job's user), saying so on stderr; false when it did not (the reason is on
 * stderr too). */
bool exec_requeue_job(int signo);
/* --vm-checkpoint: the guest is gone; requeues the job if its checkpoint in
 * checkpoint_dir was written after run_started, saying what it did. */
void exec_requeue_after_loss(const char *checkpoint_dir, time_t run_started);

/* oom.c: says on stderr that the guest's OOM killer ended a process of the
 * task, and, for a task of a Slurm step (its mux socket given), leaves the
 * mark next to it that has the plugin end the step as out of memory. */
void exec_report_out_of_memory(const char *job_dir, const char *socket_path, uint64_t ready_kib);
/* The guest was lost: whether the job's memory cgroup ended its QEMU, and
 * saying so (with the mark) when it did. */
bool exec_guest_ended_by_oom(const char *job_dir);
void exec_report_guest_oom(const char *job_dir, const char *socket_path, uint64_t ready_kib);

/* main.c: one line on stderr, prefixed EXEC_PREFIX, and exit(code). */
void exec_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* forward.c: PMIx's loopback connections, guest to host */
#define EXEC_MAX_PORTS 4
/* Host, task mode: argv wrapped in `SELF --serve-port P... --` for each
 * PMIX_SERVER_URI* port, PMIX_MCA_gds=hash set; argv itself without any. */
char **exec_pmix_wrap(char **argv);
/* Guest: listens on 127.0.0.1 at each port for the life of the program,
 * then executes argv. Does not return. */
void exec_serve_ports(char *const *ports, size_t n, char **argv) __attribute__((noreturn));

/* relay.c */
int exec_relay(struct exec_proxy *p, struct svm_proto_exec *exec);
void exec_fail(struct exec_proxy *p, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
