/* Writes the seed corpus of fuzz_proto: a few small, valid frame streams,
 * one file each. Usage: make_proto_seeds DIR (tests/fuzz/corpus/proto). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/proto.h"

#define TEXT(s) ((struct svm_proto_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static uint8_t mem[4096];
static struct svm_proto_exec exec;

static int write_seed(const char *dir, const char *name, const struct svm_proto_buf *buf)
{
	char path[4096];
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	if (fwrite(buf->data, 1, buf->len, f) == buf->len)
		rc = 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static int seed_agent_boot(struct svm_proto_buf *buf, struct svm_err *err)
{
	const struct svm_proto_hello hello = {SVM_PROTO_VERSION_MIN, SVM_PROTO_VERSION_MAX};
	const struct svm_proto_ready ready = {TEXT("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
	                                      TEXT("6.1.0-18-amd64"), 2, 1048576};

	if (svm_proto_encode_hello(buf, &hello, err) != 0 ||
	    svm_proto_encode_ready(buf, &ready, err) != 0)
		return -1;
	return svm_proto_encode_heartbeat(buf, 42, err);
}

static int seed_exec(struct svm_proto_buf *buf, struct svm_err *err)
{
	static const char *const args[] = {"/bin/sh", "-c", "echo \"$1\"\n", "", "a b\xff"};
	static const char *const env[] = {"PATH=/usr/bin:/bin", "X=a=b\nc", "PMI_FD=5"};

	svm_proto_exec_init(&exec);
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
		if (svm_proto_exec_add_arg(&exec, args[i], strlen(args[i]), err) != 0)
			return -1;
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		if (svm_proto_exec_add_env(&exec, env[i], strlen(env[i]), err) != 0)
			return -1;
	if (svm_proto_exec_add_group(&exec, 27, err) != 0)
		return -1;
	exec.cwd = TEXT("/home/user");
	exec.uid = 1000;
	exec.gid = 1000;
	exec.flags = SVM_PROTO_EXEC_HAS_STDIN | SVM_PROTO_EXEC_HAS_EXTRA;
	exec.extra_fd = 5;
	return svm_proto_encode_exec(buf, 1, &exec, err);
}

static int seed_host_session(struct svm_proto_buf *buf, struct svm_err *err)
{
	const struct svm_proto_window window = {SVM_PROTO_STDOUT, 131072};

	if (svm_proto_encode_data(buf, 1, SVM_PROTO_STDIN, "input\n", 6, err) != 0 ||
	    svm_proto_encode_eof(buf, 1, SVM_PROTO_STDIN, err) != 0 ||
	    svm_proto_encode_window(buf, 1, &window, err) != 0 ||
	    svm_proto_encode_signal(buf, 1, 15, err) != 0)
		return -1;
	return svm_proto_encode_close(buf, 1, err);
}

static int seed_agent_session(struct svm_proto_buf *buf, struct svm_err *err)
{
	const struct svm_proto_exit killed = {SVM_PROTO_KILLED, 0, 11, true};

	if (svm_proto_encode_started(buf, 1, 321, err) != 0 ||
	    svm_proto_encode_data(buf, 1, SVM_PROTO_STDOUT, "hello\n", 6, err) != 0 ||
	    svm_proto_encode_data(buf, 1, SVM_PROTO_EXTRA, "cmd=init\n", 9, err) != 0 ||
	    svm_proto_encode_eof(buf, 1, SVM_PROTO_STDERR, err) != 0 ||
	    svm_proto_encode_exit(buf, 1, &killed, err) != 0 ||
	    svm_proto_encode_error(buf, 2, SVM_PROTO_E_IDENTITY_REFUSED, "uid 0", 5, err) != 0)
		return -1;
	return svm_proto_encode_close(buf, 1, err);
}

static int seed_shutdown(struct svm_proto_buf *buf, struct svm_err *err)
{
	if (svm_proto_encode_error(buf, 0, SVM_PROTO_E_VERSION, "no common version", 17, err) != 0)
		return -1;
	return svm_proto_encode_poweroff(buf, err);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*make)(struct svm_proto_buf *, struct svm_err *);
	} seeds[] = {
	        {"agent_boot", seed_agent_boot},     {"exec", seed_exec},
	        {"host_session", seed_host_session}, {"agent_session", seed_agent_session},
	        {"shutdown", seed_shutdown},
	};
	struct svm_proto_buf buf;
	struct svm_err err;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		svm_proto_buf_init(&buf, mem, sizeof(mem));
		if (seeds[i].make(&buf, &err) != 0) {
			fprintf(stderr, "%s: %s\n", seeds[i].name, err.msg);
			return 1;
		}
		if (write_seed(argv[1], seeds[i].name, &buf) != 0)
			return 1;
	}
	return 0;
}
