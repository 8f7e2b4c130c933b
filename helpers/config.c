#include <stdio.h>
#include <string.h>

#include "spank_vm/build_config.h"
#include "spank_vm/config.h"

const struct svm_config_key svm_config_keys[] = {
        {"hypervisor", "kvm, qemu, xen", "kvm",
         "the hypervisor guests run on (qemu is TCG emulation, for tests)"},
        {"image_dir", "an absolute path", "/var/lib/spank_vm/images",
         "directory of the site image catalog and the default guest image"},
        {"default_image", "an image name", "host",
         "image that --vm without a value means (host: host kernel, host root read-only)"},
        {"runtime_dir", "an absolute path", "/run/spank_vm",
         "where per-job state (requests, sockets, overlays) lives on the node"},
        {"helper_dir", "an absolute path", SPANK_VM_LIBEXECDIR,
         "where the spank_vm helper programs are installed"},
        {"kernel", "an absolute path", "(newest /boot/vmlinuz-* with 9p)",
         "kernel the default guest boots"},
        {"initrd", "an absolute path", "(built by spank-vm-image)",
         "initramfs of the default guest"},
        {"mem_reserve", "a size, e.g. 256M", "256M",
         "memory of the job kept for QEMU and the host: guest RAM = job memory - mem_reserve"},
        {"min_guest_mem", "a size, e.g. 128M", "128M", "smallest guest RAM that is accepted"},
        {"boot_timeout", "1 to 3600 (seconds)", "60",
         "how long tasks wait for the guest to be ready before failing"},
        {"heartbeat_timeout", "10 to 3600 (seconds)", "60",
         "how long a running guest may send nothing, not even a HEARTBEAT answer, before "
         "its tasks fail as a hung guest"},
        {"policy", "optin, always", "optin",
         "always: every job runs in the default guest, --vm or not"},
        {"hard_limit", "yes, no", "yes",
         "cap each guest's memory at the job's memory on the node (libvirt needs "
         "CAP_SYS_RESOURCE for it)"},
        {"slurm_commands", "an absolute path, no", SPANK_VM_SLURM_BINDIR,
         "the directory of Slurm's commands on the nodes: srun, sbatch, squeue, ... called "
         "in a guest run from there, on the host, in the job (no: they do not work in "
         "guests)"},
        {"net_bridge", "an interface name (1-15 of A-Z a-z 0-9 _ . -)", "(none)",
         "the bridge on every node that --vm-net=cluster guests join (the site makes it "
         "and links it across nodes; without it --vm-net=cluster is refused)"},
        {"net_cidr", "an IPv4 network A.B.C.D/P, P from 8 to 23", "10.200.0.0/16",
         "addresses of --vm-net=cluster guests: each job gets a /24 of it, chosen by job id"},
        {NULL, NULL, NULL, NULL},
};

void svm_config_defaults(struct svm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hypervisor = SVM_HV_KVM;
	snprintf(cfg->image_dir, sizeof(cfg->image_dir), "%s", "/var/lib/spank_vm/images");
	snprintf(cfg->default_image, sizeof(cfg->default_image), "%s", "host");
	snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "%s", "/run/spank_vm");
	snprintf(cfg->helper_dir, sizeof(cfg->helper_dir), "%s", SPANK_VM_LIBEXECDIR);
	cfg->mem_reserve_mib = 256;
	cfg->min_guest_mib = 128;
	cfg->boot_timeout_s = 60;
	cfg->heartbeat_timeout_s = 60;
	cfg->policy = SVM_POLICY_OPTIN;
	cfg->hard_limit = true;
	snprintf(cfg->slurm_commands, sizeof(cfg->slurm_commands), "%s", SPANK_VM_SLURM_BINDIR);
	snprintf(cfg->net_cidr, sizeof(cfg->net_cidr), "%s", "10.200.0.0/16");
}

static int set_path(char *dst, size_t len, const char *value, struct svm_err *err)
{
	if (svm_check_abs_path(value, err) != 0)
		return -1;
	snprintf(dst, len, "%s", value);
	return 0;
}

static int apply_key(struct svm_config *cfg, const char *key, const char *value,
                     struct svm_err *err)
{
	if (strcmp(key, "hypervisor") == 0)
		return svm_parse_hypervisor(value, &cfg->hypervisor, err);
	if (strcmp(key, "image_dir") == 0)
		return set_path(cfg->image_dir, sizeof(cfg->image_dir), value, err);
	if (strcmp(key, "runtime_dir") == 0)
		return set_path(cfg->runtime_dir, sizeof(cfg->runtime_dir), value, err);
	if (strcmp(key, "helper_dir") == 0)
		return set_path(cfg->helper_dir, sizeof(cfg->helper_dir), value, err);
	if (strcmp(key, "kernel") == 0)
		return set_path(cfg->kernel, sizeof(cfg->kernel), value, err);
	if (strcmp(key, "initrd") == 0)
		return set_path(cfg->initrd, sizeof(cfg->initrd), value, err);
	if (strcmp(key, "default_image") == 0) {
		if (svm_check_image_name(value, err) != 0)
			return -1;
		snprintf(cfg->default_image, sizeof(cfg->default_image), "%s", value);
		return 0;
	}
	if (strcmp(key, "mem_reserve") == 0)
		return svm_parse_size_mib(value, &cfg->mem_reserve_mib, err);
	if (strcmp(key, "min_guest_mem") == 0)
		return svm_parse_size_mib(value, &cfg->min_guest_mib, err);
	if (strcmp(key, "boot_timeout") == 0)
		return svm_parse_uint(value, 1, 3600, &cfg->boot_timeout_s, err);
	if (strcmp(key, "heartbeat_timeout") == 0)
		return svm_parse_uint(value, 10, 3600, &cfg->heartbeat_timeout_s, err);
	if (strcmp(key, "policy") == 0)
		return svm_parse_policy(value, &cfg->policy, err);
	if (strcmp(key, "hard_limit") == 0)
		return svm_parse_bool(value, &cfg->hard_limit, err);
	if (strcmp(key, "slurm_commands") == 0) {
		if (strcmp(value, "no") == 0) {
			cfg->slurm_commands[0] = '\0';
			return 0;
		}
		if (set_path(cfg->slurm_commands, sizeof(cfg->slurm_commands), value, err) != 0)
			return svm_err_set(err, "'%.64s' (accepted: an absolute path, no)", value);
		return 0;
	}
	if (strcmp(key, "net_bridge") == 0) {
		if (!svm_net_valid_bridge(value))
			return svm_err_set(err,
			                   "'%.32s' (accepted: an interface name, 1-15 of "
			                   "A-Z a-z 0-9 _ . -)",
			                   value);
		snprintf(cfg->net_bridge, sizeof(cfg->net_bridge), "%s", value);
		return 0;
	}
	if (strcmp(key, "net_cidr") == 0) {
		struct svm_net_cidr cidr;

		if (strlen(value) >= sizeof(cfg->net_cidr) ||
		    svm_net_parse_cidr(value, &cidr, err) != 0)
			return svm_err_set(err,
			                   "'%.32s' (accepted: an IPv4 network A.B.C.D/P, P "
			                   "from %d to %d)",
			                   value, SVM_NET_MIN_PREFIX, SVM_NET_MAX_PREFIX);
		snprintf(cfg->net_cidr, sizeof(cfg->net_cidr), "%s", value);
		return 0;
	}
	return 1; /* unknown */
}

static const struct svm_config_key *find_key(const char *key, size_t *index)
{
	for (size_t i = 0; svm_config_keys[i].name != NULL; i++) {
		if (strcmp(svm_config_keys[i].name, key) == 0) {
			*index = i;
			return &svm_config_keys[i];
		}
	}
	return NULL;
}

static void append_known_keys(char *buf, size_t len)
{
	size_t used = strlen(buf);

	for (size_t i = 0; svm_config_keys[i].name != NULL && used < len; i++) {
		snprintf(buf + used, len - used, "%s%s", i ? ", " : "", svm_config_keys[i].name);
		used = strlen(buf);
	}
}

int svm_config_parse(struct svm_config *cfg, int argc, char *const argv[], struct svm_err *err)
{
	unsigned long long seen = 0;

	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		char key[64];
		size_t index;
		struct svm_err why;
		int rc;

		if (eq == NULL || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof(key)) {
			snprintf(why.msg, sizeof(why.msg),
			         "plugstack.conf: argument '%.64s' is not key=value (keys: ",
			         argv[i]);
			append_known_keys(why.msg, sizeof(why.msg) - 1);
			return svm_err_set(err, "%s)", why.msg);
		}
		memcpy(key, argv[i], (size_t)(eq - argv[i]));
		key[eq - argv[i]] = '\0';
		if (find_key(key, &index) == NULL) {
			snprintf(why.msg, sizeof(why.msg),
			         "plugstack.conf: unknown key '%s' (keys: ", key);
			append_known_keys(why.msg, sizeof(why.msg) - 1);
			return svm_err_set(err, "%s)", why.msg);
		}
		if (seen & (1ULL << index))
			return svm_err_set(err, "plugstack.conf: key '%s' is given twice", key);
		seen |= 1ULL << index;
		rc = apply_key(cfg, key, eq + 1, &why);
		if (rc != 0)
			return svm_err_set(err, "plugstack.conf: %s: %s", key, why.msg);
	}
	if (cfg->mem_reserve_mib >= (UINT64_C(1) << 30))
		return svm_err_set(err, "plugstack.conf: mem_reserve is out of range");
	return 0;
}

int svm_config_expand_node(struct svm_config *cfg, const char *node_name, struct svm_err *err)
{
	char expanded[sizeof(cfg->runtime_dir)];
	const char *pos = strstr(cfg->runtime_dir, "%n");
	int n;

	if (pos == NULL)
		return 0;
	if (node_name == NULL || svm_check_image_name(node_name, NULL) != 0)
		return svm_err_set(err, "runtime_dir: cannot expand %%n: no valid node name");
	n = snprintf(expanded, sizeof(expanded), "%.*s%s%s", (int)(pos - cfg->runtime_dir),
	             cfg->runtime_dir, node_name, pos + 2);
	if (n < 0 || (size_t)n >= sizeof(expanded) || svm_check_abs_path(expanded, err) != 0)
		return svm_err_set(err, "runtime_dir: '%s' with %%n expanded is not valid",
		                   cfg->runtime_dir);
	memcpy(cfg->runtime_dir, expanded, sizeof(expanded));
	return svm_config_expand_node(cfg, node_name, err);
}
