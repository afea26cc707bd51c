/*
 * Files inside a sandbox: see files.h for what is guaranteed and why.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
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
		return FILES_DENIED;
	case EROFS:
		return FILES_NOT_WRITABLE;
	case ENAMETOOLONG:
		return FILES_BAD_PATH;
	case ENOSPC:
	case EDQUOT:
		return FILES_NO_SPACE;
	case EISDIR:
		return FILES_IS_DIR;
	case EEXIST:
	case ENOTEMPTY:
		return FILES_EXISTS;
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

#define MAKE_DEPTH_MAX	128	/* directories one call may make */

/* 1 if dir_fd is on the file system of /home/user or of /tmp: where the
 * daemon may change files (bounded tmpfs mounts of the sandbox; /dev's
 * tmpfs has no size cap, and its mount points must not move). */
static int
writable_dir(int root_fd, uid_t uid, gid_t gid, int dir_fd)
{
	static const char *const places[] = { FILES_HOME, "/tmp" };
	struct stat d, p;
	size_t i;
	int fd, ok = 0;

	if (fstat(dir_fd, &d) == -1)
		return 0;
	for (i = 0; i < sizeof(places) / sizeof(places[0]) && !ok; i++) {
		if ((fd = open_in(root_fd, uid, gid, places[i], O_PATH |
		    O_DIRECTORY)) == -1)
			continue;
		ok = fstat(fd, &p) == 0 && p.st_dev == d.st_dev;
		close(fd);
	}
	return ok;
}

/* An O_PATH fd of directory dir (as files_resolve writes it), made with
 * its missing parents if need be -- only where files may be written
 * (errno EROFS elsewhere); or -1 (errno).  Iterative: a deep path costs
 * no stack. */
static int
ensure_dir(int root_fd, uid_t uid, gid_t gid, const char *dir)
{
	char prefix[FILES_PATH_MAX], name[256];
	const char *p;
	struct fsids old;
	size_t len, n;
	int fd, nfd, rc, e, levels = 0;

	snprintf(prefix, sizeof(prefix), "%s", dir);
	len = strlen(prefix);
	/* The deepest directory there is already. */
	while ((fd = open_in(root_fd, uid, gid, prefix, O_PATH |
	    O_DIRECTORY)) == -1) {
		if (errno != ENOENT || len <= 1)
			return -1;
		if (++levels > MAKE_DEPTH_MAX) {
			errno = ENAMETOOLONG;
			return -1;
		}
		while (len > 1 && prefix[len - 1] != '/')
			len--;
		if (len > 1)
			len--;
		prefix[len] = '\0';
	}
	if (!writable_dir(root_fd, uid, gid, fd)) {
		close(fd);
		errno = EROFS;
		return -1;
	}
	/* Then each missing one below it, made as the user. */
	for (p = dir + (len > 1 ? len : 0); *(p += strspn(p, "/")) != '\0';
	    p += n) {
		if ((n = strcspn(p, "/")) >= sizeof(name)) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		old = become(uid, gid);
		rc = mkdirat(fd, name, 0755);
		e = errno;
		restore(old);
		if (rc == -1 && e != EEXIST) {
			close(fd);
			errno = e;
			return -1;
		}
		nfd = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		e = errno;
		close(fd);
		if (nfd == -1) {
			errno = e;
			return -1;
		}
		fd = nfd;
	}
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
	/* A directory in the way is envd's 400, wherever it is. */
	if ((e = open_in(root_fd, uid, gid, path, O_PATH)) != -1) {
		int is_dir = fstat(e, &st) == 0 && S_ISDIR(st.st_mode);

		close(e);
		if (is_dir) {
			*err = FILES_IS_DIR;
			return -1;
		}
	}
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

/* --- entries, listings, directories -------------------------------------- */

#define REMOVE_DEPTH_MAX	256	/* directories deep, for a remove */

/* Go's os.FileMode.String() of a stat's mode ("drwxr-xr-x", "Lrwxrwxrwx"):
 * what envd's EntryInfo.permissions is. */
static void
go_mode_string(mode_t m, char *out)
{
	static const char rwx[] = "rwxrwxrwx";
	size_t w = 0, i;

	if (S_ISDIR(m))
		out[w++] = 'd';
	if (S_ISLNK(m))
		out[w++] = 'L';
	if (S_ISBLK(m) || S_ISCHR(m))
		out[w++] = 'D';
	if (S_ISFIFO(m))
		out[w++] = 'p';
	if (S_ISSOCK(m))
		out[w++] = 'S';
	if (m & S_ISUID)
		out[w++] = 'u';
	if (m & S_ISGID)
		out[w++] = 'g';
	if (S_ISCHR(m))
		out[w++] = 'c';
	if (m & S_ISVTX)
		out[w++] = 't';
	if (w == 0)
		out[w++] = '-';
	for (i = 0; i < 9; i++)
		out[w++] = (m & (1U << (8 - i))) ? rwx[i] : '-';
	out[w] = '\0';
}

static enum files_type
type_of(mode_t m)
{
	return S_ISREG(m) ? FILES_TYPE_FILE : S_ISDIR(m) ? FILES_TYPE_DIR :
	    S_ISLNK(m) ? FILES_TYPE_SYMLINK : FILES_TYPE_UNKNOWN;
}

/* Fills e for name in dir_fd, whose path is e->path (set by the caller),
 * as the sandbox user: lstat, and for a link its target's type and bits. */
static int
entry_at(int root_fd, uid_t uid, gid_t gid, int dir_fd, const char *name,
    struct files_entry *e)
{
	char raw[FILES_PATH_MAX], joined[2 * FILES_PATH_MAX + 2];
	struct fsids old = become(uid, gid);
	struct stat st, tst;
	ssize_t n;
	int fd, rc, w;

	rc = fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW);
	restore(old);
	if (rc == -1)
		return -1;
	e->name = strrchr(e->path, '/') + 1;
	e->size = (int64_t)st.st_size;
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	e->mtime_s = (int64_t)st.st_mtim.tv_sec;
	e->mtime_ns = st.st_mtim.tv_nsec;
	e->type = type_of(st.st_mode);
	e->mode = (uint32_t)(st.st_mode & 0777);
	go_mode_string(st.st_mode, e->permissions);
	e->is_link = S_ISLNK(st.st_mode);
	e->target[0] = '\0';
	if (!e->is_link)
		return 0;
	old = become(uid, gid);
	n = readlinkat(dir_fd, name, raw, sizeof(raw) - 1);
	restore(old);
	if (n < 0)
		n = 0;
	raw[n] = '\0';
	/* Relative to the link's directory, unless absolute. */
	w = snprintf(joined, sizeof(joined), "%.*s/%s", raw[0] == '/' ? 0 :
	    (int)(e->name - e->path - 1), e->path, raw);
	if (w < 0 || (size_t)w >= sizeof(joined) ||
	    files_resolve(joined, e->target, sizeof(e->target)) == -1)
		e->target[0] = '\0';
	e->type = FILES_TYPE_UNKNOWN;
	e->mode = 0;
	if ((fd = open_in(root_fd, uid, gid, e->path, O_PATH)) != -1) {
		if (fstat(fd, &tst) == 0) {
			e->type = type_of(tst.st_mode);
			e->mode = (uint32_t)(tst.st_mode & 0777);
		}
		close(fd);
	}
	return 0;
}

/* The parent directory of path (O_PATH) and its last segment. */
static int
open_parent(int root_fd, uid_t uid, gid_t gid, const char *path,
    const char **base)
{
	char dir[FILES_PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL || slash[1] == '\0') {
		errno = EINVAL;
		return -1;
	}
	*base = slash + 1;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash > path ? slash - path :
	    1), path);
	return open_in(root_fd, uid, gid, dir, O_PATH | O_DIRECTORY);
}

int
files_stat(int root_fd, uid_t uid, gid_t gid, const char *path,
    struct files_entry *e, enum files_err *err)
{
	const char *base;
	int pfd, rc;

	snprintf(e->path, sizeof(e->path), "%s", path);
	if (strcmp(path, "/") == 0) {
		struct stat st;

		if (fstat(root_fd, &st) == -1) {
			*err = FILES_ERROR;
			return -1;
		}
		e->name = e->path + 1;
		e->type = FILES_TYPE_DIR;
		e->size = (int64_t)st.st_size;
		e->mode = (uint32_t)(st.st_mode & 0777);
		go_mode_string(st.st_mode, e->permissions);
		e->uid = st.st_uid;
		e->gid = st.st_gid;
		e->mtime_s = (int64_t)st.st_mtim.tv_sec;
		e->mtime_ns = st.st_mtim.tv_nsec;
		e->is_link = 0;
		e->target[0] = '\0';
		return 0;
	}
	if ((pfd = open_parent(root_fd, uid, gid, path, &base)) == -1) {
		*err = open_error(errno);
		return -1;
	}
	rc = entry_at(root_fd, uid, gid, pfd, base, e);
	if (rc == -1)
		*err = open_error(errno);
	close(pfd);
	return rc;
}

struct walk {
	int		 root_fd;
	uid_t		 uid;
	gid_t		 gid;
	size_t		 left;
	int		 (*fn)(void *, const struct files_entry *);
	void		*arg;
	enum files_err	 err;
	struct files_entry e;
};

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in d but "." and "..", sorted as envd's walk gives them
 * (lexically); NULL-ended, malloc'ed; NULL if out of memory. */
static char **
sorted_names(DIR *d, size_t *n)
{
	struct dirent *de;
	char **names = NULL, **grown;
	size_t cap = 0;

	*n = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n + 1 >= cap) {
			cap = cap ? 2 * cap : 32;
			if ((grown = realloc(names, cap * sizeof(*names))) == NULL)
				goto fail;
			names = grown;
		}
		if ((names[*n] = strdup(de->d_name)) == NULL)
			goto fail;
		(*n)++;
	}
	if (names == NULL && (names = calloc(1, sizeof(*names))) == NULL)
		return NULL;
	qsort(names, *n, sizeof(*names), name_cmp);
	names[*n] = NULL;
	return names;
fail:
	while (*n > 0)
		free(names[--(*n)]);
	free(names);
	return NULL;
}

/* Lists dir_fd (a directory fd, taken and closed) at path, depth more
 * levels, each directory's names in lexical order.  0, or -1 with
 * w->err. */
static int
walk_dir(struct walk *w, int dir_fd, const char *path, unsigned depth)
{
	char sub[FILES_PATH_MAX], **names;
	size_t n, i;
	DIR *d;
	int rc = 0, fd;

	if ((d = fdopendir(dir_fd)) == NULL) {
		close(dir_fd);
		w->err = FILES_ERROR;
		return -1;
	}
	if ((names = sorted_names(d, &n)) == NULL) {
		closedir(d);
		w->err = FILES_ERROR;
		return -1;
	}
	for (i = 0; rc == 0 && i < n; i++) {
		if (snprintf(sub, sizeof(sub), "%s%s%s", path,
		    strcmp(path, "/") == 0 ? "" : "/", names[i]) >=
		    (int)sizeof(sub))
			continue;
		if (w->left == 0) {
			w->err = FILES_TOO_MANY;
			rc = -1;
			break;
		}
		w->left--;
		snprintf(w->e.path, sizeof(w->e.path), "%s", sub);
		if (entry_at(w->root_fd, w->uid, w->gid, dirfd(d), names[i],
		    &w->e) == -1)
			continue;	/* gone meanwhile */
		if (w->fn(w->arg, &w->e) == -1) {
			w->err = FILES_ERROR;
			rc = -1;
			break;
		}
		if (depth > 1 && !w->e.is_link && w->e.type == FILES_TYPE_DIR) {
			struct fsids old = become(w->uid, w->gid);

			fd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			restore(old);
			if (fd != -1)
				rc = walk_dir(w, fd, sub, depth - 1);
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int
files_list(int root_fd, uid_t uid, gid_t gid, const char *path,
    unsigned depth, size_t max,
    int (*fn)(void *arg, const struct files_entry *e), void *arg,
    enum files_err *err)
{
	struct walk *w;
	struct stat st;
	int fd, rc;

	if ((fd = open_in(root_fd, uid, gid, path, O_RDONLY | O_NONBLOCK)) ==
	    -1) {
		*err = open_error(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode)) {
		close(fd);
		*err = FILES_NOT_DIR;
		return -1;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		close(fd);
		*err = FILES_ERROR;
		return -1;
	}
	*w = (struct walk){ .root_fd = root_fd, .uid = uid, .gid = gid,
	    .left = max, .fn = fn, .arg = arg };
	rc = walk_dir(w, fd, path, depth == 0 ? 1 : depth);
	*err = rc == 0 ? FILES_OK : w->err;
	free(w);
	return rc;
}

int
files_mkdir(int root_fd, uid_t uid, gid_t gid, const char *path,
    enum files_err *err)
{
	struct stat st;
	int fd;

	if ((fd = open_in(root_fd, uid, gid, path, O_PATH)) != -1) {
		*err = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) ?
		    FILES_EXISTS : FILES_NOT_DIR;
		close(fd);
		return -1;
	}
	if (errno != ENOENT || (fd = ensure_dir(root_fd, uid, gid, path)) ==
	    -1) {
		*err = open_error(errno);
		return -1;
	}
	close(fd);
	*err = FILES_OK;
	return 0;
}

/* Removes name in dir_fd and, a directory, all it holds (as the caller's
 * file-system ids). */
static int
remove_at(int dir_fd, const char *name, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd, e;

	if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth >= REMOVE_DEPTH_MAX)
		return -1;
	if ((fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    remove_at(dirfd(d), de->d_name, depth + 1) == -1) {
			e = errno;
			closedir(d);
			errno = e;
			return -1;
		}
	closedir(d);
	return unlinkat(dir_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ?
	    0 : -1;
}

int
files_remove(int root_fd, uid_t uid, gid_t gid, const char *path,
    enum files_err *err)
{
	struct fsids old;
	const char *base;
	int pfd, rc;

	if ((pfd = open_parent(root_fd, uid, gid, path, &base)) == -1) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*err = FILES_OK;	/* nothing there: done */
			return 0;
		}
		*err = errno == EINVAL ? FILES_BAD_PATH : open_error(errno);
		return -1;
	}
	if (!writable_dir(root_fd, uid, gid, pfd)) {
		close(pfd);
		*err = FILES_NOT_WRITABLE;
		return -1;
	}
	old = become(uid, gid);
	rc = remove_at(pfd, base, 0);
	restore(old);
	*err = rc == 0 ? FILES_OK : open_error(errno);
	close(pfd);
	return rc;
}

int
files_move(int root_fd, uid_t uid, gid_t gid, const char *from,
    const char *to, enum files_err *err)
{
	char dir[FILES_PATH_MAX];
	const char *fbase, *tbase = strrchr(to, '/');
	struct fsids old;
	struct stat st;
	int ffd, tfd, rc;

	if (tbase == NULL || tbase[1] == '\0') {
		*err = FILES_BAD_PATH;
		return -1;
	}
	if ((ffd = open_parent(root_fd, uid, gid, from, &fbase)) == -1) {
		*err = errno == EINVAL ? FILES_BAD_PATH : open_error(errno);
		return -1;
	}
	/* The source first: a failed move makes no directories. */
	old = become(uid, gid);
	rc = fstatat(ffd, fbase, &st, AT_SYMLINK_NOFOLLOW);
	restore(old);
	if (rc == -1 || !writable_dir(root_fd, uid, gid, ffd)) {
		*err = rc == -1 ? open_error(errno) : FILES_NOT_WRITABLE;
		close(ffd);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(tbase > to ? tbase - to : 1),
	    to);
	if ((tfd = ensure_dir(root_fd, uid, gid, dir)) == -1) {
		*err = open_error(errno);
		close(ffd);
		return -1;
	}
	old = become(uid, gid);
	rc = renameat(ffd, fbase, tfd, tbase + 1);
	restore(old);
	*err = rc == 0 ? FILES_OK : errno == EXDEV ? FILES_CROSS_DEVICE :
	    errno == EINVAL ? FILES_BAD_PATH : open_error(errno);
	close(ffd);
	close(tfd);
	return rc;
}
