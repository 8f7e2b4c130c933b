#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "spank_vm/checkpoint_store.h"
#include "spank_vm/runtime.h"

#define COPY_CHUNK   (1u << 20)
#define MANIFEST_TMP ".manifest.tmp"

/* ---- copying with a checksum ---- */

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void hex_digest(struct sha256_ctx *ctx, char *hex)
{
	uint8_t digest[SHA256_DIGEST_SIZE];

	sha256_digest(ctx, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

int svm_ckpt_copy(int in_fd, int out_fd, struct svm_ckpt_file *result, struct svm_err *err)
{
	uint8_t *chunk = malloc(COPY_CHUNK);
	struct sha256_ctx ctx;
	int rc = -1;

	if (chunk == NULL)
		return svm_err_set(err, "out of memory");
	sha256_init(&ctx);
	result->size = 0;
	for (;;) {
		ssize_t n = read(in_fd, chunk, COPY_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			svm_err_errno(err, errno, "read");
			goto out;
		}
		if (n == 0)
			break;
		sha256_update(&ctx, (size_t)n, chunk);
		result->size += (uint64_t)n;
		if (out_fd >= 0 && write_all(out_fd, chunk, (size_t)n) != 0) {
			svm_err_errno(err, errno, "write");
			goto out;
		}
	}
	hex_digest(&ctx, result->sha256);
	rc = 0;
out:
	free(chunk);
	return rc;
}

/* ---- writing ---- */

int svm_ckpt_begin(int parent_fd, uint32_t job_id, int *partial_fd, struct svm_err *err)
{
	char name[SVM_CKPT_DIR_MAX];

	svm_ckpt_dir_name(job_id, true, name, sizeof(name));
	if (svm_remove_tree_at(parent_fd, name, err) != 0)
		return -1;
	if (mkdirat(parent_fd, name, 0700) != 0)
		return svm_err_errno(err, errno, "cannot create %s", name);
	*partial_fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*partial_fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", name);
	return 0;
}

int svm_ckpt_create_file(int partial_fd, enum svm_ckpt_file_id id, int *fd, struct svm_err *err)
{
	const char *name = svm_ckpt_file_name(id);

	*fd = openat(partial_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return svm_err_errno(err, errno, "cannot create %s", name);
	return 0;
}

static int sync_file(int dir_fd, const char *name, struct svm_err *err)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return svm_err_errno(err, errno, "cannot open %s", name);
	if (fsync(fd) != 0)
		rc = svm_err_errno(err, errno, "cannot sync %s", name);
	close(fd);
	return rc;
}

static int write_manifest(int partial_fd, const struct svm_ckpt_manifest *m, struct svm_err *err)
{
	char *text = malloc(SVM_CKPT_MANIFEST_MAX);
	int fd = -1, rc = -1;

	if (text == NULL)
		return svm_err_set(err, "out of memory");
	if (svm_ckpt_manifest_encode(m, text, SVM_CKPT_MANIFEST_MAX, err) != 0)
		goto out;
	fd = openat(partial_fd, MANIFEST_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	            0600);
	if (fd < 0 || write_all(fd, (const uint8_t *)text, strlen(text)) != 0 || fsync(fd) != 0) {
		svm_err_errno(err, errno, "cannot write the manifest");
		goto out;
	}
	if (renameat(partial_fd, MANIFEST_TMP, partial_fd, SVM_CKPT_MANIFEST) != 0) {
		svm_err_errno(err, errno, "cannot rename the manifest into place");
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}

/* Puts the partial directory under the checkpoint's name; an old checkpoint
 * there is swapped out in the same rename (taking the partial name, which
 * loading ignores and the next begin removes) and removed after the sync. */
static int swap_in(int parent_fd, uint32_t job_id, struct svm_err *err)
{
	char partial[SVM_CKPT_DIR_MAX], final[SVM_CKPT_DIR_MAX];

	svm_ckpt_dir_name(job_id, true, partial, sizeof(partial));
	svm_ckpt_dir_name(job_id, false, final, sizeof(final));
	if (renameat2(parent_fd, partial, parent_fd, final, RENAME_EXCHANGE) == 0) {
		if (fsync(parent_fd) != 0)
			return svm_err_errno(err, errno, "cannot sync the checkpoint directory");
		return svm_remove_tree_at(parent_fd, partial, err);
	}
	if (errno != ENOENT)
		return svm_err_errno(err, errno, "cannot swap %s into place", partial);
	if (renameat(parent_fd, partial, parent_fd, final) != 0)
		return svm_err_errno(err, errno, "cannot rename %s into place", partial);
	if (fsync(parent_fd) != 0)
		return svm_err_errno(err, errno, "cannot sync the checkpoint directory");
	return 0;
}

int svm_ckpt_commit(int parent_fd, int partial_fd, const struct svm_ckpt_manifest *m,
                    struct svm_err *err)
{
	int rc = -1;

	for (int i = 0; i < SVM_CKPT_NFILES; i++)
		if (sync_file(partial_fd, svm_ckpt_file_name(i), err) != 0)
			goto out;
	if (write_manifest(partial_fd, m, err) != 0)
		goto out;
	if (fsync(partial_fd) != 0) {
		svm_err_errno(err, errno, "cannot sync the new checkpoint");
		goto out;
	}
	rc = swap_in(parent_fd, m->job_id, err);
out:
	close(partial_fd);
	return rc;
}

/* ---- loading ---- */

static int read_manifest(int dir_fd, char *text, size_t cap, struct svm_err *err)
{
	int fd = openat(dir_fd, SVM_CKPT_MANIFEST, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	size_t used = 0;
	int rc = -1;

	if (fd < 0)
		return svm_err_errno(err, errno, "no manifest");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size >= cap) {
		svm_err_set(err, "the manifest is not a regular file below %zu bytes", cap);
		goto out;
	}
	while (used < cap - 1) {
		ssize_t n = read(fd, text + used, cap - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			svm_err_errno(err, errno, "cannot read the manifest");
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	text[used] = '\0';
	rc = strlen(text) == used ? 0 : svm_err_set(err, "the manifest holds a NUL byte");
out:
	close(fd);
	return rc;
}

int svm_ckpt_open(int parent_fd, uint32_t job_id, int *dir_fd, struct svm_ckpt_manifest *m,
                  struct svm_err *err)
{
	char name[SVM_CKPT_DIR_MAX], *text = NULL;
	int rc = -1;

	svm_ckpt_dir_name(job_id, false, name, sizeof(name));
	*dir_fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*dir_fd < 0)
		return errno == ENOENT ? 1 : svm_err_errno(err, errno, "checkpoint %s", name);
	text = malloc(SVM_CKPT_MANIFEST_MAX);
	if (text == NULL) {
		svm_err_set(err, "out of memory");
		goto out;
	}
	if (read_manifest(*dir_fd, text, SVM_CKPT_MANIFEST_MAX, err) != 0 ||
	    svm_ckpt_manifest_decode(text, m, err) != 0)
		goto out;
	if (m->job_id != job_id) {
		svm_err_set(err, "the manifest is job %u's, not job %u's", m->job_id, job_id);
		goto out;
	}
	rc = 0;
out:
	free(text);
	if (rc != 0) {
		struct svm_err why = *err;

		svm_err_set(err, "checkpoint %s: %s", name, why.msg);
		close(*dir_fd);
		*dir_fd = -1;
	}
	return rc;
}

int svm_ckpt_copy_verified(int dir_fd, enum svm_ckpt_file_id id, const struct svm_ckpt_manifest *m,
                           int out_fd, struct svm_err *err)
{
	const struct svm_ckpt_file *want = &m->files[id];
	const char *name = svm_ckpt_file_name(id);
	struct svm_ckpt_file got;
	struct stat st;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO planted in the directory must not hang us. */
	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return svm_err_errno(err, errno, "checkpoint file %s", name);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		svm_err_set(err, "checkpoint file %s is not a regular file", name);
		goto out;
	}
	if ((uint64_t)st.st_size != want->size) {
		svm_err_set(err, "checkpoint file %s has %llu bytes, the manifest says %llu%s",
		            name, (unsigned long long)st.st_size, (unsigned long long)want->size,
		            (uint64_t)st.st_size < want->size ? " (truncated)" : "");
		goto out;
	}
	if (svm_ckpt_copy(fd, out_fd, &got, err) != 0)
		goto out;
	if (got.size != want->size || strcmp(got.sha256, want->sha256) != 0) {
		svm_err_set(err, "checkpoint file %s does not match its checksum in the manifest",
		            name);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

int svm_ckpt_remove(int parent_fd, uint32_t job_id, struct svm_err *err)
{
	char name[SVM_CKPT_DIR_MAX];

	svm_ckpt_dir_name(job_id, true, name, sizeof(name));
	if (svm_remove_tree_at(parent_fd, name, err) != 0)
		return -1;
	svm_ckpt_dir_name(job_id, false, name, sizeof(name));
	return svm_remove_tree_at(parent_fd, name, err);
}
