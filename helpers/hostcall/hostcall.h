/* spank-vm-hostcall (helpers/hostcall/README.md): main.c serves a guest's
 * host call port; relay.c is what it runs, as itself, for a guest's
 * SVM_HOSTCALL_CONNECT request. */
#ifndef SPANK_VM_HOSTCALL_H
#define SPANK_VM_HOSTCALL_H

/* stdin/stdout <-> 127.0.0.1:port_text; the process's exit status. */
int hostcall_relay_tcp(const char *port_text);

#endif
