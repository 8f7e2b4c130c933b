/* Domain XML: golden documents byte for byte, libvirt schema validation of
 * everything rendered, the elements each hypervisor needs, and escaping.
 * SVM_UPDATE_GOLDEN=1 rewrites tests/unit/golden/ instead of comparing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "plan_support.h"
#include "spank_vm/domain_xml.h"

#define T_DUAL "pack:2 numa:2 core:8 pu:2"

/* ---- plans the tests render ---- */

static void kvm_plan(struct svm_plan *plan, hwloc_topology_t *topo)
{
	static const uint64_t free_pages[] = {2048, 2048, 0, 0};
	struct svm_plan_input in;

	*topo = support_synthetic(T_DUAL);
	in = support_input(*topo, "5-8", NULL, 4096);
	in.mem_reserve_mib = 256;
	in.hugepages = SVM_HUGEPAGES_2M;
	in.hugepages_free = free_pages;
	in.hugepages_free_count = 4;
	support_plan(&in, plan);
}

static void qemu_plan(struct svm_plan *plan, hwloc_topology_t *topo)
{
	struct svm_plan_input in;

	*topo = support_fixture("interleaved.xml");
	in = support_input(*topo, "0-1,4", "0-2,8-10", 3000);
	in.hypervisor = SVM_HV_QEMU;
	in.mem_reserve_mib = 200;
	in.emulator_cpus = "15";
	support_plan(&in, plan);
}

static void xen_plan(struct svm_plan *plan, hwloc_topology_t *topo)
{
	struct svm_plan_input in;

	*topo = support_fixture("four_numa.xml");
	in = support_input(*topo, NULL, "0-7", 2048);
	in.hypervisor = SVM_HV_XEN;
	support_plan(&in, plan);
}

typedef void (*plan_maker)(struct svm_plan *plan, hwloc_topology_t *topo);

static char *render(plan_maker make, const struct svm_domain_spec *spec)
{
	struct svm_err err = {""};
	hwloc_topology_t topo;
	struct svm_plan plan;
	char *xml = NULL;

	make(&plan, &topo);
	if (svm_domain_xml(&plan, spec, &xml, &err) < 0)
		fail_msg("rendering failed: %s", err.msg);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
	return xml;
}

static struct svm_domain_spec xen_spec(void)
{
	struct svm_domain_spec spec = support_spec(true);

	spec.nshares = 0;
	spec.agent_socket = NULL;
	return spec;
}

#define BOOT_DISK_WORDS "spank_vm.allow_root=1 spank_vm.share=share0:/home/alice/job"

/* An image that boots itself: its disk, the job's share, the agent's words
 * in fw_cfg, and nothing of a kernel. */
static struct svm_domain_spec boot_disk_spec(void)
{
	static const struct svm_share shares[] = {
	        {.host_dir = "/home/alice/job", .tag = "share0", .readonly = false}};
	struct svm_domain_spec spec = support_spec(true);

	spec.kernel = NULL;
	spec.initrd = NULL;
	spec.cmdline = NULL;
	spec.boot_disk = true;
	spec.fw_cfg_config = BOOT_DISK_WORDS;
	spec.shares = shares;
	spec.nshares = 1;
	return spec;
}

/* ---- libxml2 queries ---- */

static xmlDocPtr parse(const char *xml)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);

	if (doc == NULL)
		fail_msg("libxml2 cannot parse:\n%s", xml);
	return doc;
}

static xmlXPathObjectPtr query(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr result;

	assert_non_null(ctx);
	result = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	xmlXPathFreeContext(ctx);
	if (result == NULL)
		fail_msg("bad XPath %s", expr);
	return result;
}

static int count(xmlDocPtr doc, const char *expr)
{
	char wrapped[512];
	xmlXPathObjectPtr result;
	int n;

	snprintf(wrapped, sizeof(wrapped), "count(%s)", expr);
	result = query(doc, wrapped);
	n = (int)result->floatval;
	xmlXPathFreeObject(result);
	return n;
}

static void assert_xpath_string(xmlDocPtr doc, const char *expr, const char *expected)
{
	char wrapped[512];
	xmlXPathObjectPtr result;

	snprintf(wrapped, sizeof(wrapped), "string(%s)", expr);
	result = query(doc, wrapped);
	if (strcmp((const char *)result->stringval, expected) != 0)
		fail_msg("%s is \"%s\", expected \"%s\"", expr, result->stringval, expected);
	xmlXPathFreeObject(result);
}

/* ---- golden files ---- */

static void check_golden(const char *name, const char *xml)
{
	char relative[64], path[4096];
	char *golden;

	snprintf(relative, sizeof(relative), "golden/%s", name);
	support_data_path(relative, path, sizeof(path));
	if (getenv("SVM_UPDATE_GOLDEN") != NULL) {
		support_write_file(path, xml);
		print_message("rewrote %s\n", path);
	}
	golden = support_read_file(path);
	if (strcmp(golden, xml) != 0)
		fail_msg("%s differs from the rendering:\n%s", path, xml);
	/* The golden file is itself a valid libvirt domain. */
	assert_true(support_validates(golden));
	free(golden);
}

static void test_domain_xml_kvm_matches_golden_and_validates(void **state)
{
	struct svm_domain_spec spec = support_spec(true);
	char *xml = render(kvm_plan, &spec);

	(void)state;
	check_golden("kvm.xml", xml);
	free(xml);
}

static void test_domain_xml_qemu_matches_golden_and_validates(void **state)
{
	struct svm_domain_spec spec = support_spec(false);
	char *xml = render(qemu_plan, &spec);

	(void)state;
	check_golden("qemu.xml", xml);
	free(xml);
}

static void test_domain_xml_xen_matches_golden_and_validates(void **state)
{
	struct svm_domain_spec spec = xen_spec();
	char *xml = render(xen_plan, &spec);

	(void)state;
	check_golden("xen.xml", xml);
	free(xml);
}

static void test_domain_xml_qemu_boot_disk_matches_golden_and_validates(void **state)
{
	struct svm_domain_spec spec = boot_disk_spec();
	char *xml = render(qemu_plan, &spec);

	(void)state;
	check_golden("qemu_boot_disk.xml", xml);
	free(xml);
}

/* ---- what every document must say ---- */

static void check_common(xmlDocPtr doc, const struct svm_plan *plan)
{
	char count_text[16];

	snprintf(count_text, sizeof(count_text), "%u", plan->nvcpus);
	assert_xpath_string(doc, "/domain/vcpu/@placement", "static");
	assert_xpath_string(doc, "/domain/vcpu", count_text);
	assert_int_equal(count(doc, "/domain/cputune/vcpupin"), plan->nvcpus);
	assert_int_equal(count(doc, "/domain/cputune/emulatorpin"), 1);
	assert_int_equal(count(doc, "/domain/numatune/memory[@mode='strict']"), 1);
	assert_int_equal(count(doc, "/domain/numatune/memnode[@mode='strict']"), plan->ncells);
	assert_int_equal(count(doc, "/domain/cpu/numa/cell"), plan->ncells);
	assert_xpath_string(doc, "/domain/memory/@unit", "MiB");
	assert_xpath_string(doc, "/domain/memtune/hard_limit/@unit", "MiB");
	assert_int_equal(count(doc, "/domain/features/acpi"), 1);
	assert_int_equal(count(doc, "/domain/features/apic"), 1);
	assert_xpath_string(doc, "/domain/on_poweroff", "destroy");
	assert_xpath_string(doc, "/domain/on_reboot", "destroy");
	assert_xpath_string(doc, "/domain/on_crash", "destroy");
	assert_xpath_string(doc, "/domain/devices/memballoon/@model", "none");
	assert_xpath_string(doc, "/domain/devices/console/@type", "file");
	assert_xpath_string(doc,
	                    "/domain/seclabel[@type='static'][@model='dac'][@relabel='no']/label",
	                    "+1000:+1000");
	assert_int_equal(count(doc, "//interface"), 0);
}

static void test_domain_xml_kvm_pins_every_vcpu_and_binds_every_cell(void **state)
{
	struct svm_domain_spec spec = support_spec(true);
	hwloc_topology_t topo;
	struct svm_plan plan;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	kvm_plan(&plan, &topo);
	assert_int_equal(svm_domain_xml_kvm(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	check_common(doc, &plan);
	assert_xpath_string(doc, "/domain/@type", "kvm");
	assert_xpath_string(doc, "/domain/cpu/@mode", "host-passthrough");
	assert_xpath_string(doc, "/domain/cputune/vcpupin[@vcpu='7']/@cpuset", "17");
	assert_xpath_string(doc, "/domain/cputune/emulatorpin/@cpuset", "10-17");
	assert_xpath_string(doc, "/domain/numatune/memory/@nodeset", "0-1");
	assert_xpath_string(doc, "/domain/numatune/memnode[@cellid='1']/@nodeset", "1");
	assert_xpath_string(doc, "/domain/cpu/numa/cell[@id='0']/@cpus", "0-5");
	assert_xpath_string(doc, "/domain/cpu/numa/cell[@id='0']/@memory", "2880");
	assert_xpath_string(doc, "/domain/memory", "3840");
	assert_xpath_string(doc, "/domain/memtune/hard_limit", "4096");
	assert_xpath_string(doc, "/domain/memoryBacking/hugepages/page/@size", "2048");
	assert_xpath_string(doc, "/domain/memoryBacking/hugepages/page/@nodeset", "0-1");
	assert_xpath_string(doc, "/domain/cpu/topology/@cores", "4");
	assert_xpath_string(doc,
	                    "/domain/devices/channel[@type='unix']/target[@type='virtio']/@name",
	                    SVM_AGENT_CHANNEL_NAME);
	assert_int_equal(count(doc, "/domain/devices/controller[@type='virtio-serial']"), 1);
	assert_int_equal(count(doc, "/domain/devices/filesystem[@accessmode='passthrough']"), 2);
	assert_int_equal(count(doc, "/domain/devices/filesystem[target/@dir='hostroot']/readonly"),
	                 1);
	assert_int_equal(count(doc, "/domain/devices/filesystem[target/@dir='workdir']/readonly"),
	                 0);
	assert_int_equal(count(doc, "/domain/devices/iommu"), 0);
	xmlFreeDoc(doc);
	free(xml);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_domain_xml_kvm_x2apic_adds_iommu_and_validates(void **state)
{
	hwloc_topology_t topo = support_synthetic("pack:2 numa:4 core:16 pu:2");
	struct svm_plan_input in = support_input(topo, "0-127", NULL, 262144);
	struct svm_domain_spec spec = support_spec(false);
	struct svm_plan plan;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	support_plan(&in, &plan);
	assert_true(plan.x2apic);
	assert_int_equal(svm_domain_xml(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	check_common(doc, &plan);
	assert_xpath_string(doc, "/domain/features/ioapic/@driver", "qemu");
	assert_xpath_string(doc, "/domain/devices/iommu[@model='intel']/driver/@eim", "on");
	assert_xpath_string(doc, "/domain/devices/iommu/driver/@intremap", "on");
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_domain_xml_qemu_uses_tcg_with_the_maximum_cpu_model(void **state)
{
	struct svm_domain_spec spec = support_spec(false);
	hwloc_topology_t topo;
	struct svm_plan plan;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	qemu_plan(&plan, &topo);
	assert_int_equal(svm_domain_xml_qemu(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	check_common(doc, &plan);
	assert_xpath_string(doc, "/domain/@type", "qemu");
	assert_xpath_string(doc, "/domain/cpu/@mode", "maximum");
	assert_xpath_string(doc, "/domain/os/type/@machine", "q35");
	assert_xpath_string(doc, "/domain/cputune/emulatorpin/@cpuset", "15");
	/* Package 0's NUMA node has OS id 1: cell 0 is bound to it. */
	assert_xpath_string(doc, "/domain/numatune/memnode[@cellid='0']/@nodeset", "1");
	assert_xpath_string(doc, "/domain/cputune/vcpupin[@vcpu='1']/@cpuset", "8");
	assert_int_equal(count(doc, "/domain/memoryBacking"), 0);
	assert_int_equal(count(doc, "/domain/devices/disk"), 0);
	/* Every PCI device sits on the root bus: libvirt adds no root port. */
	assert_xpath_string(doc, "/domain/devices/controller[@type='usb']/@model", "none");
	assert_int_equal(count(doc, "/domain/devices/*[address[@type='pci'][@bus!='0x00']]"), 0);
	assert_int_equal(count(doc, "/domain/devices/filesystem[not(address)]"), 0);
	assert_int_equal(count(doc, "/domain/devices/controller[@type='virtio-serial']/address"),
	                 1);
	xmlFreeDoc(doc);
	free(xml);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_domain_xml_xen_uses_a_pv_channel_and_hvm_or_pvh(void **state)
{
	struct svm_domain_spec spec = xen_spec();
	hwloc_topology_t topo;
	struct svm_plan plan;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	xen_plan(&plan, &topo);
	assert_int_equal(svm_domain_xml_xen(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	check_common(doc, &plan);
	assert_xpath_string(doc, "/domain/@type", "xen");
	assert_xpath_string(doc, "/domain/os/type", "hvm");
	assert_xpath_string(doc, "/domain/os/type/@machine", "xenfv");
	assert_xpath_string(doc, "/domain/devices/channel[@type='pty']/target[@type='xen']/@name",
	                    SVM_AGENT_CHANNEL_NAME);
	assert_xpath_string(doc, "/domain/devices/disk/target/@bus", "xen");
	assert_int_equal(count(doc, "/domain/devices/controller"), 0);
	assert_int_equal(count(doc, "/domain/devices/filesystem"), 0);
	xmlFreeDoc(doc);
	free(xml);

	spec.xen_pvh = true;
	assert_int_equal(svm_domain_xml_xen(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	assert_xpath_string(doc, "/domain/os/type", "xenpvh");
	assert_xpath_string(doc, "/domain/devices/console/target/@type", "xen");
	assert_int_equal(count(doc, "/domain/devices/serial"), 0);
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

static void test_domain_xml_boot_disk_boots_the_disk_with_the_config_in_fw_cfg(void **state)
{
	struct svm_domain_spec spec = boot_disk_spec();
	hwloc_topology_t topo;
	struct svm_plan plan;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	kvm_plan(&plan, &topo);
	assert_int_equal(svm_domain_xml_kvm(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	check_common(doc, &plan);
	assert_int_equal(count(doc, "/domain/os/kernel | /domain/os/initrd | /domain/os/cmdline"),
	                 0);
	assert_xpath_string(doc, "/domain/os/boot/@dev", "hd");
	assert_xpath_string(doc, "/domain/devices/disk/source/@file", spec.disk_image);
	assert_xpath_string(doc, "/domain/devices/disk/target/@dev", "vda");
	assert_int_equal(count(doc, "/domain/sysinfo"), 1);
	assert_xpath_string(
	        doc, "/domain/sysinfo[@type='fwcfg']/entry[@name='" SVM_FW_CFG_CONFIG_NAME "']",
	        BOOT_DISK_WORDS);
	/* Everything else as with the host's kernel: pinning, channel, shares. */
	assert_xpath_string(doc, "/domain/devices/filesystem/target/@dir", "share0");
	assert_int_equal(count(doc, "/domain/devices/channel[@type='unix']"), 1);
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);

	/* A host-kernel guest may carry the words as well. */
	spec = support_spec(true);
	spec.fw_cfg_config = BOOT_DISK_WORDS;
	assert_int_equal(svm_domain_xml_kvm(&plan, &spec, &xml, NULL), 0);
	doc = parse(xml);
	assert_int_equal(count(doc, "/domain/os/kernel"), 1);
	assert_int_equal(count(doc, "/domain/os/boot"), 0);
	assert_int_equal(count(doc, "/domain/sysinfo/entry"), 1);
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

/* ---- escaping ---- */

#define HOSTILE "a'b\"c<d>e&f\ng]]>\t\r<!--x--><?pi?>&amp;"

static int count_elements(xmlNodePtr node)
{
	int n = 0;

	for (; node != NULL; node = node->next)
		if (node->type == XML_ELEMENT_NODE)
			n += 1 + count_elements(node->children);
	return n;
}

static void test_domain_xml_hostile_strings_keep_the_structure_and_round_trip(void **state)
{
	const struct svm_share shares[] = {
	        {.host_dir = "/" HOSTILE, .tag = HOSTILE, .readonly = true}};
	struct svm_domain_spec benign = support_spec(true), hostile = support_spec(true);
	char *benign_xml, *hostile_xml;
	xmlDocPtr benign_doc, hostile_doc;

	(void)state;
	benign.nshares = 1;
	benign.fw_cfg_config = "spank_vm.allow_root=0";
	hostile.name = HOSTILE;
	hostile.owner_node = HOSTILE;
	hostile.kernel = "/" HOSTILE;
	hostile.initrd = "/" HOSTILE;
	hostile.cmdline = HOSTILE;
	hostile.console_log = "/" HOSTILE;
	hostile.agent_socket = "/" HOSTILE;
	hostile.agent_name = HOSTILE;
	hostile.disk_image = "/" HOSTILE;
	hostile.shares = shares;
	hostile.nshares = 1;
	hostile.fw_cfg_config = HOSTILE;
	benign_xml = render(kvm_plan, &benign);
	hostile_xml = render(kvm_plan, &hostile);
	benign_doc = parse(benign_xml);
	hostile_doc = parse(hostile_xml);

	assert_int_equal(count_elements(xmlDocGetRootElement(hostile_doc)),
	                 count_elements(xmlDocGetRootElement(benign_doc)));
	assert_xpath_string(hostile_doc, "/domain/name", HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/metadata/*[local-name()='guest']/@node", HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/os/kernel", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/os/initrd", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/os/cmdline", HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/serial/source/@path", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/console/source/@path", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/channel/source/@path", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/channel/target/@name", HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/disk/source/@file", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/filesystem/source/@dir", "/" HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/devices/filesystem/target/@dir", HOSTILE);
	assert_xpath_string(hostile_doc, "/domain/sysinfo/entry", HOSTILE);
	/* Nothing smuggled in: no comment or processing instruction nodes. */
	assert_int_equal(count(hostile_doc, "//comment() | //processing-instruction()"), 0);
	xmlFreeDoc(benign_doc);
	xmlFreeDoc(hostile_doc);
	free(benign_xml);
	free(hostile_xml);
}

/* ---- refusals ---- */

static void expect_refusal(plan_maker make, const struct svm_domain_spec *spec,
                           enum svm_hypervisor hv, const char *fragment)
{
	struct svm_err err = {""};
	hwloc_topology_t topo;
	struct svm_plan plan;
	char *xml = (char *)"untouched";
	int rc;

	make(&plan, &topo);
	if (hv == SVM_HV_KVM)
		rc = svm_domain_xml_kvm(&plan, spec, &xml, &err);
	else if (hv == SVM_HV_QEMU)
		rc = svm_domain_xml_qemu(&plan, spec, &xml, &err);
	else
		rc = svm_domain_xml_xen(&plan, spec, &xml, &err);
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
	assert_int_equal(rc, -1);
	assert_null(xml);
	if (strstr(err.msg, fragment) == NULL)
		fail_msg("\"%s\" does not mention \"%s\"", err.msg, fragment);
}

static void test_domain_xml_refuses_bad_specs(void **state)
{
	const struct svm_share untagged[] = {{.host_dir = "/srv", .tag = ""}};
	const struct svm_share relative[] = {{.host_dir = "srv", .tag = "t"}};
	struct svm_domain_spec spec;

	(void)state;
	spec = support_spec(false);
	expect_refusal(kvm_plan, &spec, SVM_HV_QEMU, "made for hypervisor kvm, not qemu");
	spec.name = "";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "needs a name");
	spec = support_spec(false);
	spec.uuid = "6f1c1a52-8f0e-4a8e-9d2b-3c4d5e6f7a8";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "UUID must look like");
	spec.uuid = "6f1c1a52-8f0e-4a8e-9d2b-3c4d5e6f7a8bb";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "UUID must look like");
	spec.uuid = "6f1c1a52x8f0e-4a8e-9d2b-3c4d5e6f7a8b";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "UUID must look like");
	spec = support_spec(false);
	spec.kernel = "vmlinuz";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "kernel must be an absolute path");
	spec = support_spec(false);
	spec.console_log = NULL;
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "console log must be an absolute path");
	spec = support_spec(false);
	spec.agent_socket = NULL;
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "agent socket must be an absolute path");
	spec = support_spec(false);
	spec.agent_name = "";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "agent channel name is empty");
	spec = support_spec(false);
	spec.shares = untagged;
	spec.nshares = 1;
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "share 0 has no mount tag");
	spec.shares = relative;
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "shared directory must be an absolute path");
	spec = support_spec(false);
	expect_refusal(xen_plan, &spec, SVM_HV_XEN,
	               "9p shares are not available with hypervisor xen");
	spec = support_spec(false);
	spec.cmdline = "console=ttyS0\x1b]0;owned\x07";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "byte 0x1b");
	spec = boot_disk_spec();
	spec.disk_image = NULL;
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "boots its disk needs a disk image");
	spec = boot_disk_spec();
	spec.kernel = "/boot/vmlinuz";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "takes no kernel, initrd or kernel command");
	spec = boot_disk_spec();
	spec.cmdline = "init=/bin/sh";
	expect_refusal(qemu_plan, &spec, SVM_HV_QEMU, "takes no kernel, initrd or kernel command");
	spec = boot_disk_spec();
	spec.fw_cfg_config = "";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "fw_cfg configuration is empty");
	spec = boot_disk_spec();
	spec.fw_cfg_config = "spank_vm.allow_root=0\x01";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "byte 0x01");
	spec = xen_spec();
	spec.fw_cfg_config = "spank_vm.allow_root=0";
	expect_refusal(xen_plan, &spec, SVM_HV_XEN, "fw_cfg is not available with hypervisor xen");
	spec = support_spec(false);
	spec.hostcall_socket = "hostcall.sock";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "host call socket must be an absolute path");
	spec = xen_spec();
	spec.net_bridge = "svmbr0";
	spec.net_mac = "52:54:0a:c8:d2:02";
	spec.net_addr = "10.200.210.2";
	spec.net_subnet = "10.200.210.0";
	expect_refusal(xen_plan, &spec, SVM_HV_XEN, "job network is available with kvm and qemu");
	spec = support_spec(false);
	spec.net_bridge = "svmbr0";
	expect_refusal(kvm_plan, &spec, SVM_HV_KVM, "needs its MAC, address and subnet");
	spec = xen_spec();
	spec.hostcall_socket = "/run/spank_vm/1/hostcall.sock";
	expect_refusal(xen_plan, &spec, SVM_HV_XEN, "host call port needs virtio-serial");
}

/* --vm-net=cluster: one virtio NIC on the site's bridge, without vhost,
 * under the job filter with the guest's address and the job's /24. */
static void test_domain_xml_job_nic_is_filtered_to_the_job_network(void **state)
{
	struct svm_domain_spec spec = support_spec(true);
	xmlDocPtr doc;
	char *xml;

	(void)state;
	xml = render(qemu_plan, &spec);
	doc = parse(xml);
	assert_int_equal(count(doc, "/domain/devices/interface"), 0);
	xmlFreeDoc(doc);
	free(xml);

	spec.net_bridge = "svmbr0";
	spec.net_mac = "52:54:0a:c8:d2:02";
	spec.net_addr = "10.200.210.2";
	spec.net_subnet = "10.200.210.0";
	xml = render(qemu_plan, &spec);
	doc = parse(xml);
	assert_int_equal(count(doc, "/domain/devices/interface"), 1);
	assert_xpath_string(doc, "/domain/devices/interface/@type", "bridge");
	assert_xpath_string(doc, "/domain/devices/interface/source/@bridge", "svmbr0");
	assert_xpath_string(doc, "/domain/devices/interface/mac/@address", spec.net_mac);
	assert_xpath_string(doc, "/domain/devices/interface/model/@type", "virtio");
	assert_xpath_string(doc, "/domain/devices/interface/driver/@name", "qemu");
	assert_xpath_string(doc, "/domain/devices/interface/filterref/@filter",
	                    SVM_NET_FILTER_NAME);
	assert_xpath_string(doc, "/domain/devices/interface/filterref/parameter[@name='IP']/@value",
	                    "10.200.210.2");
	assert_xpath_string(doc,
	                    "/domain/devices/interface/filterref/parameter[@name='JOBNET']/@value",
	                    "10.200.210.0");
	assert_xpath_string(doc, "/domain/devices/interface/address/@slot", "0x1e");
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);
}

/* The guest's Slurm commands reach the host over a second port of the same
 * controller, next to the agent's. */
static void test_domain_xml_hostcall_port_follows_the_agent_port(void **state)
{
	struct svm_domain_spec spec = support_spec(true);
	xmlDocPtr doc;
	char *xml;

	(void)state;
	spec.hostcall_socket = "/run/spank_vm/7/guest/hostcall.sock";
	xml = render(qemu_plan, &spec);
	doc = parse(xml);
	assert_int_equal(count(doc, "/domain/devices/controller[@type='virtio-serial']"), 1);
	assert_int_equal(count(doc, "/domain/devices/channel[@type='unix']"), 2);
	assert_xpath_string(doc,
	                    "/domain/devices/channel[target/@name='" SVM_HOSTCALL_CHANNEL_NAME
	                    "']/source/@path",
	                    spec.hostcall_socket);
	assert_xpath_string(doc,
	                    "/domain/devices/channel[target/@name='" SVM_HOSTCALL_CHANNEL_NAME
	                    "']/address/@port",
	                    "2");
	assert_xpath_string(doc,
	                    "/domain/devices/channel[target/@name='" SVM_AGENT_CHANNEL_NAME
	                    "']/address/@port",
	                    "1");
	assert_true(support_validates(xml));
	xmlFreeDoc(doc);
	free(xml);
}

static void test_domain_xml_dispatches_on_the_plan_hypervisor(void **state)
{
	struct svm_domain_spec spec = support_spec(false);
	struct svm_err err = {""};
	hwloc_topology_t topo;
	struct svm_plan plan;
	char *direct, *dispatched;

	(void)state;
	qemu_plan(&plan, &topo);
	assert_int_equal(svm_domain_xml_qemu(&plan, &spec, &direct, NULL), 0);
	assert_int_equal(svm_domain_xml(&plan, &spec, &dispatched, NULL), 0);
	assert_string_equal(direct, dispatched);
	free(direct);
	free(dispatched);
	plan.hypervisor = SVM_HV_UNSET;
	assert_int_equal(svm_domain_xml(&plan, &spec, &dispatched, &err), -1);
	assert_null(dispatched);
	assert_non_null(strstr(err.msg, "accepted: kvm, qemu, xen"));
	svm_plan_free(&plan);
	hwloc_topology_destroy(topo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_domain_xml_kvm_matches_golden_and_validates),
	        cmocka_unit_test(test_domain_xml_qemu_matches_golden_and_validates),
	        cmocka_unit_test(test_domain_xml_xen_matches_golden_and_validates),
	        cmocka_unit_test(test_domain_xml_qemu_boot_disk_matches_golden_and_validates),
	        cmocka_unit_test(test_domain_xml_kvm_pins_every_vcpu_and_binds_every_cell),
	        cmocka_unit_test(test_domain_xml_kvm_x2apic_adds_iommu_and_validates),
	        cmocka_unit_test(test_domain_xml_qemu_uses_tcg_with_the_maximum_cpu_model),
	        cmocka_unit_test(test_domain_xml_xen_uses_a_pv_channel_and_hvm_or_pvh),
	        cmocka_unit_test(
	                test_domain_xml_boot_disk_boots_the_disk_with_the_config_in_fw_cfg),
	        cmocka_unit_test(test_domain_xml_hostile_strings_keep_the_structure_and_round_trip),
	        cmocka_unit_test(test_domain_xml_refuses_bad_specs),
	        cmocka_unit_test(test_domain_xml_hostcall_port_follows_the_agent_port),
	        cmocka_unit_test(test_domain_xml_job_nic_is_filtered_to_the_job_network),
	        cmocka_unit_test(test_domain_xml_dispatches_on_the_plan_hypervisor),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	xmlCleanupParser();
	return rc;
}
