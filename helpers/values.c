#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spank_vm/values.h"

/* Values reach error messages; keep a hostile one from flooding a log line
 * or carrying control characters into it. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	for (; *s != '\0' && i + 4 < len; s++)
		buf[i++] = (isprint((unsigned char)*s) && *s != '\'') ? *s : '?';
	if (*s != '\0' && i + 4 >= len) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

#define SHOWN(s) printable((s), (char[64]){0}, 64)

struct name_value {
	const char *name;
	int value;
};

static int parse_enum(const struct name_value *table, const char *accepted, const char *s, int *out,
                      struct svm_err *err)
{
	if (s == NULL || *s == '\0')
		return svm_err_set(err, "a value is required (accepted: %s)", accepted);
	for (; table->name != NULL; table++) {
		if (strcmp(s, table->name) == 0) {
			*out = table->value;
			return 0;
		}
	}
	return svm_err_set(err, "unknown value '%s' (accepted: %s)", SHOWN(s), accepted);
}

static const char *enum_name(const struct name_value *table, int value)
{
	for (; table->name != NULL; table++)
		if (table->value == value)
			return table->name;
	return "unset";
}

static const struct name_value hypervisors[] = {
        {"kvm", SVM_HV_KVM}, {"qemu", SVM_HV_QEMU}, {"xen", SVM_HV_XEN}, {NULL, 0}};
static const struct name_value hugepage_sizes[] = {{"none", SVM_HUGEPAGES_NONE},
                                                   {"2M", SVM_HUGEPAGES_2M},
                                                   {"1G", SVM_HUGEPAGES_1G},
                                                   {NULL, 0}};
static const struct name_value nets[] = {
        {"none", SVM_NET_NONE}, {"cluster", SVM_NET_CLUSTER}, {NULL, 0}};
static const struct name_value policies[] = {
        {"optin", SVM_POLICY_OPTIN}, {"always", SVM_POLICY_ALWAYS}, {NULL, 0}};

int svm_parse_hypervisor(const char *s, enum svm_hypervisor *out, struct svm_err *err)
{
	int v = 0;

	if (parse_enum(hypervisors, "kvm, qemu, xen", s, &v, err) != 0)
		return -1;
	*out = (enum svm_hypervisor)v;
	return 0;
}

const char *svm_hypervisor_name(enum svm_hypervisor hv)
{
	return enum_name(hypervisors, hv);
}

int svm_parse_hugepages(const char *s, enum svm_hugepages *out, struct svm_err *err)
{
	int v = 0;

	if (parse_enum(hugepage_sizes, "none, 2M, 1G", s, &v, err) != 0)
		return -1;
	*out = (enum svm_hugepages)v;
	return 0;
}

const char *svm_hugepages_name(enum svm_hugepages hp)
{
	return enum_name(hugepage_sizes, hp);
}

int svm_parse_net(const char *s, enum svm_net *out, struct svm_err *err)
{
	int v = 0;

	if (parse_enum(nets, "none, cluster", s, &v, err) != 0)
		return -1;
	*out = (enum svm_net)v;
	return 0;
}

const char *svm_net_name(enum svm_net net)
{
	return enum_name(nets, net);
}

int svm_parse_policy(const char *s, enum svm_policy *out, struct svm_err *err)
{
	int v = 0;

	if (parse_enum(policies, "optin, always", s, &v, err) != 0)
		return -1;
	*out = (enum svm_policy)v;
	return 0;
}

const char *svm_policy_name(enum svm_policy policy)
{
	return enum_name(policies, policy);
}

/* Digits only: strtoull would accept signs, spaces and hex. */
static int parse_digits(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return 0;
}

static int size_shift_mib(const char *suffix, int *shift)
{
	/* Shift relative to MiB; negative means KiB. */
	static const struct {
		const char *s;
		int shift;
	} units[] = {{"", 0},   {"K", -10}, {"KB", -10}, {"KiB", -10}, {"M", 0},
	             {"MB", 0}, {"MiB", 0}, {"G", 10},   {"GB", 10},   {"GiB", 10},
	             {"T", 20}, {"TB", 20}, {"TiB", 20}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(suffix, units[i].s) == 0) {
			*shift = units[i].shift;
			return 0;
		}
	}
	return -1;
}

int svm_parse_size_mib(const char *s, uint64_t *out_mib, struct svm_err *err)
{
	static const char accepted[] = "a number with an optional K, M, G or T suffix, e.g. 256M";
	const uint64_t max_mib = UINT64_C(1) << 30; /* 1 PiB */
	const char *end;
	uint64_t n, mib;
	int shift;

	if (s == NULL || parse_digits(s, &end, &n) != 0 || size_shift_mib(end, &shift) != 0)
		return svm_err_set(err, "malformed size '%s' (accepted: %s)", s ? SHOWN(s) : "",
		                   accepted);
	if (shift < 0) {
		if (n % 1024 != 0)
			return svm_err_set(err, "size '%s' is not a whole number of MiB", SHOWN(s));
		mib = n / 1024;
	} else {
		if (n > (max_mib >> shift))
			return svm_err_set(err, "size '%s' is larger than 1P", SHOWN(s));
		mib = n << shift;
	}
	if (mib == 0 || mib > max_mib)
		return svm_err_set(err, "size '%s' is out of range (accepted: 1M to 1P)", SHOWN(s));
	*out_mib = mib;
	return 0;
}

int svm_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct svm_err *err)
{
	const char *end;
	uint64_t v;

	if (s == NULL || parse_digits(s, &end, &v) != 0 || *end != '\0')
		return svm_err_set(err, "malformed number '%s' (accepted: %llu to %llu)",
		                   s ? SHOWN(s) : "", (unsigned long long)min,
		                   (unsigned long long)max);
	if (v < min || v > max)
		return svm_err_set(err, "%llu is out of range (accepted: %llu to %llu)",
		                   (unsigned long long)v, (unsigned long long)min,
		                   (unsigned long long)max);
	*out = v;
	return 0;
}

int svm_parse_bool(const char *s, bool *out, struct svm_err *err)
{
	static const char *const yes[] = {"1", "true", "yes", "y", "on"};
	static const char *const no[] = {"0", "false", "no", "n", "off"};

	for (size_t i = 0; s != NULL && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return svm_err_set(err, "malformed boolean '%s' (accepted: yes, no, true, false, 1, 0)",
	                   s ? SHOWN(s) : "");
}

int svm_check_image_name(const char *s, struct svm_err *err)
{
	static const char accepted[] =
	        "1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit";
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > SVM_IMAGE_NAME_MAX || !isalnum((unsigned char)s[0]))
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			goto bad;
	}
	return 0;
bad:
	return svm_err_set(err, "image name '%s' is not valid (accepted: %s)", s ? SHOWN(s) : "",
	                   accepted);
}

int svm_check_abs_path(const char *s, struct svm_err *err)
{
	size_t len = s ? strlen(s) : 0;
	const char *p;

	if (len == 0 || s[0] != '/')
		return svm_err_set(err, "path '%s' is not absolute", s ? SHOWN(s) : "");
	if (len > SVM_PATH_MAX)
		return svm_err_set(err, "path is longer than %d bytes", SVM_PATH_MAX);
	for (p = s; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			return svm_err_set(err, "path '%s' contains a control character", SHOWN(s));
	for (p = s; *p == '/';) {
		const char *start = ++p;
		size_t n;

		p = strchrnul(start, '/');
		n = (size_t)(p - start);
		if (n == 0 && *p == '\0' && start - 1 == s)
			return 0; /* "/" itself */
		if (n == 0 || (n == 1 && start[0] == '.') ||
		    (n == 2 && start[0] == '.' && start[1] == '.'))
			return svm_err_set(err,
			                   "path '%s' is not normalised (no '.', '..' or empty "
			                   "components, no trailing '/')",
			                   SHOWN(s));
	}
	return 0;
}

int svm_percent_encode(const char *value, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t used = 0;

	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		bool plain = isalnum(*p) || *p == '/' || *p == '.' || *p == '_' || *p == '-';

		if (used + (plain ? 1 : 3) >= len)
			return -1;
		if (plain) {
			out[used++] = (char)*p;
			continue;
		}
		out[used++] = '%';
		out[used++] = hex[*p >> 4];
		out[used++] = hex[*p & 15];
	}
	if (len == 0)
		return -1;
	out[used] = '\0';
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int svm_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '%') {
			int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1;
			int lo = hi < 0 ? -1 : hex_digit(in[i + 2]);

			if (lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || used + 1 >= cap)
			return -1;
		out[used++] = c;
	}
	if (cap == 0)
		return -1;
	out[used] = '\0';
	return 0;
}

int svm_keyed_value(const char *text, const char *key, uint64_t *out)
{
	size_t key_len = strlen(key);

	for (const char *line = text; *line != '\0';) {
		size_t len = strcspn(line, "\n");

		if (len > key_len && memcmp(line, key, key_len) == 0 && line[key_len] == ' ') {
			char value[24];
			size_t value_len = len - key_len - 1;

			if (value_len == 0 || value_len >= sizeof(value))
				return -1;
			memcpy(value, line + key_len + 1, value_len);
			value[value_len] = '\0';
			return svm_parse_uint(value, 0, UINT64_MAX, out, NULL);
		}
		line += len + (line[len] == '\n');
	}
	return -1;
}
