/* The site configuration: the key=value arguments of the plugstack.conf line. */
#ifndef SPANK_VM_CONFIG_H
#define SPANK_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "spank_vm/error.h"
#include "spank_vm/net.h"
#include "spank_vm/values.h"

struct svm_config {
	enum svm_hypervisor hypervisor;
	char image_dir[SVM_PATH_MAX + 1];
	char default_image[SVM_IMAGE_NAME_MAX + 1];
	char runtime_dir[SVM_PATH_MAX + 1];
	char helper_dir[SVM_PATH_MAX + 1];
	char kernel[SVM_PATH_MAX + 1]; /* empty: the newest host kernel with 9p */
	char initrd[SVM_PATH_MAX + 1]; /* empty: the image spank_vm builds */
	uint64_t mem_reserve_mib;
	uint64_t min_guest_mib;
	uint64_t boot_timeout_s;
	/* A guest silent this long while a HEARTBEAT is outstanding is hung:
	 * generous, since a guest starved by busy-polling ranks is slow, not dead */
	uint64_t heartbeat_timeout_s;
	enum svm_policy policy;
	bool hard_limit; /* <memtune><hard_limit> = job memory on each guest */
	/* The host's directory of Slurm's commands, which a guest's srun,
	 * sbatch, ... run from (helpers/hostcall); empty: slurm_commands=no */
	char slurm_commands[SVM_PATH_MAX + 1];
	/* --vm-net=cluster: the bridge on every node the guests' NICs join
	 * ("": no guest network at this site) and the addresses' network */
	char net_bridge[16];
	char net_cidr[32];
};

/* One line per key, for documentation and error messages. */
struct svm_config_key {
	const char *name;
	const char *accepted;
	const char *default_value;
	const char *meaning;
};

extern const struct svm_config_key svm_config_keys[];

void svm_config_defaults(struct svm_config *cfg);

/* Parses the plugstack.conf arguments (without the plugin path) over the
 * defaults. An unknown key, a key given twice or a bad value is an error. */
int svm_config_parse(struct svm_config *cfg, int argc, char *const argv[], struct svm_err *err);

/* Replaces "%n" in runtime_dir by the node's name, so that several slurmd on
 * one host (slurmd -N) keep their jobs apart, as Slurm's own %n paths do. */
int svm_config_expand_node(struct svm_config *cfg, const char *node_name, struct svm_err *err);

#endif
