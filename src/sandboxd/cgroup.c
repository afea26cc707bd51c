/* cgroup v1 memory and pids groups, one pair per sandbox. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "sandboxd/cgroup.h"

static const char *const controllers[] = { "memory", "pids" };
#define NCTL	(sizeof(controllers) / sizeof(controllers[0]))

static char parent[NCTL][PATH_MAX];	/* "" if unusable */
static int usable;

static int
write_file(const char *path, const char *value)
{
	size_t n = strlen(value);
	int fd, rv = -1;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	if (write(fd, value, n) == (ssize_t)n)
		rv = 0;
	close(fd);
	return rv;
}

/* Writes the path of a group (or of a file in it); "" if too long. */
static void
group_path(size_t c, const char *id, const char *file, char *out, size_t sz)
{
	int n = snprintf(out, sz, "%s/%s%s%s", parent[c], id, file ? "/" : "",
	    file ? file : "");

	if (n < 0 || (size_t)n >= sz)
		out[0] = '\0';
}

/* Kills the tasks of one group until it is empty, then removes it. */
static void
empty_and_remove(const char *dir)
{
	char path[PATH_MAX], line[32];
	struct timespec nap = { 0, 1000000L };
	FILE *f;
	int round, found;

	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >=
	    sizeof(path))
		return;
	for (round = 0; round < 1000; round++) {
		if ((f = fopen(path, "re")) == NULL)
			return;
		found = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			long pid = strtol(line, NULL, 10);

			if (pid > 1) {
				kill((pid_t)pid, SIGKILL);
				found = 1;
			}
		}
		fclose(f);
		if (!found && rmdir(dir) == 0)
			return;
		nanosleep(&nap, NULL);
	}
	log_warnx("cgroup %s could not be emptied", dir);
}

int
cgroup_init(const char *name)
{
	char path[PATH_MAX];
	struct dirent *de;
	size_t c;
	DIR *d;

	usable = 1;
	for (c = 0; c < NCTL; c++) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/tasks",
		    controllers[c]);
		snprintf(parent[c], sizeof(parent[c]), "/sys/fs/cgroup/%s/%s",
		    controllers[c], name);
		if (access(path, F_OK) == -1 ||
		    (mkdir(parent[c], 0755) == -1 && errno != EEXIST)) {
			usable = 0;
			break;
		}
		/* Groups left by a daemon that died: empty them. */
		if ((d = opendir(parent[c])) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof(path), "%s/%s",
			    parent[c], de->d_name) < sizeof(path))
				empty_and_remove(path);
		}
		closedir(d);
	}
	if (!usable)
		for (c = 0; c < NCTL; c++)
			parent[c][0] = '\0';
	return usable;
}

int
cgroup_create(const char *id, long memory_bytes, long procs)
{
	char path[PATH_MAX], val[32];
	size_t c;

	if (!usable)
		return -1;
	for (c = 0; c < NCTL; c++) {
		group_path(c, id, NULL, path, sizeof(path));
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			goto fail;
	}
	snprintf(val, sizeof(val), "%ld", memory_bytes);
	group_path(0, id, "memory.limit_in_bytes", path, sizeof(path));
	if (write_file(path, val) == -1)
		goto fail;
	/* No swap either, where the kernel accounts it. */
	group_path(0, id, "memory.memsw.limit_in_bytes", path, sizeof(path));
	write_file(path, val);
	snprintf(val, sizeof(val), "%ld", procs);
	group_path(1, id, "pids.max", path, sizeof(path));
	if (write_file(path, val) == -1)
		goto fail;
	return 0;
fail:
	log_warn("cgroup for %s", id);
	cgroup_destroy(id);
	return -1;
}

int
cgroup_enter(const char *id)
{
	char path[PATH_MAX];
	size_t c;

	for (c = 0; c < NCTL; c++) {
		group_path(c, id, "cgroup.procs", path, sizeof(path));
		if (write_file(path, "0") == -1)
			return -1;
	}
	return 0;
}

void
cgroup_destroy(const char *id)
{
	char path[PATH_MAX];
	size_t c;

	if (!usable)
		return;
	for (c = 0; c < NCTL; c++) {
		group_path(c, id, NULL, path, sizeof(path));
		empty_and_remove(path);
	}
}

int
cgroup_procs(const char *id, pid_t *out, int max)
{
	char path[PATH_MAX], line[32];
	FILE *f;
	int n = 0;

	if (!usable)
		return -1;
	group_path(0, id, "cgroup.procs", path, sizeof(path));
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (n < max)
			out[n] = (pid_t)strtol(line, NULL, 10);
		n++;
	}
	fclose(f);
	return n;
}

long
cgroup_oom_kills(const char *id)
{
	char path[PATH_MAX], buf[512], *p;
	ssize_t n;
	int fd;

	if (!usable)
		return 0;
	group_path(0, id, "memory.oom_control", path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strstr(buf, "oom_kill ")) == NULL)
		return 0;
	return strtol(p + 9, NULL, 10);
}

/* The number at the start of a group's file, or of its line "key N". */
static long long
read_number(const char *id, const char *file, const char *key)
{
	char path[PATH_MAX], buf[4096], *p;
	ssize_t n;
	int fd;

	group_path(0, id, file, path, sizeof(path));
	if (path[0] == '\0' || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (key == NULL)
		return strtoll(buf, NULL, 10);
	for (p = buf; p != NULL; p = (p = strchr(p, '\n')) ? p + 1 : NULL)
		if (strncmp(p, key, strlen(key)) == 0 && p[strlen(key)] == ' ')
			return strtoll(p + strlen(key) + 1, NULL, 10);
	return -1;
}

int
cgroup_memory(const char *id, struct cgroup_memory *out)
{
	memset(out, 0, sizeof(*out));
	if (!usable || (out->used = read_number(id, "memory.usage_in_bytes",
	    NULL)) < 0) {
		out->used = 0;
		return -1;
	}
	out->limit = read_number(id, "memory.limit_in_bytes", NULL);
	out->cache = read_number(id, "memory.stat", "cache");
	if (out->cache < 0)
		out->cache = 0;
	return 0;
}

void
cgroup_release(void)
{
	size_t c;

	for (c = 0; c < NCTL; c++)
		if (parent[c][0] != '\0')
			rmdir(parent[c]);
}
