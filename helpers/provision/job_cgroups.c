/* The guest in the job's cgroups: started (or restored) paused, its QEMU
 * process, every thread, moves into the cgroups of the job's extern task on
 * this node (spank_vm/cgroup.h says which), its vCPUs and emulator are
 * pinned again as its definition says (joining a cpuset resets a thread's
 * affinity to the whole set), and only then does it run. So Slurm accounts
 * its CPU time and memory to the job (jobacct_gather/cgroup reads the task's
 * cgroups) and the job's memory limit holds it from its first guest page on.
 * The directories are listed in a file of the job's runtime directory: a
 * guest resumed after a checkpoint (a new QEMU) joins them again, and the
 * stop removes them once the guest is gone. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "provision.h"
#include "spank_vm/values.h"

#define CGROUP_ROOT  "/sys/fs/cgroup"
#define QEMU_PID_DIR "/run/libvirt/qemu" /* libvirt's state for qemu:///system */

static int qemu_pid(const char *name, pid_t *pid, struct svm_err *err)
{
	char path[512], text[32];
	uint64_t v;

	snprintf(path, sizeof(path), "%s/%s.pid", QEMU_PID_DIR, name);
	if (svm_read_small_file(path, text, sizeof(text), err) != 0)
		return -1;
	text[strcspn(text, "\n")] = '\0';
	if (svm_parse_uint(text, 2, INT32_MAX, &v, err) != 0)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* The pins of the guest's definition, applied again to its threads. */
static int pin_again(virConnectPtr conn, virDomainPtr dom, struct svm_err *err)
{
	int ncpus = virNodeGetCPUMap(conn, NULL, NULL, 0), nvcpus;
	int maplen = ncpus > 0 ? VIR_CPU_MAPLEN(ncpus) : 0;
	static unsigned char maps[SVM_PLAN_MAX_VCPUS_KVM * VIR_CPU_MAPLEN(SVM_CPUSET_MAX)];

	if (maplen <= 0 || maplen > (int)VIR_CPU_MAPLEN(SVM_CPUSET_MAX))
		return provision_libvirt_error(err, "cannot count the host's CPUs");
	nvcpus = virDomainGetVcpuPinInfo(dom, SVM_PLAN_MAX_VCPUS_KVM, maps, maplen,
	                                 VIR_DOMAIN_AFFECT_LIVE);
	if (nvcpus < 0)
		return provision_libvirt_error(err, "cannot read the guest's vCPU pins");
	for (int v = 0; v < nvcpus; v++)
		if (virDomainPinVcpuFlags(dom, (unsigned)v, maps + (size_t)v * (size_t)maplen,
		                          maplen, VIR_DOMAIN_AFFECT_LIVE) != 0)
			return provision_libvirt_error(err, "cannot pin a vCPU again");
	if (virDomainGetEmulatorPinInfo(dom, maps, maplen, VIR_DOMAIN_AFFECT_LIVE) < 0 ||
	    virDomainPinEmulator(dom, maps, maplen, VIR_DOMAIN_AFFECT_LIVE) != 0)
		return provision_libvirt_error(err, "cannot pin the emulator again");
	return 0;
}

int provision_cgroups_of_task(pid_t task, const char *file, struct svm_cgroup_dirs *dirs,
                              struct svm_err *err)
{
	char path[64], text[8192];
	int fd;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)task);
	if (svm_read_small_file(path, text, sizeof(text), err) != 0 ||
	    svm_cgroup_guest_dirs(text, CGROUP_ROOT, dirs, err) != 0)
		return -1;
	/* Readable by the job's proxy: a guest lost to the job's memory limit
	 * ends the task as out of memory (helpers/exec/oom.c). */
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return svm_err_errno(err, errno, "cannot write %s", file);
	}
	for (unsigned i = 0; i < dirs->n; i++)
		fprintf(f, "%s\n", dirs->dir[i]);
	if (fclose(f) != 0)
		return svm_err_errno(err, errno, "cannot write %s", file);
	return 0;
}

int provision_cgroups_recorded(const char *file, struct svm_cgroup_dirs *dirs, struct svm_err *err)
{
	static char text[SVM_CGROUP_DIRS_MAX * 4200];
	char *line, *save = NULL;

	dirs->n = 0;
	if (svm_read_small_file(file, text, sizeof(text), err) != 0)
		return errno == ENOENT ? 1 : -1;
	for (line = strtok_r(text, "\n", &save); line != NULL && dirs->n < SVM_CGROUP_DIRS_MAX;
	     line = strtok_r(NULL, "\n", &save)) {
		/* Root wrote it; still, only Slurm's job cgroups count. */
		if (strncmp(line, CGROUP_ROOT "/", sizeof(CGROUP_ROOT)) != 0 ||
		    strstr(line, "/job_") == NULL || strstr(line, "/..") != NULL ||
		    strlen(line) >= sizeof(dirs->dir[0]))
			return svm_err_set(err, "%s: not a job cgroup: %.200s", file, line);
		strcpy(dirs->dir[dirs->n++], line);
	}
	return 0;
}

void provision_leave_job_cgroups(const char *file)
{
	static struct svm_cgroup_dirs dirs;
	struct svm_err err;

	if (provision_cgroups_recorded(file, &dirs, &err) != 0)
		return;
	svm_cgroup_remove_job_dirs(&dirs);
	unlink(file);
}

int provision_join_job_cgroups(virConnectPtr conn, const char *name,
                               const struct svm_cgroup_dirs *dirs, struct svm_err *err)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);
	pid_t pid = 0;
	int rc = -1;

	if (dom == NULL)
		return provision_libvirt_error(err, "the new guest is gone");
	if (qemu_pid(name, &pid, err) != 0 || svm_cgroup_join(dirs, pid, err) != 0 ||
	    pin_again(conn, dom, err) != 0)
		goto out;
	if (virDomainResume(dom) != 0) {
		provision_libvirt_error(err, "cannot start the guest's vCPUs");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		virDomainDestroy(dom); /* never a guest outside the job's cgroups */
	virDomainFree(dom);
	return rc;
}
