/* The per-job runtime directory (runtime_dir/<jobid>/): created, recorded into
 * and removed by root, safely even if something in it was planted by a user. */
#ifndef SPANK_VM_RUNTIME_H
#define SPANK_VM_RUNTIME_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/error.h"
#include "spank_vm/request.h"

/* Names inside runtime_dir/<jobid>/ that more than the plugin use. */
#define SVM_JOB_MUX_PID_FILE "mux.pid"
#define SVM_CHECKPOINT_STAGE "checkpoint-stage" /* root's: where libvirt saves (0700) */
#define SVM_GUEST_DIR        "guest"            /* the user's: sockets, console, overlay */
#define SVM_GUEST_MUX_SOCKET "mux.sock"
/* In guest/: "oom.<task pid>", left by a task's proxy when the guest's
 * out-of-memory killer ended a process of the task; the plugin takes it at
 * the task's exit (spank_vm/task_oom.c). */
#define SVM_GUEST_OOM_MARK_PREFIX "oom."
#define SVM_MUX_HELPER            "spank-vm-mux"
#define SVM_JOB_CGROUPS_FILE      "cgroups" /* the job cgroups QEMU joined (provision) */
/* --vm-checkpoint-interval: the job's spank-vm-checkpointer, and its log */
#define SVM_JOB_CHECKPOINTER_PID_FILE "checkpointer.pid"
#define SVM_CHECKPOINTER_HELPER       "spank-vm-checkpointer"
#define SVM_CHECKPOINTER_LOG          "checkpointer.log"

/* Fills buf with runtime_dir/<jobid>. */
int svm_job_dir(const char *runtime_dir, uint32_t job_id, char *buf, size_t len,
                struct svm_err *err);

/* Creates runtime_dir (0755) and runtime_dir/<jobid> (0711, root: the job's
 * user reaches its guest/ subdirectory, lists nothing), tolerating both existing. */
int svm_job_dir_create(const char *runtime_dir, uint32_t job_id, struct svm_err *err);

/* Atomically writes name inside the job dir (temp file, fsync, rename), mode 0600. */
int svm_job_file_write(const char *runtime_dir, uint32_t job_id, const char *name,
                       const char *content, struct svm_err *err);

/* Reads name inside the job dir into buf (NUL-terminated); -1 with errno ENOENT if absent. */
int svm_job_file_read(const char *runtime_dir, uint32_t job_id, const char *name, char *buf,
                      size_t len, struct svm_err *err);

/* The pid in the job's mux.pid while it is still helper_dir's spank-vm-mux
 * (a pid can be reused), else 0. */
pid_t svm_job_mux_pid(const char *runtime_dir, const char *helper_dir, uint32_t job_id);
/* The same for any helper: the pid in pid_file while it is helper_dir's helper. */
pid_t svm_job_helper_pid(const char *runtime_dir, const char *helper_dir, uint32_t job_id,
                         const char *pid_file, const char *helper);

/* spank_vm-<node>-<job>: the libvirt name a job's guest is started under
 * (a restored guest keeps the name it was saved under: spank_vm/domain_owner.h);
 * -1 if it does not fit. */
int svm_domain_default_name(const char *node, uint32_t job, char *buf, size_t len);

/* Takes the job's checkpoint lock (flock on its stage directory), waiting
 * for a save under way: one save at a time, from pausing the mux to resuming
 * it. Returns the fd that holds it (close it to release), or -1 and why. */
int svm_job_checkpoint_lock(const char *runtime_dir, uint32_t job_id, struct svm_err *err);

/* The marker a paused mux leaves while detached from its guest: the guest
 * may be saved (helpers/mux/pause.c). */
#define SVM_MUX_PAUSED_SUFFIX ".paused"
/* Waits up to timeout_s for the mux's marker at marker to exist (present)
 * or to be gone; false on the timeout or when the mux is no more. */
bool svm_mux_wait_marker(const char *marker, pid_t mux, bool present, unsigned timeout_s);

/* Removes runtime_dir/<jobid> and everything in it without following
 * symbolic links. Absent is success. */
int svm_job_dir_remove(const char *runtime_dir, uint32_t job_id, struct svm_err *err);

/* Removes a directory tree under parent_fd without following symbolic links. */
int svm_remove_tree_at(int parent_fd, const char *name, struct svm_err *err);

#endif
