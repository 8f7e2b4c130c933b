/* Finding a node's guests among libvirt's domains (domain_owner.h). Two
 * slurmd may share one libvirtd (the local test cluster does): a node must
 * never take another node's guest for its own, or its gc would end it. */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/domain_owner.h"
#include "spank_vm/domain_xml.h"
#include "spank_vm/runtime.h"
#include "spank_vm/values.h"

/* The owner in the metadata element: 1 found, 0 no metadata, -1 unreadable. */
static int metadata_owner(virDomainPtr dom, char *node, size_t node_len, uint32_t *job)
{
	char *text =
	        virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, SVM_DOMAIN_METADATA_URI, 0);
	xmlDocPtr doc;
	xmlNodePtr root;
	xmlChar *node_attr = NULL, *job_attr = NULL;
	uint64_t v;
	int rc = -1;

	if (text == NULL)
		return 0;
	doc = xmlReadMemory(text, (int)strlen(text), "metadata.xml", NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	free(text);
	root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root != NULL) {
		node_attr = xmlGetProp(root, (const xmlChar *)"node");
		job_attr = xmlGetProp(root, (const xmlChar *)"job");
	}
	if (node_attr != NULL && job_attr != NULL &&
	    svm_parse_uint((const char *)job_attr, 1, UINT32_MAX - 1, &v, NULL) == 0 &&
	    strlen((const char *)node_attr) < node_len) {
		snprintf(node, node_len, "%s", (const char *)node_attr);
		*job = (uint32_t)v;
		rc = 1;
	}
	xmlFree(node_attr);
	xmlFree(job_attr);
	xmlFreeDoc(doc);
	return rc;
}

/* spank_vm-<node>-<digits> for this node -> the job, else 0. */
static uint32_t job_of_name(const char *name, const char *node)
{
	char prefix[160];
	uint64_t v;
	int n = snprintf(prefix, sizeof(prefix), "spank_vm-%s-", node);

	if (name == NULL || n < 0 || (size_t)n >= sizeof(prefix) ||
	    strncmp(name, prefix, (size_t)n) != 0 ||
	    svm_parse_uint(name + n, 1, UINT32_MAX - 1, &v, NULL) != 0)
		return 0;
	return (uint32_t)v;
}

uint32_t svm_domain_job_on(virDomainPtr dom, const char *node)
{
	char owner[256];
	uint32_t job = 0;

	switch (metadata_owner(dom, owner, sizeof(owner), &job)) {
	case 1:
		return strcmp(owner, node) == 0 ? job : 0;
	case 0:
		return job_of_name(virDomainGetName(dom), node);
	default:
		return 0; /* metadata of ours that is not ours to read: not this node's */
	}
}

virDomainPtr svm_domain_of_job(virConnectPtr conn, const char *node, uint32_t job)
{
	char name[256];
	virDomainPtr found = NULL, *doms = NULL;
	int n;

	/* The usual case first: the guest runs where it was started. */
	if (svm_domain_default_name(node, job, name, sizeof(name)) == 0) {
		found = virDomainLookupByName(conn, name);
		if (found != NULL && svm_domain_job_on(found, node) == job)
			return found;
		if (found != NULL)
			virDomainFree(found);
		found = NULL;
	}
	n = virConnectListAllDomains(conn, &doms, 0);
	for (int i = 0; i < n; i++) {
		if (found == NULL && svm_domain_job_on(doms[i], node) == job)
			found = doms[i];
		else
			virDomainFree(doms[i]);
	}
	free(doms);
	return found;
}
