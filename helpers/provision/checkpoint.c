/* Checkpoints of a guest (the format: helpers/checkpoint*.c).
 *
 * A guest that may be checkpointed is started with --checkpoint-stage STAGE:
 * a directory of root's (0700) where libvirt writes and reads the saved
 * state, and where the guest's shape (the manifest without its files) is
 * recorded with the digest of the image it booted. Saving stops the guest
 * into STAGE through libvirt; a child running as the job's user then copies
 * the state and the disk overlay into the user's checkpoint directory.
 * Restoring runs the other way before libvirt restores the guest, re-pinned
 * to the new allocation. Root never opens a path inside the user's
 * directories, and libvirt never reads a file the user could still change. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "provision.h"
#include "spank_vm/checkpoint_store.h"

#define STAGE_SHAPE  "shape"
#define STAGE_MEMORY "memory"
#define OVERLAY_NAME "disk.qcow2"
/* An empty file's SHA-256: the files of a shape, which has none yet. */
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- the stage directory (root's) ---- */

static int open_stage(const struct provision_opts *o, struct svm_err *err)
{
	struct stat st;
	int fd;

	if (mkdir(o->checkpoint_stage, 0700) != 0 && errno != EEXIST)
		return svm_err_errno(err, errno, "cannot create %s", o->checkpoint_stage);
	fd = open(o->checkpoint_stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", o->checkpoint_stage);
	if (fstat(fd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 0077) != 0) {
		close(fd);
		return svm_err_set(err, "%s must be root's and private (0700)",
		                   o->checkpoint_stage);
	}
	return fd;
}

static int write_stage_file(int stage, const char *name, const char *text, struct svm_err *err)
{
	char tmp[64];
	int fd, rc = 0;
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	unlinkat(stage, tmp, 0);
	fd = openat(stage, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return svm_err_errno(err, errno, "cannot create %s", tmp);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
		rc = svm_err_errno(err, errno, "cannot write %s", tmp);
	close(fd);
	if (rc == 0 && renameat(stage, tmp, stage, name) != 0)
		rc = svm_err_errno(err, errno, "cannot rename %s", tmp);
	return rc;
}

static int read_stage_file(int stage, const char *name, char *buf, size_t cap, struct svm_err *err)
{
	int fd = openat(stage, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return svm_err_errno(err, errno, "%s", name);
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0 || (size_t)n == cap - 1)
		return svm_err_set(err, "cannot read %s whole", name);
	buf[n] = '\0';
	return 0;
}

/* ---- the image's digest ---- */

static int image_digest(const struct provision_opts *o, const struct svm_image *image, char *hex,
                        struct svm_err *err)
{
	char path[SVM_PATH_MAX * 2 + 2];
	struct svm_ckpt_file file;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", o->image_dir, image->disk);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "image %s: %s", image->name, path);
	rc = svm_ckpt_copy(fd, -1, &file, err);
	close(fd);
	if (rc == 0)
		memcpy(hex, file.sha256, sizeof(file.sha256));
	return rc;
}

/* ---- work done as the job's user ---- */

struct user_work {
	const struct provision_opts *o;
	struct svm_ckpt_manifest *m;
	int memory_fd; /* the stage's state file, opened by root */
	bool restore;
};

/* Opens the guest directory's overlay as the user. */
static int open_overlay(const struct provision_opts *o, int flags, struct svm_err *err)
{
	int dir = open(o->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), fd;

	if (dir < 0)
		return svm_err_errno(err, errno, "cannot open %s", o->dir);
	fd = openat(dir, OVERLAY_NAME, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		svm_err_errno(err, errno, "%s/%s", o->dir, OVERLAY_NAME);
	close(dir);
	return fd;
}

static int copy_out(int parent, struct user_work *w, struct svm_err *err)
{
	int partial = -1, fd = -1, overlay = -1, rc = -1;

	if (svm_ckpt_begin(parent, w->m->job_id, &partial, err) != 0)
		return -1;
	if (svm_ckpt_create_file(partial, SVM_CKPT_FILE_MEMORY, &fd, err) != 0 ||
	    svm_ckpt_copy(w->memory_fd, fd, &w->m->files[SVM_CKPT_FILE_MEMORY], err) != 0)
		goto out;
	close(fd);
	fd = -1;
	overlay = open_overlay(w->o, O_RDONLY, err);
	if (overlay < 0 || svm_ckpt_create_file(partial, SVM_CKPT_FILE_DISK, &fd, err) != 0 ||
	    svm_ckpt_copy(overlay, fd, &w->m->files[SVM_CKPT_FILE_DISK], err) != 0)
		goto out;
	w->m->saved_at = (int64_t)time(NULL);
	rc = svm_ckpt_commit(parent, partial, w->m, err);
	partial = -1;
out:
	if (fd >= 0)
		close(fd);
	if (overlay >= 0)
		close(overlay);
	if (partial >= 0)
		close(partial);
	return rc;
}

/* Returns 1 when there is no checkpoint to restore. */
static int copy_in(int parent, struct user_work *w, struct svm_err *err)
{
	int dir = -1, overlay = -1, rc;

	rc = svm_ckpt_open(parent, w->m->job_id, &dir, w->m, err);
	if (rc != 0)
		return rc;
	rc = -1;
	overlay = open_overlay(w->o, O_WRONLY | O_CREAT | O_TRUNC, err);
	if (overlay >= 0 &&
	    svm_ckpt_copy_verified(dir, SVM_CKPT_FILE_MEMORY, w->m, w->memory_fd, err) == 0 &&
	    svm_ckpt_copy_verified(dir, SVM_CKPT_FILE_DISK, w->m, overlay, err) == 0)
		rc = 0;
	if (overlay >= 0)
		close(overlay);
	close(dir);
	return rc;
}

static int user_work(struct user_work *w, struct svm_err *err)
{
	int parent = open(w->o->checkpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (parent < 0)
		return svm_err_errno(err, errno, "checkpoint directory %s", w->o->checkpoint);
	rc = w->restore ? copy_in(parent, w, err) : copy_out(parent, w, err);
	close(parent);
	return rc;
}

/* Reads exactly len bytes (a pipe hands over at most its buffer at once). */
static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Runs user_work() in a child that has become the job's user; its result
 * (status, message, and the manifest it read) comes back through a pipe. */
static int as_user(struct user_work *w, struct svm_err *err)
{
	int pipe_fd[2], status, rc;
	struct svm_err child_err = {""};
	pid_t pid;

	if (pipe2(pipe_fd, O_CLOEXEC) != 0)
		return svm_err_errno(err, errno, "pipe");
	pid = fork();
	if (pid < 0)
		return svm_err_errno(err, errno, "fork");
	if (pid == 0) {
		close(pipe_fd[0]);
		if (setgroups(0, NULL) != 0 || setgid(w->o->gid) != 0 || setuid(w->o->uid) != 0)
			rc = svm_err_errno(&child_err, errno, "cannot become uid %u",
			                   (unsigned)w->o->uid);
		else
			rc = user_work(w, &child_err);
		if (write(pipe_fd[1], &child_err, sizeof(child_err)) != sizeof(child_err) ||
		    write(pipe_fd[1], w->m, sizeof(*w->m)) != sizeof(*w->m))
			_exit(3);
		_exit(rc == 1 ? 1 : rc == 0 ? 0 : 2);
	}
	close(pipe_fd[1]);
	rc = read_all(pipe_fd[0], err, sizeof(*err)) == 0 &&
	                     read_all(pipe_fd[0], w->m, sizeof(*w->m)) == 0
	             ? 0
	             : -1;
	close(pipe_fd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return svm_err_errno(err, errno, "waitpid");
	if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) > 2)
		return svm_err_set(err, "the checkpoint's copy as uid %u failed",
		                   (unsigned)w->o->uid);
	return WEXITSTATUS(status) == 0 ? 0 : WEXITSTATUS(status) == 1 ? 1 : -1;
}

/* ---- start: the shape, and restoring ---- */

int provision_checkpoint_check(const struct provision_opts *o, struct svm_err *err)
{
	if (o->checkpoint_stage == NULL)
		return o->checkpoint == NULL
		               ? 0
		               : svm_err_set(err, "--checkpoint needs --checkpoint-stage");
	if (o->image == NULL)
		return svm_err_set(err,
		                   "a guest that may be checkpointed boots a site image (--image)");
	if (o->nshares > 0 || o->nguest_shares > 0)
		return svm_err_set(err,
		                   "a guest with host shares (9p) cannot be checkpointed: QEMU "
		                   "cannot migrate a mounted 9p file system");
	if (o->job_id == 0 || o->node == NULL)
		return svm_err_set(err, "--checkpoint-stage needs --job and --node");
	return 0;
}

int provision_checkpoint_record_shape(const struct provision_opts *o, const struct svm_image *image,
                                      const struct svm_plan *plan, struct svm_ckpt_manifest *m,
                                      struct svm_err *err)
{
	char *text = malloc(SVM_CKPT_MANIFEST_MAX);
	int stage = -1, rc = -1;

	if (text == NULL)
		return svm_err_set(err, "out of memory");
	if (plan != NULL && svm_ckpt_manifest_set_shape(m, plan, err) != 0)
		goto out;
	m->job_id = o->job_id;
	snprintf(m->node, sizeof(m->node), "%s", o->node);
	snprintf(m->image, sizeof(m->image), "%s", image->name);
	for (int i = 0; i < SVM_CKPT_NFILES; i++) {
		m->files[i].size = 0;
		strcpy(m->files[i].sha256, SHA256_EMPTY);
	}
	if (plan != NULL && image_digest(o, image, m->image_digest, err) != 0)
		goto out;
	stage = open_stage(o, err);
	if (stage < 0 || svm_ckpt_manifest_encode(m, text, SVM_CKPT_MANIFEST_MAX, err) != 0 ||
	    write_stage_file(stage, STAGE_SHAPE, text, err) != 0)
		goto out;
	rc = 0;
out:
	if (stage >= 0)
		close(stage);
	free(text);
	return rc;
}

int provision_restore_load(const struct provision_opts *o, const struct svm_image *image,
                           const struct svm_plan *alloc, struct svm_plan *restored,
                           struct svm_ckpt_manifest *m, char *memory_path, size_t len,
                           struct svm_err *err)
{
	struct user_work w = {.o = o, .m = m, .restore = true};
	char digest[SVM_CKPT_SHA256_HEX + 1];
	int stage = open_stage(o, err), rc = -1;

	if (stage < 0)
		return -1;
	snprintf(memory_path, len, "%s/%s", o->checkpoint_stage, STAGE_MEMORY);
	unlinkat(stage, STAGE_MEMORY, 0);
	w.memory_fd = openat(stage, STAGE_MEMORY,
	                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w.memory_fd < 0) {
		svm_err_errno(err, errno, "cannot create %s", memory_path);
		goto out;
	}
	m->job_id = o->job_id;
	rc = as_user(&w, err);
	if (rc != 0)
		goto out;
	rc = -1;
	if (image_digest(o, image, digest, err) == 0 &&
	    svm_ckpt_fit(m, alloc, image->name, digest, restored, err) == 0)
		rc = 0;
out:
	if (w.memory_fd >= 0)
		close(w.memory_fd);
	if (rc != 0)
		unlinkat(stage, STAGE_MEMORY, 0);
	close(stage);
	return rc;
}

void provision_restore_done(const struct provision_opts *o)
{
	int stage = open_stage(o, NULL);

	if (stage >= 0) {
		unlinkat(stage, STAGE_MEMORY, 0);
		close(stage);
	}
}

/* ---- save ---- */

struct save_figures {
	double save_s, copy_s, restore_s;
	char name[256]; /* the guest's libvirt name (a restored one keeps its first) */
};

static int load_shape(const struct provision_opts *o, int stage, struct svm_ckpt_manifest *m,
                      struct svm_err *err)
{
	char *text = malloc(SVM_CKPT_MANIFEST_MAX);
	struct svm_err why;
	int rc = -1;

	if (text == NULL)
		return svm_err_set(err, "out of memory");
	if (read_stage_file(stage, STAGE_SHAPE, text, SVM_CKPT_MANIFEST_MAX, &why) != 0)
		svm_err_set(err, "guest %s was not started to be checkpointed (%s)", o->name,
		            why.msg);
	else
		rc = svm_ckpt_manifest_decode(text, m, err);
	free(text);
	return rc;
}

static int save_and_copy(const struct provision_opts *o, virConnectPtr conn, int stage,
                         struct svm_ckpt_manifest *m, struct save_figures *fig, struct svm_err *err)
{
	char memory_path[SVM_PATH_MAX + 16];
	struct user_work w = {.o = o, .m = m, .memory_fd = -1, .restore = false};
	virDomainPtr dom = provision_find_guest(conn, o);
	double t0 = provision_now_s();
	int rc = -1;

	if (dom == NULL)
		return provision_libvirt_error(err, "no such guest");
	snprintf(fig->name, sizeof(fig->name), "%s", virDomainGetName(dom));
	snprintf(memory_path, sizeof(memory_path), "%s/%s", o->checkpoint_stage, STAGE_MEMORY);
	unlinkat(stage, STAGE_MEMORY, 0);
	if (virDomainSaveFlags(dom, memory_path, NULL, VIR_DOMAIN_SAVE_RUNNING) != 0) {
		provision_libvirt_error(err, "cannot save the guest");
		goto out;
	}
	fig->save_s = provision_now_s() - t0;
	w.memory_fd = openat(stage, STAGE_MEMORY, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (w.memory_fd < 0) {
		svm_err_errno(err, errno, "%s", memory_path);
		goto out;
	}
	t0 = provision_now_s();
	rc = as_user(&w, err);
	fig->copy_s = provision_now_s() - t0;
out:
	if (w.memory_fd >= 0)
		close(w.memory_fd);
	virDomainFree(dom);
	return rc;
}

static int restore_in_place(const struct provision_opts *o, virConnectPtr conn,
                            struct save_figures *fig, struct svm_err *err)
{
	char memory_path[SVM_PATH_MAX + 16];
	double t0 = provision_now_s();

	static struct svm_cgroup_dirs cgroups;
	int recorded = o->job_cgroups_file == NULL
	                       ? 1
	                       : provision_cgroups_recorded(o->job_cgroups_file, &cgroups, err);

	snprintf(memory_path, sizeof(memory_path), "%s/%s", o->checkpoint_stage, STAGE_MEMORY);
	if (recorded < 0)
		return -1;
	/* A new QEMU: into the job's cgroups before it runs, as at the start. */
	if (virDomainRestoreFlags(conn, memory_path, NULL,
	                          recorded == 0 ? VIR_DOMAIN_SAVE_PAUSED
	                                        : VIR_DOMAIN_SAVE_RUNNING) != 0)
		return provision_libvirt_error(err, "cannot resume the saved guest");
	if (recorded == 0 && provision_join_job_cgroups(conn, fig->name, &cgroups, err) != 0)
		return -1;
	fig->restore_s = provision_now_s() - t0;
	return provision_hand_sockets(o, err);
}

int provision_cmd_save(const struct provision_opts *o, struct svm_err *err)
{
	struct svm_ckpt_manifest *m = calloc(1, sizeof(*m));
	struct save_figures fig = {.save_s = 0};
	virConnectPtr conn = NULL;
	int stage = -1, rc = -1;

	if (m == NULL)
		return svm_err_set(err, "out of memory");
	stage = open_stage(o, err);
	if (stage < 0 || load_shape(o, stage, m, err) != 0)
		goto out;
	conn = provision_connect(o, err);
	if (conn == NULL)
		goto out;
	rc = save_and_copy(o, conn, stage, m, &fig, err);
	/* A guest that is to keep running runs on even when its copy failed. */
	if (o->keep_running && restore_in_place(o, conn, &fig, rc == 0 ? err : NULL) != 0)
		rc = -1;
	if (rc == 0)
		printf("saved %s to %s/spank_vm-job%u: memory %llu bytes, disk %llu bytes; "
		       "save %.2f s, copy %.2f s, resume %.2f s\n",
		       o->name, o->checkpoint, m->job_id,
		       (unsigned long long)m->files[SVM_CKPT_FILE_MEMORY].size,
		       (unsigned long long)m->files[SVM_CKPT_FILE_DISK].size, fig.save_s,
		       fig.copy_s, fig.restore_s);
out:
	if (stage >= 0) {
		unlinkat(stage, STAGE_MEMORY, 0);
		close(stage);
	}
	if (conn != NULL)
		virConnectClose(conn);
	free(m);
	return rc;
}
