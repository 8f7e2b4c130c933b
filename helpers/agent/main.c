/* spank-vm-agent: PID 1 of the default guest and of site images (see agent.h). A failure to
 * boot powers the guest off with the reason on the console: the host sees
 * the domain go away instead of waiting for a READY that never comes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"

/* How long the host may take to announce the agent's port after the
 * virtio_console driver loaded. */
#define PORT_TIMEOUT_MS 30000

static struct agent_config config;

int main(void)
{
	struct agent_channel *ch;
	struct svm_err err = {""};
	double boot_start = agent_uptime_s();
	int port, power_button;

	if (getpid() != 1) {
		agent_log("must run as PID 1 of a spank_vm guest (the initramfs's /init, or "
		          "init=/sbin/spank-vm-agent of a site image)");
		return 2;
	}
	if (agent_spawn_init_limits(&err) != 0 || agent_boot(&config, &err) != 0)
		goto fatal;
	agent_memcg_init();
	/* Ranks that spin on every vCPU (MPI polling) must not starve the
	 * agent's HEARTBEAT answers; programs start at nice 0 (spawn.c). */
	if (setpriority(PRIO_PROCESS, 0, AGENT_NICE) != 0)
		agent_log("cannot raise the agent's priority: %s", strerror(errno));
	/* The console exists only once boot mounted /dev: both times now. */
	agent_log("started at %.2f s of uptime; root file system ready at %.2f s (%zu share%s)",
	          boot_start, agent_uptime_s(), config.nshares, config.nshares == 1 ? "" : "s");
	agent_hostcall_start(&config);
	port = agent_open_port(PORT_TIMEOUT_MS, &err);
	if (port < 0)
		goto fatal;
	agent_log("agent port open at %.2f s of uptime", agent_uptime_s());
	power_button = agent_power_button_open();
	if (power_button < 0)
		agent_log("no ACPI power button: the host's graceful shutdown will time out");
	ch = agent_channel_new(port, power_button, &config, &err);
	if (ch == NULL)
		goto fatal;
	agent_channel_serve(ch, &err);
fatal:
	agent_log("fatal: %s; powering off", err.msg);
	agent_poweroff();
}
