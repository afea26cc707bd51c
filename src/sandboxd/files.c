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
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandboxd/files.h"

int
files_resolve(const char *path, char *out, size_t outsz)
{
	char buf[FILES_PATH_MAX];
	const char *seg;
	size_t len = 0, n;
	int w;

	if (path == NULL || *path == '\0' || outsz < 2)
		return -1;
	w = path[0] == '/' ? snprintf(buf, sizeof(buf), "%s", path) :
	    snprintf(buf, sizeof(buf), "%s/%s", FILES_HOME, path);
	if (w < 0 || (size_t)w >= sizeof(buf))
		return -1;
	out[0] = '\0';
	for (seg = buf; *seg != '\0'; seg += n) {
		seg += strspn(seg, "/");
		n = strcspn(seg, "/");
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (len > 0 && out[--len] != '/')
				;
			out[len] = '\0';
			continue;
		}
		if (len + 1 + n >= outsz)
			return -1;
		out[len++] = '/';
		memcpy(out + len, seg, n);
		len += n;
		out[len] = '\0';
	}
	if (len == 0) {
		out[0] = '/';
		out[1] = '\0';
	}
	return 0;
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
	case EROFS:
		return FILES_DENIED;
	case ENAMETOOLONG:
		return FILES_BAD_PATH;
	case ENOSPC:
	case EDQUOT:
		return FILES_NO_SPACE;
	case EISDIR:
		return FILES_IS_DIR;
	default:
		return FILES_ERROR;
	}
}

/* This thread's file-system ids: the sandbox user's until restored
 * (setfsuid(2): per thread, and root's file capabilities are dropped
 * while they are not 0). */
struct fsids {
	uid_t	uid;
	gid_t	gid;
};

static struct fsids
become(uid_t uid, gid_t gid)
{
	struct fsids old;

	old.gid = (gid_t)setfsgid(gid);
	old.uid = (uid_t)setfsuid(uid);
	return old;
}

static void
restore(struct fsids old)
{
	int e = errno;

	setfsuid(old.uid);
	setfsgid(old.gid);
	errno = e;
}

/* openat2 under the sandbox's root, as the sandbox user. */
static int
open_in(int root_fd, uid_t uid, gid_t gid, const char *path, uint64_t flags)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	struct fsids old = become(uid, gid);
	int fd;

	fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
	restore(old);
	return fd;
}

int
files_open_read(int root_fd, uid_t uid, gid_t gid, const char *path,
    uint64_t *size, enum files_err *err)
{
	struct stat st;
	int fd, e;

	if ((fd = open_in(root_fd, uid, gid, path, O_RDONLY | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		*err = open_error(errno);
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

/* An O_PATH fd of directory dir (as files_resolve writes it), made with
 * its missing parents if need be; or -1 (errno). */
static int
ensure_dir(int root_fd, uid_t uid, gid_t gid, const char *dir)
{
	char parent[FILES_PATH_MAX];
	const char *base;
	struct fsids old;
	int fd, pfd, rc, e;

	if ((fd = open_in(root_fd, uid, gid, dir, O_PATH | O_DIRECTORY)) != -1 ||
	    errno != ENOENT || strcmp(dir, "/") == 0)
		return fd;
	base = strrchr(dir, '/') + 1;
	snprintf(parent, sizeof(parent), "%.*s", (int)(base - dir > 1 ?
	    base - dir - 1 : 1), dir);
	if ((pfd = ensure_dir(root_fd, uid, gid, parent)) == -1)
		return -1;
	old = become(uid, gid);
	rc = mkdirat(pfd, base, 0755);
	e = errno;
	restore(old);
	if (rc == -1 && e != EEXIST) {
		close(pfd);
		errno = e;
		return -1;
	}
	fd = openat(pfd, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	e = errno;
	close(pfd);
	errno = e;
	return fd;
}

int
files_upload_begin(struct files_upload *up, int root_fd, uid_t uid,
    gid_t gid, const char *path, enum files_err *err)
{
	char dir[FILES_PATH_MAX];
	const char *base = strrchr(path, '/');
	unsigned char rnd[8];
	struct stat st;
	struct fsids old;
	int e;

	up->dir_fd = up->fd = -1;
	up->tmp[0] = '\0';
	up->uid = uid;
	up->gid = gid;
	if (base == NULL || base[1] == '\0' || strlen(base + 1) >=
	    sizeof(up->name)) {
		*err = base && base[1] == '\0' ? FILES_IS_DIR : FILES_BAD_PATH;
		return -1;
	}
	snprintf(up->name, sizeof(up->name), "%s", base + 1);
	snprintf(dir, sizeof(dir), "%.*s", (int)(base > path ? base - path : 1),
	    path);
	if ((up->dir_fd = ensure_dir(root_fd, uid, gid, dir)) == -1) {
		*err = open_error(errno);
		return -1;
	}
	/* A directory in the way is envd's 400 (a rename would say EISDIR
	 * only at the end). */
	if (fstatat(up->dir_fd, up->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		files_upload_abort(up);
		*err = FILES_IS_DIR;
		return -1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		files_upload_abort(up);
		*err = FILES_ERROR;
		return -1;
	}
	snprintf(up->tmp, sizeof(up->tmp), ".iris-upload-%02x%02x%02x%02x"
	    "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
	    rnd[6], rnd[7]);
	old = become(uid, gid);
	up->fd = openat(up->dir_fd, up->tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0644);
	e = errno;
	restore(old);
	if (up->fd == -1) {
		files_upload_abort(up);
		*err = open_error(e);
		return -1;
	}
	*err = FILES_OK;
	return 0;
}

int
files_upload_write(struct files_upload *up, const void *data, size_t len,
    enum files_err *err)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = write(up->fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			*err = open_error(errno);
			files_upload_abort(up);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
files_upload_commit(struct files_upload *up, enum files_err *err)
{
	struct fsids old;
	int rc, e;

	if (close(up->fd) == -1) {
		up->fd = -1;
		*err = open_error(errno);
		files_upload_abort(up);
		return -1;
	}
	up->fd = -1;
	old = become(up->uid, up->gid);
	rc = renameat(up->dir_fd, up->tmp, up->dir_fd, up->name);
	e = errno;
	restore(old);
	if (rc == -1) {
		*err = open_error(e);
		files_upload_abort(up);
		return -1;
	}
	up->tmp[0] = '\0';
	close(up->dir_fd);
	up->dir_fd = -1;
	*err = FILES_OK;
	return 0;
}

void
files_upload_abort(struct files_upload *up)
{
	if (up->fd != -1)
		close(up->fd);
	up->fd = -1;
	if (up->dir_fd != -1) {
		if (up->tmp[0] != '\0')
			unlinkat(up->dir_fd, up->tmp, 0);
		close(up->dir_fd);
	}
	up->dir_fd = -1;
	up->tmp[0] = '\0';
}
