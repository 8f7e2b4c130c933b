#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "spank_vm/request.h"

void svm_request_init(struct svm_request *req)
{
	memset(req, 0, sizeof(*req));
	req->hypervisor = SVM_HV_UNSET;
	req->hugepages = SVM_HUGEPAGES_NONE;
	req->net = SVM_NET_UNSET;
}

static const struct {
	const char *name;
	unsigned bit;
} option_bits[] = {
        {SVM_OPT_VM, SVM_SEEN_VM},
        {SVM_OPT_HYPERVISOR, SVM_SEEN_HYPERVISOR},
        {SVM_OPT_HUGEPAGES, SVM_SEEN_HUGEPAGES},
        {SVM_OPT_NET, SVM_SEEN_NET},
        {SVM_OPT_CHECKPOINT, SVM_SEEN_CHECKPOINT},
        {SVM_OPT_DEBUG, SVM_SEEN_DEBUG},
        {SVM_OPT_CHECKPOINT_SIGNAL, SVM_SEEN_CHECKPOINT_SIGNAL},
        {SVM_OPT_CHECKPOINT_FALLBACK, SVM_SEEN_CHECKPOINT_FALLBACK},
        {SVM_OPT_CHECKPOINT_INTERVAL, SVM_SEEN_CHECKPOINT_INTERVAL},
};

unsigned svm_request_option_bit(const char *option)
{
	for (size_t i = 0; i < sizeof(option_bits) / sizeof(option_bits[0]); i++)
		if (strcmp(option, option_bits[i].name) == 0)
			return option_bits[i].bit;
	return 0;
}

static int set_image(struct svm_request *req, const char *value, const char *default_image,
                     struct svm_err *err)
{
	/* "--vm" alone and "--vm=" mean the site's default image. */
	const char *image = (value == NULL || *value == '\0') ? default_image : value;

	if (svm_check_image_name(image, err) != 0)
		return -1;
	snprintf(req->image, sizeof(req->image), "%s", image);
	req->enabled = true;
	return 0;
}

static int set_checkpoint(struct svm_request *req, const char *value, struct svm_err *err)
{
	if (svm_check_abs_path(value, err) != 0)
		return -1;
	snprintf(req->checkpoint_dir, sizeof(req->checkpoint_dir), "%s", value);
	return 0;
}

/* The signals Slurm's --signal is meant for: a job's own, harmless unasked. */
static int set_checkpoint_signal(struct svm_request *req, const char *value, struct svm_err *err)
{
	const char *name = value != NULL && strncmp(value, "SIG", 3) == 0 ? value + 3 : value;

	if (name != NULL && strcmp(name, "USR1") == 0)
		req->checkpoint_signal = SIGUSR1;
	else if (name != NULL && strcmp(name, "USR2") == 0)
		req->checkpoint_signal = SIGUSR2;
	else
		return svm_err_set(err, "expected USR1 or USR2, got '%.32s'", value ? value : "");
	return 0;
}

static int set_checkpoint_fallback(struct svm_request *req, const char *value, struct svm_err *err)
{
	if (value != NULL && strcmp(value, "fail") == 0)
		req->checkpoint_fresh = false;
	else if (value != NULL && strcmp(value, "fresh") == 0)
		req->checkpoint_fresh = true;
	else
		return svm_err_set(err, "expected fail or fresh, got '%.32s'", value ? value : "");
	return 0;
}

/* SECONDS, or a number with s, m or h; from 10 s (a save pauses the guest
 * for seconds) to a week. */
static int set_checkpoint_interval(struct svm_request *req, const char *value, struct svm_err *err)
{
	char number[16];
	size_t len = value != NULL ? strlen(value) : 0;
	unsigned unit = 1;
	uint64_t n;

	if (len > 0 && len < sizeof(number)) {
		memcpy(number, value, len + 1);
		if (strchr("smh", number[len - 1]) != NULL) {
			unit = number[len - 1] == 'h' ? 3600 : number[len - 1] == 'm' ? 60 : 1;
			number[len - 1] = '\0';
		}
	}
	if (len == 0 || len >= sizeof(number) ||
	    svm_parse_uint(number, 1, SVM_CHECKPOINT_INTERVAL_MAX_S, &n, NULL) != 0 ||
	    n * unit < SVM_CHECKPOINT_INTERVAL_MIN_S || n * unit > SVM_CHECKPOINT_INTERVAL_MAX_S)
		return svm_err_set(err,
		                   "expected a time from 10s to 168h (SECONDS, or N with s, m "
		                   "or h), got '%.32s'",
		                   value ? value : "");
	req->checkpoint_interval_s = (uint32_t)(n * unit);
	return 0;
}

static const char *checkpoint_signal_name(int signo)
{
	return signo == SIGUSR1 ? "USR1" : signo == SIGUSR2 ? "USR2" : "";
}

static int set_debug(struct svm_request *req, const char *value, struct svm_err *err)
{
	if (value == NULL || *value == '\0') {
		req->debug = true;
		return 0;
	}
	return svm_parse_bool(value, &req->debug, err);
}

static int apply(struct svm_request *req, const char *option, const char *value,
                 const char *default_image, struct svm_err *err)
{
	if (strcmp(option, SVM_OPT_VM) == 0)
		return set_image(req, value, default_image, err);
	if (strcmp(option, SVM_OPT_HYPERVISOR) == 0)
		return svm_parse_hypervisor(value, &req->hypervisor, err);
	if (strcmp(option, SVM_OPT_HUGEPAGES) == 0)
		/* "--vm-hugepages" alone asks for the common 2M pages. */
		return svm_parse_hugepages(value ? value : "2M", &req->hugepages, err);
	if (strcmp(option, SVM_OPT_NET) == 0)
		return svm_parse_net(value, &req->net, err);
	if (strcmp(option, SVM_OPT_CHECKPOINT) == 0)
		return set_checkpoint(req, value, err);
	if (strcmp(option, SVM_OPT_DEBUG) == 0)
		return set_debug(req, value, err);
	if (strcmp(option, SVM_OPT_CHECKPOINT_SIGNAL) == 0)
		return set_checkpoint_signal(req, value, err);
	if (strcmp(option, SVM_OPT_CHECKPOINT_FALLBACK) == 0)
		return set_checkpoint_fallback(req, value, err);
	if (strcmp(option, SVM_OPT_CHECKPOINT_INTERVAL) == 0)
		return set_checkpoint_interval(req, value, err);
	return svm_err_set(err, "unknown option");
}

int svm_request_set(struct svm_request *req, const char *option, const char *value,
                    const char *default_image, struct svm_err *err)
{
	struct svm_err why;

	if (apply(req, option, value, default_image, &why) != 0)
		return svm_err_set(err, "--%s: %s", option, why.msg);
	return 0;
}

int svm_request_check(const struct svm_request *req, unsigned options_seen, struct svm_err *err)
{
	unsigned extra = options_seen & ~SVM_SEEN_VM;

	const char *needs_dir = req->checkpoint_signal != 0       ? SVM_OPT_CHECKPOINT_SIGNAL
	                        : req->checkpoint_fresh           ? SVM_OPT_CHECKPOINT_FALLBACK
	                        : req->checkpoint_interval_s != 0 ? SVM_OPT_CHECKPOINT_INTERVAL
	                                                          : NULL;

	if (req->enabled && needs_dir != NULL && req->checkpoint_dir[0] == '\0')
		return svm_err_set(err, "--%s needs --%s=DIR (where the job's guest is saved)",
		                   needs_dir, SVM_OPT_CHECKPOINT);
	if (req->enabled || extra == 0)
		return 0;
	for (size_t i = 0; i < sizeof(option_bits) / sizeof(option_bits[0]); i++)
		if (extra & option_bits[i].bit)
			return svm_err_set(err,
			                   "--%s needs --vm (add --vm or --vm=IMAGE to run the "
			                   "job in a virtual machine)",
			                   option_bits[i].name);
	return 0;
}

/* Values are percent-encoded (svm_percent_encode) so that a record is one
 * line of space-separated key=value words whatever a path holds, safe in a
 * file and in an environment variable alike. */

int svm_request_encode(const struct svm_request *req, char sep, char *buf, size_t len,
                       struct svm_err *err)
{
	char checkpoint[3 * SVM_PATH_MAX + 1];
	int n;

	if (svm_percent_encode(req->checkpoint_dir, checkpoint, sizeof(checkpoint)) != 0)
		return svm_err_set(err, "request: checkpoint path too long");
	n = snprintf(buf, len,
	             "format=%d%cimage=%s%chypervisor=%s%chugepages=%s%cnet=%s%c"
	             "checkpoint=%s%cdebug=%d%ccheckpoint_signal=%s%ccheckpoint_fallback=%s%c"
	             "checkpoint_interval=%u",
	             SVM_REQUEST_FORMAT, sep, req->image, sep, svm_hypervisor_name(req->hypervisor),
	             sep, svm_hugepages_name(req->hugepages), sep, svm_net_name(req->net), sep,
	             checkpoint, sep, req->debug ? 1 : 0, sep,
	             checkpoint_signal_name(req->checkpoint_signal), sep,
	             req->checkpoint_fresh ? "fresh" : "fail", sep, req->checkpoint_interval_s);
	if (n < 0 || (size_t)n >= len)
		return svm_err_set(err, "request does not fit in %zu bytes", len);
	return 0;
}

/* The record holds plain seconds: 0, or what the option allows. */
static int decode_interval(struct svm_request *req, const char *value, struct svm_err *err)
{
	uint64_t v;

	if (strcmp(value, "0") == 0)
		return 0;
	if (svm_parse_uint(value, SVM_CHECKPOINT_INTERVAL_MIN_S, SVM_CHECKPOINT_INTERVAL_MAX_S, &v,
	                   err) != 0)
		return -1;
	req->checkpoint_interval_s = (uint32_t)v;
	return 0;
}

static int decode_field(struct svm_request *req, const char *key, const char *value,
                        struct svm_err *err)
{
	if (strcmp(key, "format") == 0)
		return strcmp(value, "1") == 0
		               ? 0
		               : svm_err_set(err, "unsupported format '%.16s'", value);
	if (strcmp(key, "image") == 0)
		return set_image(req, value, "", err);
	if (strcmp(key, "hypervisor") == 0)
		return strcmp(value, "unset") == 0
		               ? 0
		               : svm_parse_hypervisor(value, &req->hypervisor, err);
	if (strcmp(key, "hugepages") == 0)
		return svm_parse_hugepages(value, &req->hugepages, err);
	if (strcmp(key, "net") == 0)
		return strcmp(value, "unset") == 0 ? 0 : svm_parse_net(value, &req->net, err);
	if (strcmp(key, "checkpoint") == 0)
		return *value == '\0' ? 0 : set_checkpoint(req, value, err);
	if (strcmp(key, "debug") == 0)
		return svm_parse_bool(value, &req->debug, err);
	if (strcmp(key, "checkpoint_signal") == 0)
		return *value == '\0' ? 0 : set_checkpoint_signal(req, value, err);
	if (strcmp(key, "checkpoint_fallback") == 0)
		return set_checkpoint_fallback(req, value, err);
	if (strcmp(key, "checkpoint_interval") == 0)
		return decode_interval(req, value, err);
	return svm_err_set(err, "unknown key '%.32s'", key);
}

static int decode_word(struct svm_request *req, char *word, unsigned *keys_seen,
                       struct svm_err *err)
{
	static const char *const keys[] = {"format",
	                                   "image",
	                                   "hypervisor",
	                                   "hugepages",
	                                   "net",
	                                   "checkpoint",
	                                   "debug",
	                                   "checkpoint_signal",
	                                   "checkpoint_fallback",
	                                   "checkpoint_interval"};
	char *eq = strchr(word, '=');
	struct svm_err why;

	if (eq == NULL)
		return svm_err_set(err, "request: malformed word (no '=')");
	*eq = '\0';
	for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(word, keys[i]) != 0)
			continue;
		if (*keys_seen & (1u << i))
			return svm_err_set(err, "request: key '%s' given twice", word);
		*keys_seen |= 1u << i;
		if (svm_percent_decode(eq + 1, strlen(eq + 1), eq + 1, strlen(eq + 1) + 1) != 0)
			return svm_err_set(err, "request: %s: malformed escape", word);
		if (decode_field(req, word, eq + 1, &why) != 0)
			return svm_err_set(err, "request: %s: %s", word, why.msg);
		return 0;
	}
	return svm_err_set(err, "request: unknown key '%.32s'", word);
}

int svm_request_decode(struct svm_request *req, const char *text, struct svm_err *err)
{
	char word[3 * SVM_PATH_MAX + 32];
	unsigned keys_seen = 0;
	const char *p = text;

	svm_request_init(req);
	while (*p != '\0') {
		size_t n = strcspn(p, " \n");

		if (n >= sizeof(word))
			return svm_err_set(err, "request: word too long");
		if (n > 0) {
			memcpy(word, p, n);
			word[n] = '\0';
			if (decode_word(req, word, &keys_seen, err) != 0)
				return -1;
		}
		p += n;
		p += (*p != '\0');
	}
	if (!(keys_seen & 1u) || !req->enabled)
		return svm_err_set(err, "request: incomplete record (needs format and image)");
	return 0;
}
