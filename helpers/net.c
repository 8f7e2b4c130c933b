#include <stdio.h>
#include <string.h>

#include "spank_vm/net.h"
#include "spank_vm/values.h"

static int parse_quad(const char *text, size_t len, uint32_t *out)
{
	uint32_t addr = 0;
	unsigned parts = 0, value = 0, digits = 0;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? text[i] : '.';

		if (c >= '0' && c <= '9') {
			value = value * 10 + (unsigned)(c - '0');
			if (++digits > 3 || value > 255)
				return -1;
		} else if (c == '.' && digits > 0 && parts < 4) {
			addr = (addr << 8) | value;
			parts++;
			value = digits = 0;
		} else {
			return -1;
		}
	}
	if (parts != 4)
		return -1;
	*out = addr;
	return 0;
}

int svm_net_parse_addr(const char *text, size_t len, uint32_t *out)
{
	return parse_quad(text, len, out);
}

int svm_net_parse_cidr(const char *text, struct svm_net_cidr *out, struct svm_err *err)
{
	const char *slash = strchr(text, '/');
	uint64_t prefix;
	uint32_t base;

	if (slash == NULL || parse_quad(text, (size_t)(slash - text), &base) != 0 ||
	    svm_parse_uint(slash + 1, SVM_NET_MIN_PREFIX, SVM_NET_MAX_PREFIX, &prefix, NULL) != 0)
		return svm_err_set(err,
		                   "'%.64s' is not an IPv4 network A.B.C.D/P with P from %d to %d",
		                   text, SVM_NET_MIN_PREFIX, SVM_NET_MAX_PREFIX);
	if ((base & ((UINT32_C(1) << (32 - prefix)) - 1)) != 0)
		return svm_err_set(err,
		                   "'%.64s' has host bits set (the network's address "
		                   "must end in zeros)",
		                   text);
	out->base = base;
	out->prefix = (unsigned)prefix;
	return 0;
}

uint32_t svm_net_node_addr(uint32_t subnet, uint32_t node_index)
{
	return subnet + 1 + node_index;
}

int svm_net_guest(const struct svm_net_cidr *cidr, uint32_t job_id, uint32_t node_index,
                  uint32_t nnodes, struct svm_net_guest *out, struct svm_err *err)
{
	uint32_t slots = UINT32_C(1) << (SVM_NET_JOB_PREFIX - cidr->prefix);

	if (nnodes == 0 || nnodes > SVM_NET_MAX_NODES)
		return svm_err_set(err,
		                   "--vm-net=cluster: a job network holds 1 to %d nodes, "
		                   "not %u",
		                   SVM_NET_MAX_NODES, nnodes);
	if (node_index >= nnodes)
		return svm_err_set(err, "node index %u is not below the job's %u nodes", node_index,
		                   nnodes);
	out->subnet = cidr->base + ((job_id % slots) << 8);
	out->addr = svm_net_node_addr(out->subnet, node_index);
	out->mac[0] = 0x52;
	out->mac[1] = 0x54;
	for (int i = 0; i < 4; i++)
		out->mac[2 + i] = (uint8_t)(out->addr >> (24 - 8 * i));
	return 0;
}

void svm_net_addr_str(uint32_t addr, char out[SVM_NET_ADDR_LEN])
{
	snprintf(out, SVM_NET_ADDR_LEN, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff,
	         (addr >> 8) & 0xff, addr & 0xff);
}

void svm_net_mac_str(const uint8_t mac[6], char out[SVM_NET_MAC_LEN])
{
	snprintf(out, SVM_NET_MAC_LEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
	         mac[3], mac[4], mac[5]);
}

bool svm_net_valid_hostname(const char *name, size_t len)
{
	if (len == 0 || len > SVM_NET_MAX_HOSTNAME || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

bool svm_net_valid_bridge(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SVM_NET_MAX_BRIDGE)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}
