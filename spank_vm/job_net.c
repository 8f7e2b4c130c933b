/* --vm-net=cluster: the job's node names, for the guests' hostnames and
 * /etc/hosts. The prolog sees the job's node list (SLURM_NODELIST) and
 * records it; the extern step, which does not, expands it with Slurm's own
 * hostlist functions (libslurmfull, which every Slurm process that loads
 * the plugin has; weak references, so a process without them only loses
 * the network, with a message). */
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>

#include "plugin.h"
#include "spank_vm/runtime.h"

extern hostlist_t slurm_hostlist_create(const char *hostlist) __attribute__((weak));
extern char *slurm_hostlist_shift(hostlist_t hl) __attribute__((weak));
extern void slurm_hostlist_destroy(hostlist_t hl) __attribute__((weak));

/* A compressed node list: node names, brackets, ranges and commas only. */
static bool plausible_nodelist(const char *list)
{
	size_t len = strlen(list);

	if (len == 0 || len >= SVM_NODELIST_MAX)
		return false;
	for (const char *p = list; *p != '\0'; p++)
		if (!(((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') ||
		      strchr("-_.,[]", *p) != NULL))
			return false;
	return true;
}

int svm_job_net_record_nodes(uint32_t job_id)
{
	const char *list = getenv("SLURM_NODELIST");
	struct svm_err err;

	if (list == NULL || !plausible_nodelist(list)) {
		svm_error("job %u: no usable SLURM_NODELIST for its guest network", job_id);
		return 0; /* the extern step reports the missing list to the job */
	}
	if (svm_job_file_write(svm_plugin.config.runtime_dir, job_id, SVM_NODES_FILE, list, &err) !=
	    0) {
		svm_error("job %u: %s", job_id, err.msg);
		return -1;
	}
	return 0;
}

/* Appends name and a comma; false when out of room. */
static bool append_host(char *out, size_t cap, size_t *used, const char *name)
{
	size_t n = strlen(name);

	if (*used + n + 2 > cap)
		return false;
	memcpy(out + *used, name, n);
	*used += n;
	out[(*used)++] = ',';
	out[*used] = '\0';
	return true;
}

int svm_job_net_hosts(uint32_t job_id, char *out, size_t cap, struct svm_err *err)
{
	char list[SVM_NODELIST_MAX];
	hostlist_t hl;
	size_t used = 0;
	bool fits = true;
	char *name;

	if (slurm_hostlist_create == NULL || slurm_hostlist_shift == NULL ||
	    slurm_hostlist_destroy == NULL)
		return svm_err_set(err, "this process lacks Slurm's hostlist functions");
	if (svm_job_file_read(svm_plugin.config.runtime_dir, job_id, SVM_NODES_FILE, list,
	                      sizeof(list), err) != 0)
		return svm_err_set(err, "the prolog recorded no node list for the job network");
	hl = slurm_hostlist_create(list);
	if (hl == NULL)
		return svm_err_set(err, "cannot expand the node list '%.64s'", list);
	out[0] = '\0';
	while ((name = slurm_hostlist_shift(hl)) != NULL) {
		fits = fits && append_host(out, cap, &used, name);
		free(name);
	}
	slurm_hostlist_destroy(hl);
	if (!fits || used == 0)
		return svm_err_set(err,
		                   "the job's node names do not fit the guest network's "
		                   "%zu bytes",
		                   cap);
	out[used - 1] = '\0'; /* the last comma */
	return 0;
}
