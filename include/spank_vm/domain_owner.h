/* Which node's and which job's guest a libvirt domain is. Its name cannot
 * say: a guest restored on another node keeps the name it was saved under
 * (libvirt restores only under it), so the domain's <metadata> does
 * (domain_xml.h, SVM_DOMAIN_METADATA_URI). A domain without it (made before
 * it existed) is known by its name, spank_vm-<node>-<job>. Links libvirt. */
#ifndef SPANK_VM_DOMAIN_OWNER_H
#define SPANK_VM_DOMAIN_OWNER_H

#include <stdint.h>

#include <libvirt/libvirt.h>

/* The job whose guest dom is on node, else 0. */
uint32_t svm_domain_job_on(virDomainPtr dom, const char *node);

/* The guest of job on node (the caller frees it), else NULL. */
virDomainPtr svm_domain_of_job(virConnectPtr conn, const char *node, uint32_t job);

#endif
