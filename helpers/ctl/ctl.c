/* The commands of spank-vm-ctl. A job is known on a node by its runtime
 * directory (runtime_dir/<jobid>) and by its guest (libvirt domain
 * spank_vm-<node>-<jobid>); each command looks at both. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "ctl.h"
#include "spank_vm/domain_owner.h"
#include "spank_vm/runtime.h"

static void quiet_libvirt(void *opaque, virErrorPtr error)
{
	(void)opaque;
	(void)error;
}

static virConnectPtr connect_libvirt(const struct ctl *c, struct svm_err *err)
{
	virConnectPtr conn;

	virSetErrorFunc(NULL, quiet_libvirt);
	conn = virConnectOpen(c->uri ? c->uri : "qemu:///system");
	if (conn == NULL)
		svm_err_set(err, "cannot connect to libvirt");
	return conn;
}

void ctl_domain_name(const struct ctl *c, uint32_t job, char *buf, size_t len)
{
	if (svm_domain_default_name(c->node, job, buf, len) != 0)
		snprintf(buf, len, "-");
}

static int add_job(uint32_t *jobs, int count, int max, uint32_t job)
{
	for (int i = 0; i < count; i++)
		if (jobs[i] == job)
			return count;
	if (count < max)
		jobs[count++] = job;
	return count;
}

static int compare_jobs(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

int ctl_known_jobs(const struct ctl *c, uint32_t *jobs, int max, struct svm_err *err)
{
	DIR *dir = opendir(c->config.runtime_dir);
	virConnectPtr conn;
	virDomainPtr *doms = NULL;
	int count = 0, ndoms;

	for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
		uint64_t v;

		if (svm_parse_uint(e->d_name, 1, UINT32_MAX - 1, &v, NULL) == 0)
			count = add_job(jobs, count, max, (uint32_t)v);
	}
	if (dir != NULL)
		closedir(dir);
	conn = connect_libvirt(c, err);
	if (conn == NULL)
		return -1;
	ndoms = virConnectListAllDomains(conn, &doms, 0);
	for (int i = 0; i < ndoms; i++) {
		uint32_t job = svm_domain_job_on(doms[i], c->node);

		if (job != 0)
			count = add_job(jobs, count, max, job);
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	qsort(jobs, (size_t)count, sizeof(*jobs), compare_jobs);
	return count;
}

static const char *state_name(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		return "running";
	case VIR_DOMAIN_PAUSED:
		return "paused";
	case VIR_DOMAIN_SHUTDOWN:
		return "stopping";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	default:
		return "other";
	}
}

/* The value of KEY in the job's plan record, or "-". */
static void plan_field(const struct ctl *c, uint32_t job, const char *key, char *out, size_t len)
{
	char text[8192];
	const char *p;
	size_t klen = strlen(key);

	snprintf(out, len, "-");
	if (svm_job_file_read(c->config.runtime_dir, job, "plan", text, sizeof(text), NULL) != 0)
		return;
	for (p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(p + klen + 1, "\n"), p + klen + 1);
			return;
		}
	}
}

static long age_seconds(const struct ctl *c, uint32_t job)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%u", c->config.runtime_dir, job);
	if (stat(path, &st) != 0)
		return -1;
	return (long)(time(NULL) - st.st_mtime);
}

static void print_job(const struct ctl *c, virConnectPtr conn, uint32_t job)
{
	char pus[256], vcpus[16], mem[32];
	virDomainPtr dom = svm_domain_of_job(conn, c->node, job);
	virDomainInfo info;
	const char *state = "no guest";

	if (dom != NULL && virDomainGetInfo(dom, &info) == 0)
		state = state_name(info.state);
	plan_field(c, job, "host_pus", pus, sizeof(pus));
	plan_field(c, job, "vcpus", vcpus, sizeof(vcpus));
	plan_field(c, job, "guest_mib", mem, sizeof(mem));
	printf("%-8u %-10s %-9s %-6s %-14s %-10s %lds\n", job, c->node, state, vcpus, pus, mem,
	       age_seconds(c, job));
	if (dom != NULL)
		virDomainFree(dom);
}

int ctl_list(const struct ctl *c, struct svm_err *err)
{
	uint32_t jobs[4096];
	int n = ctl_known_jobs(c, jobs, 4096, err);
	virConnectPtr conn;

	if (n < 0 || (conn = connect_libvirt(c, err)) == NULL)
		return -1;
	printf("%-8s %-10s %-9s %-6s %-14s %-10s %s\n", "JOB", "NODE", "STATE", "VCPUS", "PUS",
	       "MEM(MiB)", "AGE");
	for (int i = 0; i < n; i++)
		print_job(c, conn, jobs[i]);
	virConnectClose(conn);
	return 0;
}

static void print_file(const struct ctl *c, uint32_t job, const char *name)
{
	char text[16384];

	if (svm_job_file_read(c->config.runtime_dir, job, name, text, sizeof(text), NULL) == 0)
		printf("--- %s\n%s%s", name, text,
		       text[0] && text[strlen(text) - 1] != '\n' ? "\n" : "");
}

int ctl_show(const struct ctl *c, uint32_t job, struct svm_err *err)
{
	virConnectPtr conn = connect_libvirt(c, err);

	if (conn == NULL)
		return -1;
	printf("%-8s %-10s %-9s %-6s %-14s %-10s %s\n", "JOB", "NODE", "STATE", "VCPUS", "PUS",
	       "MEM(MiB)", "AGE");
	print_job(c, conn, job);
	virConnectClose(conn);
	print_file(c, job, "request");
	print_file(c, job, "request.error");
	print_file(c, job, "plan");
	print_file(c, job, "guest.error");
	return 0;
}

int ctl_console(const struct ctl *c, uint32_t job, struct svm_err *err)
{
	char path[4096], cmd_lines[16];
	char *argv[] = {(char *)"tail", (char *)"-n", cmd_lines, path, NULL};
	pid_t pid;
	int status;

	snprintf(path, sizeof(path), "%s/%u/guest/console.log", c->config.runtime_dir, job);
	snprintf(cmd_lines, sizeof(cmd_lines), "%u", c->console_lines);
	if (access(path, R_OK) != 0)
		return svm_err_errno(err, errno, "no console log for job %u (%s)", job, path);
	pid = fork();
	if (pid == 0) {
		execvp("tail", argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return svm_err_errno(err, errno, "tail");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : svm_err_set(err, "tail failed");
}
