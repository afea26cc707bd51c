#ifndef IRIS_SANDBOXD_FILES_H
#define IRIS_SANDBOXD_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Files inside a sandbox, as envd serves them (E2B: spec/envd/envd.yaml,
 * /files): a path is resolved in the sandbox's own root (openat2
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: "..", absolute symlinks and
 * /proc/<pid>/root links stay inside or fail) with the sandbox user's
 * file-system ids (setfsuid, this thread only), so the daemon reaches
 * nothing the sandbox's own code could not.
 */
#define FILES_HOME	"/home/user"	/* where relative paths start */
#define FILES_PATH_MAX	4096

enum files_err {
	FILES_OK = 0,
	FILES_BAD_PATH,		/* empty, too long */
	FILES_NOT_FOUND,	/* nothing there (ENOENT, ENOTDIR) */
	FILES_IS_DIR,
	FILES_NOT_REGULAR,	/* a FIFO, socket or device */
	FILES_ESCAPES,		/* a magic link, a loop: not in the sandbox */
	FILES_DENIED,		/* the sandbox user may not read or write it */
	FILES_NO_SPACE,		/* the sandbox's disk (its quota) is full */
	FILES_EXISTS,		/* a directory is there already */
	FILES_NOT_DIR,		/* not a directory, where one is needed */
	FILES_TOO_MANY,		/* a listing past its bound */
	FILES_NOT_WRITABLE,	/* outside /home/user and /tmp (or read-only) */
	FILES_CROSS_DEVICE,	/* a move to another file system */
	FILES_ERROR		/* anything else: errno */
};

/* envd's file types (filesystem.proto FileType; a link's is its target's) */
enum files_type {
	FILES_TYPE_UNKNOWN = 0,
	FILES_TYPE_FILE,
	FILES_TYPE_DIR,
	FILES_TYPE_SYMLINK
};

/* What envd's EntryInfo says of a path (envd: Lstat, a link's target
 * followed for its type and permission bits). */
struct files_entry {
	char		 path[FILES_PATH_MAX];
	const char	*name;			/* into path */
	enum files_type	 type;
	int64_t		 size;			/* bytes (of a link: its text's) */
	uint32_t	 mode;			/* permission bits */
	char		 permissions[16];	/* as Go's FileMode.String() */
	uid_t		 uid;			/* host ids */
	gid_t		 gid;
	int64_t		 mtime_s;
	long		 mtime_ns;
	int		 is_link;
	char		 target[FILES_PATH_MAX];	/* a link's, absolute */
};

/*
 * Writes path as the sandbox sees it into out: absolute, relative ones
 * under FILES_HOME, "." and ".." taken lexically (never above "/"), no
 * empty segments.  Returns 0, or -1 (FILES_BAD_PATH) if empty or too long.
 */
int	files_resolve(const char *path, char *out, size_t outsz);

/*
 * Opens the regular file at path (as files_resolve writes it) under
 * root_fd (the sandbox's root, O_PATH) for reading, as uid/gid.  Returns
 * the fd (*size its bytes), or -1 with *err set.  Never blocks on a FIFO.
 */
int	files_open_read(int root_fd, uid_t uid, gid_t gid, const char *path,
	    uint64_t *size, enum files_err *err);

/* The entry at path (as files_resolve writes it).  0, or -1 with *err. */
int	files_stat(int root_fd, uid_t uid, gid_t gid, const char *path,
	    struct files_entry *e, enum files_err *err);

/*
 * Calls fn for each entry under the directory at path (a link to one is
 * followed), depth levels deep (1: its own entries; links below are not
 * followed), at most max of them (then FILES_TOO_MANY).  0, or -1 with
 * *err (also when fn returns -1: FILES_ERROR).
 */
int	files_list(int root_fd, uid_t uid, gid_t gid, const char *path,
	    unsigned depth, size_t max,
	    int (*fn)(void *arg, const struct files_entry *e), void *arg,
	    enum files_err *err);

/* Makes the directory at path and its missing parents; FILES_EXISTS if it
 * is there, FILES_NOT_DIR if something else is.  0, or -1 with *err. */
int	files_mkdir(int root_fd, uid_t uid, gid_t gid, const char *path,
	    enum files_err *err);

/* Removes what is at path, a directory with all it holds (a missing path
 * is no error, as envd's os.RemoveAll).  0, or -1 with *err. */
int	files_remove(int root_fd, uid_t uid, gid_t gid, const char *path,
	    enum files_err *err);

/* Renames from to to (making to's missing parents).  0, or -1 with *err. */
int	files_move(int root_fd, uid_t uid, gid_t gid, const char *from,
	    const char *to, enum files_err *err);

/*
 * An upload: written to a new temporary file beside its target, renamed
 * over it when complete (so a target is never half-written, and a failed
 * upload leaves nothing), made with the sandbox user's ids (so it is
 * theirs).  Missing parent directories are made, as envd makes them.
 */
struct files_upload {
	int	 dir_fd;		/* the target's directory; -1: none */
	int	 fd;			/* the temporary file; -1: none */
	uid_t	 uid;
	gid_t	 gid;
	char	 tmp[64];		/* its name in dir_fd */
	char	 name[256];		/* the target's name in dir_fd */
};

/* Starts one at path (as files_resolve writes it).  0, or -1 with *err. */
int	files_upload_begin(struct files_upload *up, int root_fd, uid_t uid,
	    gid_t gid, const char *path, enum files_err *err);
int	files_upload_write(struct files_upload *up, const void *data,
	    size_t len, enum files_err *err);
/* Renames it into place.  0, or -1 with *err (and it is aborted). */
int	files_upload_commit(struct files_upload *up, enum files_err *err);
/* Removes what it wrote; a no-op once committed or aborted. */
void	files_upload_abort(struct files_upload *up);

#endif
