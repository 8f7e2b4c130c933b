/* Where a process's cpuset cgroup is, and which CPUs it holds: the OS side of
 * the allocation (task/cgroup with ConstrainCores=yes), which the plan checks
 * Slurm's abstract core list against. cgroup v1 and v2 alike. */
#ifndef SPANK_VM_CGROUP_H
#define SPANK_VM_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#include "spank_vm/cpuset.h"
#include "spank_vm/error.h"
#include "spank_vm/small_file.h"

/* From the text of /proc/PID/cgroup, the directory of its cpuset cgroup below
 * cgroup_root ("/sys/fs/cgroup"): v1 "N:...cpuset...:/path" maps to
 * <root>/cpuset/path, v2 "0::/path" to <root>/path. */
int svm_cgroup_cpuset_dir(const char *proc_cgroup, const char *cgroup_root, char *out, size_t len,
                          struct svm_err *err);

/* Slurm nests steps (and slurmstepd's own "slurm" group) under the job
 * (.../job_N/step_extern/...): cuts the path after its last job_N component,
 * so the directory names the job. A path without one is left alone. */
void svm_cgroup_job_level(char *dir);

/* The CPUs the cgroup directory holds (cpuset.effective_cpus, else
 * cpuset.cpus.effective, else cpuset.cpus). */
int svm_cgroup_read_cpus(const char *dir, struct svm_cpuset *out, struct svm_err *err);

/* All of it for a live process: the CPUs of the job-level cpuset cgroup of pid. */
int svm_cgroup_job_cpus_of_pid(pid_t pid, const char *cgroup_root, struct svm_cpuset *out,
                               struct svm_err *err);

/* The guest's QEMU joins the job's cgroups on its node (issue: Slurm limits,
 * accounts and pins it like a task): the cgroups of the extern step's task,
 * in the hierarchies that limit and account (v1 cpuset, memory, cpu,
 * cpuacct; or the v2 unified one), never freezer or devices. Slurm's
 * proctrack signals the step's freezer container at the job's end, before
 * the plugin's teardown could save or power off the guest; a constrained
 * devices cgroup would deny QEMU /dev/kvm. */
#define SVM_CGROUP_DIRS_MAX 4
struct svm_cgroup_dirs {
	unsigned n;
	char dir[SVM_CGROUP_DIRS_MAX][4096];
};

/* From the text of the task's /proc/PID/cgroup: the directories to join.
 * Each must be inside a Slurm job's cgroup (a "job_N" component). */
int svm_cgroup_guest_dirs(const char *proc_cgroup, const char *cgroup_root,
                          struct svm_cgroup_dirs *out, struct svm_err *err);

/* Moves process pid, all its threads, into every directory (cgroup.procs). */
int svm_cgroup_join(const struct svm_cgroup_dirs *dirs, pid_t pid, struct svm_err *err);

/* Once the guest is gone: removes each directory and its parents up to the
 * job's (and the user's above it, as Slurm does), where empty. Slurm gave
 * up on them when it ended the step, the guest still inside. */
void svm_cgroup_remove_job_dirs(const struct svm_cgroup_dirs *dirs);

/* A task of a step whose guest ran out of memory is recorded as Slurm
 * records a task the kernel's OOM killer ended in its memory cgroup: from
 * slurmstepd's own /proc/self/cgroup, the memory cgroup of its local task
 * number task (v1: the step's memory cgroup's task_N; v2: step_N/user/task_N,
 * slurmstepd being in step_N/slurm). */
int svm_cgroup_task_memory_dir(const char *stepd_proc_cgroup, const char *cgroup_root,
                               unsigned task, char *out, size_t len, struct svm_err *err);

/* dir is a normalised path below cgroup_root, inside a job's cgroup (a
 * "job_N" component), and its last component is "task_N". */
int svm_cgroup_check_task_dir(const char *dir, const char *cgroup_root, struct svm_err *err);

#endif
