/* The job network (--vm-net=cluster, helpers/net.c on the host): the NIC
 * whose MAC the host derived from the guest's address gets that address,
 * the guest the Slurm node's name as hostname, and /etc/hosts every node of
 * the job at its guest address, so that MPI finds its peers by name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define NET_DIR        "/sys/class/net"
#define NIC_WAIT_MS    10000
#define HOSTS_FILE     "/etc/hosts"
#define HOSTS_FILE_TMP "/etc/.hosts.spank_vm"

int agent_net_load_modules(const struct agent_config *config, struct svm_err *err)
{
	static const char *const modules[] = {"virtio_net"};

	if (config->net_addr == 0)
		return 0;
	return agent_load_modules(modules, 1, err);
}

/* The interface with the given MAC; virtio_net probes asynchronously. */
static int find_nic(const char *mac, char *name, size_t cap, struct svm_err *err)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};

	for (int waited = 0; waited <= NIC_WAIT_MS; waited += 10) {
		DIR *dir = opendir(NET_DIR);
		struct dirent *e;
		char path[300], address[32];
		bool found = false;

		while (dir != NULL && !found && (e = readdir(dir)) != NULL) {
			snprintf(path, sizeof(path), NET_DIR "/%s/address", e->d_name);
			if (e->d_name[0] != '.' && strlen(e->d_name) < cap &&
			    agent_read_small(path, address, sizeof(address)) &&
			    strcmp(address, mac) == 0) {
				strcpy(name, e->d_name);
				found = true;
			}
		}
		if (dir != NULL)
			closedir(dir);
		if (found)
			return 0;
		nanosleep(&tick, NULL);
	}
	return svm_err_set(err, "no network interface with MAC %s after %d ms", mac, NIC_WAIT_MS);
}

static void set_sockaddr(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(addr)};

	memcpy(sa, &sin, sizeof(sin));
}

static int configure_nic(const char *name, uint32_t addr, unsigned prefix, struct svm_err *err)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;
	const char *step = "SIOCSIFADDR";

	if (fd < 0)
		return svm_err_errno(err, errno, "socket");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	set_sockaddr(&ifr.ifr_addr, addr);
	if (ioctl(fd, SIOCSIFADDR, &ifr) != 0)
		goto fail;
	step = "SIOCSIFNETMASK";
	set_sockaddr(&ifr.ifr_netmask, prefix ? ~UINT32_C(0) << (32 - prefix) : 0);
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0)
		goto fail;
	step = "SIOCSIFFLAGS";
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		goto fail;
	close(fd);
	return 0;
fail:
	rc = svm_err_errno(err, errno, "%s %s", step, name);
	close(fd);
	return rc;
}

/* Written next to it and renamed: the guest's root is its own overlay. */
static int write_hosts(const struct agent_config *config, struct svm_err *err)
{
	char addr[SVM_NET_ADDR_LEN];
	const char *p = config->hosts;
	uint32_t i = 0;
	FILE *f = fopen(HOSTS_FILE_TMP, "we");

	if (f == NULL)
		return svm_err_errno(err, errno, "create " HOSTS_FILE_TMP);
	fprintf(f, "# spank_vm: the job's nodes on its guest network\n"
	           "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	while (*p != '\0') {
		size_t n = strcspn(p, ":");

		svm_net_addr_str(config->hosts_first + i++, addr);
		fprintf(f, "%s\t%.*s\n", addr, (int)n, p);
		p += n + (p[n] == ':' ? 1 : 0);
	}
	if (fclose(f) != 0 || rename(HOSTS_FILE_TMP, HOSTS_FILE) != 0) {
		unlink(HOSTS_FILE_TMP);
		return svm_err_errno(err, errno, "write " HOSTS_FILE);
	}
	return 0;
}

int agent_net_setup(const struct agent_config *config, struct svm_err *err)
{
	char nic[IF_NAMESIZE], mac[SVM_NET_MAC_LEN], addr[SVM_NET_ADDR_LEN];
	const uint8_t bytes[6] = {0x52,
	                          0x54,
	                          (uint8_t)(config->net_addr >> 24),
	                          (uint8_t)(config->net_addr >> 16),
	                          (uint8_t)(config->net_addr >> 8),
	                          (uint8_t)config->net_addr};

	if (config->net_addr == 0)
		return 0;
	svm_net_mac_str(bytes, mac);
	if (find_nic(mac, nic, sizeof(nic), err) != 0 ||
	    configure_nic(nic, config->net_addr, config->net_prefix, err) != 0)
		return -1;
	if (config->hostname[0] != '\0' &&
	    sethostname(config->hostname, strlen(config->hostname)) != 0)
		return svm_err_errno(err, errno, "sethostname");
	if (config->hosts[0] != '\0' && write_hosts(config, err) != 0)
		return -1;
	svm_net_addr_str(config->net_addr, addr);
	agent_log("job network: %s %s/%u, hostname %s", nic, addr, config->net_prefix,
	          config->hostname);
	return 0;
}
