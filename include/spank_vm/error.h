/* An error travels to the caller as a message; the library never prints or exits. */
#ifndef SPANK_VM_ERROR_H
#define SPANK_VM_ERROR_H

#include <stddef.h>

#define SVM_ERR_MAX 512

struct svm_err {
	char msg[SVM_ERR_MAX];
};

/* Formats the message into err (which may be NULL) and returns -1, so that
 * callers can write `return svm_err_set(err, ...);`. */
int svm_err_set(struct svm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like svm_err_set() but appends ": strerror(errno_value)". */
int svm_err_errno(struct svm_err *err, int errno_value, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
