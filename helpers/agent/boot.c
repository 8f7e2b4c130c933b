/* Boot: from the initramfs to the guest's root, as PID 1.
 *
 *   initramfs /proc, /sys, /dev      to read the command line, load modules
 *                                    and read the fw_cfg configuration
 *
 * The configuration is the kernel command line's spank_vm.* words, then
 * those of the fw_cfg file SVM_FW_CFG_CONFIG_NAME if the guest has one
 * (cmdline.c); qemu_fw_cfg is among the modules loaded first, so that the
 * file is there to read before the root is chosen.
 *
 * The default guest (no spank_vm.root) runs on the host's root:
 *   /run/svm/lower   9p "hostroot", read-only: the host's /
 *   /run/svm/rw      tmpfs: upper/ and work/ of the overlay
 *   /run/svm/root    overlay(lower, rw/upper, rw/work): writable, changes
 *                    stay in guest RAM and vanish with the guest
 * A site image booted with the host's kernel (spank_vm.root=/dev/NAME) runs
 * on its disk instead:
 *   /run/svm/rootdev the disk's block device node
 *   /run/svm/root    the disk, read-write: the host gives the guest a
 *                    per-job qcow2 overlay, so writes never reach the image
 *
 * then the new root is moved onto / and chrooted into (the agent keeps
 * running: nothing to exec), /proc, /sys, /dev, /dev/pts, /dev/shm, /tmp
 * and /run are mounted fresh inside it, and last each spank_vm.share is
 * mounted at its path, 9p read-write, nosuid, nodev (last, so that a share
 * may be below /tmp or /run).
 *
 * A site image that boots itself (catalog boot=disk, its bootloader passing
 * init=/sbin/spank-vm-agent) starts the agent with the kernel's root already
 * mounted: / is then not the initramfs (ramfs or tmpfs) but a disk file
 * system. The agent keeps that root (remounted read-write if the kernel
 * mounted it read-only), skips the root switch and spank_vm.root, and
 * mounts the same file systems and shares inside it. Its bootloader owns the
 * command line, so the host's words (shares, allow_root) come from fw_cfg,
 * the qemu_fw_cfg module from the image's /lib/modules. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "spank_vm/domain_xml.h"

#define STAGE_DIR "/run/svm"
#define LOWER_DIR STAGE_DIR "/lower"
#define RW_DIR    STAGE_DIR "/rw"
#define ROOT_DIR  STAGE_DIR "/root"
#define ROOT_DEV  STAGE_DIR "/rootdev"
/* 9p messages of 256 KiB: the default 8 KiB makes every read a round trip. */
#define NINEP_OPTS   "trans=virtio,version=9p2000.L,msize=262144"
#define PORTS_DIR    "/sys/class/virtio-ports"
#define NOSUID_NODEV (MS_NOSUID | MS_NODEV)
/* virtio_blk probes its disk asynchronously once loaded. */
#define ROOT_DEV_TIMEOUT_MS 10000
#define FW_CFG_CONFIG       "/sys/firmware/qemu_fw_cfg/by_name/" SVM_FW_CFG_CONFIG_NAME "/raw"

/* With disk_root_modules, the same list as spank-vm-image's AGENT_MODULES.
 * qemu_fw_cfg shows the host's fw_cfg files under /sys/firmware. */
static const char *const wanted_modules[] = {"virtio_pci", "virtio_console", "9pnet_virtio",
                                             "9p",         "overlay",        "button",
                                             "evdev",      "qemu_fw_cfg"};
/* Only for spank_vm.root, so that the default guest does not pay for them
 * at boot. ext4 and jbd2 ask the crypto API for "crc32c" by name, a soft
 * dependency modules.dep does not list and that no modprobe resolves in the
 * guest: the generic implementation comes first. */
static const char *const disk_root_modules[] = {"virtio_blk", "crc32c_generic", "ext4"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int do_mount(const char *source, const char *target, const char *type, unsigned long flags,
                    const char *data, struct svm_err *err)
{
	if (mount(source, target, type, flags, data) != 0)
		return svm_err_errno(err, errno, "mount %s (%s) on %s", source, type ? type : "-",
		                     target);
	return 0;
}

/* mkdir -p; existing directories are fine. */
static int make_dirs(const char *path, mode_t mode, struct svm_err *err)
{
	char buf[AGENT_PATH_CAP + 64];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return svm_err_set(err, "path too long: %.100s", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return svm_err_errno(err, errno, "mkdir %s", buf);
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

bool agent_read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

/* The kernel gives init no descriptors when the initramfs has no
 * /dev/console; the console is opened once devtmpfs is up. Without one,
 * /dev/null keeps fds 0-2 taken, so that no later descriptor (the port)
 * ever becomes stderr and receives log lines. */
static void attach_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			(void)dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static int mount_early(struct svm_err *err)
{
	if (make_dirs("/proc", 0555, err) != 0 || make_dirs("/sys", 0555, err) != 0 ||
	    make_dirs("/dev", 0755, err) != 0)
		return -1;
	if (do_mount("devtmpfs", "/dev", "devtmpfs", NOSUID_NODEV, "mode=0755", err) != 0)
		return -1;
	attach_console();
	return do_mount("proc", "/proc", "proc", NOSUID_NODEV | MS_NOEXEC, NULL, err) ||
	       do_mount("sysfs", "/sys", "sysfs", NOSUID_NODEV | MS_NOEXEC, NULL, err);
}

static int read_cmdline(struct agent_config *config, struct svm_err *err)
{
	char text[4096];
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return svm_err_errno(err, errno, "open /proc/cmdline");
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return svm_err_errno(err, errno, "read /proc/cmdline");
	text[n] = '\0';
	return agent_parse_cmdline(text, config, err);
}

/* Reads the whole file, refusing one larger than the parser takes (a cut
 * list of shares would run the job on the wrong files). */
static int read_fw_cfg_file(int fd, char *buf, size_t cap, size_t *len, struct svm_err *err)
{
	*len = 0;
	while (*len < cap) {
		ssize_t n = read(fd, buf + *len, cap - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return svm_err_errno(err, errno, "read " FW_CFG_CONFIG);
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
	return svm_err_set(err, FW_CFG_CONFIG " is larger than %d bytes", AGENT_FW_CFG_MAX);
}

/* The host's words for a guest whose command line it does not set; most
 * guests have no such file. A disk root without it gets only what its
 * command line says, worth a line on the console. */
static int read_fw_cfg(struct agent_config *config, bool initramfs, struct svm_err *err)
{
	static char text[AGENT_FW_CFG_MAX + 2];
	size_t len;
	int rc, fd = open(FW_CFG_CONFIG, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (!initramfs)
			agent_log("no fw_cfg configuration (%s): the kernel command line's only",
			          access("/sys/firmware/qemu_fw_cfg", F_OK) == 0
			                  ? "the host gave none"
			                  : "no qemu_fw_cfg driver");
		return 0;
	}
	if (fd < 0)
		return svm_err_errno(err, errno, "open " FW_CFG_CONFIG);
	rc = read_fw_cfg_file(fd, text, sizeof(text), &len, err);
	close(fd);
	if (rc == 0)
		rc = agent_parse_fw_cfg(text, len, config, err);
	if (rc == 0)
		agent_log("configuration from fw_cfg %s (%zu bytes)", SVM_FW_CFG_CONFIG_NAME, len);
	return rc;
}

static int mount_host_root(struct svm_err *err)
{
	if (make_dirs(LOWER_DIR, 0755, err) != 0 || make_dirs(RW_DIR, 0755, err) != 0 ||
	    make_dirs(ROOT_DIR, 0755, err) != 0)
		return -1;
	if (do_mount(AGENT_ROOT_TAG, LOWER_DIR, "9p", MS_RDONLY, NINEP_OPTS, err) != 0 ||
	    do_mount("tmpfs", RW_DIR, "tmpfs", 0, "mode=0755", err) != 0 ||
	    make_dirs(RW_DIR "/upper", 0755, err) != 0 || make_dirs(RW_DIR "/work", 0755, err) != 0)
		return -1;
	return do_mount("overlay", ROOT_DIR, "overlay", 0,
	                "lowerdir=" LOWER_DIR ",upperdir=" RW_DIR "/upper,workdir=" RW_DIR "/work",
	                err);
}

/* A node of our own in the initramfs: the early /dev is nodev, and the
 * kernel refuses to mount a block device reached through a nodev mount. */
static int make_root_node(const char *device, struct svm_err *err)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};
	const char *name = device + strlen("/dev/");
	char path[128], text[32];
	unsigned maj, min, waited = 0;

	snprintf(path, sizeof(path), "/sys/class/block/%s/dev", name);
	while (!agent_read_small(path, text, sizeof(text))) {
		if (waited >= ROOT_DEV_TIMEOUT_MS)
			return svm_err_set(err,
			                   "root device %s did not appear within %u s (no such "
			                   "disk or partition in this guest)",
			                   device, ROOT_DEV_TIMEOUT_MS / 1000);
		nanosleep(&tick, NULL);
		waited += 10;
	}
	if (sscanf(text, "%u:%u", &maj, &min) != 2)
		return svm_err_set(err, "%s: unexpected '%s'", path, text);
	if (mknod(ROOT_DEV, S_IFBLK | 0600, makedev(maj, min)) != 0)
		return svm_err_errno(err, errno, "mknod " ROOT_DEV " for %s", device);
	return 0;
}

/* ext4 first (what site images are made of), then every disk file system
 * type this kernel knows; the error reported is ext4's. */
static int mount_any_type(const char *device, struct svm_err *err)
{
	char line[128];
	int ext4_errno, rc = -1;
	FILE *types;

	if (mount(ROOT_DEV, ROOT_DIR, "ext4", 0, NULL) == 0)
		return 0;
	ext4_errno = errno;
	types = fopen("/proc/filesystems", "re");
	while (rc != 0 && types != NULL && fgets(line, sizeof(line), types) != NULL) {
		char *type = line + strspn(line, " \t");

		type[strcspn(type, " \t\n")] = '\0';
		if (strncmp(line, "nodev", 5) == 0 || *type == '\0' || strcmp(type, "ext4") == 0)
			continue;
		if (mount(ROOT_DEV, ROOT_DIR, type, 0, NULL) == 0) {
			agent_log("root device %s mounted as %s", device, type);
			rc = 0;
		}
	}
	if (types != NULL)
		fclose(types);
	if (rc != 0)
		svm_err_errno(err, ext4_errno,
		              "cannot mount root device %s read-write (as ext4, nor as any other "
		              "file system type of this kernel)",
		              device);
	return rc;
}

static int mount_disk_root(const char *device, struct svm_err *err)
{
	if (make_dirs(ROOT_DIR, 0755, err) != 0 || make_root_node(device, err) != 0)
		return -1;
	return mount_any_type(device, err);
}

/* After the fresh /tmp and /run, so that shares may live below them. */
static int mount_shares(const struct agent_config *config, struct svm_err *err)
{
	for (size_t i = 0; i < config->nshares; i++) {
		const struct agent_share *s = &config->shares[i];

		/* A missing mount point is made in the overlay or a tmpfs (guest
		 * RAM); the host's tree is never written. */
		if (make_dirs(s->path, 0755, err) != 0 ||
		    do_mount(s->tag, s->path, "9p", NOSUID_NODEV, NINEP_OPTS ",cache=mmap", err) !=
		            0)
			return -1;
		agent_log("share %s mounted at %s", s->tag, s->path);
	}
	return 0;
}

/* The early mounts would stay behind, hidden under the fresh ones. */
static int unmount_early(struct svm_err *err)
{
	if (umount2("/proc", MNT_DETACH) != 0 || umount2("/sys", MNT_DETACH) != 0 ||
	    umount2("/dev", MNT_DETACH) != 0)
		return svm_err_errno(err, errno, "unmount the early /proc, /sys, /dev");
	return 0;
}

static int switch_root(struct svm_err *err)
{
	if (unmount_early(err) != 0)
		return -1;
	if (chdir(ROOT_DIR) != 0)
		return svm_err_errno(err, errno, "chdir " ROOT_DIR);
	if (do_mount(ROOT_DIR, "/", NULL, MS_MOVE, NULL, err) != 0)
		return -1;
	if (chroot(".") != 0)
		return svm_err_errno(err, errno, "chroot");
	if (chdir("/") != 0)
		return svm_err_errno(err, errno, "chdir /");
	return 0;
}

/* Booted by a site image's own bootloader: the kernel mounted the root,
 * read-only unless told "rw"; the early mount points, jobs and share mount
 * points need it writable (the host's per-job overlay keeps the image
 * itself intact). */
static int remount_root_rw(struct svm_err *err)
{
	struct statvfs st;

	if (statvfs("/", &st) != 0)
		return svm_err_errno(err, errno, "statvfs /");
	if ((st.f_flag & ST_RDONLY) != 0 && mount(NULL, "/", NULL, MS_REMOUNT, NULL) != 0)
		return svm_err_errno(err, errno, "remount / read-write");
	return 0;
}

/* A disk root arrives with mounts of its own: the kernel's devtmpfs on /dev
 * (CONFIG_DEVTMPFS_MOUNT), or the /dev, /proc, /sys and /run an image's
 * initramfs (Debian's initramfs-tools, dracut) moved into it. The agent
 * mounts its own, as on every other path; the old ones go first, since
 * devtmpfs refuses a second mount on the same point. */
static int drop_inherited_mounts(struct svm_err *err)
{
	static const char *const points[] = {"/run", "/dev", "/sys", "/proc"};

	for (size_t i = 0; i < COUNT(points); i++)
		if (umount2(points[i], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
			return svm_err_errno(err, errno, "unmount the inherited %s", points[i]);
	return 0;
}

static int keep_disk_root(const struct agent_config *config, struct svm_err *err)
{
	if (config->root_device[0] != '\0')
		agent_log("spank_vm.root=%s ignored: the kernel already mounted the root",
		          config->root_device);
	return unmount_early(err);
}

/* spank_vm's initramfs is a ramfs or tmpfs; any other root was mounted
 * before the agent started, by the kernel or by the image's own initramfs. */
static int root_is_initramfs(bool *initramfs, struct svm_err *err)
{
	struct statfs st;

	if (statfs("/", &st) != 0)
		return svm_err_errno(err, errno, "statfs /");
	*initramfs = st.f_type == RAMFS_MAGIC || st.f_type == TMPFS_MAGIC;
	return 0;
}

static int make_dev_links(struct svm_err *err)
{
	static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
	                                       {"/proc/self/fd/0", "/dev/stdin"},
	                                       {"/proc/self/fd/1", "/dev/stdout"},
	                                       {"/proc/self/fd/2", "/dev/stderr"}};

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) != 0 && errno != EEXIST)
			return svm_err_errno(err, errno, "symlink %s", links[i][1]);
	return 0;
}

static int mount_inside(struct svm_err *err)
{
	/* A site image may lack mount points the host's root has. */
	if (make_dirs("/proc", 0555, err) != 0 || make_dirs("/sys", 0555, err) != 0 ||
	    make_dirs("/dev", 0755, err) != 0 || make_dirs("/tmp", 01777, err) != 0 ||
	    make_dirs("/run", 0755, err) != 0)
		return -1;
	if (do_mount("proc", "/proc", "proc", NOSUID_NODEV | MS_NOEXEC, NULL, err) != 0 ||
	    do_mount("sysfs", "/sys", "sysfs", NOSUID_NODEV | MS_NOEXEC, NULL, err) != 0 ||
	    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err) != 0)
		return -1;
	attach_console();
	if (make_dirs("/dev/pts", 0755, err) != 0 || make_dirs("/dev/shm", 01777, err) != 0 ||
	    make_dev_links(err) != 0)
		return -1;
	return do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	                "gid=5,mode=0620,ptmxmode=0666", err) ||
	       do_mount("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777", err) ||
	       do_mount("tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, "mode=1777", err) ||
	       do_mount("tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755", err);
}

/* Programs (MPI, PMIx) expect a working loopback interface. */
static int loopback_up(struct svm_err *err)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return svm_err_errno(err, errno, "socket");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		rc = svm_err_errno(err, errno, "SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		rc = svm_err_errno(err, errno, "SIOCSIFFLAGS lo");
	close(fd);
	return rc;
}

/* On a disk root the image's own /lib/modules (if any) serves, and drivers
 * the image's kernel has built in need nothing: a mount that lacks one
 * says so later. */
static int load_modules(bool initramfs, struct svm_err *err)
{
	if (agent_load_modules(wanted_modules, COUNT(wanted_modules), err) == 0)
		return 0;
	if (initramfs)
		return -1;
	agent_log("modules: %s; going on with the kernel's built-in drivers", err->msg);
	return 0;
}

/* Only once the whole configuration is known: fw_cfg may name the root. */
static int load_root_modules(const struct agent_config *config, bool initramfs, struct svm_err *err)
{
	if (!initramfs || config->root_device[0] == '\0')
		return 0;
	return agent_load_modules(disk_root_modules, COUNT(disk_root_modules), err);
}

static int make_root(const struct agent_config *config, bool initramfs, struct svm_err *err)
{
	if (!initramfs)
		return keep_disk_root(config, err);
	if ((config->root_device[0] != '\0' ? mount_disk_root(config->root_device, err)
	                                    : mount_host_root(err)) != 0)
		return -1;
	return switch_root(err);
}

int agent_boot(struct agent_config *config, struct svm_err *err)
{
	bool initramfs = true;

	if (root_is_initramfs(&initramfs, err) != 0 ||
	    (!initramfs && (remount_root_rw(err) != 0 || drop_inherited_mounts(err) != 0)) ||
	    mount_early(err) != 0 || read_cmdline(config, err) != 0 ||
	    load_modules(initramfs, err) != 0 || read_fw_cfg(config, initramfs, err) != 0 ||
	    load_root_modules(config, initramfs, err) != 0 ||
	    agent_net_load_modules(config, err) != 0 || make_root(config, initramfs, err) != 0 ||
	    mount_inside(err) != 0 || mount_shares(config, err) != 0)
		return -1;
	if (!initramfs)
		agent_log("root: the kernel's (mounted before the agent started)");
	else if (config->root_device[0] != '\0')
		agent_log("root: %s, read-write", config->root_device);
	if (loopback_up(err) != 0)
		agent_log("loopback stays down: %s", err->msg);
	/* A job that asked for its network cannot run without it. */
	if (agent_net_setup(config, err) != 0)
		return -1;
	return 0;
}

/* ---- the agent's ports ---- */

/* The port's device node; created from its major:minor when devtmpfs lacks it. */
static int make_port_dev(const char *port, char *dev, size_t cap, struct svm_err *err)
{
	char path[300], text[32];
	unsigned maj, min;

	snprintf(path, sizeof(path), PORTS_DIR "/%s/dev", port);
	if (!agent_read_small(path, text, sizeof(text)) || sscanf(text, "%u:%u", &maj, &min) != 2)
		return svm_err_set(err, "cannot read %s", path);
	snprintf(dev, cap, "/dev/%s", port);
	if (mknod(dev, S_IFCHR | 0600, makedev(maj, min)) != 0 && errno != EEXIST)
		return svm_err_errno(err, errno, "mknod %s", dev);
	return 0;
}

/* Ports appear when the host announces them, possibly after the driver loaded. */
static bool find_port(const char *wanted, char *port, size_t cap)
{
	DIR *dir = opendir(PORTS_DIR);
	struct dirent *e;
	char path[300], name[128];
	bool found = false;

	if (dir == NULL)
		return false;
	while (!found && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= cap)
			continue;
		snprintf(path, sizeof(path), PORTS_DIR "/%s/name", e->d_name);
		if (agent_read_small(path, name, sizeof(name)) && strcmp(name, wanted) == 0) {
			strcpy(port, e->d_name);
			found = true;
		}
	}
	closedir(dir);
	return found;
}

int agent_find_port(const char *name, unsigned timeout_ms, char *dev, size_t cap,
                    struct svm_err *err)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};
	char port[64];

	for (unsigned waited = 0; waited <= timeout_ms; waited += 10) {
		if (find_port(name, port, sizeof(port)))
			return make_port_dev(port, dev, cap, err);
		nanosleep(&tick, NULL);
	}
	return svm_err_set(err, "no virtio port named %s after %u ms", name, timeout_ms);
}

int agent_open_port(unsigned timeout_ms, struct svm_err *err)
{
	char dev[96];
	int fd;

	if (agent_find_port(SVM_AGENT_CHANNEL_NAME, timeout_ms, dev, sizeof(dev), err) != 0)
		return -1;
	fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return svm_err_errno(err, errno, "open %s", dev);
	agent_log("agent port is %s", dev);
	return fd;
}

void agent_poweroff(void)
{
	/* PID 1 is spared by kill(-1): everything else goes. */
	(void)kill(-1, SIGKILL);
	sync();
	(void)reboot(RB_POWER_OFF);
	/* Only reached if reboot failed; PID 1 may not exit (kernel panic). */
	for (;;)
		pause();
}
