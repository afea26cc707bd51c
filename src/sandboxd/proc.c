/* Reading the host's /proc about one process. */
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

size_t
proc_children(pid_t pid, pid_t *list, size_t *n, size_t max)
{
	char file[64], text[4096], *p, *end;
	size_t added = 0;
	long child;

	snprintf(file, sizeof(file), "task/%d/children", (int)pid);
	if (read_proc(pid, file, text, sizeof(text)) <= 0)
		return 0;
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
