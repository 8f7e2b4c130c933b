#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_support.h"
#include "spank_vm/checkpoint.h"

/* 2 packages x 2 NUMA nodes x 8 cores x 2 PUs: node i holds PUs 16i..16i+15. */
#define T_DUAL   "pack:2 numa:2 core:8 pu:2"
#define DIGEST_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static hwloc_topology_t topo;

static int setup(void **state)
{
	(void)state;
	topo = support_synthetic(T_DUAL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	hwloc_topology_destroy(topo);
	return 0;
}

/* A plan on abstract cores `cores` with job_mib of memory. */
static void plan_on(const char *cores, uint64_t job_mib, enum svm_hypervisor hv,
                    struct svm_plan *plan)
{
	struct svm_plan_input in = support_input(topo, cores, NULL, job_mib);

	in.hypervisor = hv;
	support_plan(&in, plan);
}

/* The manifest of a guest planned on cores 6-9 (two cells: cores 6-7 on
 * node 0, 8-9 on node 1), 4096 MiB, image "tiny". */
static struct svm_ckpt_manifest *saved_manifest(void)
{
	struct svm_ckpt_manifest *m = calloc(1, sizeof(*m));
	struct svm_plan plan;
	struct svm_err err;

	assert_non_null(m);
	plan_on("6-9", 4096, SVM_HV_KVM, &plan);
	assert_int_equal(svm_ckpt_manifest_set_shape(m, &plan, &err), 0);
	svm_plan_free(&plan);
	m->job_id = 4242;
	strcpy(m->node, "svm1");
	m->saved_at = 1764800000;
	strcpy(m->image, "tiny");
	strcpy(m->image_digest, DIGEST_A);
	m->files[SVM_CKPT_FILE_MEMORY].size = 123456789;
	strcpy(m->files[SVM_CKPT_FILE_MEMORY].sha256, DIGEST_B);
	m->files[SVM_CKPT_FILE_DISK].size = 0;
	strcpy(m->files[SVM_CKPT_FILE_DISK].sha256, DIGEST_A);
	return m;
}

static char *encode(const struct svm_ckpt_manifest *m)
{
	char *text = malloc(SVM_CKPT_MANIFEST_MAX);
	struct svm_err err;

	assert_non_null(text);
	if (svm_ckpt_manifest_encode(m, text, SVM_CKPT_MANIFEST_MAX, &err) != 0)
		fail_msg("encode: %s", err.msg);
	return text;
}

static void test_manifest_round_trip_keeps_every_field(void **state)
{
	struct svm_ckpt_manifest *m = saved_manifest(), *back = calloc(1, sizeof(*back));
	char *text = encode(m), *again;
	struct svm_err err;

	(void)state;
	assert_non_null(strstr(text, "format=1\njob=4242\nnode=svm1\n"));
	assert_non_null(strstr(text, "\ncells=0-3:2048:0;4-7:2048:0\n"));
	assert_non_null(strstr(text, "\nfile.memory=123456789:" DIGEST_B "\n"));
	if (svm_ckpt_manifest_decode(text, back, &err) != 0)
		fail_msg("decode: %s\n%s", err.msg, text);
	assert_int_equal(back->job_id, 4242);
	assert_int_equal(back->nvcpus, 8);
	assert_int_equal(back->ncells, 2);
	assert_int_equal(back->guest_mib, 4096);
	assert_int_equal(back->files[SVM_CKPT_FILE_MEMORY].size, 123456789);
	again = encode(back);
	assert_string_equal(text, again);
	free(again);
	free(text);
	free(back);
	free(m);
}

/* Replaces the first occurrence of `from` in text (which must hold it). */
static char *edited(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t head, len = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(len);

	if (at == NULL)
		fail_msg("'%s' not in the manifest", from);
	assert_non_null(out);
	head = (size_t)(at - text);
	memcpy(out, text, head);
	strcpy(out + head, to);
	strcat(out, at + strlen(from));
	return out;
}

static void assert_decode_fails(const char *text, const char *fragment)
{
	struct svm_ckpt_manifest *m = calloc(1, sizeof(*m));
	struct svm_err err;

	assert_non_null(m);
	if (svm_ckpt_manifest_decode(text, m, &err) == 0)
		fail_msg("decoded, expected an error with '%s':\n%s", fragment, text);
	if (strstr(err.msg, fragment) == NULL)
		fail_msg("error '%s' lacks '%s'", err.msg, fragment);
	free(m);
}

static void test_manifest_decode_names_what_is_wrong(void **state)
{
	static const struct {
		const char *from, *to, *fragment;
	} cases[] = {
	        {"format=1\n", "format=2\n", "format 2, this spank_vm reads format 1"},
	        {"format=1\n", "", "the first line is not format="},
	        {"node=svm1\n", "", "node= is missing"},
	        {"node=svm1\n", "node=svm1\nnode=svm2\n", "node given twice"},
	        {"node=svm1\n", "node=svm1\ncolour=blue\n", "unknown key 'colour'"},
	        {"node=svm1\n", "node=../etc\n", "not a node name"},
	        {"image=tiny\n", "image=/etc/passwd\n", "image name '/etc/passwd' is not valid"},
	        {"image_digest=a", "image_digest=A", "image_digest: not a SHA-256"},
	        {"vcpus=8\n", "vcpus=6\n", "topology: 1x4x2 does not make 6 vCPUs"},
	        {"0-3:2048:0;4-7", "0-3:2048:0;5-7", "not exactly 0-"},
	        {"0-3:2048:0;4-7", "0-4:2048:0;4-7", "cell 1 is empty or shares vCPUs"},
	        {"4-7:2048:0", "4-7:2047:0", "the cells hold 4095 MiB, guest_mib is 4096"},
	        {"4-7:2048:0", "4-7:lots:0", "cells: malformed number 'lots'"},
	        {"x2apic=no", "x2apic=maybe", "x2apic: 'maybe' (accepted: yes, no)"},
	        {"file.memory=123456789:", "file.memory=-1:", "file.memory: malformed number"},
	        {"file.memory=123456789:" DIGEST_B, "file.memory=123456789:abc",
	         "file.memory: not a SHA-256"},
	        {"job=4242\n", "job=4242", "checkpoint manifest line 2: job: malformed number"},
	};
	struct svm_ckpt_manifest *m = saved_manifest();
	char *text = encode(m);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *bad = edited(text, cases[i].from, cases[i].to);

		assert_decode_fails(bad, cases[i].fragment);
		free(bad);
	}
	/* Cut anywhere, a manifest never decodes: a crash mid-write shows. */
	for (size_t cut = 0; cut + 1 < strlen(text); cut += 7) {
		char *part = strndup(text, cut);

		assert_non_null(part);
		assert_decode_fails(part, "checkpoint manifest");
		free(part);
	}
	free(text);
	free(m);
}

static void test_encode_refuses_an_inconsistent_manifest(void **state)
{
	struct svm_ckpt_manifest *m = saved_manifest();
	char text[4096];
	struct svm_err err;

	(void)state;
	m->cells[1].mem_mib = 1;
	assert_int_equal(svm_ckpt_manifest_encode(m, text, sizeof(text), &err), -1);
	assert_non_null(strstr(err.msg, "the cells hold"));
	free(m);
}

static void test_fit_repins_to_the_new_allocation(void **state)
{
	struct svm_ckpt_manifest *m = saved_manifest();
	struct svm_plan alloc, out;
	struct svm_err err;

	(void)state;
	/* Other cores, all on node 1 (cores 8-15 = PUs 16-31), more memory. */
	plan_on("10-13", 8192, SVM_HV_KVM, &alloc);
	if (svm_ckpt_fit(m, &alloc, "tiny", DIGEST_A, &out, &err) != 0)
		fail_msg("fit: %s", err.msg);
	assert_int_equal(out.nvcpus, 8);
	for (unsigned v = 0; v < 8; v++)
		assert_int_equal(out.vcpu_pu[v], 20 + v);
	assert_string_equal(support_list(&out.host_pus), "20-27");
	assert_int_equal(out.sockets * out.cores * out.threads, 8);
	assert_int_equal(out.ncells, 2);
	assert_int_equal(out.cells[0].host_node, 1);
	assert_int_equal(out.cells[1].host_node, 1);
	assert_string_equal(support_list(&out.cells[1].vcpus), "4-7");
	assert_int_equal(out.guest_mib, 4096);
	assert_int_equal(out.hard_limit_mib, alloc.hard_limit_mib);
	assert_string_equal(support_list(&out.emulator_pus), support_list(&alloc.emulator_pus));
	svm_plan_free(&out);
	svm_plan_free(&alloc);
	free(m);
}

/* The re-pinned plan renders a domain that libvirt's schema accepts, with
 * the new pins and the saved shape. */
static void test_repinned_plan_renders_a_valid_domain(void **state)
{
	struct svm_ckpt_manifest *m = saved_manifest();
	struct svm_domain_spec spec = support_spec(true);
	struct svm_plan alloc, out;
	struct svm_err err;
	char *xml = NULL;

	(void)state;
	plan_on("0-3", 4096, SVM_HV_KVM, &alloc);
	assert_int_equal(svm_ckpt_fit(m, &alloc, "tiny", DIGEST_A, &out, &err), 0);
	if (svm_domain_xml(&out, &spec, &xml, &err) != 0)
		fail_msg("render: %s", err.msg);
	assert_non_null(strstr(xml, "<vcpupin vcpu='7' cpuset='7'/>"));
	assert_non_null(strstr(xml, "<cell id='1' cpus='4-7' memory='2048' unit='MiB'"));
	assert_true(support_validates(xml));
	free(xml);
	svm_plan_free(&out);
	svm_plan_free(&alloc);
	free(m);
}

static void assert_fit_fails(const struct svm_ckpt_manifest *m, const char *cores, uint64_t mib,
                             enum svm_hypervisor hv, const char *image, const char *digest,
                             const char *fragment)
{
	struct svm_plan alloc, out;
	struct svm_err err;

	plan_on(cores, mib, hv, &alloc);
	if (svm_ckpt_fit(m, &alloc, image, digest, &out, &err) == 0)
		fail_msg("fit on %s/%llu MiB, expected '%s'", cores, (unsigned long long)mib,
		         fragment);
	if (strstr(err.msg, fragment) == NULL)
		fail_msg("error '%s' lacks '%s'", err.msg, fragment);
	assert_null(out.vcpu_pu);
	svm_plan_free(&alloc);
}

static void test_fit_refuses_what_does_not_fit(void **state)
{
	struct svm_ckpt_manifest *m = saved_manifest();

	(void)state;
	assert_fit_fails(m, "0-2", 4096, SVM_HV_KVM, "tiny", DIGEST_A,
	                 "the checkpoint's guest has 8 vCPUs, this allocation 6 CPUs");
	assert_fit_fails(m, "0-3", 2048, SVM_HV_KVM, "tiny", DIGEST_A,
	                 "has 4096 MiB of RAM, this allocation leaves the guest 2048 MiB");
	assert_fit_fails(m, "0-3", 4096, SVM_HV_QEMU, "tiny", DIGEST_A,
	                 "saved under kvm, this node runs qemu guests");
	assert_fit_fails(m, "0-3", 4096, SVM_HV_KVM, "tiny", DIGEST_B,
	                 "image tiny has changed since the checkpoint was saved");
	assert_fit_fails(m, "0-3", 4096, SVM_HV_KVM, "big", DIGEST_A,
	                 "a guest of image tiny, the job asks for big");
	m->hugepages = SVM_HUGEPAGES_2M;
	assert_fit_fails(m, "0-3", 4096, SVM_HV_KVM, "tiny", DIGEST_A, "uses hugepages=2M");
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_manifest_round_trip_keeps_every_field),
	        cmocka_unit_test(test_manifest_decode_names_what_is_wrong),
	        cmocka_unit_test(test_encode_refuses_an_inconsistent_manifest),
	        cmocka_unit_test(test_fit_repins_to_the_new_allocation),
	        cmocka_unit_test(test_repinned_plan_renders_a_valid_domain),
	        cmocka_unit_test(test_fit_refuses_what_does_not_fit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
