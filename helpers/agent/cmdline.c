/* The guest's configuration: spank_vm.* words that reach the guest before
 * the channel is up. They come from two places, read in this order:
 *
 *   1. the kernel command line (/proc/cmdline): the host's kernel and the
 *      default initramfs, where the host sets the command line;
 *   2. the QEMU fw_cfg file SVM_FW_CFG_CONFIG_NAME, when the guest has one:
 *      an image that boots itself (catalog boot=disk), whose bootloader owns
 *      the command line.
 *
 * The fw_cfg words count as if appended to the command line: shares add up
 * (a tag in both is an error, as twice on the command line), a second
 * spank_vm.root is an error, and the last spank_vm.allow_root wins. The host
 * puts the words in one place only, so this matters only to a hand-made
 * guest; refusing is the choice wherever a silent pick could run the job on
 * the wrong files.
 *
 *   spank_vm.share=TAG:PATH    mount the 9p share TAG read-write at PATH
 *                              (nosuid, nodev); PATH is percent-encoded
 *                              (%XX for any byte, mandatory for spaces, '%'
 *                              and ':'), absolute, without "." or ".."
 *                              components; at most AGENT_MAX_SHARES
 *   spank_vm.allow_root=0|1    whether EXEC may ask for uid/gid 0 (default 0)
 *   spank_vm.hostcall=UID:GID:HELPERS:COMMANDS
 *                              run the Slurm commands of COMMANDS on the
 *                              host through the host call port, as UID:GID;
 *                              HELPERS holds spank-vm-mux and spank-vm-exec
 *                              (both paths percent-encoded, absolute)
 *   spank_vm.net=A.B.C.D/P     the job network's address of the guest's NIC
 *   spank_vm.hostname=NAME     the guest's hostname (the Slurm node's name)
 *   spank_vm.hosts=A.B.C.D:NAME:...
 *                              /etc/hosts: NAME i at A.B.C.D + i
 *   spank_vm.root=/dev/NAME    boot a site image: mount this block device
 *                              read-write as the root instead of the host's
 *                              root over 9p; NAME is a kernel device name
 *                              (a lowercase letter, then lowercase letters
 *                              and digits: vda, vda1, nvme0n1p1), at most
 *                              once
 *
 * The kernel does not pass dotted parameters to init, so they are read from
 * /proc/cmdline. Anything else under spank_vm. is refused. */
#include <string.h>

#include "agent.h"
#include "spank_vm/domain_xml.h"
#include "spank_vm/values.h"

#define PARAM_PREFIX "spank_vm."

/* Absolute, no empty, "." or ".." components, not "/" itself, and not where
 * the agent mounts its own file systems. */
static int check_share_path(const char *path, struct svm_err *err)
{
	static const char *const reserved[] = {"/proc", "/sys", "/dev"};
	const char *p = path;

	if (path[0] != '/' || path[1] == '\0')
		return svm_err_set(err, "share path '%.200s' must be absolute and not /", path);
	while (*p == '/') {
		const char *end = strchrnul(p + 1, '/');
		size_t n = (size_t)(end - p - 1);

		if (n == 0 || (n == 1 && p[1] == '.') || (n == 2 && p[1] == '.' && p[2] == '.'))
			return svm_err_set(
			        err, "share path '%.200s' has an empty, . or .. component", path);
		p = end;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		size_t n = strlen(reserved[i]);

		if (strncmp(path, reserved[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return svm_err_set(err,
			                   "share path '%.200s' is under %s, which the agent "
			                   "mounts itself",
			                   path, reserved[i]);
	}
	return 0;
}

static int check_tag(const char *tag, size_t len, struct svm_err *err)
{
	if (len == 0 || len > AGENT_MAX_TAG)
		return svm_err_set(err, "share tag must have 1..%d characters", AGENT_MAX_TAG);
	for (size_t i = 0; i < len; i++) {
		char c = tag[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';

		if (!ok)
			return svm_err_set(err,
			                   "share tag '%.*s' may only hold letters, digits, "
			                   "'_', '-' and '.'",
			                   (int)len, tag);
	}
	if (len == strlen(AGENT_ROOT_TAG) && memcmp(tag, AGENT_ROOT_TAG, len) == 0)
		return svm_err_set(err, "share tag '%s' is the root file system's", AGENT_ROOT_TAG);
	return 0;
}

static int parse_share(const char *value, size_t len, struct agent_config *config,
                       struct svm_err *err)
{
	const char *colon = memchr(value, ':', len);
	struct agent_share *share;
	size_t tag_len;

	if (config->nshares == AGENT_MAX_SHARES)
		return svm_err_set(err, "more than %d shares", AGENT_MAX_SHARES);
	if (colon == NULL)
		return svm_err_set(err, "spank_vm.share needs TAG:PATH");
	tag_len = (size_t)(colon - value);
	if (check_tag(value, tag_len, err) != 0)
		return -1;
	share = &config->shares[config->nshares];
	memcpy(share->tag, value, tag_len);
	share->tag[tag_len] = '\0';
	if (svm_percent_decode(colon + 1, len - tag_len - 1, share->path, sizeof(share->path)) != 0)
		return svm_err_set(err,
		                   "share path: malformed percent escape, NUL byte, or longer "
		                   "than %d bytes",
		                   AGENT_PATH_CAP - 1);
	if (check_share_path(share->path, err) != 0)
		return -1;
	for (size_t i = 0; i < config->nshares; i++)
		if (strcmp(config->shares[i].tag, share->tag) == 0)
			return svm_err_set(err, "share tag '%s' given twice", share->tag);
	config->nshares++;
	return 0;
}

/* Only plain kernel names: the value becomes a path under /dev and /sys. */
static bool is_device_path(const char *value, size_t len)
{
	const size_t plen = strlen("/dev/");

	if (len <= plen || len - plen > AGENT_MAX_DEV_NAME || memcmp(value, "/dev/", plen) != 0 ||
	    value[plen] < 'a' || value[plen] > 'z')
		return false;
	for (size_t i = plen; i < len; i++)
		if (!((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= '0' && value[i] <= '9')))
			return false;
	return true;
}

static int parse_root(const char *value, size_t len, struct agent_config *config,
                      struct svm_err *err)
{
	if (config->root_device[0] != '\0')
		return svm_err_set(err, "spank_vm.root given twice");
	if (!is_device_path(value, len))
		return svm_err_set(err,
		                   "spank_vm.root '%.*s' must be /dev/NAME, NAME a lowercase "
		                   "letter then up to %d lowercase letters and digits (such as "
		                   "/dev/vda1)",
		                   (int)(len > 64 ? 64 : len), value, AGENT_MAX_DEV_NAME - 1);
	memcpy(config->root_device, value, len);
	config->root_device[len] = '\0';
	return 0;
}

/* One percent-encoded absolute path, up to the next ':' or the end. */
static int parse_hostcall_path(const char **p, const char *end, char *out, const char *what,
                               struct svm_err *err)
{
	const char *colon = memchr(*p, ':', (size_t)(end - *p));
	const char *stop = colon ? colon : end;

	if (svm_percent_decode(*p, (size_t)(stop - *p), out, AGENT_PATH_CAP) != 0 || out[0] != '/')
		return svm_err_set(err,
		                   "spank_vm.hostcall: %s must be an absolute, "
		                   "percent-encoded path",
		                   what);
	*p = colon ? colon + 1 : end;
	return 0;
}

static int parse_hostcall_id(const char **p, const char *end, uint32_t *out, const char *what,
                             struct svm_err *err)
{
	const char *colon = memchr(*p, ':', (size_t)(end - *p));
	char text[16];
	uint64_t v;

	if (colon == NULL || (size_t)(colon - *p) >= sizeof(text))
		return svm_err_set(err, "spank_vm.hostcall needs UID:GID:HELPERS:COMMANDS");
	memcpy(text, *p, (size_t)(colon - *p));
	text[colon - *p] = '\0';
	if (svm_parse_uint(text, 1, SVM_PROTO_MAX_ID, &v, err) != 0)
		return svm_err_set(err, "spank_vm.hostcall: %s must be a number above 0", what);
	*out = (uint32_t)v;
	*p = colon + 1;
	return 0;
}

/* The user is never root: the guest's mux for the host calls runs as them. */
static int parse_hostcall(const char *value, size_t len, struct agent_config *config,
                          struct svm_err *err)
{
	const char *p = value, *end = value + len;

	if (config->hostcall_commands[0] != '\0')
		return svm_err_set(err, "spank_vm.hostcall given twice");
	if (parse_hostcall_id(&p, end, &config->hostcall_uid, "UID", err) != 0 ||
	    parse_hostcall_id(&p, end, &config->hostcall_gid, "GID", err) != 0 ||
	    parse_hostcall_path(&p, end, config->hostcall_helpers, "HELPERS", err) != 0)
		return -1;
	if (p == end)
		return svm_err_set(err, "spank_vm.hostcall needs UID:GID:HELPERS:COMMANDS");
	if (parse_hostcall_path(&p, end, config->hostcall_commands, "COMMANDS", err) != 0)
		return -1;
	if (p != end)
		return svm_err_set(err, "spank_vm.hostcall: more than UID:GID:HELPERS:COMMANDS");
	return 0;
}

static int parse_net(const char *value, size_t len, struct agent_config *config,
                     struct svm_err *err)
{
	const char *slash = memchr(value, '/', len);
	char prefix[4];
	uint64_t p;
	size_t plen = slash ? len - (size_t)(slash + 1 - value) : 0;

	if (config->net_addr != 0)
		return svm_err_set(err, "spank_vm.net given twice");
	if (slash == NULL || plen == 0 || plen >= sizeof(prefix) ||
	    svm_net_parse_addr(value, (size_t)(slash - value), &config->net_addr) != 0)
		goto bad;
	memcpy(prefix, slash + 1, plen);
	prefix[plen] = '\0';
	if (svm_parse_uint(prefix, 8, 30, &p, NULL) != 0 || config->net_addr == 0)
		goto bad;
	config->net_prefix = (unsigned)p;
	return 0;
bad:
	config->net_addr = 0;
	return svm_err_set(err, "spank_vm.net needs A.B.C.D/P, P from 8 to 30");
}

static int parse_hostname(const char *value, size_t len, struct agent_config *config,
                          struct svm_err *err)
{
	if (!svm_net_valid_hostname(value, len))
		return svm_err_set(err, "spank_vm.hostname: 1-63 of A-Z a-z 0-9 -");
	memcpy(config->hostname, value, len);
	config->hostname[len] = '\0';
	return 0;
}

/* FIRST:NAME:NAME:...: each a hostname (no commas: fw_cfg strings cannot
 * carry them, see provision/net.c). */
static int parse_hosts(const char *value, size_t len, struct agent_config *config,
                       struct svm_err *err)
{
	const char *colon = memchr(value, ':', len);
	const char *p, *end = value + len;

	if (colon == NULL || colon + 1 == end || len >= sizeof(config->hosts) ||
	    svm_net_parse_addr(value, (size_t)(colon - value), &config->hosts_first) != 0)
		return svm_err_set(err, "spank_vm.hosts needs A.B.C.D:NAME:NAME:...");
	for (p = colon + 1; p < end;) {
		const char *comma = memchr(p, ':', (size_t)(end - p));
		size_t n = (size_t)((comma ? comma : end) - p);

		if (!svm_net_valid_hostname(p, n))
			return svm_err_set(err, "spank_vm.hosts: '%.*s' is not a host name",
			                   (int)(n > 64 ? 64 : n), p);
		p += n + (comma ? 1 : 0);
		if (comma != NULL && p == end)
			return svm_err_set(err, "spank_vm.hosts ends with ':'");
	}
	memcpy(config->hosts, colon + 1, (size_t)(end - colon - 1));
	config->hosts[end - colon - 1] = '\0';
	return 0;
}

static int parse_param(const char *word, size_t len, struct agent_config *config,
                       struct svm_err *err)
{
	const size_t plen = strlen(PARAM_PREFIX);
	const char *key = word + plen;
	const char *eq = memchr(word, '=', len);
	size_t key_len, value_len;

	if (len < plen || memcmp(word, PARAM_PREFIX, plen) != 0)
		return 0;
	if (eq == NULL)
		return svm_err_set(err, "'%.*s' needs a value", (int)len, word);
	key_len = (size_t)(eq - key);
	value_len = len - (size_t)(eq + 1 - word);
	if (key_len == 5 && memcmp(key, "share", 5) == 0)
		return parse_share(eq + 1, value_len, config, err);
	if (key_len == 4 && memcmp(key, "root", 4) == 0)
		return parse_root(eq + 1, value_len, config, err);
	if (key_len == 8 && memcmp(key, "hostcall", 8) == 0)
		return parse_hostcall(eq + 1, value_len, config, err);
	if (key_len == 3 && memcmp(key, "net", 3) == 0)
		return parse_net(eq + 1, value_len, config, err);
	if (key_len == 8 && memcmp(key, "hostname", 8) == 0)
		return parse_hostname(eq + 1, value_len, config, err);
	if (key_len == 5 && memcmp(key, "hosts", 5) == 0)
		return parse_hosts(eq + 1, value_len, config, err);
	if (key_len == 10 && memcmp(key, "allow_root", 10) == 0 && value_len == 1 &&
	    (eq[1] == '0' || eq[1] == '1')) {
		config->allow_root = eq[1] == '1';
		return 0;
	}
	return svm_err_set(err,
	                   "unknown or malformed kernel parameter '%.*s' (known: "
	                   "spank_vm.share=TAG:PATH, spank_vm.allow_root=0|1, "
	                   "spank_vm.root=/dev/NAME, "
	                   "spank_vm.hostcall=UID:GID:HELPERS:COMMANDS, "
	                   "spank_vm.net=A.B.C.D/P, spank_vm.hostname=NAME, "
	                   "spank_vm.hosts=A.B.C.D:NAME:...)",
	                   (int)(len > 200 ? 200 : len), word);
}

int agent_parse_words(const char *text, struct agent_config *config, struct svm_err *err)
{
	const char *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, " \t\n");

		if (len > 0 && parse_param(p, len, config, err) != 0)
			return -1;
		p += len;
		p += strspn(p, " \t\n");
	}
	return 0;
}

int agent_parse_cmdline(const char *cmdline, struct agent_config *config, struct svm_err *err)
{
	memset(config, 0, sizeof(*config));
	return agent_parse_words(cmdline, config, err);
}

/* QEMU stores a string entry as given, a file entry as the file's bytes: a
 * trailing NUL or newline is tolerated, a NUL inside is not (it would hide
 * the words after it). */
int agent_parse_fw_cfg(const char *bytes, size_t len, struct agent_config *config,
                       struct svm_err *err)
{
	char text[AGENT_FW_CFG_MAX + 1];
	struct svm_err why = {""};

	while (len > 0 && bytes[len - 1] == '\0')
		len--;
	if (len > AGENT_FW_CFG_MAX)
		return svm_err_set(err, "fw_cfg " SVM_FW_CFG_CONFIG_NAME ": more than %d bytes",
		                   AGENT_FW_CFG_MAX);
	if (memchr(bytes, '\0', len) != NULL)
		return svm_err_set(err, "fw_cfg " SVM_FW_CFG_CONFIG_NAME ": a NUL byte inside");
	memcpy(text, bytes, len);
	text[len] = '\0';
	if (agent_parse_words(text, config, &why) != 0)
		return svm_err_set(err, "fw_cfg " SVM_FW_CFG_CONFIG_NAME ": %s", why.msg);
	return 0;
}
