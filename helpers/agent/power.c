/* The ACPI power button. libvirt's graceful shutdown (virDomainShutdown, as
 * `spank-vm-provision stop` tries first) presses it; a guest without a
 * userspace daemon for it would ignore the press until the host gives up and
 * destroys the domain. The agent watches the button's input device and
 * powers off at once, as POWEROFF does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

#define INPUT_DIR "/sys/class/input"

static bool is_power_button(const char *event)
{
	char path[300], name[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), INPUT_DIR "/%s/device/name", event);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, name, sizeof(name) - 1);
	close(fd);
	if (n <= 0)
		return false;
	name[n] = '\0';
	name[strcspn(name, "\n")] = '\0';
	return strcmp(name, "Power Button") == 0;
}

int agent_power_button_open(void)
{
	DIR *dir = opendir(INPUT_DIR);
	struct dirent *e;
	char dev[300];
	int fd = -1;

	if (dir == NULL)
		return -1;
	while (fd < 0 && (e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, "event", 5) != 0 || !is_power_button(e->d_name))
			continue;
		snprintf(dev, sizeof(dev), "/dev/input/%s", e->d_name);
		fd = open(dev, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			agent_log("open %s: %s", dev, strerror(errno));
	}
	closedir(dir);
	return fd;
}

bool agent_power_button_pressed(int fd)
{
	struct input_event ev[16];
	ssize_t n = read(fd, ev, sizeof(ev));

	for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(ev[0]); i++)
		if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
			return true;
	return false;
}
