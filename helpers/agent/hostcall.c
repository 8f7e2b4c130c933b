/* The guest's side of the host calls (helpers/hostcall/README.md). Slurm's
 * commands cannot work in a guest: it has no network and no munge socket.
 * With spank_vm.hostcall the agent puts a stand-in for each Slurm command
 * in the guest's own root, which asks the host to run the command in the
 * job: spank-vm-exec, through a spank-vm-mux that runs as the job's user on
 * the host call port. On the host, spank-vm-hostcall runs it as that user. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent.h"
#include "spank_vm/domain_xml.h"

#define RUN_DIR       "/run/spank_vm"
#define CALL_SOCKET   SVM_GUEST_HOSTCALL_SOCKET
#define PORT_WAIT_MS  5000
#define V9FS_MAGIC_FS 0x01021997
/* How long a stand-in waits for the mux's socket: the host connects its
 * end right after the guest's READY, in well under a second. */
#define STANDIN_WAIT_S "30"
/* The host's end dying hangs the port up at once; the heartbeat catches only
 * a hung one. Generous: under busy-polling ranks this mux itself runs late. */
#define HOST_SILENCE_S "120"

/* 'text' for /bin/sh: every ' becomes '\'' */
static int put_quoted(FILE *f, const char *text)
{
	if (fputc('\'', f) == EOF)
		return -1;
	for (const char *p = text; *p != '\0'; p++)
		if ((*p == '\'' ? fputs("'\\''", f) : fputc(*p, f)) == EOF)
			return -1;
	return fputc('\'', f) == EOF ? -1 : 0;
}

static int write_standin(FILE *f, const struct agent_config *config, const char *name)
{
	char exec_path[AGENT_PATH_CAP + 32];

	snprintf(exec_path, sizeof(exec_path), "%s/spank-vm-exec", config->hostcall_helpers);
	if (fprintf(f,
	            "#!/bin/sh\n# spank_vm: this guest has no network: %s runs on the host, "
	            "in the job, as you.\nexec ",
	            name) < 0 ||
	    put_quoted(f, exec_path) != 0 ||
	    fprintf(f, " --socket " CALL_SOCKET " --wait-timeout " STANDIN_WAIT_S " -- %s \"$@\"\n",
	            name) < 0)
		return -1;
	return 0;
}

/* Written under a temporary name and renamed over the guest's copy of the
 * command (the root is the guest's overlay or its own disk). */
static int install_standin(const struct agent_config *config, const char *name, struct svm_err *err)
{
	char path[AGENT_PATH_CAP + 64], tmp[AGENT_PATH_CAP + 80];
	FILE *f;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", config->hostcall_commands, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.spank_vm", config->hostcall_commands, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0755);
	if (fd < 0)
		return svm_err_errno(err, errno, "create %s", tmp);
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return svm_err_errno(err, errno, "fdopen %s", tmp);
	}
	rc = write_standin(f, config, name);
	if (fclose(f) != 0 || rc != 0 || fchmodat(AT_FDCWD, tmp, 0755, 0) != 0 ||
	    rename(tmp, path) != 0) {
		rc = svm_err_errno(err, errno, "write %s", path);
		unlink(tmp);
	}
	return rc;
}

/* Never into a 9p share: that would write on the host. */
static int install_standins(const struct agent_config *config, struct svm_err *err)
{
	struct statfs fs;

	if (mkdir(config->hostcall_commands, 0755) != 0 && errno != EEXIST)
		return svm_err_errno(err, errno, "mkdir %s", config->hostcall_commands);
	if (statfs(config->hostcall_commands, &fs) != 0)
		return svm_err_errno(err, errno, "statfs %s", config->hostcall_commands);
	if (fs.f_type == V9FS_MAGIC_FS)
		return svm_err_set(err, "%s is a host share: no stand-ins written there",
		                   config->hostcall_commands);
	for (const char *const *c = agent_slurm_commands; *c != NULL; c++)
		if (install_standin(config, *c, err) != 0)
			return -1;
	return 0;
}

static void exec_mux(const struct agent_config *config, char *port_dev)
{
	static char *const env[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char exe[AGENT_PATH_CAP + 32], uid[16], gid[16];
	char *argv[] = {exe,
	                "--foreground",
	                "--uid",
	                uid,
	                "--gid",
	                gid,
	                "--agent-device",
	                port_dev,
	                "--listen",
	                CALL_SOCKET,
	                "--ready-timeout",
	                "600",
	                "--heartbeat-timeout",
	                HOST_SILENCE_S,
	                NULL};

	snprintf(exe, sizeof(exe), "%s/spank-vm-mux", config->hostcall_helpers);
	snprintf(uid, sizeof(uid), "%u", config->hostcall_uid);
	snprintf(gid, sizeof(gid), "%u", config->hostcall_gid);
	setsid();
	execve(exe, argv, env);
	agent_log("cannot execute %s: %s", exe, strerror(errno));
	_exit(127);
}

/* The mux drops to the user before it opens anything: the port and the
 * socket's directory are theirs. */
static int start_mux(const struct agent_config *config, struct svm_err *err)
{
	char dev[96];
	pid_t pid;

	if (agent_find_port(SVM_HOSTCALL_CHANNEL_NAME, PORT_WAIT_MS, dev, sizeof(dev), err) != 0)
		return -1;
	if (chown(dev, config->hostcall_uid, config->hostcall_gid) != 0)
		return svm_err_errno(err, errno, "chown %s", dev);
	if ((mkdir(RUN_DIR, 0755) != 0 && errno != EEXIST) ||
	    chown(RUN_DIR, config->hostcall_uid, config->hostcall_gid) != 0)
		return svm_err_errno(err, errno, "prepare %s", RUN_DIR);
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid == 0)
		exec_mux(config, dev);
	agent_log("host calls: mux pid %d on %s", (int)pid, dev);
	return 0;
}

void agent_hostcall_start(const struct agent_config *config)
{
	char exec_path[AGENT_PATH_CAP + 32];
	struct svm_err err = {""};

	if (config->hostcall_commands[0] == '\0')
		return;
	snprintf(exec_path, sizeof(exec_path), "%s/spank-vm-exec", config->hostcall_helpers);
	if (access(exec_path, X_OK) != 0) {
		agent_log("host calls unavailable: this guest has no %s, Slurm commands stay "
		          "as they are",
		          exec_path);
		return;
	}
	if (install_standins(config, &err) != 0 || start_mux(config, &err) != 0)
		agent_log("host calls unavailable: %s", err.msg);
}
