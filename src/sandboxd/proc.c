/* Reading the host's /proc about one process. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandboxd/proc.h"

/* Reads /proc/<pid>/<file> into buf (NUL-terminated).  Bytes, or -1. */
static ssize_t
read_proc(pid_t pid, const char *file, char *buf, size_t bufsz)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, bufsz - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Appends the pids listed in text to list. */
static size_t
add_pids(const char *text, pid_t *list, size_t *n, size_t max)
{
	const char *p;
	char *end;
	size_t added = 0;
	long child;

	for (p = text; *n < max; p = end) {
		child = strtol(p, &end, 10);
		if (end == p)
			break;
		if (child > 0) {
			list[(*n)++] = (pid_t)child;
			added++;
		}
	}
	return added;
}

size_t
proc_children(pid_t pid, pid_t *list, size_t *n, size_t max)
{
	char dir[64], file[128], text[4096];
	struct dirent *de;
	size_t added = 0;
	DIR *d;

	/* Each thread has children of its own (a subprocess started by a
	 * thread is the thread's). */
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(file, sizeof(file), "task/%.20s/children", de->d_name);
		if (read_proc(pid, file, text, sizeof(text)) > 0)
			added += add_pids(text, list, n, max);
	}
	closedir(d);
	return added;
}

int
proc_uid(pid_t pid, uid_t *uid)
{
	char v[64];

	if (proc_status(pid, "Uid", v, sizeof(v)) == -1)
		return -1;
	*uid = (uid_t)strtoul(v, NULL, 10);	/* the real uid comes first */
	return 0;
}

int
proc_status(pid_t pid, const char *name, char *out, size_t outsz)
{
	char text[4096], *line;
	size_t len = strlen(name);

	if (read_proc(pid, "status", text, sizeof(text)) <= 0)
		return -1;
	for (line = text; line && *line; line = strchr(line, '\n'),
	    line = line ? line + 1 : NULL)
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			line += len + 1 + strspn(line + len + 1, " \t");
			snprintf(out, outsz, "%.*s", (int)strcspn(line, "\n"),
			    line);
			return 0;
		}
	return -1;
}

long long
proc_cpu_ticks(pid_t pid, int with_children)
{
	char text[1024], *p, *end;
	long long v[4];
	int i, field;

	if (read_proc(pid, "stat", text, sizeof(text)) <= 0 ||
	    (p = strrchr(text, ')')) == NULL)
		return -1;
	/* After "(comm)": state is field 3; utime..cstime are 14..17. */
	for (field = 2, p++; field < 13; field++)
		if ((p = strchr(p + 1, ' ')) == NULL)
			return -1;
	for (i = 0; i < 4; i++) {
		v[i] = strtoll(p, &end, 10);
		if (end == p)
			return -1;
		p = end;
	}
	return v[0] + v[1] + (with_children ? v[2] + v[3] : 0);
}

char
proc_state(pid_t pid)
{
	char text[512], *p;

	if (read_proc(pid, "stat", text, sizeof(text)) <= 0)
		return 0;
	/* "pid (comm) S ...": comm may hold anything, even ") ". */
	if ((p = strrchr(text, ')')) == NULL || p[1] != ' ')
		return 0;
	return p[2];
}
