/* The job network's addresses (--vm-net=cluster): derived from the job id and
 * the node's index in the job, with no central allocator. The admin gives a
 * CIDR (plugstack.conf net_cidr=); each job gets the /24 of it at slot
 * job_id mod 2^(24 - prefix), and node i of the job the address .(i + 1) of
 * that /24. Guests of one job share the /24; the filter on the bridge keeps
 * each guest's traffic inside its job's /24 (helpers/net.c, domain_xml.c).
 * Pure functions: no I/O. */
#ifndef SPANK_VM_NET_H
#define SPANK_VM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spank_vm/error.h"

#define SVM_NET_MIN_PREFIX   8
#define SVM_NET_MAX_PREFIX   23
#define SVM_NET_JOB_PREFIX   24
#define SVM_NET_MAX_NODES    254 /* .1 to .254 of the job's /24 */
#define SVM_NET_ADDR_LEN     16  /* "255.255.255.255" and its NUL */
#define SVM_NET_MAC_LEN      18  /* "52:54:0a:c8:01:02" and its NUL */
#define SVM_NET_MAX_HOSTNAME 63  /* one DNS label (a Slurm node name) */
#define SVM_NET_MAX_BRIDGE   15  /* IFNAMSIZ - 1 */

struct svm_net_cidr {
	uint32_t base; /* host order, host bits zero */
	unsigned prefix;
};

/* One guest's place on the job network. */
struct svm_net_guest {
	uint32_t subnet; /* the job's /24, host order */
	uint32_t addr;   /* this guest's address */
	uint8_t mac[6];  /* 52:54 and the address: unique where the address is */
};

/* "10.200.0.0/16": dotted quad, prefix SVM_NET_MIN_PREFIX..SVM_NET_MAX_PREFIX,
 * no host bits set. */
int svm_net_parse_cidr(const char *text, struct svm_net_cidr *out, struct svm_err *err);

/* One dotted quad of text[0..len). */
int svm_net_parse_addr(const char *text, size_t len, uint32_t *out);

/* The guest of node node_index (0-based) of a job of nnodes nodes. */
int svm_net_guest(const struct svm_net_cidr *cidr, uint32_t job_id, uint32_t node_index,
                  uint32_t nnodes, struct svm_net_guest *out, struct svm_err *err);

/* The address of node i of the job whose /24 is subnet. */
uint32_t svm_net_node_addr(uint32_t subnet, uint32_t node_index);

void svm_net_addr_str(uint32_t addr, char out[SVM_NET_ADDR_LEN]);
void svm_net_mac_str(const uint8_t mac[6], char out[SVM_NET_MAC_LEN]);

/* A Slurm node name usable as the guest's hostname and in /etc/hosts:
 * 1..63 of [A-Za-z0-9-], not starting with '-'. */
bool svm_net_valid_hostname(const char *name, size_t len);
/* A Linux interface name: 1..15 of [A-Za-z0-9_.-]. */
bool svm_net_valid_bridge(const char *name);

#endif
