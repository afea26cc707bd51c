/*
 * Replays fuzz inputs through a target's LLVMFuzzerTestOneInput without
 * libFuzzer, so make check runs every corpus file on every build (as
 * SQLite's fuzzcheck does).  Each input runs in a child of its own, so a
 * crash, a broken invariant, a leak (LeakSanitizer exits non-zero) or a
 * hang is one "not ok" that names the file, and the rest still run.
 *
 *	replay_query [file | directory]...	prints TAP on stdout
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_MAX_FILES	100000
#define REPLAY_MAX_SIZE		((size_t)64 << 20)
#define REPLAY_TIMEOUT_S	60	/* per input, under sanitizers too */

struct files {
	char	**path;
	size_t	  n;
	size_t	  cap;
};

static int
files_add(struct files *f, const char *dir, const char *name)
{
	char **p, *s;
	size_t len;

	if (f->n == REPLAY_MAX_FILES)
		return -1;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		if ((p = realloc(f->path, f->cap * sizeof(*p))) == NULL)
			return -1;
		f->path = p;
	}
	len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
	if ((s = malloc(len)) == NULL)
		return -1;
	if (dir)
		snprintf(s, len, "%s/%s", dir, name);
	else
		snprintf(s, len, "%s", name);
	f->path[f->n++] = s;
	return 0;
}

/* Adds arg, or the regular files of directory arg (not its dot files). */
static int
files_collect(struct files *f, const char *arg)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rv = 0;

	if (stat(arg, &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", arg, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return files_add(f, NULL, arg);
	if ((d = opendir(arg)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", arg, strerror(errno));
		return -1;
	}
	while (rv == 0 && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			rv = files_add(f, arg, de->d_name);
	closedir(d);
	return rv;
}

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path whole.  OUT: *size.  Returns a malloc'ed buffer, or NULL. */
static uint8_t *
slurp(const char *path, size_t *size)
{
	uint8_t *data = NULL, *p;
	size_t cap = 0, got;
	FILE *fp;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	*size = 0;
	do {
		if (*size == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > REPLAY_MAX_SIZE ||
			    (p = realloc(data, cap)) == NULL)
				goto fail;
			data = p;
		}
		got = fread(data + *size, 1, cap - *size, fp);
		*size += got;
	} while (got > 0);
	if (ferror(fp))
		goto fail;
	fclose(fp);
	return data;
fail:
	free(data);
	fclose(fp);
	return NULL;
}

/* The child: one input, then exit (LeakSanitizer checks at exit). */
_Noreturn static void
run_one(const char *path)
{
	uint8_t *data;
	size_t size;

	alarm(REPLAY_TIMEOUT_S);
	if ((data = slurp(path, &size)) == NULL) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		exit(2);
	}
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	exit(0);
}

/* Runs path in a child; prints its TAP line. */
static int
replay(const char *prog, size_t k, const char *path)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		printf("not ok %zu - %s %s # fork: %s\n", k, prog, path,
		    strerror(errno));
		return -1;
	}
	if (pid == 0)
		run_one(path);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			printf("not ok %zu - %s %s # waitpid: %s\n", k, prog,
			    path, strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok %zu - %s %s\n", k, prog, path);
		return 0;
	}
	if (WIFSIGNALED(status))
		printf("not ok %zu - %s %s # killed by signal %d%s\n", k, prog,
		    path, WTERMSIG(status), WTERMSIG(status) == SIGALRM ?
		    " (timeout)" : "");
	else
		printf("not ok %zu - %s %s # exit status %d\n", k, prog, path,
		    WEXITSTATUS(status));
	return -1;
}

int
main(int argc, char *argv[])
{
	struct files f = { NULL, 0, 0 };
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	size_t i;
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s file-or-directory...\n", prog);
		return 2;
	}
	for (i = 1; i < (size_t)argc; i++)
		if (files_collect(&f, argv[i]) == -1) {
			printf("1..1\nnot ok 1 - %s: cannot read %s\n", prog,
			    argv[i]);
			return 1;
		}
	if (f.n == 0) {
		printf("1..1\nnot ok 1 - %s: no inputs to replay\n", prog);
		return 1;
	}
	qsort(f.path, f.n, sizeof(*f.path), path_cmp);
	printf("1..%zu\n", f.n);
	for (i = 0; i < f.n; i++) {
		if (replay(prog, i + 1, f.path[i]) == -1)
			failed = 1;
		free(f.path[i]);
	}
	free(f.path);
	return failed;
}
