#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "provision.h"

static const char usage_text[] =
        "usage: spank-vm-provision plan  ALLOCATION [--out FILE]\n"
        "       spank-vm-provision start ALLOCATION --name NAME --owner UID:GID --dir DIR\n"
        "             [--kernel PATH] [--initrd PATH] [--cmdline TEXT] [--out FILE]\n"
        "             [--image NAME] [--image-dir DIR] [--no-hard-limit] [--uri URI]\n"
        "             [--share HOSTDIR:TAG[:ro]]... (9p, mounted by the guest by TAG)\n"
        "             [--guest-share PATH]... (PATH read-write at PATH in the guest)\n"
        "             [--slurm-commands DIR] (the guest runs DIR's Slurm commands on the host)\n"
        "             [--net-bridge BR --net-cidr CIDR --net-job ID --net-node INDEX\n"
        "              --net-hosts NAME,...] (a NIC on the job network, --vm-net=cluster)\n"
        "             [--checkpoint-stage DIR --job ID --node NAME [--checkpoint DIR]]\n"
        "             [--checkpoint-fallback-fresh]\n"
        "             (a guest that can be checkpointed; restored from DIR's checkpoint,\n"
        "             or with --checkpoint-fallback-fresh booted afresh if that fails)\n"
        "             [--job-task PID [--job-cgroups-file F]]\n"
        "             (the guest runs in that task's job cgroups, listed in F)\n"
        "       spank-vm-provision stop  --name NAME [--job ID --node NAME] [--timeout SECONDS]\n"
        "             [--job-cgroups-file F] (F's cgroups are removed once the guest is gone)\n"
        "             [--uri URI]\n"
        "       spank-vm-provision save  --name NAME [--job ID --node NAME] --owner UID:GID\n"
        "             --dir DIR\n"
        "             --checkpoint-stage DIR --checkpoint DIR [--keep-running] [--uri URI]\n"
        "ALLOCATION: [--cores LIST] [--cpuset LIST | --cgroup-pid PID] --mem SIZE\n"
        "            [--reserve SIZE] [--min-guest SIZE] [--hypervisor kvm|qemu|xen]\n"
        "            [--hugepages none|2M|1G] [--emulator-cpus LIST] [--topology-xml FILE]\n"
        "--job ID --node NAME: the job and node the guest is for (its libvirt metadata);\n"
        "stop and save then find it by them: a guest restored on another node keeps\n"
        "the name it was saved under.\n";

enum {
	OPT_CORES = 256,
	OPT_CPUSET,
	OPT_CGROUP_PID,
	OPT_MEM,
	OPT_RESERVE,
	OPT_MIN_GUEST,
	OPT_HYPERVISOR,
	OPT_HUGEPAGES,
	OPT_EMULATOR_CPUS,
	OPT_TOPOLOGY_XML,
	OPT_OUT,
	OPT_NAME,
	OPT_OWNER,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_DIR,
	OPT_URI,
	OPT_TIMEOUT,
	OPT_NO_HARD_LIMIT,
	OPT_IMAGE,
	OPT_IMAGE_DIR,
	OPT_SHARE, /* keep this enum in the order of long_options[] */
	OPT_GUEST_SHARE,
	OPT_SLURM_COMMANDS,
	OPT_NET_BRIDGE,
	OPT_NET_CIDR,
	OPT_NET_JOB,
	OPT_NET_NODE,
	OPT_NET_HOSTS,
	OPT_CHECKPOINT_STAGE,
	OPT_CHECKPOINT,
	OPT_JOB,
	OPT_NODE,
	OPT_KEEP_RUNNING,
	OPT_CHECKPOINT_FRESH,
	OPT_JOB_TASK,
	OPT_JOB_CGROUPS_FILE,
};

static const struct option long_options[] = {
        {"cores", required_argument, NULL, OPT_CORES},
        {"cpuset", required_argument, NULL, OPT_CPUSET},
        {"cgroup-pid", required_argument, NULL, OPT_CGROUP_PID},
        {"job-task", required_argument, NULL, OPT_JOB_TASK},
        {"job-cgroups-file", required_argument, NULL, OPT_JOB_CGROUPS_FILE},
        {"mem", required_argument, NULL, OPT_MEM},
        {"reserve", required_argument, NULL, OPT_RESERVE},
        {"min-guest", required_argument, NULL, OPT_MIN_GUEST},
        {"hypervisor", required_argument, NULL, OPT_HYPERVISOR},
        {"hugepages", required_argument, NULL, OPT_HUGEPAGES},
        {"emulator-cpus", required_argument, NULL, OPT_EMULATOR_CPUS},
        {"topology-xml", required_argument, NULL, OPT_TOPOLOGY_XML},
        {"out", required_argument, NULL, OPT_OUT},
        {"name", required_argument, NULL, OPT_NAME},
        {"owner", required_argument, NULL, OPT_OWNER},
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"cmdline", required_argument, NULL, OPT_CMDLINE},
        {"dir", required_argument, NULL, OPT_DIR},
        {"uri", required_argument, NULL, OPT_URI},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"no-hard-limit", no_argument, NULL, OPT_NO_HARD_LIMIT},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"image-dir", required_argument, NULL, OPT_IMAGE_DIR},
        {"share", required_argument, NULL, OPT_SHARE},
        {"guest-share", required_argument, NULL, OPT_GUEST_SHARE},
        {"slurm-commands", required_argument, NULL, OPT_SLURM_COMMANDS},
        {"net-bridge", required_argument, NULL, OPT_NET_BRIDGE},
        {"net-cidr", required_argument, NULL, OPT_NET_CIDR},
        {"net-job", required_argument, NULL, OPT_NET_JOB},
        {"net-node", required_argument, NULL, OPT_NET_NODE},
        {"net-hosts", required_argument, NULL, OPT_NET_HOSTS},
        {"checkpoint-stage", required_argument, NULL, OPT_CHECKPOINT_STAGE},
        {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
        {"job", required_argument, NULL, OPT_JOB},
        {"node", required_argument, NULL, OPT_NODE},
        {"keep-running", no_argument, NULL, OPT_KEEP_RUNNING},
        {"checkpoint-fallback-fresh", no_argument, NULL, OPT_CHECKPOINT_FRESH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static int parse_owner(const char *text, struct provision_opts *o, struct svm_err *err)
{
	char uid_text[16], gid_text[16];
	const char *colon = strchr(text, ':');
	uint64_t uid, gid;

	if (colon == NULL || (size_t)(colon - text) >= sizeof(uid_text) ||
	    strlen(colon + 1) >= sizeof(gid_text))
		return svm_err_set(err, "--owner: expected UID:GID, got '%.32s'", text);
	memcpy(uid_text, text, (size_t)(colon - text));
	uid_text[colon - text] = '\0';
	strcpy(gid_text, colon + 1);
	if (svm_parse_uint(uid_text, 0, UINT32_MAX - 1, &uid, err) != 0 ||
	    svm_parse_uint(gid_text, 0, UINT32_MAX - 1, &gid, err) != 0)
		return -1;
	o->uid = (uid_t)uid;
	o->gid = (gid_t)gid;
	o->have_owner = true;
	return 0;
}

/* HOSTDIR:TAG[:ro]: the tag is the last field (or the one before ":ro"), so
 * HOSTDIR may hold ':'. The text is modified in place (it is argv). */
static int parse_share(char *text, struct provision_opts *o, struct svm_err *err)
{
	struct svm_share *share = &o->shares[o->nshares];
	size_t len = strlen(text);
	char *colon;

	if (o->nshares == PROVISION_MAX_SHARES)
		return svm_err_set(err, "at most %d shares", PROVISION_MAX_SHARES);
	share->readonly = len > 3 && strcmp(text + len - 3, ":ro") == 0;
	if (share->readonly)
		text[len - 3] = '\0';
	colon = strrchr(text, ':');
	if (colon == NULL || colon[1] == '\0')
		return svm_err_set(err, "expected HOSTDIR:TAG[:ro]");
	*colon = '\0';
	for (const char *t = colon + 1; *t != '\0'; t++)
		if (!isalnum((unsigned char)*t) && *t != '_' && *t != '-' && *t != '.')
			return svm_err_set(err, "mount tag '%.32s': letters, digits, '_', '-', '.'",
			                   colon + 1);
	if (strlen(colon + 1) > 31)
		return svm_err_set(err, "mount tag '%.32s' is longer than 31", colon + 1);
	if (svm_check_abs_path(text, err) != 0)
		return -1;
	share->host_dir = text;
	share->tag = colon + 1;
	o->nshares++;
	return 0;
}

static int parse_path(const char *text, const char **dst, struct svm_err *err)
{
	if (svm_check_abs_path(text, err) != 0)
		return -1;
	*dst = text;
	return 0;
}

static int parse_sizes_and_numbers(int opt, const char *arg, struct provision_opts *o,
                                   struct svm_err *err)
{
	uint64_t v;

	switch (opt) {
	case OPT_MEM:
		return svm_parse_size_mib(arg, &o->mem_mib, err);
	case OPT_RESERVE:
		return svm_parse_size_mib(arg, &o->reserve_mib, err);
	case OPT_MIN_GUEST:
		return svm_parse_size_mib(arg, &o->min_guest_mib, err);
	case OPT_CGROUP_PID:
		if (svm_parse_uint(arg, 1, INT32_MAX, &v, err) != 0)
			return -1;
		o->cgroup_pid = (pid_t)v;
		return 0;
	case OPT_JOB_TASK:
		if (svm_parse_uint(arg, 2, INT32_MAX, &v, err) != 0)
			return -1;
		o->job_task = (pid_t)v;
		return 0;
	case OPT_TIMEOUT:
		if (svm_parse_uint(arg, 0, 3600, &v, err) != 0)
			return -1;
		o->timeout_s = (unsigned)v;
		return 0;
	case OPT_NET_JOB:
		if (svm_parse_uint(arg, 1, UINT32_MAX - 1, &v, err) != 0)
			return -1;
		o->net_job = (uint32_t)v;
		return 0;
	case OPT_NET_NODE:
		if (svm_parse_uint(arg, 0, SVM_NET_MAX_NODES - 1, &v, err) != 0)
			return -1;
		o->net_node = (uint32_t)v;
		return 0;
	case OPT_JOB:
		if (svm_parse_uint(arg, 1, UINT32_MAX - 1, &v, err) != 0)
			return -1;
		o->job_id = (uint32_t)v;
		return 0;
	default:
		return 1;
	}
}

static int parse_option(int opt, char *arg, struct provision_opts *o, struct svm_err *err)
{
	int rc = parse_sizes_and_numbers(opt, arg, o, err);

	if (rc != 1)
		return rc;
	switch (opt) {
	case OPT_CORES:
		o->cores = arg;
		return 0;
	case OPT_CPUSET:
		o->cpuset = arg;
		return 0;
	case OPT_EMULATOR_CPUS:
		o->emulator_cpus = arg;
		return 0;
	case OPT_HYPERVISOR:
		return svm_parse_hypervisor(arg, &o->hypervisor, err);
	case OPT_HUGEPAGES:
		return svm_parse_hugepages(arg, &o->hugepages, err);
	case OPT_TOPOLOGY_XML:
		return parse_path(arg, &o->topology_xml, err);
	case OPT_OUT:
		return parse_path(arg, &o->out, err);
	case OPT_NAME:
		/* Domain names follow the image-name rule: no path, no markup. */
		if (svm_check_image_name(arg, err) != 0)
			return -1;
		o->name = arg;
		return 0;
	case OPT_OWNER:
		return parse_owner(arg, o, err);
	case OPT_KERNEL:
		return parse_path(arg, &o->kernel, err);
	case OPT_INITRD:
		return parse_path(arg, &o->initrd, err);
	case OPT_CMDLINE:
		o->cmdline = arg;
		return 0;
	case OPT_DIR:
		return parse_path(arg, &o->dir, err);
	case OPT_URI:
		o->uri = arg;
		return 0;
	case OPT_GUEST_SHARE:
		if (o->nguest_shares == PROVISION_MAX_SHARES)
			return svm_err_set(err, "at most %d guest shares", PROVISION_MAX_SHARES);
		if (svm_check_abs_path(arg, err) != 0)
			return -1;
		if (strcmp(arg, "/") == 0)
			return svm_err_set(err, "the host's / is shared read-only already");
		o->guest_shares[o->nguest_shares++] = arg;
		return 0;
	case OPT_NO_HARD_LIMIT:
		o->no_hard_limit = true;
		return 0;
	case OPT_SHARE:
		return parse_share(arg, o, err);
	case OPT_IMAGE:
		if (svm_check_image_name(arg, err) != 0)
			return -1;
		o->image = arg;
		return 0;
	case OPT_IMAGE_DIR:
		return parse_path(arg, &o->image_dir, err);
	case OPT_SLURM_COMMANDS:
		return parse_path(arg, &o->slurm_commands, err);
	case OPT_NET_BRIDGE:
		if (!svm_net_valid_bridge(arg))
			return svm_err_set(err, "'%.32s' is not an interface name", arg);
		o->net_bridge = arg;
		return 0;
	case OPT_NET_CIDR:
		o->net_cidr = arg;
		return 0;
	case OPT_NET_HOSTS:
		o->net_hosts = arg;
		return 0;
	case OPT_CHECKPOINT_STAGE:
		return parse_path(arg, &o->checkpoint_stage, err);
	case OPT_CHECKPOINT:
		return parse_path(arg, &o->checkpoint, err);
	case OPT_JOB_CGROUPS_FILE:
		return parse_path(arg, &o->job_cgroups_file, err);
	case OPT_NODE:
		/* A Slurm node name: the image-name rule keeps it one plain word. */
		if (svm_check_image_name(arg, err) != 0)
			return -1;
		o->node = arg;
		return 0;
	case OPT_KEEP_RUNNING:
		o->keep_running = true;
		return 0;
	case OPT_CHECKPOINT_FRESH:
		o->checkpoint_fresh = true;
		return 0;
	default:
		return svm_err_set(err, "unknown option");
	}
}

static int check_required(const char *command, const struct provision_opts *o, struct svm_err *err)
{
	bool needs_alloc = strcmp(command, "plan") == 0 || strcmp(command, "start") == 0;

	if (o->net_bridge != NULL &&
	    (o->net_cidr == NULL || o->net_job == 0 || o->net_hosts == NULL))
		return svm_err_set(err, "--net-bridge needs --net-cidr, --net-job and --net-hosts");

	if (needs_alloc && o->mem_mib == 0)
		return svm_err_set(err, "%s needs --mem", command);
	if (needs_alloc && o->cores == NULL && o->cpuset == NULL && o->cgroup_pid == 0)
		return svm_err_set(err, "%s needs --cores, --cpuset or --cgroup-pid", command);
	if (strcmp(command, "plan") != 0 && o->name == NULL)
		return svm_err_set(err, "%s needs --name", command);
	if ((strcmp(command, "start") == 0 || strcmp(command, "save") == 0) &&
	    (!o->have_owner || !o->dir))
		return svm_err_set(err, "%s needs --owner and --dir", command);
	if (strcmp(command, "save") == 0 && (o->checkpoint_stage == NULL || o->checkpoint == NULL))
		return svm_err_set(err, "save needs --checkpoint-stage and --checkpoint");
	if (o->image != NULL && o->image_dir == NULL)
		return svm_err_set(err, "--image needs --image-dir");
	return 0;
}

static void defaults(struct provision_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->reserve_mib = 256;
	o->hypervisor = SVM_HV_KVM;
	o->timeout_s = 10;
}

int main(int argc, char **argv)
{
	struct provision_opts o;
	struct svm_err err = {""};
	const char *command;
	int opt, rc;

	defaults(&o);
	if (argc < 2 || argv[1][0] == '-') {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	command = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == 'h' || opt == '?') {
			fputs(usage_text, opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
		if (parse_option(opt, optarg, &o, &err) != 0) {
			fprintf(stderr, PROVISION_LOG_PREFIX "--%s: %s\n",
			        long_options[opt - OPT_CORES].name, err.msg);
			return 2;
		}
	}
	if (optind != argc || check_required(command, &o, &err) != 0) {
		fprintf(stderr, PROVISION_LOG_PREFIX "%s\n%s",
		        err.msg[0] ? err.msg : "unexpected argument", usage_text);
		return 2;
	}
	if (strcmp(command, "plan") == 0)
		rc = provision_cmd_plan(&o, &err);
	else if (strcmp(command, "start") == 0)
		rc = provision_cmd_start(&o, &err);
	else if (strcmp(command, "stop") == 0)
		rc = provision_cmd_stop(&o, &err);
	else if (strcmp(command, "save") == 0)
		rc = provision_cmd_save(&o, &err);
	else
		rc = svm_err_set(&err,
		                 "unknown command '%.32s' (commands: plan, start, stop, save)",
		                 command);
	if (rc != 0)
		fprintf(stderr, PROVISION_LOG_PREFIX "%s\n", err.msg);
	return rc == 0 ? 0 : 1;
}
