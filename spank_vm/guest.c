/* The guest's lifetime on a node, as root: started by the extern step (it
 * knows the job's cores and memory), stopped when the extern step ends, and
 * stopped again by the epilog in case the extern step never got to it. The
 * work is done by spank-vm-provision; this file only builds its command
 * lines and records failures where the job's tasks will find them. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

#define PROVISION_HELPER "spank-vm-provision"
#define START_TIMEOUT_S  120
#define STOP_TIMEOUT_S   60
#define GRACEFUL_STOP_S  "10"

int svm_guest_domain_name(uint32_t job_id, char *buf, size_t len)
{
	return svm_domain_default_name(svm_plugin.node_name, job_id, buf, len);
}

static void job_path(uint32_t job_id, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u/%s", svm_plugin.config.runtime_dir, job_id, name);
}

/* runtime_dir/<jobid>/guest: the user's own (QEMU and the mux run as the user). */
static int make_guest_dir(uint32_t job_id, uid_t uid, gid_t gid, char *dir, size_t len)
{
	job_path(job_id, SVM_GUEST_DIR, dir, len);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		svm_error("job %u: cannot create %s: %s", job_id, dir, strerror(errno));
		return -1;
	}
	if (lchown(dir, uid, gid) != 0) {
		svm_error("job %u: cannot hand %s to uid %u: %s", job_id, dir, (unsigned)uid,
		          strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes the first line of text into the job's directory as file. */
static void write_task_note(uint32_t job_id, const char *file, const char *text)
{
	char line[1024], path[SVM_PATH_MAX + 32];
	struct svm_err err;

	snprintf(line, sizeof(line), "%.*s\n", (int)strcspn(text, "\n"), text);
	if (svm_job_file_write(svm_plugin.config.runtime_dir, job_id, file, line, &err) != 0) {
		svm_error("job %u: %s", job_id, err.msg);
		return;
	}
	/* The job's tasks (the user's) print it: readable, in a 0711 directory. */
	job_path(job_id, file, path, sizeof(path));
	if (chmod(path, 0644) != 0)
		svm_error("job %u: chmod %s: %s", job_id, path, strerror(errno));
}

static void record_failure(uint32_t job_id, const char *output)
{
	svm_error("job %u: no guest: %.*s", job_id, (int)strcspn(output, "\n"), output);
	write_task_note(job_id, SVM_GUEST_ERROR_FILE, output);
}

/* What provision says the user should know ("notice: ..."), for the batch
 * step to print (helpers/exec/main.c). */
static void record_notice(uint32_t job_id, const char *output)
{
	const char *notice = strstr(output, "\nnotice: ");

	if (notice == NULL)
		return;
	notice += strlen("\nnotice: ");
	svm_info("job %u: %.*s", job_id, (int)strcspn(notice, "\n"), notice);
	write_task_note(job_id, SVM_GUEST_NOTICE_FILE, notice);
}

struct start_args {
	char mem[32], reserve[32], min_guest[32], pid[32], owner[48], job[16], node[16];
	char name[96], dir[SVM_PATH_MAX + 32], plan[SVM_PATH_MAX + 32];
	char stage[SVM_PATH_MAX + 32];
	char task[16], cgroups[SVM_PATH_MAX + 32];
};

struct argv_builder {
	const char *argv[64];
	size_t n;
	bool overflow;
};

static void add(struct argv_builder *b, const char *arg)
{
	if (b->n + 1 >= sizeof(b->argv) / sizeof(b->argv[0])) {
		b->overflow = true;
		return;
	}
	b->argv[b->n++] = arg;
	b->argv[b->n] = NULL;
}

static void add_pair(struct argv_builder *b, const char *option, const char *value)
{
	add(b, option);
	add(b, value);
}

/* A directory the guest may mount read-write over its own tree: absolute,
 * not the root or a kernel file system, and not already inside `covered`. */
static bool shareable(const char *dir, const char *covered)
{
	static const char *const kernel_fs[] = {"/proc", "/sys", "/dev"};
	size_t n;

	if (dir[0] != '/' || strcmp(dir, "/") == 0 || svm_check_abs_path(dir, NULL) != 0)
		return false;
	for (size_t i = 0; i < sizeof(kernel_fs) / sizeof(kernel_fs[0]); i++) {
		n = strlen(kernel_fs[i]);
		if (strncmp(dir, kernel_fs[i], n) == 0 && (dir[n] == '/' || dir[n] == '\0'))
			return false;
	}
	if (covered == NULL || covered[0] == '\0')
		return true;
	n = strlen(covered);
	return !(strncmp(dir, covered, n) == 0 && (dir[n] == '/' || dir[n] == '\0'));
}

/* The host's directories and Slurm's commands, in guests that are never saved. */
static void add_host_links(const struct svm_guest_job *job, enum svm_hypervisor hv,
                           struct argv_builder *b)
{
	const struct svm_config *cfg = &svm_plugin.config;

	/* Xen guests have no virtio-serial for the host call port. */
	if (cfg->slurm_commands[0] != '\0' && hv != SVM_HV_XEN)
		add_pair(b, "--slurm-commands", cfg->slurm_commands);
	if (shareable(job->home, NULL))
		add_pair(b, "--guest-share", job->home);
	if (shareable(job->workdir, job->home))
		add_pair(b, "--guest-share", job->workdir);
}

/* --vm-checkpoint: a guest QEMU can save (no 9p share; no host call port,
 * whose host end would not survive the save), restored from the user's
 * directory when a checkpoint of this job is there. libvirt writes and reads
 * the state only in the job's root-owned stage. */
static void add_checkpoint_args(const struct svm_guest_job *job, struct start_args *a,
                                struct argv_builder *b)
{
	job_path(job->job_id, SVM_CHECKPOINT_STAGE, a->stage, sizeof(a->stage));
	add_pair(b, "--checkpoint-stage", a->stage);
	add_pair(b, "--checkpoint", job->req->checkpoint_dir);
	if (job->req->checkpoint_fresh)
		add(b, "--checkpoint-fallback-fresh");
}

static int build_start_argv(const struct svm_guest_job *job, struct start_args *a,
                            struct argv_builder *b)
{
	const struct svm_config *cfg = &svm_plugin.config;
	enum svm_hypervisor hv =
	        job->req->hypervisor != SVM_HV_UNSET ? job->req->hypervisor : cfg->hypervisor;

	snprintf(a->mem, sizeof(a->mem), "%" PRIu64, job->mem_mib);
	snprintf(a->reserve, sizeof(a->reserve), "%" PRIu64, cfg->mem_reserve_mib);
	snprintf(a->min_guest, sizeof(a->min_guest), "%" PRIu64, cfg->min_guest_mib);
	snprintf(a->pid, sizeof(a->pid), "%d", (int)job->cgroup_pid);
	snprintf(a->owner, sizeof(a->owner), "%u:%u", (unsigned)job->uid, (unsigned)job->gid);
	snprintf(a->job, sizeof(a->job), "%u", job->job_id);
	snprintf(a->node, sizeof(a->node), "%u", job->node_index);
	job_path(job->job_id, SVM_PLAN_FILE_NAME, a->plan, sizeof(a->plan));
	add(b, PROVISION_HELPER);
	add(b, "start");
	add_pair(b, "--cores", job->cores);
	add_pair(b, "--cgroup-pid", a->pid);
	/* QEMU joins the job's cgroups: Slurm limits and accounts it (issue 8). */
	if (job->extern_task > 0) {
		snprintf(a->task, sizeof(a->task), "%d", (int)job->extern_task);
		job_path(job->job_id, SVM_JOB_CGROUPS_FILE, a->cgroups, sizeof(a->cgroups));
		add_pair(b, "--job-task", a->task);
		add_pair(b, "--job-cgroups-file", a->cgroups);
	}
	add_pair(b, "--mem", a->mem);
	add_pair(b, "--reserve", a->reserve);
	add_pair(b, "--min-guest", a->min_guest);
	add_pair(b, "--hypervisor", svm_hypervisor_name(hv));
	add_pair(b, "--hugepages", svm_hugepages_name(job->req->hugepages));
	add_pair(b, "--name", a->name);
	/* Whose guest it is, in its metadata: a restored one keeps its name. */
	add_pair(b, "--job", a->job);
	add_pair(b, "--node", svm_plugin.node_name);
	add_pair(b, "--owner", a->owner);
	add_pair(b, "--dir", a->dir);
	add_pair(b, "--out", a->plan);
	add_pair(b, "--image-dir", cfg->image_dir);
	if (cfg->kernel[0] != '\0')
		add_pair(b, "--kernel", cfg->kernel);
	if (cfg->initrd[0] != '\0')
		add_pair(b, "--initrd", cfg->initrd);
	/* The built-in guest boots the host's root; any other name is a catalog entry. */
	if (strcmp(job->req->image, SVM_BUILTIN_IMAGE) != 0)
		add_pair(b, "--image", job->req->image);
	if (!cfg->hard_limit)
		add(b, "--no-hard-limit");
	if (job->req->net == SVM_NET_CLUSTER) {
		add_pair(b, "--net-bridge", cfg->net_bridge);
		add_pair(b, "--net-cidr", cfg->net_cidr);
		add_pair(b, "--net-job", a->job);
		add_pair(b, "--net-node", a->node);
		add_pair(b, "--net-hosts", job->net_hosts);
	}
	if (job->req->checkpoint_dir[0] != '\0')
		add_checkpoint_args(job, a, b);
	else
		add_host_links(job, hv, b);
	return b->overflow ? -1 : 0;
}

/* Why a --vm-net=cluster job cannot have its network here, or NULL. */
static const char *net_problem(const struct svm_guest_job *job)
{
	if (job->req->net != SVM_NET_CLUSTER)
		return NULL;
	if (svm_plugin.config.net_bridge[0] == '\0')
		return "--vm-net=cluster: this node has no guest network (its plugstack.conf "
		       "sets no net_bridge)";
	if (job->net_hosts[0] == '\0')
		return "--vm-net=cluster: the job's node names are unknown here (see slurmd's log)";
	return NULL;
}

int svm_guest_start(const struct svm_guest_job *job)
{
	struct argv_builder b = {.n = 0};
	struct start_args a = {0};
	const char *problem = net_problem(job);
	char output[4096];

	if (problem != NULL) {
		record_failure(job->job_id, problem);
		return -1;
	}
	if (svm_guest_domain_name(job->job_id, a.name, sizeof(a.name)) != 0 ||
	    make_guest_dir(job->job_id, job->uid, job->gid, a.dir, sizeof(a.dir)) != 0 ||
	    build_start_argv(job, &a, &b) != 0) {
		record_failure(job->job_id, "cannot prepare the guest's directory");
		return -1;
	}
	if (svm_run_helper(PROVISION_HELPER, (char *const *)b.argv, START_TIMEOUT_S, output,
	                   sizeof(output)) != 0) {
		record_failure(job->job_id, output);
		return -1;
	}
	svm_verbose("job %u: %.*s", job->job_id, (int)strcspn(output, "\n"), output);
	record_notice(job->job_id, output);
	if (svm_guest_start_mux(job) != 0)
		return -1;
	svm_checkpointer_start(job);
	return 0;
}

void svm_guest_stop(uint32_t job_id)
{
	char name[96], job[16], dir[SVM_PATH_MAX + 32], output[1024], cgroups[SVM_PATH_MAX + 32];
	const char *argv[] = {PROVISION_HELPER,
	                      "stop",
	                      "--name",
	                      name,
	                      "--job",
	                      job,
	                      "--node",
	                      svm_plugin.node_name,
	                      "--timeout",
	                      GRACEFUL_STOP_S,
	                      "--job-cgroups-file",
	                      cgroups,
	                      NULL};
	struct svm_err err;
	int parent;

	if (svm_guest_domain_name(job_id, name, sizeof(name)) != 0)
		return;
	snprintf(job, sizeof(job), "%u", job_id);
	job_path(job_id, SVM_JOB_CGROUPS_FILE, cgroups, sizeof(cgroups));
	/* The mux first: it powers the guest off (POWEROFF) as it goes. */
	svm_guest_stop_mux(job_id);
	if (svm_run_helper(PROVISION_HELPER, (char *const *)argv, STOP_TIMEOUT_S, output,
	                   sizeof(output)) != 0)
		svm_error("job %u: stopping %s: %.*s", job_id, name, (int)strcspn(output, "\n"),
		          output);
	/* The guest directory is the user's: remove it without following links. */
	snprintf(dir, sizeof(dir), "%s/%u", svm_plugin.config.runtime_dir, job_id);
	parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return;
	if (svm_remove_tree_at(parent, SVM_GUEST_DIR, &err) != 0)
		svm_error("job %u: removing the guest directory: %s", job_id, err.msg);
	close(parent);
}

/* ---- the mux: one per guest, the job's user's end of the agent channel ---- */

static int open_ready_file(const char *guest_dir)
{
	char path[SVM_PATH_MAX + 48];

	/* O_EXCL + O_NOFOLLOW: the directory is the user's, a planted link must
	 * not redirect what root opens. */
	snprintf(path, sizeof(path), "%s/%s", guest_dir, SVM_GUEST_READY_FILE);
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

/* Grandchild side: only async-signal-safe calls (slurmstepd has threads). */
static void exec_detached(char *const argv[], int fd3)
{
	static char *const env[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	int null_fd = open("/dev/null", O_RDWR);

	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(null_fd, STDERR_FILENO) < 0 || dup2(fd3 >= 0 ? fd3 : null_fd, 3) < 0)
		_exit(126);
	close_range(4, ~0U, 0);
	execve(argv[0], argv, env);
	_exit(127);
}

pid_t svm_spawn_detached(char *const argv[], int fd3)
{
	int pipe_fds[2];
	pid_t child, pid = -1;

	if (pipe2(pipe_fds, O_CLOEXEC) != 0)
		return -1;
	child = fork();
	if (child == 0) {
		pid_t grandchild;

		setsid();
		grandchild = fork();
		if (grandchild == 0)
			exec_detached(argv, fd3);
		if (write(pipe_fds[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild))
			_exit(1);
		_exit(0);
	}
	close(pipe_fds[1]);
	if (child > 0 && read(pipe_fds[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -1;
	close(pipe_fds[0]);
	while (child > 0 && waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	return pid;
}

int svm_guest_start_mux(const struct svm_guest_job *job)
{
	char dir[SVM_PATH_MAX + 32], agent[SVM_PATH_MAX + 48], listen[SVM_PATH_MAX + 48];
	char log[SVM_PATH_MAX + 48], exe[SVM_PATH_MAX + 32], uid[16], gid[16], timeout[16];
	char console[SVM_PATH_MAX + 48], hostcall[SVM_PATH_MAX + 48];
	char pid_text[16], heartbeat_timeout[16], job_text[16];
	struct svm_err err;
	int ready_fd;
	pid_t pid;

	job_path(job->job_id, SVM_GUEST_DIR, dir, sizeof(dir));
	snprintf(agent, sizeof(agent), "%s/agent.sock", dir);
	snprintf(listen, sizeof(listen), "%s/%s", dir, SVM_GUEST_MUX_SOCKET);
	snprintf(log, sizeof(log), "%s/mux.log", dir);
	snprintf(console, sizeof(console), "%s/console.log", dir);
	snprintf(hostcall, sizeof(hostcall), "%s/hostcall.sock", dir);
	snprintf(exe, sizeof(exe), "%s/%s", svm_plugin.config.helper_dir, SVM_MUX_HELPER);
	snprintf(uid, sizeof(uid), "%u", (unsigned)job->uid);
	snprintf(job_text, sizeof(job_text), "%u", job->job_id);
	snprintf(gid, sizeof(gid), "%u", (unsigned)job->gid);
	snprintf(timeout, sizeof(timeout), "%u", (unsigned)svm_plugin.config.boot_timeout_s);
	/* A guest that crashes closes its channel at once; this bounds only a hung one. */
	snprintf(heartbeat_timeout, sizeof(heartbeat_timeout), "%u",
	         (unsigned)svm_plugin.config.heartbeat_timeout_s);
	{
		char *argv[] = {exe,
		                "--foreground",
		                "--uid",
		                uid,
		                "--gid",
		                gid,
		                "--agent-socket",
		                agent,
		                "--listen",
		                listen,
		                "--ready-fd",
		                "3",
		                "--ready-timeout",
		                timeout,
		                "--log",
		                log,
		                "--console",
		                console,
		                "--heartbeat-timeout",
		                heartbeat_timeout,
		                NULL,
		                NULL,
		                NULL,
		                NULL,
		                NULL,
		                NULL,
		                NULL,
		                NULL,
		                NULL};
		/* Room for two optional pairs each of the host call port and
		 * of the requeue hold, and the final NULL. */
		size_t at = sizeof(argv) / sizeof(argv[0]) - 9;

		/* The socket exists only when spank-vm-provision made the port. */
		if (svm_plugin.config.slurm_commands[0] != '\0' &&
		    faccessat(AT_FDCWD, hostcall, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			argv[at++] = "--hostcall-socket";
			argv[at++] = hostcall;
			argv[at++] = "--slurm-commands";
			argv[at++] = svm_plugin.config.slurm_commands;
		}
		/* A checkpoint job has no host call port: these slots are free. */
		if (job->req->checkpoint_dir[0] != '\0') {
			const char *conf = svm_slurm_conf_path();

			argv[at++] = "--hold-on-requeue";
			argv[at++] = job_text;
			if (conf != NULL) {
				argv[at++] = "--slurm-conf";
				argv[at++] = (char *)conf;
			}
		}

		ready_fd = open_ready_file(dir);
		if (ready_fd < 0) {
			record_failure(job->job_id, "cannot create the guest's ready file");
			return -1;
		}
		pid = svm_spawn_detached(argv, ready_fd);
		close(ready_fd);
	}
	if (pid <= 0) {
		record_failure(job->job_id, "cannot start spank-vm-mux");
		return -1;
	}
	snprintf(pid_text, sizeof(pid_text), "%d\n", (int)pid);
	if (svm_job_file_write(svm_plugin.config.runtime_dir, job->job_id, SVM_JOB_MUX_PID_FILE,
	                       pid_text, &err) != 0)
		svm_error("job %u: %s", job->job_id, err.msg);
	return 0;
}

/* The pid root recorded, checked to still be our mux before it is signalled. */
void svm_guest_stop_mux(uint32_t job_id)
{
	pid_t pid = svm_job_mux_pid(svm_plugin.config.runtime_dir, svm_plugin.config.helper_dir,
	                            job_id);

	if (pid > 0)
		kill(pid, SIGTERM);
}
