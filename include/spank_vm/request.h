/* A job's VM request: what the user asked for with --vm and --vm-*, as the
 * prolog records it under runtime_dir/<jobid>/ for the extern step to act on. */
#ifndef SPANK_VM_REQUEST_H
#define SPANK_VM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"
#include "spank_vm/values.h"

#define SVM_REQUEST_FORMAT 1
#define SVM_REQUEST_FILE   "request"
/* The job-control environment variable the submitting command sets; the prolog
 * sees it as SPANK_VM_REQUEST. */
#define SVM_REQUEST_ENV_NAME   "VM_REQUEST"
#define SVM_REQUEST_PROLOG_ENV "SPANK_VM_REQUEST"
/* Written instead of SVM_REQUEST_FILE when the request was rejected, so that
 * the job's tasks can fail with the reason instead of the node draining. */
#define SVM_REQUEST_ERROR_FILE "request.error"

struct svm_request {
	bool enabled;
	char image[SVM_IMAGE_NAME_MAX + 1];
	enum svm_hypervisor hypervisor; /* UNSET: the site's default */
	enum svm_hugepages hugepages;
	enum svm_net net;
	char checkpoint_dir[SVM_PATH_MAX + 1]; /* empty: none */
	int checkpoint_signal; /* SIGUSR1 or SIGUSR2: the batch step's signal to requeue; 0: none */
	bool checkpoint_fresh; /* a checkpoint that cannot be restored: boot afresh, not fail */
	uint32_t checkpoint_interval_s; /* save the running guest this often; 0: never */
	bool debug;
};

#define SVM_CHECKPOINT_INTERVAL_MIN_S 10u
#define SVM_CHECKPOINT_INTERVAL_MAX_S (168u * 3600u)

/* Names of the user options; the request fields are set through them. */
#define SVM_OPT_VM                  "vm"
#define SVM_OPT_HYPERVISOR          "vm-hypervisor"
#define SVM_OPT_HUGEPAGES           "vm-hugepages"
#define SVM_OPT_NET                 "vm-net"
#define SVM_OPT_CHECKPOINT          "vm-checkpoint"
#define SVM_OPT_CHECKPOINT_SIGNAL   "vm-checkpoint-signal"
#define SVM_OPT_CHECKPOINT_FALLBACK "vm-checkpoint-fallback"
#define SVM_OPT_CHECKPOINT_INTERVAL "vm-checkpoint-interval"
#define SVM_OPT_DEBUG               "vm-debug"

void svm_request_init(struct svm_request *req);

/* Applies one option, as the user typed it (value NULL when none was given),
 * validating the value. default_image names the image "--vm" alone means. */
int svm_request_set(struct svm_request *req, const char *option, const char *value,
                    const char *default_image, struct svm_err *err);

/* Checks the options together: any --vm-* option without --vm is refused. */
int svm_request_check(const struct svm_request *req, unsigned options_seen, struct svm_err *err);

/* Bits for options_seen. */
enum {
	SVM_SEEN_VM = 1u << 0,
	SVM_SEEN_HYPERVISOR = 1u << 1,
	SVM_SEEN_HUGEPAGES = 1u << 2,
	SVM_SEEN_NET = 1u << 3,
	SVM_SEEN_CHECKPOINT = 1u << 4,
	SVM_SEEN_DEBUG = 1u << 5,
	SVM_SEEN_CHECKPOINT_SIGNAL = 1u << 6,
	SVM_SEEN_CHECKPOINT_FALLBACK = 1u << 7,
	SVM_SEEN_CHECKPOINT_INTERVAL = 1u << 8,
};
unsigned svm_request_option_bit(const char *option);

/* The record: key=value words separated by sep (' ' for the environment,
 * '\n' for the file), values percent-encoded. Decoding accepts either
 * separator and validates every field as the options themselves do. */
#define SVM_REQUEST_MAX 4096
int svm_request_encode(const struct svm_request *req, char sep, char *buf, size_t len,
                       struct svm_err *err);
int svm_request_decode(struct svm_request *req, const char *text, struct svm_err *err);

#endif
