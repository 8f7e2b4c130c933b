#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static const char usage_text[] =
        "usage: spank-vm-ctl [OPTIONS] list\n"
        "       spank-vm-ctl [OPTIONS] show JOBID\n"
        "       spank-vm-ctl [OPTIONS] console JOBID [--lines N]\n"
        "       spank-vm-ctl [OPTIONS] gc [--dry-run]\n"
        "       spank-vm-ctl [OPTIONS] checkpoint JOBID\n"
        "OPTIONS: [--plugstack FILE] [--node NAME] [--uri URI]\n"
        "  --plugstack  the plugstack.conf holding spank_vm's line (default\n"
        "               /etc/slurm/plugstack.conf); its keys give runtime_dir etc.\n"
        "  --node       this node's Slurm name (default: the short host name)\n"
        "gc removes the guests, disks, sockets and runtime directories of jobs that\n"
        "Slurm no longer runs on this node; if Slurm cannot be asked, it removes nothing.\n"
        "checkpoint saves the guest of a running --vm-checkpoint job on this node into\n"
        "the job's checkpoint directory; the job runs on.\n";

enum { OPT_PLUGSTACK = 256, OPT_NODE, OPT_URI, OPT_DRY_RUN, OPT_LINES };

static const struct option long_options[] = {
        {"plugstack", required_argument, NULL, OPT_PLUGSTACK},
        {"node", required_argument, NULL, OPT_NODE},
        {"uri", required_argument, NULL, OPT_URI},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"lines", required_argument, NULL, OPT_LINES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* The arguments of the plugstack.conf line that loads spank_vm.so. */
static int load_plugstack(const char *path, struct svm_config *cfg, struct svm_err *err)
{
	char line[4096], *argv[64], *save = NULL;
	int argc = 0, found = 0;
	FILE *f = fopen(path, "re");

	svm_config_defaults(cfg);
	if (f == NULL)
		return svm_err_errno(err, errno, "cannot open %s", path);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#'), *tok;

		if (hash != NULL)
			*hash = '\0';
		argc = 0;
		for (tok = strtok_r(line, " \t\n", &save); tok && argc < 64;
		     tok = strtok_r(NULL, " \t\n", &save))
			argv[argc++] = tok;
		found = argc >= 2 && strstr(argv[1], "spank_vm.so") != NULL;
	}
	fclose(f);
	if (!found)
		return svm_err_set(err, "%s has no spank_vm.so line", path);
	return svm_config_parse(cfg, argc - 2, argv + 2, err);
}

static int parse_job(const char *text, uint32_t *job, struct svm_err *err)
{
	uint64_t v;

	if (text == NULL)
		return svm_err_set(err, "a JOBID is needed");
	if (svm_parse_uint(text, 1, UINT32_MAX - 1, &v, err) != 0)
		return -1;
	*job = (uint32_t)v;
	return 0;
}

static int setup(struct ctl *c, const char *plugstack, const char *node, struct svm_err *err)
{
	char host[256];

	if (load_plugstack(plugstack, &c->config, err) != 0)
		return -1;
	if (node == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			return svm_err_errno(err, errno, "gethostname");
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		node = host;
	}
	if (svm_check_image_name(node, err) != 0)
		return -1;
	snprintf(c->node, sizeof(c->node), "%.*s", SVM_IMAGE_NAME_MAX, node);
	return svm_config_expand_node(&c->config, node, err);
}

static int run(struct ctl *c, int argc, char **argv, struct svm_err *err)
{
	const char *command = argv[optind];
	uint32_t job = 0;

	if (strcmp(command, "list") == 0)
		return ctl_list(c, err);
	if (strcmp(command, "gc") == 0)
		return ctl_gc(c, err);
	if (parse_job(optind + 1 < argc ? argv[optind + 1] : NULL, &job, err) != 0)
		return -1;
	if (strcmp(command, "show") == 0)
		return ctl_show(c, job, err);
	if (strcmp(command, "console") == 0)
		return ctl_console(c, job, err);
	if (strcmp(command, "checkpoint") == 0)
		return ctl_checkpoint(c, job, err);
	return svm_err_set(
	        err, "unknown command '%.32s' (commands: list, show, console, gc, checkpoint)",
	        command);
}

int main(int argc, char **argv)
{
	const char *plugstack = "/etc/slurm/plugstack.conf", *node = NULL;
	struct ctl c = {.console_lines = 40};
	struct svm_err err = {""};
	uint64_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == OPT_PLUGSTACK)
			plugstack = optarg;
		else if (opt == OPT_NODE)
			node = optarg;
		else if (opt == OPT_URI)
			c.uri = optarg;
		else if (opt == OPT_DRY_RUN)
			c.dry_run = true;
		else if (opt == OPT_LINES && svm_parse_uint(optarg, 1, 100000, &v, &err) == 0)
			c.console_lines = (unsigned)v;
		else {
			fputs(usage_text, opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (setup(&c, plugstack, node, &err) != 0 || run(&c, argc, argv, &err) != 0) {
		fprintf(stderr, CTL_PREFIX "%s\n", err.msg);
		return 1;
	}
	return 0;
}
