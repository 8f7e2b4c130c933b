/* Starting and stopping a guest through libvirt. Domains are transient: once
 * destroyed (or if libvirtd restarts without them) nothing of them remains in
 * libvirt's configuration. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uuid/uuid.h>

#include "provision.h"
#include "spank_vm/checkpoint.h"
#include "spank_vm/domain_owner.h"
#include "spank_vm/domain_xml.h"

#define DEFAULT_URI "qemu:///system"

/* libvirt prints its errors to stderr unless told otherwise; ours carry the
 * message instead. */
static void quiet_libvirt(void *opaque, virErrorPtr error)
{
	(void)opaque;
	(void)error;
}

int provision_libvirt_error(struct svm_err *err, const char *what)
{
	const virError *e = virGetLastError();

	return svm_err_set(err, "%s: %s", what, e && e->message ? e->message : "unknown error");
}

virConnectPtr provision_connect(const struct provision_opts *o, struct svm_err *err)
{
	virConnectPtr conn;

	virSetErrorFunc(NULL, quiet_libvirt);
	conn = virConnectOpen(o->uri ? o->uri : DEFAULT_URI);
	if (conn == NULL)
		provision_libvirt_error(err, "cannot connect to libvirt");
	return conn;
}

/* A site image, if the guest boots one: its catalog entry, checked against
 * the guest; image->name is "" for the default guest. */
int provision_load_image(const struct provision_opts *o, struct svm_image *image,
                         struct svm_err *err)
{
	memset(image, 0, sizeof(*image));
	if (o->image == NULL)
		return 0;
	if (svm_catalog_load(o->image_dir, o->image, image, err) != 0)
		return -1;
	if (!svm_image_supports(image, o->hypervisor))
		return svm_err_set(err, "image %s cannot boot under %s", image->name,
		                   svm_hypervisor_name(o->hypervisor));
	if (image->boot != SVM_BOOT_DISK)
		return 0;
	/* The agent's words travel in QEMU's fw_cfg, which Xen guests lack. */
	if (o->hypervisor == SVM_HV_XEN)
		return svm_err_set(err,
		                   "image %s: boot=disk needs hypervisor kvm or qemu (the "
		                   "guest's configuration travels in QEMU's fw_cfg)",
		                   image->name);
	if (o->cmdline != NULL)
		return svm_err_set(err,
		                   "image %s boots itself (boot=disk): its bootloader sets the "
		                   "kernel command line, --cmdline cannot",
		                   image->name);
	return 0;
}

/* The image's bootloader boots its own kernel: the host's (a site's
 * kernel=, initrd=) does not apply. */
static bool boots_itself(const struct svm_image *image)
{
	return image->name[0] != '\0' && image->boot == SVM_BOOT_DISK;
}

#define ALL_SHARES (2 * PROVISION_MAX_SHARES + 1)

#define WORDS_CAP 8192

struct guest_view {
	struct svm_share shares[ALL_SHARES];
	size_t nshares;
	char tags[PROVISION_MAX_SHARES][32];
	char words[WORDS_CAP];       /* the agent's spank_vm.* words */
	char cmdline[2 * WORDS_CAP]; /* the kernel's arguments, then the words */
};

static bool has_tag(const struct provision_opts *o, const char *tag)
{
	for (size_t i = 0; i < o->nshares; i++)
		if (strcmp(o->shares[i].tag, tag) == 0)
			return true;
	return false;
}

/* One more word, blank-separated from the previous ones. */
static int add_word(struct guest_view *v, size_t *used, struct svm_err *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int add_word(struct guest_view *v, size_t *used, struct svm_err *err, const char *fmt, ...)
{
	const size_t sep = *used > 0 ? 1 : 0;
	char word[WORDS_CAP];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(word, sizeof(word), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(word) || *used + sep + (size_t)n >= sizeof(v->words))
		return svm_err_set(err, "the guest's configuration (spank_vm.* words) is too long");
	snprintf(v->words + *used, sizeof(v->words) - *used, "%s%s", sep ? " " : "", word);
	*used += sep + (size_t)n;
	return 0;
}

/* Where spank-vm-exec and spank-vm-mux are: next to this program. The
 * default guest sees the host's root, so the same path works there. */
static int helper_dir(char *out, size_t cap, struct svm_err *err)
{
	char *slash;
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);

	if (n <= 0 || (size_t)n >= cap - 1)
		return svm_err_errno(err, errno, "readlink /proc/self/exe");
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (slash == NULL || slash == out)
		return svm_err_set(err, "unexpected path of spank-vm-provision: %s", out);
	*slash = '\0';
	return 0;
}

/* spank_vm.hostcall=UID:GID:HELPERS:COMMANDS (paths percent-encoded): the
 * agent starts a mux for the user on the host call port and puts a stand-in
 * for each Slurm command of COMMANDS in the guest (helpers/hostcall). */
static int add_hostcall_word(const struct provision_opts *o, struct guest_view *v, size_t *used,
                             struct svm_err *err)
{
	char helpers[4096], helpers_enc[3 * 4096 + 1], commands_enc[3 * 4096 + 1];

	if (o->slurm_commands == NULL || o->hypervisor == SVM_HV_XEN)
		return 0;
	if (helper_dir(helpers, sizeof(helpers), err) != 0)
		return -1;
	if (svm_percent_encode(helpers, helpers_enc, sizeof(helpers_enc)) != 0 ||
	    svm_percent_encode(o->slurm_commands, commands_enc, sizeof(commands_enc)) != 0)
		return svm_err_set(err, "--slurm-commands: path too long");
	return add_word(v, used, err, "spank_vm.hostcall=%u:%u:%s:%s", (unsigned)o->uid,
	                (unsigned)o->gid, helpers_enc, commands_enc);
}

/* What the guest sees of the host: the built-in guest gets the host's root
 * read-only (tag hostroot), a site image its own disk as root, which the
 * agent learns from spank_vm.root (and spank_vm.allow_root=1 when the
 * catalog allows jobs to run as root there); each --guest-share PATH is
 * mounted read-write at PATH, which the agent learns from
 * spank_vm.share=TAG:PATH (encoded). The words go on the kernel command
 * line, or, for an image that boots itself, into fw_cfg (render()); such an
 * image has its root on its own command line, so it gets no spank_vm.root. */
static int guest_view(const struct provision_opts *o, const struct svm_image *image,
                      struct guest_view *v, struct svm_err *err)
{
	size_t used = 0;
	int n;

	v->nshares = 0;
	v->words[0] = '\0';
	for (size_t i = 0; i < o->nshares; i++)
		v->shares[v->nshares++] = o->shares[i];
	if (o->image == NULL && !has_tag(o, "hostroot"))
		v->shares[v->nshares++] = (struct svm_share){"/", "hostroot", true};
	if (image->name[0] != '\0' &&
	    ((!boots_itself(image) &&
	      add_word(v, &used, err, "spank_vm.root=%s", image->root_device) != 0) ||
	     (image->allow_root && add_word(v, &used, err, "spank_vm.allow_root=1") != 0)))
		return -1;
	for (size_t i = 0; i < o->nguest_shares; i++) {
		char encoded[3 * 4096 + 1];

		snprintf(v->tags[i], sizeof(v->tags[i]), "share%zu", i);
		v->shares[v->nshares++] = (struct svm_share){o->guest_shares[i], v->tags[i], false};
		if (svm_percent_encode(o->guest_shares[i], encoded, sizeof(encoded)) != 0)
			return svm_err_set(err, "--guest-share: path too long");
		if (add_word(v, &used, err, "spank_vm.share=%s:%s", v->tags[i], encoded) != 0)
			return -1;
	}
	if (add_hostcall_word(o, v, &used, err) != 0)
		return -1;
	n = snprintf(v->cmdline, sizeof(v->cmdline), "%s%s%s",
	             o->cmdline ? o->cmdline : PROVISION_DEFAULT_CMDLINE, used ? " " : "",
	             v->words);
	if (n < 0 || (size_t)n >= sizeof(v->cmdline))
		return svm_err_set(err, "the guest's kernel command line is too long");
	return 0;
}

/* The host's kernel and initramfs with the words on the command line, or
 * the disk's bootloader with the words in fw_cfg. */
static int set_boot(const struct provision_opts *o, const struct svm_image *image,
                    const struct guest_view *v, struct svm_domain_spec *spec, char *kernel,
                    char *initrd, size_t len, struct svm_err *err)
{
	if (boots_itself(image)) {
		spec->boot_disk = true;
		/* libvirt refuses an fw_cfg entry without a value. */
		spec->fw_cfg_config = v->words[0] != '\0' ? v->words : NULL;
		return 0;
	}
	if (provision_boot_files(o, kernel, len, initrd, len, err) != 0)
		return -1;
	spec->kernel = kernel;
	spec->initrd = initrd;
	/* The serial console is the guest's log (console.log). */
	spec->cmdline = v->cmdline;
	return 0;
}

/* A saved guest's identity: libvirt restores it only under its own name and
 * UUID (its name may carry the node it was first started on). */
struct saved_identity {
	char uuid[37];
	char name[256];
};

/* The domain's XML; a restored guest (restoring) already has its disk,
 * copied from the checkpoint, where a fresh one gets its new overlay. */
static int render(const struct provision_opts *o, const struct svm_image *image,
                  const struct svm_plan *plan, const struct saved_identity *restored, char **xml,
                  struct svm_err *err)
{
	bool restoring = restored != NULL;
	char console[4096], socket_path[4096], uuid_text[37], overlay[4096], hostcall[4096];
	char kernel[4096], initrd[4096];
	struct svm_domain_spec spec = {0};
	static struct guest_view view;
	static struct provision_net net;
	static char fw_cfg[2 * WORDS_CAP + sizeof(net.words)];
	uuid_t uuid;

	snprintf(console, sizeof(console), "%s/console.log", o->dir);
	snprintf(socket_path, sizeof(socket_path), "%s/agent.sock", o->dir);
	uuid_generate(uuid);
	uuid_unparse_lower(uuid, uuid_text);
	if (restoring)
		snprintf(uuid_text, sizeof(uuid_text), "%s", restored->uuid);
	spec.name = restoring ? restored->name : o->name;
	spec.uuid = uuid_text;
	spec.owner_node = o->node;
	spec.job_id = o->job_id;
	spec.uid = o->uid;
	spec.gid = o->gid;
	/* The catalog first: it says how the guest boots and what the agent
	 * is told. */
	if (guest_view(o, image, &view, err) != 0 ||
	    set_boot(o, image, &view, &spec, kernel, initrd, sizeof(kernel), err) != 0 ||
	    provision_net_prepare(o, &net, err) != 0)
		return -1;
	if (net.enabled) {
		/* The job's host names may exceed what a kernel command line holds:
		 * the network's words always travel in fw_cfg. */
		snprintf(fw_cfg, sizeof(fw_cfg), "%s%s%s",
		         spec.fw_cfg_config ? spec.fw_cfg_config : "",
		         spec.fw_cfg_config ? " " : "", net.words);
		spec.fw_cfg_config = fw_cfg;
		if (strlen(fw_cfg) > SVM_FW_CFG_CONFIG_MAX)
			return svm_err_set(err,
			                   "--vm-net=cluster: the job's host names do not fit "
			                   "the guest's %d bytes of configuration",
			                   SVM_FW_CFG_CONFIG_MAX);
		spec.net_bridge = o->net_bridge;
		spec.net_addr = net.addr;
		spec.net_subnet = net.subnet;
		spec.net_mac = net.mac;
	}
	spec.console_log = console;
	spec.agent_socket = socket_path;
	snprintf(hostcall, sizeof(hostcall), "%s/" PROVISION_HOSTCALL_SOCKET, o->dir);
	if (o->slurm_commands != NULL && o->hypervisor != SVM_HV_XEN)
		spec.hostcall_socket = hostcall;
	spec.no_hard_limit = o->no_hard_limit;
	spec.shares = view.shares;
	spec.nshares = view.nshares;
	overlay[0] = '\0';
	if (restoring)
		snprintf(overlay, sizeof(overlay), "%s/disk.qcow2", o->dir);
	else if (image->name[0] != '\0' &&
	         provision_make_overlay(o, image, overlay, sizeof(overlay), err) != 0)
		return -1;
	spec.disk_image = overlay[0] ? overlay : NULL;
	return svm_domain_xml(plan, &spec, xml, err);
}

/* libvirt creates the channels' sockets itself, as root; the job's mux
 * runs as the job's user and must connect to them. The directory is the
 * user's, so nothing is followed: only a socket at that name is handed over. */
static int hand_socket_to_owner(const struct provision_opts *o, const char *name,
                                struct svm_err *err)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return svm_err_errno(err, errno, "the guest's channel %s", path);
	if (!S_ISSOCK(st.st_mode))
		return svm_err_set(err, "%s is not the guest's channel socket", path);
	if (fchownat(AT_FDCWD, path, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) != 0)
		return svm_err_errno(err, errno, "cannot hand %s to uid %u", path,
		                     (unsigned)o->uid);
	return 0;
}

int provision_hand_sockets(const struct provision_opts *o, struct svm_err *err)
{
	if (hand_socket_to_owner(o, "agent.sock", err) != 0)
		return -1;
	if (o->slurm_commands != NULL && o->hypervisor != SVM_HV_XEN)
		return hand_socket_to_owner(o, PROVISION_HOSTCALL_SOCKET, err);
	return 0;
}

static int create_domain(virConnectPtr conn, const char *xml, bool paused, struct svm_err *err)
{
	virDomainPtr dom = virDomainCreateXML(conn, xml, paused ? VIR_DOMAIN_START_PAUSED : 0);
	struct svm_err why;

	if (dom != NULL) {
		virDomainFree(dom);
		return 0;
	}
	provision_libvirt_error(&why, "cannot start the guest");
	if (strstr(why.msg, "cannot limit locked memory") != NULL)
		return svm_err_set(err,
		                   "%.400s (libvirtd lacks CAP_SYS_RESOURCE to apply the "
		                   "memory hard limit: give it the capability, or set "
		                   "hard_limit=no in plugstack.conf)",
		                   why.msg);
	*err = why;
	return -1;
}

/* The text of <tag> in xml when it is made of allowed bytes only. */
static bool element_text(const char *xml, const char *tag, const char *allowed, char *out,
                         size_t len)
{
	char open[32];
	const char *at;
	size_t n;

	snprintf(open, sizeof(open), "<%s>", tag);
	at = strstr(xml, open);
	if (at == NULL)
		return false;
	at += strlen(open);
	n = strspn(at, allowed);
	if (n == 0 || n >= len || at[n] != '<')
		return false;
	memcpy(out, at, n);
	out[n] = '\0';
	return true;
}

/* The name and UUID of the guest saved in the stage's state file (libvirt
 * reads it there: the copy is root's and verified). Names we give are
 * spank_vm-<node>-<job>: Slurm node names are letters, digits, '-', '_', '.'. */
static int saved_identity(virConnectPtr conn, const char *memory, struct saved_identity *id,
                          struct svm_err *err)
{
	static const char name_bytes[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                 "0123456789-_.";
	char *xml = virDomainSaveImageGetXMLDesc(conn, memory, 0);
	uuid_t parsed;
	bool ok;

	if (xml == NULL)
		return provision_libvirt_error(err, "cannot read the checkpoint's saved state");
	ok = element_text(xml, "uuid", "0123456789abcdef-", id->uuid, sizeof(id->uuid)) &&
	     uuid_parse(id->uuid, parsed) == 0 &&
	     element_text(xml, "name", name_bytes, id->name, sizeof(id->name));
	free(xml);
	return ok ? 0 : svm_err_set(err, "the checkpoint's saved state names no guest");
}

static int restore_domain(virConnectPtr conn, const char *memory, const char *xml, bool paused,
                          struct svm_err *err)
{
	if (virDomainRestoreFlags(conn, memory, xml,
	                          paused ? VIR_DOMAIN_SAVE_PAUSED : VIR_DOMAIN_SAVE_RUNNING) != 0)
		return provision_libvirt_error(err, "cannot restore the guest from its checkpoint");
	return 0;
}

/* What start works on: the allocation's plan, and with --restore-from the
 * checkpoint found there (its manifest, the plan re-pinned to the
 * allocation, libvirt's state file in the stage). */
struct start_state {
	struct svm_plan alloc, restored;
	struct svm_image image;
	struct svm_ckpt_manifest *manifest;
	char memory[SVM_PATH_MAX + 16]; /* "" unless restoring */
	char not_restored[SVM_ERR_MAX]; /* --checkpoint-fallback-fresh: why it boots afresh */
	struct svm_cgroup_dirs cgroups; /* --job-task: the job cgroups the guest joins */
};

static int prepare_start(const struct provision_opts *o, struct start_state *st,
                         struct svm_err *err, char *saved_on)
{
	int found;

	if (provision_checkpoint_check(o, err) != 0 ||
	    provision_build_plan(o, &st->alloc, err) != 0)
		return -1;
	if (o->job_task > 0 && o->job_cgroups_file == NULL)
		return svm_err_set(err, "--job-task needs --job-cgroups-file");
	if (o->job_task > 0 &&
	    provision_cgroups_of_task(o->job_task, o->job_cgroups_file, &st->cgroups, err) != 0)
		return -1;
	if (provision_load_image(o, &st->image, err) != 0)
		return -1;
	if (o->checkpoint_stage == NULL)
		return 0;
	st->manifest = calloc(1, sizeof(*st->manifest));
	if (st->manifest == NULL)
		return svm_err_set(err, "out of memory");
	if (o->checkpoint == NULL)
		found = 1;
	else
		found = provision_restore_load(o, &st->image, &st->alloc, &st->restored,
		                               st->manifest, st->memory, sizeof(st->memory), err);
	if (found < 0 && o->checkpoint_fresh) {
		snprintf(st->not_restored, sizeof(st->not_restored), "%s", err->msg);
		found = 1;
	}
	if (found < 0) {
		snprintf(st->not_restored, sizeof(st->not_restored), "%s", err->msg);
		return svm_err_set(err,
		                   "the job's checkpoint cannot be restored: %s (with "
		                   "--vm-checkpoint-fallback=fresh the guest would boot afresh)",
		                   st->not_restored);
	}
	if (found == 1)
		st->memory[0] = '\0';
	else
		/* The shape recorded below names this node. */
		snprintf(saved_on, SVM_CKPT_NODE_MAX + 1, "%s", st->manifest->node);
	/* The shape recorded for later saves: the checkpoint's, or the new plan's. */
	return provision_checkpoint_record_shape(o, &st->image, found == 1 ? &st->alloc : NULL,
	                                         st->manifest, err);
}

int provision_cmd_start(const struct provision_opts *o, struct svm_err *err)
{
	struct start_state st = {0};
	const struct svm_plan *plan;
	virConnectPtr conn = NULL;
	char *xml = NULL, line[512], saved_on[SVM_CKPT_NODE_MAX + 1] = "";
	struct saved_identity saved;
	int rc = -1;

	if (prepare_start(o, &st, err, saved_on) != 0)
		goto out;
	plan = st.memory[0] ? &st.restored : &st.alloc;
	/* The plan is recorded first: it tells an admin what was tried. */
	if (o->out != NULL && provision_record_plan(plan, o->out, err) != 0)
		goto out;
	conn = provision_connect(o, err);
	if (conn == NULL || (o->net_bridge != NULL && provision_net_filter(conn, err) != 0))
		goto out;
	if (st.memory[0] && saved_identity(conn, st.memory, &saved, err) != 0)
		goto out;
	if (provision_prepare_console(o, err) != 0 ||
	    render(o, &st.image, plan, st.memory[0] ? &saved : NULL, &xml, err) != 0)
		goto out;
	if ((st.memory[0] ? restore_domain(conn, st.memory, xml, o->job_task > 0, err)
	                  : create_domain(conn, xml, o->job_task > 0, err)) != 0)
		goto out;
	if (o->job_task > 0 && provision_join_job_cgroups(conn, st.memory[0] ? saved.name : o->name,
	                                                  &st.cgroups, err) != 0)
		goto out;
	if (provision_hand_sockets(o, err) != 0)
		goto out;
	svm_plan_describe(plan, line, sizeof(line));
	if (st.memory[0])
		printf("restored %s from the checkpoint saved on %s: %s\n", saved.name, saved_on,
		       line);
	else
		printf("started %s: %s\n", o->name, line);
	/* The plugin hands this line to the job's output. */
	if (st.not_restored[0] != '\0')
		printf("notice: the checkpoint in %s was not restored (%s): the guest boots "
		       "afresh (--vm-checkpoint-fallback=fresh)\n",
		       o->checkpoint, st.not_restored);
	rc = 0;
out:
	if (st.memory[0])
		provision_restore_done(o);
	if (conn != NULL)
		virConnectClose(conn);
	free(xml);
	free(st.manifest);
	svm_plan_free(&st.alloc);
	svm_plan_free(&st.restored);
	return rc;
}

double provision_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Asks the guest to power off and waits up to timeout_s for it to go. */
static bool shut_down_gracefully(virDomainPtr dom, unsigned timeout_s)
{
	const struct timespec tick = {0, 100 * 1000 * 1000};
	double deadline = provision_now_s() + timeout_s;

	if (timeout_s == 0 || virDomainShutdown(dom) != 0)
		return false;
	while (provision_now_s() < deadline) {
		if (virDomainIsActive(dom) != 1)
			return true;
		nanosleep(&tick, NULL);
	}
	return false;
}

virDomainPtr provision_find_guest(virConnectPtr conn, const struct provision_opts *o)
{
	virResetLastError();
	if (o->job_id != 0 && o->node != NULL)
		return svm_domain_of_job(conn, o->node, o->job_id);
	return virDomainLookupByName(conn, o->name);
}

int provision_cmd_stop(const struct provision_opts *o, struct svm_err *err)
{
	virConnectPtr conn = provision_connect(o, err);
	virDomainPtr dom;
	int rc = 0;

	if (conn == NULL)
		return -1;
	dom = provision_find_guest(conn, o);
	if (dom == NULL) {
		/* Already gone is what stop wants: it may run twice (exit, epilog). */
		const virError *e = virGetLastError();

		rc = (e == NULL || e->code == VIR_ERR_NO_DOMAIN)
		             ? 0
		             : provision_libvirt_error(err, "lookup");
		goto out;
	}
	if (!shut_down_gracefully(dom, o->timeout_s) && virDomainIsActive(dom) == 1 &&
	    virDomainDestroy(dom) != 0)
		rc = provision_libvirt_error(err, "cannot destroy the guest");
	virDomainFree(dom);
out:
	if (rc == 0 && o->job_cgroups_file != NULL)
		provision_leave_job_cgroups(o->job_cgroups_file);
	virConnectClose(conn);
	return rc;
}
