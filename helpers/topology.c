#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "spank_vm/topology.h"

int svm_topology_load(const char *xml_path, hwloc_topology_t *out, struct svm_err *err)
{
	hwloc_topology_t topo = NULL;

	*out = NULL;
	if (hwloc_topology_init(&topo) < 0)
		return svm_err_errno(err, errno, "cannot initialise an hwloc topology");
	if (hwloc_topology_set_flags(topo, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED) < 0) {
		svm_err_errno(err, errno, "cannot ask hwloc to keep disallowed CPUs");
		goto fail;
	}
	if (xml_path != NULL && hwloc_topology_set_xml(topo, xml_path) < 0) {
		svm_err_errno(err, errno, "cannot use topology file %s", xml_path);
		goto fail;
	}
	if (hwloc_topology_load(topo) < 0) {
		svm_err_errno(err, errno, "cannot load the topology of %s",
		              xml_path ? xml_path : "this node");
		goto fail;
	}
	*out = topo;
	return 0;
fail:
	hwloc_topology_destroy(topo);
	return -1;
}

static hwloc_obj_type_t core_type(hwloc_topology_t topo)
{
	return hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

unsigned svm_topology_ncores(hwloc_topology_t topo)
{
	int n = hwloc_get_nbobjs_by_type(topo, core_type(topo));

	return n > 0 ? (unsigned)n : 0;
}

hwloc_obj_t svm_topology_core(hwloc_topology_t topo, unsigned k)
{
	return hwloc_get_obj_by_type(topo, core_type(topo), k);
}

static int add_obj_pus(const struct hwloc_obj *obj, struct svm_cpuset *pus, struct svm_err *err)
{
	unsigned id;

	hwloc_bitmap_foreach_begin(id, obj->cpuset)
	{
		if (svm_cpuset_add(pus, id) < 0)
			return svm_err_set(err, "host PU %u is beyond the %u CPUs spank_vm handles",
			                   id, SVM_CPUSET_MAX);
	}
	hwloc_bitmap_foreach_end();
	return 0;
}

int svm_topology_cores_to_pus(hwloc_topology_t topo, const struct svm_cpuset *cores,
                              struct svm_cpuset *pus, struct svm_err *err)
{
	unsigned ncores = svm_topology_ncores(topo);
	int last = svm_cpuset_last(cores);

	svm_cpuset_clear(pus);
	if (last >= 0 && (unsigned)last >= ncores)
		return svm_err_set(err,
		                   "abstract core %d is outside the topology of this node, which "
		                   "has %u cores (0-%u)",
		                   last, ncores, ncores ? ncores - 1 : 0);
	for (int k = svm_cpuset_next(cores, 0); k >= 0; k = svm_cpuset_next(cores, k + 1))
		if (add_obj_pus(svm_topology_core(topo, (unsigned)k), pus, err) < 0)
			return -1;
	return 0;
}

int svm_topology_check_pus(hwloc_topology_t topo, const struct svm_cpuset *pus, const char *what,
                           struct svm_err *err)
{
	/* The PUs that exist in the topology; a lookup per id would be quadratic. */
	hwloc_const_cpuset_t existing = hwloc_topology_get_topology_cpuset(topo);
	char have[128];

	for (int id = svm_cpuset_next(pus, 0); id >= 0; id = svm_cpuset_next(pus, id + 1)) {
		if (hwloc_bitmap_isset(existing, (unsigned)id))
			continue;
		hwloc_bitmap_list_snprintf(have, sizeof(have), existing);
		return svm_err_set(err, "CPU %d of %s is not a PU of this node (PUs %s)", id, what,
		                   have);
	}
	return 0;
}

unsigned svm_topology_node_bound(hwloc_topology_t topo)
{
	hwloc_obj_t node = NULL;
	unsigned bound = 1;

	while ((node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) != NULL)
		if (node->os_index != HWLOC_UNKNOWN_INDEX && node->os_index + 1 > bound)
			bound = node->os_index + 1;
	return bound;
}

uint64_t svm_hugepage_kib(enum svm_hugepages size)
{
	switch (size) {
	case SVM_HUGEPAGES_2M:
		return 2048;
	case SVM_HUGEPAGES_1G:
		return 1024 * 1024;
	default:
		return 0;
	}
}

/* A missing file means the node or the page size does not exist: 0 pages. */
static int read_count(const char *path, uint64_t *count, struct svm_err *err)
{
	char text[32], *end;
	FILE *f = fopen(path, "re");
	int rc = -1;

	*count = 0;
	if (f == NULL)
		return errno == ENOENT ? 0 : svm_err_errno(err, errno, "cannot open %s", path);
	if (fgets(text, sizeof(text), f) == NULL) {
		svm_err_set(err, "cannot read a page count from %s", path);
		goto out;
	}
	errno = 0;
	*count = strtoull(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || text[0] == '-') {
		svm_err_set(err, "%s holds \"%.20s\", not a page count", path, text);
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int svm_hugepages_read_free(const char *sysfs_root, enum svm_hugepages size, uint64_t *free_pages,
                            size_t nnodes, struct svm_err *err)
{
	uint64_t kib = svm_hugepage_kib(size);
	char path[4096];
	bool per_node;
	int n;

	if (kib == 0)
		return svm_err_set(err, "no hugepage size to read; accepted: 2M, 1G");
	snprintf(path, sizeof(path), "%s/devices/system/node", sysfs_root);
	per_node = is_dir(path);
	for (size_t i = 0; i < nnodes; i++) {
		if (per_node)
			n = snprintf(path, sizeof(path),
			             "%s/devices/system/node/node%zu/hugepages/hugepages-%" PRIu64
			             "kB/free_hugepages",
			             sysfs_root, i, kib);
		else
			n = snprintf(path, sizeof(path),
			             "%s/kernel/mm/hugepages/hugepages-%" PRIu64
			             "kB/free_hugepages",
			             sysfs_root, kib);
		if (n < 0 || (size_t)n >= sizeof(path))
			return svm_err_set(err, "sysfs root %.64s... is too long", sysfs_root);
		free_pages[i] = 0;
		if ((per_node || i == 0) && read_count(path, &free_pages[i], err) < 0)
			return -1;
	}
	return 0;
}
