/* Raw protocol clients against a live spank-vm-mux (with fake_agent behind
 * it): what a broken or hostile client gets back, and that the mux keeps
 * serving everyone else afterwards. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "spank_vm/byte_queue.h"
#include "spank_vm/proto.h"

#define WAIT_MS 5000

static char dir[] = "/tmp/svm-mux-test.XXXXXX";
static char agent_sock[128], mux_sock[128];
static pid_t agent_pid, mux_pid;
static struct svm_proto_reader reader;
static struct svm_proto_exec exec_req;
static uint8_t frame_copy[SVM_PROTO_MAX_FRAME];

struct client {
	int fd;
	uint8_t in[SVM_PROTO_MAX_FRAME];
	size_t have;
};

static pid_t spawn(char *const argv[], int keep_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		if (keep_fd != 3)
			dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int group_setup(void **state)
{
	int ready[2];
	char line[256] = "";
	struct pollfd pfd;

	(void)state;
	if (mkdtemp(dir) == NULL || pipe(ready) != 0)
		return -1;
	snprintf(agent_sock, sizeof(agent_sock), "%s/agent.sock", dir);
	snprintf(mux_sock, sizeof(mux_sock), "%s/mux.sock", dir);
	agent_pid = spawn(
	        (char *[]){FAKE_AGENT_BIN, "--listen", agent_sock, "--oom-on-sigkill", NULL}, -1);
	/* The mux retries its connection until the agent listens. */
	mux_pid = fork();
	if (mux_pid == 0) {
		char fd_text[16];

		close(ready[0]);
		snprintf(fd_text, sizeof(fd_text), "%d", ready[1]);
		execl(MUX_BIN, MUX_BIN, "--foreground", "--agent-socket", agent_sock, "--listen",
		      mux_sock, "--ready-fd", fd_text, "--ready-timeout", "10", (char *)NULL);
		_exit(127);
	}
	close(ready[1]);
	pfd = (struct pollfd){.fd = ready[0], .events = POLLIN};
	if (poll(&pfd, 1, 10000) != 1 || read(ready[0], line, sizeof(line) - 1) <= 0)
		return -1;
	close(ready[0]);
	return strcmp(line, "ready\n") == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	int status;

	(void)state;
	kill(mux_pid, SIGTERM);
	waitpid(mux_pid, &status, 0);
	kill(agent_pid, SIGKILL);
	waitpid(agent_pid, NULL, 0);
	unlink(agent_sock);
	rmdir(dir);
	/* SIGTERM powers the guest off: a clean exit. */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void connect_client(struct client *c)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	strcpy(addr.sun_path, mux_sock);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	c->have = 0;
	svm_proto_reader_init(&reader, SVM_PROTO_AGENT);
}

static void send_bytes(struct client *c, const void *bytes, size_t len)
{
	assert_int_equal(send(c->fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_buf(struct client *c, const struct svm_proto_buf *buf)
{
	send_bytes(c, buf->data, buf->len);
}

/* The next frame from the mux (copied), or type 0 when it closed. */
static struct svm_proto_frame next_frame(struct client *c)
{
	struct svm_proto_frame f = {0};
	struct svm_err err;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	size_t used;

	for (;;) {
		if (c->have > 0) {
			int rc = svm_proto_reader_next(&reader, c->in, c->have, &used, &f, &err);

			assert_true(rc >= 0);
			memmove(c->in, c->in + used, c->have - used);
			c->have -= used;
			if (rc == 1) {
				memcpy(frame_copy, f.payload, f.len);
				f.payload = frame_copy;
				return f;
			}
			continue;
		}
		assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
		ssize_t n = read(c->fd, c->in, sizeof(c->in));

		if (n <= 0)
			return (struct svm_proto_frame){0};
		c->have = (size_t)n;
	}
}

static uint32_t expect_error(struct client *c, uint32_t session)
{
	struct svm_proto_frame f = next_frame(c);
	struct svm_proto_error e;
	struct svm_err err;

	assert_int_equal(f.type, SVM_PROTO_MSG_ERROR);
	assert_int_equal(f.session, session);
	assert_int_equal(svm_proto_decode_error(&f, &e, &err), 0);
	return e.code;
}

static void expect_type(struct client *c, uint8_t type, uint32_t session)
{
	struct svm_proto_frame f = next_frame(c);

	assert_int_equal(f.type, type);
	assert_int_equal(f.session, session);
}

/* HELLO both ways and READY: a client the mux serves, speaking up to version. */
static void greet_version(struct client *c, uint16_t version)
{
	static uint8_t mem[256];
	struct svm_proto_buf buf;
	const struct svm_proto_hello hello = {1, version};
	struct svm_err err;

	connect_client(c);
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	assert_int_equal(svm_proto_encode_hello(&buf, &hello, &err), 0);
	send_buf(c, &buf);
	expect_type(c, SVM_PROTO_MSG_HELLO, 0);
	expect_type(c, SVM_PROTO_MSG_READY, 0);
}

static void greet(struct client *c)
{
	greet_version(c, 1);
}

static void send_exec_program(struct client *c, uint32_t session, uint32_t uid, uint32_t flags,
                              const char *program)
{
	static uint8_t mem[SVM_PROTO_MAX_FRAME];
	struct svm_proto_buf buf;
	struct svm_err err;

	svm_proto_exec_init(&exec_req);
	assert_int_equal(svm_proto_exec_add_arg(&exec_req, program, strlen(program), &err), 0);
	if (strcmp(program, "sleep") == 0)
		assert_int_equal(svm_proto_exec_add_arg(&exec_req, "3", 1, &err), 0);
	exec_req.cwd = (struct svm_proto_bytes){(const uint8_t *)"/", 1};
	exec_req.uid = uid;
	exec_req.gid = getgid();
	exec_req.flags = flags;
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	assert_int_equal(svm_proto_encode_exec(&buf, session, &exec_req, &err), 0);
	send_buf(c, &buf);
}

static void send_exec(struct client *c, uint32_t session, uint32_t uid, uint32_t flags)
{
	send_exec_program(c, session, uid, flags, "true");
}

static void test_mux_answers_oversized_frame_with_too_large(void **state)
{
	struct client c;
	const uint8_t header[12] = {0x00, 0x00, 0x10, 0x00, SVM_PROTO_MSG_HELLO};

	(void)state;
	connect_client(&c);
	expect_type(&c, SVM_PROTO_MSG_HELLO, 0);
	send_bytes(&c, header, sizeof(header));
	assert_int_equal(expect_error(&c, 0), SVM_PROTO_E_TOO_LARGE);
	assert_int_equal(next_frame(&c).type, 0); /* then closed */
	close(c.fd);
}

static void test_mux_refuses_a_first_frame_other_than_hello(void **state)
{
	struct client c;

	(void)state;
	connect_client(&c);
	expect_type(&c, SVM_PROTO_MSG_HELLO, 0);
	send_exec(&c, 1, getuid(), 0);
	assert_int_equal(expect_error(&c, 0), SVM_PROTO_E_STATE);
	assert_int_equal(next_frame(&c).type, 0);
	close(c.fd);
}

static void test_mux_refuses_garbage_bytes(void **state)
{
	struct client c;
	uint8_t junk[64];

	(void)state;
	memset(junk, 0xa5, sizeof(junk));
	connect_client(&c);
	expect_type(&c, SVM_PROTO_MSG_HELLO, 0);
	send_bytes(&c, junk, sizeof(junk));
	assert_true(expect_error(&c, 0) != 0);
	close(c.fd);
}

static void test_mux_refuses_malformed_exec_and_keeps_the_connection(void **state)
{
	struct client c;
	/* EXEC with one ARG field and nothing else: no cwd, uid or gid. */
	const uint8_t frame[] = {
	        8,   0,   0,   0,  SVM_PROTO_MSG_EXEC, 0, 0, 0, 1, 0, 0, 0, 1, 0, 4, 0,
	        't', 'r', 'u', 'e'};
	uint8_t mem[64];
	struct svm_proto_buf buf;
	struct svm_err err;

	(void)state;
	greet(&c);
	send_bytes(&c, frame, sizeof(frame));
	assert_int_equal(expect_error(&c, 1), SVM_PROTO_E_MALFORMED);
	expect_type(&c, SVM_PROTO_MSG_CLOSE, 1);
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	assert_int_equal(svm_proto_encode_heartbeat(&buf, 77, &err), 0);
	send_buf(&c, &buf);
	expect_type(&c, SVM_PROTO_MSG_HEARTBEAT, 0);
	close(c.fd);
}

static void test_mux_refuses_another_users_identity(void **state)
{
	struct client c;

	(void)state;
	greet(&c);
	send_exec(&c, 1, getuid() + 1, 0);
	assert_int_equal(expect_error(&c, 1), SVM_PROTO_E_IDENTITY_REFUSED);
	expect_type(&c, SVM_PROTO_MSG_CLOSE, 1);
	close(c.fd);
}

static void test_mux_refuses_decreasing_session_ids(void **state)
{
	struct client c;

	(void)state;
	greet(&c);
	send_exec(&c, 5, getuid(), 0);
	send_exec(&c, 5, getuid(), 0);
	for (;;) { /* the first session's frames may come first */
		struct svm_proto_frame f = next_frame(&c);

		assert_true(f.type != 0);
		if (f.type == SVM_PROTO_MSG_ERROR && f.session == 0)
			break;
	}
	close(c.fd);
}

static void test_mux_answers_unknown_sessions(void **state)
{
	struct client c;
	uint8_t mem[64];
	struct svm_proto_buf buf;
	struct svm_err err;

	(void)state;
	greet(&c);
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	assert_int_equal(svm_proto_encode_signal(&buf, 9, SIGTERM, &err), 0);
	send_buf(&c, &buf);
	assert_int_equal(expect_error(&c, 9), SVM_PROTO_E_UNKNOWN_SESSION);
	close(c.fd);
}

static void test_mux_refuses_data_beyond_the_window(void **state)
{
	struct client c;
	static uint8_t mem[8 * SVM_PROTO_MAX_FRAME], data[SVM_PROTO_MAX_DATA];
	struct svm_proto_buf buf;
	struct svm_err err;
	struct svm_proto_frame f;

	(void)state;
	greet(&c);
	/* `sleep` never reads its stdin, so no WINDOW comes back. */
	send_exec_program(&c, 1, getuid(), SVM_PROTO_EXEC_HAS_STDIN, "sleep");
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	for (int i = 0; i < 5; i++) /* 5 * 65535 > 262144 */
		assert_int_equal(svm_proto_encode_data(&buf, 1, 0, data, sizeof(data), &err), 0);
	send_buf(&c, &buf);
	do
		f = next_frame(&c);
	while (f.type != 0 && !(f.type == SVM_PROTO_MSG_ERROR && f.session == 1));
	assert_int_equal(f.type, SVM_PROTO_MSG_ERROR);
	assert_int_equal(f.payload[0], SVM_PROTO_E_FLOW);
	close(c.fd);
}

static void test_mux_still_runs_a_whole_session(void **state)
{
	struct client c;
	struct svm_proto_frame f;
	struct svm_proto_exit status;
	struct svm_err err;
	uint8_t mem[64];
	struct svm_proto_buf buf;

	(void)state;
	greet(&c);
	send_exec(&c, 3, getuid(), 0);
	expect_type(&c, SVM_PROTO_MSG_STARTED, 3);
	do
		f = next_frame(&c);
	while (f.type == SVM_PROTO_MSG_EOF);
	assert_int_equal(f.type, SVM_PROTO_MSG_EXIT);
	assert_int_equal(svm_proto_decode_exit(&f, &status, &err), 0);
	assert_int_equal(status.kind, SVM_PROTO_EXITED);
	assert_int_equal(status.code, 0);
	expect_type(&c, SVM_PROTO_MSG_CLOSE, 3);
	svm_proto_buf_init(&buf, mem, sizeof(mem));
	assert_int_equal(svm_proto_encode_close(&buf, 3, &err), 0);
	send_buf(&c, &buf);
	close(c.fd);
}

/* The fake agent says the OOM killer ended what SIGKILL ended: only a client
 * of version 3 hears it; an older one would take the flag as malformed. */
static void test_mux_tells_out_of_memory_to_version_3_clients_only(void **state)
{
	static uint8_t mem[SVM_PROTO_MAX_FRAME];
	const char *args[] = {"sh", "-c", "kill -KILL $$"};
	const uint16_t versions[] = {2, 3};
	struct svm_proto_exit status;
	struct svm_proto_frame f;
	struct svm_proto_buf buf;
	struct svm_err err;
	struct client c;

	(void)state;
	for (size_t v = 0; v < 2; v++) {
		greet_version(&c, versions[v]);
		svm_proto_exec_init(&exec_req);
		for (size_t i = 0; i < 3; i++)
			assert_int_equal(
			        svm_proto_exec_add_arg(&exec_req, args[i], strlen(args[i]), &err),
			        0);
		exec_req.cwd = (struct svm_proto_bytes){(const uint8_t *)"/", 1};
		exec_req.uid = getuid();
		exec_req.gid = getgid();
		svm_proto_buf_init(&buf, mem, sizeof(mem));
		assert_int_equal(svm_proto_encode_exec(&buf, 1, &exec_req, &err), 0);
		send_buf(&c, &buf);
		expect_type(&c, SVM_PROTO_MSG_STARTED, 1);
		do
			f = next_frame(&c);
		while (f.type == SVM_PROTO_MSG_EOF);
		assert_int_equal(f.type, SVM_PROTO_MSG_EXIT);
		assert_int_equal(svm_proto_decode_exit(&f, &status, &err), 0);
		assert_int_equal(status.kind, SVM_PROTO_KILLED);
		assert_int_equal(status.signo, SIGKILL);
		assert_int_equal(status.out_of_memory, versions[v] >= SVM_PROTO_VERSION_OOM);
		close(c.fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mux_answers_oversized_frame_with_too_large),
	        cmocka_unit_test(test_mux_tells_out_of_memory_to_version_3_clients_only),
	        cmocka_unit_test(test_mux_refuses_a_first_frame_other_than_hello),
	        cmocka_unit_test(test_mux_refuses_garbage_bytes),
	        cmocka_unit_test(test_mux_refuses_malformed_exec_and_keeps_the_connection),
	        cmocka_unit_test(test_mux_refuses_another_users_identity),
	        cmocka_unit_test(test_mux_refuses_decreasing_session_ids),
	        cmocka_unit_test(test_mux_answers_unknown_sessions),
	        cmocka_unit_test(test_mux_refuses_data_beyond_the_window),
	        cmocka_unit_test(test_mux_still_runs_a_whole_session),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
