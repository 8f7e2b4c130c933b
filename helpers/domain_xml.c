#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/domain_xml.h"
#include "spank_vm/xml_writer.h"

/* PCI slots on a q35 guest's root bus (0x00 host bridge, 0x01 kept free,
 * 0x1f the chipset). */
#define SLOT_AGENT       0x02
#define SLOT_DISK        0x03
#define SLOT_FIRST_SHARE 0x04
#define SLOT_NIC         0x1e /* after the last share's */
/* TCG translation cache of a hypervisor=qemu guest, MiB */
#define SVM_TCG_TB_CACHE_MIB "64"

struct flavour {
	enum svm_hypervisor hv;
	const char *domain_type;
	const char *cpu_mode;
};

static const struct flavour kvm_flavour = {SVM_HV_KVM, "kvm", "host-passthrough"};
static const struct flavour qemu_flavour = {SVM_HV_QEMU, "qemu", "maximum"};
static const struct flavour xen_flavour = {SVM_HV_XEN, "xen", "host-passthrough"};

/* ---- checking the inputs ---- */

static bool is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		char c = s[i];
		bool hex =
		        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

		if (shape[i] == '-' ? c != '-' : !hex)
			return false;
	}
	return s[sizeof(shape) - 1] == '\0';
}

static int check_path(const char *path, const char *what, bool required, struct svm_err *err)
{
	if (path == NULL && !required)
		return 0;
	if (path == NULL || path[0] != '/')
		return svm_err_set(err, "the %s must be an absolute path", what);
	return 0;
}

static int check_shares(const struct svm_domain_spec *spec, enum svm_hypervisor hv,
                        struct svm_err *err)
{
	if (spec->nshares > 0 && hv == SVM_HV_XEN)
		return svm_err_set(err, "9p shares are not available with hypervisor xen; "
		                        "accepted with kvm and qemu");
	if (spec->nshares > 0 && spec->shares == NULL)
		return svm_err_set(err, "%zu shares announced but none given", spec->nshares);
	if (spec->nshares > SVM_DOMAIN_MAX_SHARES)
		return svm_err_set(err, "%zu shares: at most %d fit on the guest's PCI bus",
		                   spec->nshares, SVM_DOMAIN_MAX_SHARES);
	for (size_t i = 0; i < spec->nshares; i++) {
		if (check_path(spec->shares[i].host_dir, "shared directory", true, err) < 0)
			return -1;
		if (spec->shares[i].tag == NULL || spec->shares[i].tag[0] == '\0')
			return svm_err_set(err, "share %zu has no mount tag", i);
	}
	return 0;
}

/* Either the host's kernel boots the guest or the disk's bootloader does:
 * a kernel given with boot_disk would be silently unused. */
static int check_boot(const struct svm_domain_spec *spec, enum svm_hypervisor hv,
                      struct svm_err *err)
{
	if (spec->boot_disk && spec->disk_image == NULL)
		return svm_err_set(err, "a guest that boots its disk needs a disk image");
	if (spec->boot_disk &&
	    (spec->kernel != NULL || spec->initrd != NULL || spec->cmdline != NULL))
		return svm_err_set(err, "a guest that boots its disk takes no kernel, initrd or "
		                        "kernel command line (its bootloader has them)");
	if (spec->fw_cfg_config != NULL && hv == SVM_HV_XEN)
		return svm_err_set(err, "fw_cfg is not available with hypervisor xen; accepted "
		                        "with kvm and qemu");
	if (spec->fw_cfg_config != NULL && spec->fw_cfg_config[0] == '\0')
		return svm_err_set(err, "the fw_cfg configuration is empty (give none instead)");
	if (spec->net_bridge != NULL && hv == SVM_HV_XEN)
		return svm_err_set(err, "the job network is available with kvm and qemu, not xen");
	if (spec->net_bridge != NULL &&
	    (spec->net_mac == NULL || spec->net_addr == NULL || spec->net_subnet == NULL))
		return svm_err_set(err, "a job NIC needs its MAC, address and subnet");
	if (spec->hostcall_socket != NULL && hv == SVM_HV_XEN)
		return svm_err_set(err, "the host call port needs virtio-serial: accepted with kvm "
		                        "and qemu, not xen");
	return 0;
}

static int check_inputs(const struct svm_plan *plan, const struct svm_domain_spec *spec,
                        enum svm_hypervisor hv, struct svm_err *err)
{
	if (plan->hypervisor != hv)
		return svm_err_set(err, "the plan was made for hypervisor %s, not %s",
		                   svm_hypervisor_name(plan->hypervisor), svm_hypervisor_name(hv));
	if (plan->nvcpus == 0 || plan->ncells == 0)
		return svm_err_set(err, "the plan is empty");
	if (spec->name == NULL || spec->name[0] == '\0')
		return svm_err_set(err, "the domain needs a name");
	if (spec->uuid == NULL || !is_uuid(spec->uuid))
		return svm_err_set(err, "the domain UUID must look like "
		                        "01234567-89ab-cdef-0123-456789abcdef");
	if (spec->agent_name != NULL && spec->agent_name[0] == '\0')
		return svm_err_set(err, "the agent channel name is empty");
	if (check_boot(spec, hv, err) < 0 ||
	    check_path(spec->kernel, "kernel", !spec->boot_disk, err) < 0 ||
	    check_path(spec->initrd, "initrd", false, err) < 0 ||
	    check_path(spec->console_log, "console log", true, err) < 0 ||
	    check_path(spec->agent_socket, "agent socket", hv != SVM_HV_XEN, err) < 0 ||
	    check_path(spec->hostcall_socket, "host call socket", false, err) < 0 ||
	    check_path(spec->disk_image, "disk image", false, err) < 0)
		return -1;
	return check_shares(spec, hv, err);
}

/* ---- pieces shared by every hypervisor ---- */

static void attr_cpuset(struct svm_xml *xml, const char *name, const struct svm_cpuset *set)
{
	struct svm_err err;
	char *list = svm_cpuset_to_str(set, &err);

	if (list == NULL) {
		svm_xml_fail(xml, "%s", err.msg);
		return;
	}
	svm_xml_attr(xml, name, list);
	free(list);
}

/* Guest cell ids 0 .. ncells - 1, the cells a hugepage size applies to. */
static void attr_all_cells(struct svm_xml *xml, const char *name, const struct svm_plan *plan)
{
	struct svm_cpuset cells;

	svm_cpuset_clear(&cells);
	for (unsigned i = 0; i < plan->ncells; i++)
		svm_cpuset_add(&cells, i);
	attr_cpuset(xml, name, &cells);
}

static void leaf_mib(struct svm_xml *xml, const char *name, uint64_t mib)
{
	char digits[24];

	snprintf(digits, sizeof(digits), "%" PRIu64, mib);
	svm_xml_start(xml, name);
	svm_xml_attr(xml, "unit", "MiB");
	svm_xml_text(xml, digits);
	svm_xml_end(xml);
}

static void render_memory(struct svm_xml *xml, const struct svm_plan *plan,
                          const struct svm_domain_spec *spec)
{
	leaf_mib(xml, "memory", plan->guest_mib);
	if (!spec->no_hard_limit) {
		svm_xml_start(xml, "memtune");
		leaf_mib(xml, "hard_limit", plan->hard_limit_mib);
		svm_xml_end(xml);
	}
	if (plan->hugepages == SVM_HUGEPAGES_NONE)
		return;
	svm_xml_start(xml, "memoryBacking");
	svm_xml_start(xml, "hugepages");
	svm_xml_start(xml, "page");
	svm_xml_attr_uint(xml, "size", plan->hugepage_kib);
	svm_xml_attr(xml, "unit", "KiB");
	attr_all_cells(xml, "nodeset", plan);
	svm_xml_end(xml);
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void render_cpu_pinning(struct svm_xml *xml, const struct svm_plan *plan)
{
	char count[16];

	snprintf(count, sizeof(count), "%u", plan->nvcpus);
	svm_xml_start(xml, "vcpu");
	svm_xml_attr(xml, "placement", "static");
	svm_xml_text(xml, count);
	svm_xml_end(xml);
	svm_xml_start(xml, "cputune");
	for (unsigned v = 0; v < plan->nvcpus; v++) {
		svm_xml_start(xml, "vcpupin");
		svm_xml_attr_uint(xml, "vcpu", v);
		svm_xml_attr_uint(xml, "cpuset", plan->vcpu_pu[v]);
		svm_xml_end(xml);
	}
	svm_xml_start(xml, "emulatorpin");
	attr_cpuset(xml, "cpuset", &plan->emulator_pus);
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void render_numatune(struct svm_xml *xml, const struct svm_plan *plan)
{
	svm_xml_start(xml, "numatune");
	svm_xml_start(xml, "memory");
	svm_xml_attr(xml, "mode", "strict");
	attr_cpuset(xml, "nodeset", &plan->host_nodes);
	svm_xml_end(xml);
	for (unsigned i = 0; i < plan->ncells; i++) {
		svm_xml_start(xml, "memnode");
		svm_xml_attr_uint(xml, "cellid", i);
		svm_xml_attr(xml, "mode", "strict");
		svm_xml_attr_uint(xml, "nodeset", plan->cells[i].host_node);
		svm_xml_end(xml);
	}
	svm_xml_end(xml);
}

static void render_os_type(struct svm_xml *xml, const struct svm_domain_spec *spec,
                           enum svm_hypervisor hv)
{
	bool pvh = hv == SVM_HV_XEN && spec->xen_pvh;

	svm_xml_start(xml, "type");
	svm_xml_attr(xml, "arch", "x86_64");
	if (hv == SVM_HV_XEN)
		svm_xml_attr(xml, "machine", pvh ? "xenpvh" : "xenfv");
	else
		svm_xml_attr(xml, "machine", "q35");
	svm_xml_text(xml, pvh ? "xenpvh" : "hvm");
	svm_xml_end(xml);
}

/* ACPI and APIC always; a kvm guest with x2APIC ids also needs QEMU's own
 * I/O APIC (split irqchip), which interrupt remapping requires. */
static void render_os(struct svm_xml *xml, const struct svm_plan *plan,
                      const struct svm_domain_spec *spec, enum svm_hypervisor hv)
{
	svm_xml_start(xml, "os");
	render_os_type(xml, spec, hv);
	if (spec->boot_disk) {
		svm_xml_start(xml, "boot");
		svm_xml_attr(xml, "dev", "hd");
		svm_xml_end(xml);
	} else {
		svm_xml_leaf(xml, "kernel", spec->kernel);
		if (spec->initrd != NULL)
			svm_xml_leaf(xml, "initrd", spec->initrd);
		if (spec->cmdline != NULL)
			svm_xml_leaf(xml, "cmdline", spec->cmdline);
	}
	svm_xml_end(xml);
	svm_xml_start(xml, "features");
	svm_xml_start(xml, "acpi");
	svm_xml_end(xml);
	svm_xml_start(xml, "apic");
	svm_xml_end(xml);
	if (plan->x2apic) {
		svm_xml_start(xml, "ioapic");
		svm_xml_attr(xml, "driver", "qemu");
		svm_xml_end(xml);
	}
	/* TCG's translation cache would grow to 1 GiB, charged to the job's
	 * memory cgroup: bounded so that QEMU fits in mem_reserve. */
	if (plan->hypervisor == SVM_HV_QEMU) {
		svm_xml_start(xml, "tcg");
		svm_xml_start(xml, "tb-cache");
		svm_xml_attr(xml, "unit", "MiB");
		svm_xml_text(xml, SVM_TCG_TB_CACHE_MIB);
		svm_xml_end(xml);
		svm_xml_end(xml);
	}
	svm_xml_end(xml);
}

/* The agent's words for a guest whose kernel command line the host does not
 * control (doc/spank_vm.8, SITE IMAGES); libvirt puts sysinfo before os. */
static void render_fw_cfg(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	if (spec->fw_cfg_config == NULL)
		return;
	svm_xml_start(xml, "sysinfo");
	svm_xml_attr(xml, "type", "fwcfg");
	svm_xml_start(xml, "entry");
	svm_xml_attr(xml, "name", SVM_FW_CFG_CONFIG_NAME);
	svm_xml_text(xml, spec->fw_cfg_config);
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void render_cpu(struct svm_xml *xml, const struct svm_plan *plan, const char *mode)
{
	svm_xml_start(xml, "cpu");
	svm_xml_attr(xml, "mode", mode);
	svm_xml_start(xml, "topology");
	svm_xml_attr_uint(xml, "sockets", plan->sockets);
	svm_xml_attr_uint(xml, "cores", plan->cores);
	svm_xml_attr_uint(xml, "threads", plan->threads);
	svm_xml_end(xml);
	svm_xml_start(xml, "numa");
	for (unsigned i = 0; i < plan->ncells; i++) {
		svm_xml_start(xml, "cell");
		svm_xml_attr_uint(xml, "id", i);
		attr_cpuset(xml, "cpus", &plan->cells[i].vcpus);
		svm_xml_attr_uint(xml, "memory", plan->cells[i].mem_mib);
		svm_xml_attr(xml, "unit", "MiB");
		svm_xml_end(xml);
	}
	svm_xml_end(xml);
	svm_xml_end(xml);
}

/* The guest never outlives one boot: any power event ends the domain. */
static void render_lifecycle(struct svm_xml *xml)
{
	svm_xml_start(xml, "clock");
	svm_xml_attr(xml, "offset", "utc");
	svm_xml_end(xml);
	svm_xml_leaf(xml, "on_poweroff", "destroy");
	svm_xml_leaf(xml, "on_reboot", "destroy");
	svm_xml_leaf(xml, "on_crash", "destroy");
}

/* q35 devices go straight on the root bus (pcie.0) as integrated endpoints:
 * left to itself libvirt puts each behind a pcie-root-port of its own, and
 * enumerating those ports costs a TCG guest over a second of boot. */
static void render_root_bus_address(struct svm_xml *xml, unsigned slot)
{
	char text[8];

	snprintf(text, sizeof(text), "0x%02x", slot);
	svm_xml_start(xml, "address");
	svm_xml_attr(xml, "type", "pci");
	svm_xml_attr(xml, "domain", "0x0000");
	svm_xml_attr(xml, "bus", "0x00");
	svm_xml_attr(xml, "slot", text);
	svm_xml_attr(xml, "function", "0x0");
	svm_xml_end(xml);
}

/* slot 0: no address (Xen places its own devices). */
static void render_disk(struct svm_xml *xml, const char *image, const char *dev, const char *bus,
                        unsigned slot)
{
	svm_xml_start(xml, "disk");
	svm_xml_attr(xml, "type", "file");
	svm_xml_attr(xml, "device", "disk");
	svm_xml_start(xml, "driver");
	svm_xml_attr(xml, "name", "qemu");
	svm_xml_attr(xml, "type", "qcow2");
	svm_xml_end(xml);
	svm_xml_start(xml, "source");
	svm_xml_attr(xml, "file", image);
	svm_xml_end(xml);
	svm_xml_start(xml, "target");
	svm_xml_attr(xml, "dev", dev);
	svm_xml_attr(xml, "bus", bus);
	svm_xml_end(xml);
	if (slot != 0)
		render_root_bus_address(xml, slot);
	svm_xml_end(xml);
}

static void render_share(struct svm_xml *xml, const struct svm_share *share, unsigned slot)
{
	svm_xml_start(xml, "filesystem");
	svm_xml_attr(xml, "type", "mount");
	svm_xml_attr(xml, "accessmode", "passthrough");
	svm_xml_start(xml, "source");
	svm_xml_attr(xml, "dir", share->host_dir);
	svm_xml_end(xml);
	svm_xml_start(xml, "target");
	svm_xml_attr(xml, "dir", share->tag);
	svm_xml_end(xml);
	if (share->readonly) {
		svm_xml_start(xml, "readonly");
		svm_xml_end(xml);
	}
	render_root_bus_address(xml, slot);
	svm_xml_end(xml);
}

/* A character device logging to the console file; `target_type` NULL leaves
 * the target's type to libvirt (a serial port's default). */
static void render_log_chardev(struct svm_xml *xml, const char *element, const char *log,
                               const char *target_type)
{
	svm_xml_start(xml, element);
	svm_xml_attr(xml, "type", "file");
	svm_xml_start(xml, "source");
	svm_xml_attr(xml, "path", log);
	svm_xml_attr(xml, "append", "on");
	svm_xml_end(xml);
	svm_xml_start(xml, "target");
	if (target_type != NULL)
		svm_xml_attr(xml, "type", target_type);
	svm_xml_attr(xml, "port", "0");
	svm_xml_end(xml);
	svm_xml_end(xml);
}

/* libvirt gives a q35 machine a USB controller unless told otherwise; the
 * guest has no use for it and probing it costs boot time under TCG. */
static void render_no_usb(struct svm_xml *xml)
{
	svm_xml_start(xml, "controller");
	svm_xml_attr(xml, "type", "usb");
	svm_xml_attr(xml, "model", "none");
	svm_xml_end(xml);
}

static void render_no_balloon(struct svm_xml *xml)
{
	svm_xml_start(xml, "memballoon");
	svm_xml_attr(xml, "model", "none");
	svm_xml_end(xml);
}

static const char *agent_name(const struct svm_domain_spec *spec)
{
	return spec->agent_name ? spec->agent_name : SVM_AGENT_CHANNEL_NAME;
}

static void render_virtio_port(struct svm_xml *xml, const char *socket, const char *name,
                               unsigned port)
{
	svm_xml_start(xml, "channel");
	svm_xml_attr(xml, "type", "unix");
	svm_xml_start(xml, "source");
	svm_xml_attr(xml, "mode", "bind");
	svm_xml_attr(xml, "path", socket);
	svm_xml_end(xml);
	svm_xml_start(xml, "target");
	svm_xml_attr(xml, "type", "virtio");
	svm_xml_attr(xml, "name", name);
	svm_xml_end(xml);
	svm_xml_start(xml, "address");
	svm_xml_attr(xml, "type", "virtio-serial");
	svm_xml_attr(xml, "controller", "0");
	svm_xml_attr(xml, "bus", "0");
	svm_xml_attr_uint(xml, "port", port);
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void render_virtio_agent(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	unsigned port = spec->agent_port ? spec->agent_port : 1;

	svm_xml_start(xml, "controller");
	svm_xml_attr(xml, "type", "virtio-serial");
	svm_xml_attr(xml, "index", "0");
	render_root_bus_address(xml, SLOT_AGENT);
	svm_xml_end(xml);
	render_virtio_port(xml, spec->agent_socket, agent_name(spec), port);
	if (spec->hostcall_socket != NULL)
		render_virtio_port(xml, spec->hostcall_socket, SVM_HOSTCALL_CHANNEL_NAME, port + 1);
}

/* QEMU accepts APIC ids above 254 only with x2APIC, and x2APIC only with an
 * interrupt-remapping IOMMU in extended interrupt mode. */
static void render_x2apic_iommu(struct svm_xml *xml)
{
	svm_xml_start(xml, "iommu");
	svm_xml_attr(xml, "model", "intel");
	svm_xml_start(xml, "driver");
	svm_xml_attr(xml, "intremap", "on");
	svm_xml_attr(xml, "eim", "on");
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static void render_filter_parameter(struct svm_xml *xml, const char *name, const char *value)
{
	svm_xml_start(xml, "parameter");
	svm_xml_attr(xml, "name", name);
	svm_xml_attr(xml, "value", value);
	svm_xml_end(xml);
}

/* No vhost: the guest's packets go through QEMU, as the job's user. */
static void render_nic(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	svm_xml_start(xml, "interface");
	svm_xml_attr(xml, "type", "bridge");
	svm_xml_start(xml, "source");
	svm_xml_attr(xml, "bridge", spec->net_bridge);
	svm_xml_end(xml);
	svm_xml_start(xml, "mac");
	svm_xml_attr(xml, "address", spec->net_mac);
	svm_xml_end(xml);
	svm_xml_start(xml, "model");
	svm_xml_attr(xml, "type", "virtio");
	svm_xml_end(xml);
	svm_xml_start(xml, "driver");
	svm_xml_attr(xml, "name", "qemu");
	svm_xml_end(xml);
	svm_xml_start(xml, "filterref");
	svm_xml_attr(xml, "filter", SVM_NET_FILTER_NAME);
	render_filter_parameter(xml, "IP", spec->net_addr);
	render_filter_parameter(xml, "JOBNET", spec->net_subnet);
	svm_xml_end(xml);
	render_root_bus_address(xml, SLOT_NIC);
	svm_xml_end(xml);
}

static void render_qemu_devices(struct svm_xml *xml, const struct svm_plan *plan,
                                const struct svm_domain_spec *spec)
{
	svm_xml_start(xml, "devices");
	if (spec->disk_image != NULL)
		render_disk(xml, spec->disk_image, "vda", "virtio", SLOT_DISK);
	for (size_t i = 0; i < spec->nshares; i++)
		render_share(xml, &spec->shares[i], SLOT_FIRST_SHARE + (unsigned)i);
	if (spec->net_bridge != NULL)
		render_nic(xml, spec);
	render_virtio_agent(xml, spec);
	render_log_chardev(xml, "serial", spec->console_log, NULL);
	render_log_chardev(xml, "console", spec->console_log, "serial");
	render_no_usb(xml);
	render_no_balloon(xml);
	if (plan->x2apic)
		render_x2apic_iommu(xml);
	svm_xml_end(xml);
}

/* A PVH guest has no emulated UART: its console is the Xen PV console. */
static void render_xen_devices(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	svm_xml_start(xml, "devices");
	if (spec->disk_image != NULL)
		render_disk(xml, spec->disk_image, "xvda", "xen", 0);
	if (!spec->xen_pvh)
		render_log_chardev(xml, "serial", spec->console_log, NULL);
	render_log_chardev(xml, "console", spec->console_log, spec->xen_pvh ? "xen" : "serial");
	svm_xml_start(xml, "channel");
	svm_xml_attr(xml, "type", "pty");
	svm_xml_start(xml, "target");
	svm_xml_attr(xml, "type", "xen");
	svm_xml_attr(xml, "name", agent_name(spec));
	svm_xml_end(xml);
	svm_xml_end(xml);
	render_no_balloon(xml);
	svm_xml_end(xml);
}

/* The emulator runs as the job's user, so the guest can reach on the host
 * only what that user can. relabel='no': with 'yes' libvirt chowns the kernel,
 * initrd and disks to the job's user for the guest's lifetime, which would
 * hand a user write access to the host's /boot/vmlinuz. Files the guest needs
 * are readable by the user instead (kernel, initrd) or the user's own
 * (overlays), and libvirt passes the console log as an open descriptor. */
static void render_seclabel(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	char label[48];

	snprintf(label, sizeof(label), "+%lu:+%lu", (unsigned long)spec->uid,
	         (unsigned long)spec->gid);
	svm_xml_start(xml, "seclabel");
	svm_xml_attr(xml, "type", "static");
	svm_xml_attr(xml, "model", "dac");
	svm_xml_attr(xml, "relabel", "no");
	svm_xml_leaf(xml, "label", label);
	svm_xml_end(xml);
}

static void render_owner(struct svm_xml *xml, const struct svm_domain_spec *spec)
{
	if (spec->owner_node == NULL)
		return;
	svm_xml_start(xml, "metadata");
	svm_xml_start(xml, "guest");
	svm_xml_attr(xml, "xmlns", SVM_DOMAIN_METADATA_URI);
	svm_xml_attr(xml, "node", spec->owner_node);
	svm_xml_attr_uint(xml, "job", spec->job_id);
	svm_xml_end(xml);
	svm_xml_end(xml);
}

static int render(const struct flavour *flavour, const struct svm_plan *plan,
                  const struct svm_domain_spec *spec, char **out, struct svm_err *err)
{
	struct svm_xml xml;

	*out = NULL;
	if (check_inputs(plan, spec, flavour->hv, err) < 0)
		return -1;
	svm_xml_init(&xml);
	svm_xml_start(&xml, "domain");
	svm_xml_attr(&xml, "type", flavour->domain_type);
	svm_xml_leaf(&xml, "name", spec->name);
	svm_xml_leaf(&xml, "uuid", spec->uuid);
	render_owner(&xml, spec);
	render_memory(&xml, plan, spec);
	render_cpu_pinning(&xml, plan);
	render_numatune(&xml, plan);
	render_fw_cfg(&xml, spec);
	render_os(&xml, plan, spec, flavour->hv);
	render_cpu(&xml, plan, flavour->cpu_mode);
	render_lifecycle(&xml);
	if (flavour->hv == SVM_HV_XEN)
		render_xen_devices(&xml, spec);
	else
		render_qemu_devices(&xml, plan, spec);
	render_seclabel(&xml, spec);
	svm_xml_end(&xml);
	return svm_xml_finish(&xml, out, err);
}

int svm_domain_xml_kvm(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                       struct svm_err *err)
{
	return render(&kvm_flavour, plan, spec, out, err);
}

int svm_domain_xml_qemu(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                        struct svm_err *err)
{
	return render(&qemu_flavour, plan, spec, out, err);
}

int svm_domain_xml_xen(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                       struct svm_err *err)
{
	return render(&xen_flavour, plan, spec, out, err);
}

int svm_domain_xml(const struct svm_plan *plan, const struct svm_domain_spec *spec, char **out,
                   struct svm_err *err)
{
	switch (plan->hypervisor) {
	case SVM_HV_KVM:
		return svm_domain_xml_kvm(plan, spec, out, err);
	case SVM_HV_QEMU:
		return svm_domain_xml_qemu(plan, spec, out, err);
	case SVM_HV_XEN:
		return svm_domain_xml_xen(plan, spec, out, err);
	default:
		*out = NULL;
		return svm_err_set(err, "the plan names no hypervisor; accepted: kvm, qemu, xen");
	}
}
