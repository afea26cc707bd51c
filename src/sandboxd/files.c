/*
 * Files inside a sandbox: see files.h for what is guaranteed and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandboxd/files.h"

int
files_resolve(const char *path, char *out, size_t outsz)
{
	int n;

	if (path == NULL || *path == '\0')
		return -1;
	n = path[0] == '/' ? snprintf(out, outsz, "%s", path) :
	    snprintf(out, outsz, "%s/%s", FILES_HOME, path);
	return n < 0 || (size_t)n >= outsz || (size_t)n >= FILES_PATH_MAX ?
	    -1 : 0;
}

static enum files_err
open_error(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return FILES_NOT_FOUND;
	case ELOOP:
	case EXDEV:
		return FILES_ESCAPES;
	case EACCES:
	case EPERM:
		return FILES_DENIED;
	case ENAMETOOLONG:
		return FILES_BAD_PATH;
	default:
		return FILES_ERROR;
	}
}

int
files_open_read(int root_fd, uid_t uid, gid_t gid, const char *path,
    uint64_t *size, enum files_err *err)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	struct stat st;
	uid_t old_uid;
	gid_t old_gid;
	int fd, e;

	/* The sandbox user's permissions, for this thread's file access. */
	old_gid = (gid_t)setfsgid(gid);
	old_uid = (uid_t)setfsuid(uid);
	fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
	e = errno;
	setfsuid(old_uid);
	setfsgid(old_gid);
	if (fd == -1) {
		*err = open_error(e);
		errno = e;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		e = errno;
		close(fd);
		*err = FILES_ERROR;
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*err = S_ISDIR(st.st_mode) ? FILES_IS_DIR : FILES_NOT_REGULAR;
		return -1;
	}
	/* Read as a plain file from here on (O_NONBLOCK was for FIFOs). */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == -1) {
		e = errno;
		close(fd);
		*err = FILES_ERROR;
		errno = e;
		return -1;
	}
	*size = (uint64_t)st.st_size;
	*err = FILES_OK;
	return fd;
}
