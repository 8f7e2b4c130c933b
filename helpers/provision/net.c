/* The job network (--vm-net=cluster) of one guest: its address, MAC and the
 * words that tell the agent its address, hostname and the job's hosts
 * (helpers/net.c does the math), and the libvirt nwfilter that keeps its
 * traffic inside the job. */
#include <stdio.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "provision.h"
#include "spank_vm/domain_xml.h"

/* no-mac-spoofing: libvirt's own filter, fed the NIC's MAC. Everything not
 * accepted is dropped: IPv6, other protocols, anything to or from outside
 * the job's /24, the host's own addresses included. */
static const char filter_xml[] =
        "<filter name='" SVM_NET_FILTER_NAME "' chain='root'>"
        "<filterref filter='no-mac-spoofing'/>"
        "<rule action='accept' direction='out' priority='100'>"
        "<ip srcipaddr='$IP' dstipaddr='$JOBNET' dstipmask='24'/></rule>"
        "<rule action='accept' direction='in' priority='100'>"
        "<ip srcipaddr='$JOBNET' srcipmask='24' dstipaddr='$IP'/></rule>"
        "<rule action='accept' direction='out' priority='110'>"
        "<arp arpsrcipaddr='$IP' arpdstipaddr='$JOBNET' arpdstipmask='24'/></rule>"
        "<rule action='accept' direction='in' priority='110'>"
        "<arp arpsrcipaddr='$JOBNET' arpsrcipmask='24' arpdstipaddr='$IP'/></rule>"
        "<rule action='drop' direction='inout' priority='1000'><mac/></rule>"
        "</filter>";

/* Each name a valid hostname; the count and this node's name. */
static int check_hosts(const char *hosts, uint32_t node, uint32_t *count, const char **mine,
                       size_t *mine_len, struct svm_err *err)
{
	const char *p = hosts;

	*count = 0;
	for (;;) {
		size_t len = strcspn(p, ",");

		if (!svm_net_valid_hostname(p, len))
			return svm_err_set(
			        err,
			        "--net-hosts: '%.*s' is not a host name (1-63 of A-Z a-z "
			        "0-9 -)",
			        (int)(len > 64 ? 64 : len), p);
		if (*count == node) {
			*mine = p;
			*mine_len = len;
		}
		(*count)++;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

int provision_net_prepare(const struct provision_opts *o, struct provision_net *net,
                          struct svm_err *err)
{
	struct svm_net_cidr cidr;
	struct svm_net_guest guest;
	const char *mine = NULL;
	size_t mine_len = 0;
	uint32_t count;
	char first[SVM_NET_ADDR_LEN];
	int n;

	net->enabled = o->net_bridge != NULL;
	if (!net->enabled)
		return 0;
	if (o->hypervisor == SVM_HV_XEN)
		return svm_err_set(err, "--vm-net=cluster: available with kvm and qemu, not xen");
	if (svm_net_parse_cidr(o->net_cidr, &cidr, err) != 0 ||
	    check_hosts(o->net_hosts, o->net_node, &count, &mine, &mine_len, err) != 0 ||
	    svm_net_guest(&cidr, o->net_job, o->net_node, count, &guest, err) != 0)
		return -1;
	svm_net_addr_str(guest.addr, net->addr);
	svm_net_addr_str(guest.subnet, net->subnet);
	svm_net_mac_str(guest.mac, net->mac);
	svm_net_addr_str(svm_net_node_addr(guest.subnet, 0), first);
	n = snprintf(net->words, sizeof(net->words),
	             "spank_vm.net=%s/%d spank_vm.hostname=%.*s spank_vm.hosts=%s:%s", net->addr,
	             SVM_NET_JOB_PREFIX, (int)mine_len, mine, first, o->net_hosts);
	if (n < 0 || (size_t)n >= sizeof(net->words))
		return svm_err_set(err, "--net-hosts: the job's host names exceed %zu bytes",
		                   sizeof(net->words) - 128);
	/* libvirt 9.0 passes an fw_cfg string to QEMU without doubling its
	 * commas, which QEMU then reads as option separators: the names are
	 * colon-separated on the way to the guest. */
	for (char *c = strchr(net->words, ','); c != NULL; c = strchr(c, ','))
		*c = ':';
	return 0;
}

int provision_net_filter(virConnectPtr conn, struct svm_err *err)
{
	virNWFilterPtr filter = virNWFilterLookupByName(conn, SVM_NET_FILTER_NAME);

	/* Defined once per node, the same for every job. Two guests starting
	 * at once may both try: the loser finds the winner's. */
	if (filter == NULL)
		filter = virNWFilterDefineXML(conn, filter_xml);
	if (filter == NULL)
		filter = virNWFilterLookupByName(conn, SVM_NET_FILTER_NAME);
	if (filter == NULL) {
		const virError *e = virGetLastError();

		return svm_err_set(err, "cannot define the network filter %s: %s",
		                   SVM_NET_FILTER_NAME,
		                   e && e->message ? e->message : "unknown error");
	}
	virNWFilterFree(filter);
	return 0;
}
