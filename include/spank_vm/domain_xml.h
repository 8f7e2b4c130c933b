/* libvirt domain XML for a guest plan, one renderer per hypervisor. Every
 * string reaches the document through the escaping writer (xml_writer.h), and
 * the output validates with `virt-xml-validate FILE domain` (libvirt 9.0).
 *
 * Shared by all three: static vCPUs each pinned to its host PU, emulator
 * pinning, strict NUMA binding per cell, the job memory as hard limit,
 * optional hugepages, ACPI + APIC (without them libvirt gives the guest one
 * CPU and no power-off), every lifecycle event destroys the domain, direct
 * kernel boot (or, for an image that boots itself, the firmware booting the
 * first disk), the console on a serial port logged to a file, no balloon, no
 * network (a later change adds it), and a static DAC label so the emulator
 * runs as the job's user.
 *
 * kvm:  <domain type='kvm'>, q35, <cpu mode='host-passthrough'>; when the
 *       plan needs x2APIC (more than 255 APIC ids), an Intel IOMMU with
 *       interrupt remapping in extended mode and a split irqchip.
 * qemu: <domain type='qemu'> (TCG), q35, <cpu mode='maximum'>: QEMU's "max"
 *       model gives TCG guests every feature TCG emulates (QEMU 7.2 includes
 *       SSE4.2, AVX, AVX2), so software built for the host's baseline runs;
 *       qemu64 would lack even SSE4.2/POPCNT.
 * kvm and qemu: agent channel on virtio-serial, bound to a unix socket the
 *       caller names; 9p shares; the agent's configuration as a QEMU fw_cfg
 *       file (SVM_FW_CFG_CONFIG_NAME) when given.
 * xen:  <domain type='xen'>, HVM ("xenfv", or PVH with xen_pvh), the agent on
 *       a Xen PV channel (pty), no 9p shares (refused if given). */
#ifndef SPANK_VM_DOMAIN_XML_H
#define SPANK_VM_DOMAIN_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spank_vm/error.h"
#include "spank_vm/plan.h"

#define SVM_AGENT_CHANNEL_NAME "org.spank_vm.agent.0"
/* The second virtio-serial port (kvm, qemu): the guest's calls of Slurm's
 * commands, served on the host (helpers/hostcall/README.md). */
#define SVM_HOSTCALL_CHANNEL_NAME "org.spank_vm.hostcall.0"
/* In the guest: the socket of the user's mux on that port. */
#define SVM_GUEST_HOSTCALL_SOCKET "/run/spank_vm/hostcall.sock"
/* The one command besides Slurm's a guest may run through it: a TCP
 * connection to the host's 127.0.0.1:PORT (argv: this name, PORT), which
 * carries PMIx's client-server traffic. */
#define SVM_HOSTCALL_CONNECT "spank_vm-connect"
/* Shares are PCI devices on the root bus, slots 0x04..0x1e (0x1f is the
 * chipset's). */
#define SVM_DOMAIN_MAX_SHARES 26
/* The fw_cfg file that carries the agent's spank_vm.* words to a guest whose
 * kernel command line belongs to the image's bootloader; QEMU wants names of
 * such files under "opt/", and the guest's qemu_fw_cfg driver shows it as
 * /sys/firmware/qemu_fw_cfg/by_name/<name>/raw. */
#define SVM_FW_CFG_CONFIG_NAME "opt/org.spank_vm/config"
/* The most the agent reads of that file. */
#define SVM_FW_CFG_CONFIG_MAX 16384

/* The libvirt nwfilter every job NIC is under (provision/net.c defines it):
 * a guest may send only from its own MAC and IP to its job's /24 and
 * receive only from there, ARP included. Parameters IP and JOBNET. */
#define SVM_NET_FILTER_NAME "spank_vm-job"

/* Whose guest a domain is, in its <metadata>: <guest node="NODE" job="JOB"/>
 * in this namespace (libvirt's API calls the element's prefix the key). The node is where it runs
 * now: a guest restored on another node keeps the name it was saved under (libvirt restores only
 * under it), so a node finds its guests by this, not by name (helpers/domain_owner.c). */
#define SVM_DOMAIN_METADATA_URI    "urn:x-spank-vm:guest:1"
#define SVM_DOMAIN_METADATA_PREFIX "spank_vm"

/* A host directory shown to the guest over 9p under a mount tag. */
struct svm_share {
	const char *host_dir; /* absolute */
	const char *tag;      /* the guest mounts it with this tag */
	bool readonly;
};

/* Who the guest is; all strings are copied into the XML escaped. Paths must
 * be absolute. */
struct svm_domain_spec {
	const char *name;
	const char *uuid;       /* canonical 8-4-4-4-12 hex form */
	const char *owner_node; /* NULL: no ownership metadata; else with job_id */
	uint32_t job_id;
	uid_t uid; /* the emulator runs as uid:gid */
	gid_t gid;
	const char *kernel;       /* required unless boot_disk */
	const char *initrd;       /* NULL: none */
	const char *cmdline;      /* NULL: none */
	const char *console_log;  /* the serial console is written here */
	const char *agent_name;   /* NULL: SVM_AGENT_CHANNEL_NAME */
	unsigned agent_port;      /* virtio-serial port of the agent (kvm, qemu); 0: 1 */
	const char *agent_socket; /* kvm, qemu: unix socket libvirt binds for the channel */
	/* kvm, qemu: the job network's NIC (virtio, no vhost) on this bridge,
	 * with this MAC, under the libvirt nwfilter SVM_NET_FILTER_NAME that
	 * keeps its traffic to net_addr <-> net_subnet/24; NULL: no NIC at all */
	const char *net_bridge;
	const char *net_mac;
	const char *net_addr;
	const char *net_subnet;
	/* kvm, qemu: unix socket libvirt binds for the port SVM_HOSTCALL_CHANNEL_NAME
	 * (virtio-serial port agent_port + 1); NULL: no such port */
	const char *hostcall_socket;
	const char *disk_image;         /* NULL: none; else a qcow2 file attached as first disk */
	const struct svm_share *shares; /* kvm, qemu */
	size_t nshares;
	bool xen_pvh; /* xen: a PVH guest instead of HVM */
	/* The guest boots from disk_image (required) through the image's own
	 * bootloader: no kernel, initrd or cmdline may be given. */
	bool boot_disk;
	/* kvm, qemu: text of the fw_cfg file SVM_FW_CFG_CONFIG_NAME; NULL: no
	 * such file. Not empty (libvirt refuses an entry without a value). */
	const char *fw_cfg_config;
	/* No <memtune><hard_limit>: libvirt raises RLIMIT_MEMLOCK to the hard
	 * limit, which needs CAP_SYS_RESOURCE; a host whose libvirtd lacks it
	 * (some containers) cannot start guests with one. */
	bool no_hard_limit;
};

/* Each renders the complete document into *out (malloc'ed, free() it). The
 * plan must have been made for the same hypervisor. */
int svm_domain_xml_kvm(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                       struct svm_err *err);
int svm_domain_xml_qemu(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                        struct svm_err *err);
int svm_domain_xml_xen(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                       struct svm_err *err);

/* The renderer for plan->hypervisor. */
int svm_domain_xml(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                   struct svm_err *err);

#endif
