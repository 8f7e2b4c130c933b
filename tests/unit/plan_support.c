#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan_support.h"

extern char **environ;

hwloc_topology_t support_synthetic(const char *description)
{
	hwloc_topology_t topo;

	assert_int_equal(hwloc_topology_init(&topo), 0);
	if (hwloc_topology_set_synthetic(topo, description) < 0 || hwloc_topology_load(topo) < 0)
		fail_msg("cannot load synthetic topology \"%s\"", description);
	return topo;
}

const char *support_data_path(const char *relative, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", SVM_TEST_DATA_DIR, relative);

	assert_true(n > 0 && (size_t)n < size);
	return buf;
}

hwloc_topology_t support_fixture(const char *name)
{
	char relative[256], path[4096];
	hwloc_topology_t topo;

	snprintf(relative, sizeof(relative), "topologies/%s", name);
	support_data_path(relative, path, sizeof(path));
	assert_int_equal(hwloc_topology_init(&topo), 0);
	if (hwloc_topology_set_xml(topo, path) < 0 || hwloc_topology_load(topo) < 0)
		fail_msg("cannot load topology fixture %s", path);
	return topo;
}

struct svm_plan_input support_input(hwloc_topology_t topo, const char *cores, const char *cpuset,
                                    uint64_t job_mib)
{
	struct svm_plan_input in = {
	        .abstract_cores = cores,
	        .os_cpuset = cpuset,
	        .topology = topo,
	        .job_mem_mib = job_mib,
	        .hypervisor = SVM_HV_KVM,
	};

	return in;
}

void support_plan(const struct svm_plan_input *in, struct svm_plan *plan)
{
	struct svm_err err = {""};

	if (svm_plan_build(in, plan, &err) < 0)
		fail_msg("plan failed: %s", err.msg);
}

void support_plan_fails_with(const struct svm_plan_input *in, const char *const fragments[])
{
	struct svm_err err = {""};
	struct svm_plan plan;

	if (svm_plan_build(in, &plan, &err) == 0) {
		svm_plan_free(&plan);
		fail_msg("plan succeeded but should have failed");
	}
	/* A failed build leaves nothing behind: all fields zero. */
	assert_null(plan.vcpu_pu);
	assert_null(plan.cells);
	for (size_t i = 0; fragments[i] != NULL; i++)
		if (strstr(err.msg, fragments[i]) == NULL)
			fail_msg("error \"%s\" does not mention \"%s\"", err.msg, fragments[i]);
}

const char *support_list(const struct svm_cpuset *set)
{
	static char buf[1024];

	assert_true(svm_cpuset_format(set, buf, sizeof(buf)) < sizeof(buf));
	return buf;
}

char *support_read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;

	if (f == NULL)
		print_error("cannot open %s: %s\n", path, strerror(errno));
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = (size_t)ftell(f);
	rewind(f);
	text = malloc(len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, len, f), len);
	text[len] = '\0';
	fclose(f);
	return text;
}

void support_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		print_error("cannot create %s: %s\n", path, strerror(errno));
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

struct svm_domain_spec support_spec(bool with_disk)
{
	static const struct svm_share shares[] = {
	        {.host_dir = "/", .tag = "hostroot", .readonly = true},
	        {.host_dir = "/home/alice/job", .tag = "workdir", .readonly = false},
	};
	struct svm_domain_spec spec = {
	        .name = "spank_vm-4242",
	        .uuid = "6f1c1a52-8f0e-4a8e-9d2b-3c4d5e6f7a8b",
	        .owner_node = "node1",
	        .job_id = 4242,
	        .uid = 1000,
	        .gid = 1000,
	        .kernel = "/boot/vmlinuz-6.1.0-18-amd64",
	        .initrd = "/var/lib/spank_vm/initrd-6.1.0-18-amd64.img",
	        .cmdline = "console=ttyS0 quiet spank_vm.agent=org.spank_vm.agent.0",
	        .console_log = "/run/spank_vm/4242/console.log",
	        .agent_socket = "/run/spank_vm/4242/agent.sock",
	        .shares = shares,
	        .nshares = 2,
	};

	if (with_disk)
		spec.disk_image = "/run/spank_vm/4242/overlay.qcow2";
	return spec;
}

static int temp_file(char *path, size_t size, const char *suffix)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd;

	snprintf(path, size, "%s/svm-test-XXXXXX%s", dir, suffix);
	fd = mkstemps(path, (int)strlen(suffix));
	if (fd < 0)
		fail_msg("cannot create a temporary file in %s: %s", dir, strerror(errno));
	return fd;
}

/* Runs argv with stdout and stderr into log_fd; returns the exit status. */
static int run(char *const argv[], int log_fd)
{
	posix_spawn_file_actions_t actions;
	int status = -1, rc;
	pid_t pid;

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
	rc = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (rc != 0)
		fail_msg("cannot run %s: %s (install libvirt-clients)", argv[0], strerror(rc));
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool support_validates(const char *domain_xml)
{
	char doc_path[4096], log_path[4096];
	int doc_fd = temp_file(doc_path, sizeof(doc_path), ".xml");
	int log_fd = temp_file(log_path, sizeof(log_path), ".log");
	char *argv[] = {"virt-xml-validate", doc_path, "domain", NULL};
	int status;

	assert_int_equal(write(doc_fd, domain_xml, strlen(domain_xml)),
	                 (ssize_t)strlen(domain_xml));
	close(doc_fd);
	status = run(argv, log_fd);
	close(log_fd);
	if (status != 0) {
		char *log = support_read_file(log_path);
		print_error("virt-xml-validate exited %d:\n%s\ndocument:\n%s\n", status, log,
		            domain_xml);
		free(log);
	}
	unlink(doc_path);
	unlink(log_path);
	return status == 0;
}
