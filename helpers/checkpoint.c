#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/checkpoint.h"
#include "spank_vm/text_writer.h"

#define LINE_MAX_LEN 16384
/* 2^53 MiB of RAM or bytes of a file would be a corrupt manifest, not a guest. */
#define SIZE_MAX_VALUE (UINT64_C(1) << 53)

static const char *const file_names[SVM_CKPT_NFILES] = {"memory", "disk.qcow2"};

const char *svm_ckpt_file_name(enum svm_ckpt_file_id id)
{
	return (unsigned)id < SVM_CKPT_NFILES ? file_names[id] : "?";
}

/* ---- checks shared by encode and decode ---- */

static bool is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]) && (s[i] < 'a' || s[i] > 'f'))
			return false;
	return i == SVM_CKPT_SHA256_HEX;
}

static int check_node_name(const char *s, struct svm_err *err)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			len = 0;
	if (len == 0 || len > SVM_CKPT_NODE_MAX)
		return svm_err_set(err,
		                   "node: not a node name (accepted: 1 to %d characters of "
		                   "A-Z a-z 0-9 . _ -)",
		                   SVM_CKPT_NODE_MAX);
	return 0;
}

static int check_shape(const struct svm_ckpt_manifest *m, struct svm_err *err)
{
	struct svm_cpuset seen;
	uint64_t mem = 0;

	if (m->nvcpus == 0 || m->nvcpus > svm_plan_max_vcpus(m->hypervisor))
		return svm_err_set(err, "vcpus: %u is not a vCPU count of a %s guest", m->nvcpus,
		                   svm_hypervisor_name(m->hypervisor));
	if (m->sockets == 0 || m->cores == 0 || m->threads == 0 ||
	    (uint64_t)m->sockets * m->cores * m->threads != m->nvcpus)
		return svm_err_set(err, "topology: %ux%ux%u does not make %u vCPUs", m->sockets,
		                   m->cores, m->threads, m->nvcpus);
	if (m->ncells == 0 || m->ncells > SVM_CKPT_MAX_CELLS)
		return svm_err_set(err, "cells: %u cells (accepted: 1 to %d)", m->ncells,
		                   SVM_CKPT_MAX_CELLS);
	svm_cpuset_clear(&seen);
	for (unsigned i = 0; i < m->ncells; i++) {
		struct svm_cpuset overlap = m->cells[i].vcpus;

		svm_cpuset_and(&overlap, &seen);
		if (svm_cpuset_is_empty(&m->cells[i].vcpus) || !svm_cpuset_is_empty(&overlap) ||
		    m->cells[i].mem_mib == 0)
			return svm_err_set(err, "cells: cell %u is empty or shares vCPUs", i);
		svm_cpuset_or(&seen, &m->cells[i].vcpus);
		mem += m->cells[i].mem_mib;
	}
	if (svm_cpuset_count(&seen) != m->nvcpus || svm_cpuset_last(&seen) != (int)m->nvcpus - 1)
		return svm_err_set(err, "cells: the cells' vCPUs are not exactly 0-%u",
		                   m->nvcpus - 1);
	if (mem != m->guest_mib)
		return svm_err_set(err,
		                   "cells: the cells hold %" PRIu64 " MiB, guest_mib is %" PRIu64,
		                   mem, m->guest_mib);
	return 0;
}

static int check_manifest(const struct svm_ckpt_manifest *m, struct svm_err *err)
{
	if (m->format != SVM_CKPT_FORMAT)
		return svm_err_set(err, "format %u: this spank_vm reads format %d", m->format,
		                   SVM_CKPT_FORMAT);
	if (m->job_id == 0)
		return svm_err_set(err, "job: 0 is not a job id");
	if (check_node_name(m->node, err) != 0 || svm_check_image_name(m->image, err) != 0)
		return -1;
	if (!is_sha256_hex(m->image_digest))
		return svm_err_set(err, "image_digest: not a SHA-256 in hex");
	if (m->hypervisor == SVM_HV_UNSET || m->guest_mib == 0 ||
	    m->guest_mib > SVM_PLAN_MEM_MAX_MIB)
		return svm_err_set(err, "hypervisor or guest_mib missing or out of range");
	for (int i = 0; i < SVM_CKPT_NFILES; i++)
		if (!is_sha256_hex(m->files[i].sha256) || m->files[i].size > SIZE_MAX_VALUE)
			return svm_err_set(err, "file %s: size or SHA-256 missing or malformed",
			                   file_names[i]);
	return check_shape(m, err);
}

/* ---- encode ---- */

static void put_cells(struct svm_text_writer *w, const struct svm_ckpt_manifest *m)
{
	char list[LINE_MAX_LEN];

	svm_text_put(w, "cells=");
	for (unsigned i = 0; i < m->ncells; i++) {
		if (svm_cpuset_format(&m->cells[i].vcpus, list, sizeof(list)) >= sizeof(list))
			w->overflow = true;
		svm_text_put(w, "%s%s:%" PRIu64 ":%" PRIu64, i ? ";" : "", list,
		             m->cells[i].mem_mib, m->cells[i].hugepages);
	}
	svm_text_put(w, "\n");
}

int svm_ckpt_manifest_encode(const struct svm_ckpt_manifest *m, char *buf, size_t len,
                             struct svm_err *err)
{
	struct svm_text_writer w = {buf, len, 0, false};

	if (len == 0)
		return svm_err_set(err, "checkpoint manifest: no room");
	buf[0] = '\0';
	if (check_manifest(m, err) != 0)
		return -1;
	svm_text_put(&w, "format=%u\njob=%" PRIu32 "\nnode=%s\nsaved_at=%" PRId64 "\n", m->format,
	             m->job_id, m->node, m->saved_at);
	svm_text_put(&w, "hypervisor=%s\nimage=%s\nimage_digest=%s\n",
	             svm_hypervisor_name(m->hypervisor), m->image, m->image_digest);
	svm_text_put(&w, "vcpus=%u\ntopology=%ux%ux%u\nx2apic=%s\n", m->nvcpus, m->sockets,
	             m->cores, m->threads, m->x2apic ? "yes" : "no");
	put_cells(&w, m);
	svm_text_put(&w, "guest_mib=%" PRIu64 "\nhugepages=%s\n", m->guest_mib,
	             svm_hugepages_name(m->hugepages));
	for (int i = 0; i < SVM_CKPT_NFILES; i++)
		svm_text_put(&w, "file.%s=%" PRIu64 ":%s\n", file_names[i], m->files[i].size,
		             m->files[i].sha256);
	if (w.overflow)
		return svm_err_set(err, "checkpoint manifest does not fit in %zu bytes", len);
	return 0;
}

/* ---- decode ---- */

static int parse_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out,
                     struct svm_err *err)
{
	return svm_parse_uint(value, min, max, out, err);
}

static int parse_unsigned(const char *value, uint64_t max, unsigned *out, struct svm_err *err)
{
	uint64_t v;

	if (parse_u64(value, 0, max, &v, err) != 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int copy_word(const char *value, char *out, size_t cap, struct svm_err *err)
{
	if (strlen(value) >= cap)
		return svm_err_set(err, "longer than %zu characters", cap - 1);
	strcpy(out, value);
	return 0;
}

static int parse_topology(const char *value, struct svm_ckpt_manifest *m, struct svm_err *err)
{
	char tail;

	if (sscanf(value, "%3ux%3ux%3u%c", &m->sockets, &m->cores, &m->threads, &tail) != 3 ||
	    !isdigit((unsigned char)value[0]))
		return svm_err_set(err, "'%s' is not SOCKETSxCORESxTHREADS", value);
	return 0;
}

/* One cell: "VCPUS:MIB:PAGES". */
static int parse_cell(char *text, struct svm_ckpt_cell *cell, struct svm_err *err)
{
	char *mib = strchr(text, ':'), *pages = mib ? strchr(mib + 1, ':') : NULL;

	if (pages == NULL)
		return svm_err_set(err, "'%s' is not VCPUS:MIB:PAGES", text);
	*mib++ = '\0';
	*pages++ = '\0';
	if (svm_cpuset_parse(text, SVM_PLAN_MAX_VCPUS_KVM - 1, &cell->vcpus, err) != 0 ||
	    parse_u64(mib, 1, SVM_PLAN_MEM_MAX_MIB, &cell->mem_mib, err) != 0 ||
	    parse_u64(pages, 0, SIZE_MAX_VALUE, &cell->hugepages, err) != 0)
		return -1;
	return 0;
}

static int parse_cells(char *value, struct svm_ckpt_manifest *m, struct svm_err *err)
{
	char *save = NULL;

	m->ncells = 0;
	for (char *cell = strtok_r(value, ";", &save); cell != NULL;
	     cell = strtok_r(NULL, ";", &save)) {
		if (m->ncells == SVM_CKPT_MAX_CELLS)
			return svm_err_set(err, "more than %d cells", SVM_CKPT_MAX_CELLS);
		if (parse_cell(cell, &m->cells[m->ncells++], err) != 0)
			return -1;
	}
	return 0;
}

/* "SIZE:SHA256" */
static int parse_file(char *value, struct svm_ckpt_file *file, struct svm_err *err)
{
	char *colon = strchr(value, ':');

	if (colon == NULL)
		return svm_err_set(err, "'%.40s' is not SIZE:SHA256", value);
	*colon = '\0';
	if (parse_u64(value, 0, SIZE_MAX_VALUE, &file->size, err) != 0)
		return -1;
	if (!is_sha256_hex(colon + 1))
		return svm_err_set(err, "not a SHA-256 in hex");
	strcpy(file->sha256, colon + 1);
	return 0;
}

static int parse_yes_no(const char *value, bool *out, struct svm_err *err)
{
	if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
		return svm_err_set(err, "'%s' (accepted: yes, no)", value);
	*out = value[0] == 'y';
	return 0;
}

enum key {
	K_FORMAT,
	K_JOB,
	K_NODE,
	K_SAVED_AT,
	K_HYPERVISOR,
	K_IMAGE,
	K_IMAGE_DIGEST,
	K_VCPUS,
	K_TOPOLOGY,
	K_X2APIC,
	K_CELLS,
	K_GUEST_MIB,
	K_HUGEPAGES,
	K_FILE_MEMORY,
	K_FILE_DISK,
	NKEYS,
};

static const char *const key_names[NKEYS] = {
        "format", "job",          "node",      "saved_at",    "hypervisor",
        "image",  "image_digest", "vcpus",     "topology",    "x2apic",
        "cells",  "guest_mib",    "hugepages", "file.memory", "file.disk.qcow2"};

static int parse_value(enum key key, char *value, struct svm_ckpt_manifest *m, struct svm_err *err)
{
	uint64_t v;

	switch (key) {
	case K_FORMAT:
		return parse_unsigned(value, 1000000, &m->format, err);
	case K_JOB:
		if (parse_u64(value, 1, UINT32_MAX, &v, err) != 0)
			return -1;
		m->job_id = (uint32_t)v;
		return 0;
	case K_NODE:
		return copy_word(value, m->node, sizeof(m->node), err);
	case K_SAVED_AT:
		if (parse_u64(value, 0, INT64_MAX, &v, err) != 0)
			return -1;
		m->saved_at = (int64_t)v;
		return 0;
	case K_HYPERVISOR:
		return svm_parse_hypervisor(value, &m->hypervisor, err);
	case K_IMAGE:
		return copy_word(value, m->image, sizeof(m->image), err);
	case K_IMAGE_DIGEST:
		return copy_word(value, m->image_digest, sizeof(m->image_digest), err);
	case K_VCPUS:
		return parse_unsigned(value, SVM_PLAN_MAX_VCPUS_KVM, &m->nvcpus, err);
	case K_TOPOLOGY:
		return parse_topology(value, m, err);
	case K_X2APIC:
		return parse_yes_no(value, &m->x2apic, err);
	case K_CELLS:
		return parse_cells(value, m, err);
	case K_GUEST_MIB:
		return parse_u64(value, 1, SVM_PLAN_MEM_MAX_MIB, &m->guest_mib, err);
	case K_HUGEPAGES:
		return svm_parse_hugepages(value, &m->hugepages, err);
	case K_FILE_MEMORY:
		return parse_file(value, &m->files[SVM_CKPT_FILE_MEMORY], err);
	case K_FILE_DISK:
		return parse_file(value, &m->files[SVM_CKPT_FILE_DISK], err);
	case NKEYS:
		break;
	}
	return svm_err_set(err, "unknown key");
}

static int find_key(const char *name, enum key *out)
{
	for (int k = 0; k < NKEYS; k++) {
		if (strcmp(name, key_names[k]) == 0) {
			*out = (enum key)k;
			return 0;
		}
	}
	return -1;
}

/* One "key=value" line (line is modified); seen records the keys so far. */
static int parse_line(char *line, unsigned lineno, bool *seen, struct svm_ckpt_manifest *m,
                      struct svm_err *err)
{
	char *eq = strchr(line, '=');
	struct svm_err why;
	enum key key;

	if (eq == NULL)
		return svm_err_set(err, "checkpoint manifest line %u: not key=value", lineno);
	*eq = '\0';
	if (find_key(line, &key) != 0)
		return svm_err_set(err, "checkpoint manifest line %u: unknown key '%.40s'", lineno,
		                   line);
	if (lineno == 1 && key != K_FORMAT)
		return svm_err_set(err, "checkpoint manifest: the first line is not format=");
	if (seen[key])
		return svm_err_set(err, "checkpoint manifest line %u: %s given twice", lineno,
		                   line);
	seen[key] = true;
	if (parse_value(key, eq + 1, m, &why) != 0)
		return svm_err_set(err, "checkpoint manifest line %u: %s: %s", lineno, line,
		                   why.msg);
	/* A newer format may mean different keys: stop at the version. */
	if (key == K_FORMAT && m->format != SVM_CKPT_FORMAT)
		return svm_err_set(err,
		                   "checkpoint manifest: format %u, this spank_vm reads format %d",
		                   m->format, SVM_CKPT_FORMAT);
	return 0;
}

static int check_all_seen(const bool *seen, struct svm_err *err)
{
	for (int k = 0; k < NKEYS; k++)
		if (!seen[k])
			return svm_err_set(err, "checkpoint manifest: %s= is missing",
			                   key_names[k]);
	return 0;
}

int svm_ckpt_manifest_decode(const char *text, struct svm_ckpt_manifest *m, struct svm_err *err)
{
	bool seen[NKEYS] = {false};
	char *line = malloc(LINE_MAX_LEN);
	unsigned lineno = 0;
	struct svm_err why;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (line == NULL)
		return svm_err_set(err, "checkpoint manifest: out of memory");
	while (*text != '\0') {
		size_t len = strcspn(text, "\n");

		lineno++;
		if (text[len] != '\n' || len >= LINE_MAX_LEN) {
			svm_err_set(err, "checkpoint manifest line %u: too long or not ended",
			            lineno);
			goto out;
		}
		memcpy(line, text, len);
		line[len] = '\0';
		text += len + 1;
		if (parse_line(line, lineno, seen, m, err) != 0)
			goto out;
	}
	if (check_all_seen(seen, err) != 0)
		goto out;
	if (check_manifest(m, &why) != 0) {
		svm_err_set(err, "checkpoint manifest: %s", why.msg);
		goto out;
	}
	rc = 0;
out:
	free(line);
	return rc;
}

/* ---- shape and fit ---- */

int svm_ckpt_manifest_set_shape(struct svm_ckpt_manifest *m, const struct svm_plan *plan,
                                struct svm_err *err)
{
	if (plan->ncells == 0 || plan->ncells > SVM_CKPT_MAX_CELLS)
		return svm_err_set(err,
		                   "a guest of %u NUMA cells cannot be checkpointed (at most %d)",
		                   plan->ncells, SVM_CKPT_MAX_CELLS);
	m->format = SVM_CKPT_FORMAT;
	m->hypervisor = plan->hypervisor;
	m->nvcpus = plan->nvcpus;
	m->sockets = plan->sockets;
	m->cores = plan->cores;
	m->threads = plan->threads;
	m->x2apic = plan->x2apic;
	m->ncells = plan->ncells;
	for (unsigned i = 0; i < plan->ncells; i++) {
		m->cells[i].vcpus = plan->cells[i].vcpus;
		m->cells[i].mem_mib = plan->cells[i].mem_mib;
		m->cells[i].hugepages = plan->cells[i].hugepages;
	}
	m->guest_mib = plan->guest_mib;
	m->hugepages = plan->hugepages;
	return 0;
}

static int check_fit(const struct svm_ckpt_manifest *m, const struct svm_plan *alloc,
                     const char *image, const char *image_digest, struct svm_err *err)
{
	if (strcmp(m->image, image) != 0)
		return svm_err_set(err,
		                   "the checkpoint holds a guest of image %s, the job asks for %s",
		                   m->image, image);
	if (strcmp(m->image_digest, image_digest) != 0)
		return svm_err_set(err, "image %s has changed since the checkpoint was saved",
		                   m->image);
	if (m->hypervisor != alloc->hypervisor)
		return svm_err_set(
		        err, "the checkpoint was saved under %s, this node runs %s guests",
		        svm_hypervisor_name(m->hypervisor), svm_hypervisor_name(alloc->hypervisor));
	if (m->nvcpus > alloc->nvcpus)
		return svm_err_set(err,
		                   "the checkpoint's guest has %u vCPUs, this allocation %u CPUs",
		                   m->nvcpus, alloc->nvcpus);
	if (m->guest_mib > alloc->guest_mib)
		return svm_err_set(err,
		                   "the checkpoint's guest has %" PRIu64
		                   " MiB of RAM, this allocation "
		                   "leaves the guest %" PRIu64 " MiB",
		                   m->guest_mib, alloc->guest_mib);
	if (m->hugepages != alloc->hugepages)
		return svm_err_set(err, "the checkpoint's guest uses hugepages=%s, this job %s",
		                   svm_hugepages_name(m->hugepages),
		                   svm_hugepages_name(alloc->hugepages));
	return 0;
}

/* The host node backing vCPU v of the allocation (0 if no cell has it,
 * which a valid plan never does). */
static unsigned alloc_node_of(const struct svm_plan *alloc, unsigned vcpu)
{
	for (unsigned j = 0; j < alloc->ncells; j++)
		if (svm_cpuset_has(&alloc->cells[j].vcpus, vcpu))
			return alloc->cells[j].host_node;
	return 0;
}

int svm_ckpt_fit(const struct svm_ckpt_manifest *m, const struct svm_plan *alloc, const char *image,
                 const char *image_digest, struct svm_plan *out, struct svm_err *err)
{
	memset(out, 0, sizeof(*out));
	if (check_fit(m, alloc, image, image_digest, err) != 0)
		return -1;
	out->vcpu_pu = calloc(m->nvcpus, sizeof(*out->vcpu_pu));
	out->cells = calloc(m->ncells, sizeof(*out->cells));
	if (out->vcpu_pu == NULL || out->cells == NULL) {
		svm_plan_free(out);
		return svm_err_set(err, "out of memory");
	}
	out->hypervisor = m->hypervisor;
	out->nvcpus = m->nvcpus;
	out->sockets = m->sockets;
	out->cores = m->cores;
	out->threads = m->threads;
	out->x2apic = m->x2apic;
	for (unsigned i = 0; i < m->nvcpus; i++) {
		out->vcpu_pu[i] = alloc->vcpu_pu[i];
		svm_cpuset_add(&out->host_pus, alloc->vcpu_pu[i]);
	}
	out->emulator_pus = alloc->emulator_pus;
	out->ncells = m->ncells;
	for (unsigned i = 0; i < m->ncells; i++) {
		struct svm_plan_cell *cell = &out->cells[i];

		cell->vcpus = m->cells[i].vcpus;
		cell->npus = svm_cpuset_count(&cell->vcpus);
		cell->mem_mib = m->cells[i].mem_mib;
		cell->hugepages = m->cells[i].hugepages;
		cell->host_node = alloc_node_of(alloc, (unsigned)svm_cpuset_next(&cell->vcpus, 0));
		svm_cpuset_add(&out->host_nodes, cell->host_node);
	}
	out->guest_mib = m->guest_mib;
	out->hard_limit_mib = alloc->hard_limit_mib;
	out->hugepages = m->hugepages;
	out->hugepage_kib = alloc->hugepage_kib;
	return 0;
}
