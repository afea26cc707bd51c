/*
 * Sandboxes: starting the bubblewrap container, its lifetime, killing its
 * whole tree.  The daemon never runs user code itself: a forked child
 * joins the sandbox's cgroups, sets rlimits, drops to the slot's own
 * unprivileged uid and execs bwrap, which unshares every namespace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/hostmem.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "sandboxd/cgroup.h"
#include "sandboxd/kernel.h"
#include "sandboxd/proc.h"
#include "sandboxd/sandbox.h"
#include "sandboxd/seccomp.h"

#define START_TIMEOUT_MS	30000	/* for the supervisor's "ready" */
#define SCRUB_TIMEOUT_MS	8000	/* for its "scrubbed" */
#define DRAIN_REFS_MS		3000	/* for the last holder of a retired one */
#define RECYCLED_IDLE_MS	120000	/* a recycled sandbox no one took */
#define SUP_LINE_MAX		4096

struct sandbox {
	char			 id[SANDBOX_ID_LEN + 1];	/* public; new when recycled */
	char			 name[SANDBOX_ID_LEN + 1];	/* dir, cgroup: for life */
	char			 group[SANDBOX_GROUP_LEN + 1];	/* its owner's */
	char			 template_id[64];
	char			 token[65];	/* envdAccessToken */
	char			 dir[PATH_MAX];	/* host: <state>/sandboxes/<id> */
	int			 slot;
	uid_t			 uid;
	pid_t			 pid;		/* the outer bwrap */
	pid_t			 sup_pid;	/* the supervisor (host view) */
	int			 secure;	/* envd wants the access token */
	long long		 cpu_ticks;	/* at the last metrics sample */
	int64_t			 cpu_ms;	/* its time; 0: none yet */
	int			 sup_in;	/* the supervisor's stdin */
	int			 sup_out;	/* and stdout */
	int			 listener;	/* kernels connect here */
	int			 cgroup;	/* 1 if it has cgroups */
	int			 pooled;
	int			 offered;	/* pooled and ready to be taken */
	int			 recyclable;	/* preloaded, no env, checkable */
	int			 recycled;	/* offered again, to group only */
	int			 retiring;	/* on its way to a scrub */
	int			 killed;
	int64_t			 offered_ms;
	int			 refs;
	int64_t			 started_ms;
	int64_t			 end_ms;
	struct json_object	*metadata;
	struct context		*contexts;
	pthread_mutex_t		 lock;		/* supervisor I/O, contexts */
	struct buf		 sup_buf;	/* a partial supervisor line */
	struct sandbox		*next;
};

static const struct sandbox_config *cfg;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sandbox *registry;	/* live sandboxes, claimed or pooled */
static char *slots;			/* 1 if the slot's uid is in use */
static long nslots;
static int drop_uid;			/* 0 when not root: no uid switch */
static char passwd_dir[PATH_MAX];
static char progs_dir[PATH_MAX];		/* our copy of sandbox/ */
static struct sandbox_stats stats;	/* under reg_lock */
static pthread_cond_t recycled_cv = PTHREAD_COND_INITIALIZER;	/* offered */

static long	sandbox_count_locked(void);
static int	evict_recycled(void);
static void	sandbox_free(struct sandbox *);
static void	slot_sweep(uid_t);
static void	*launcher_main(void *);

/* --- small helpers ------------------------------------------------------ */

static int pathf(char *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats a path into out (PATH_MAX bytes).  Returns 0, or -1 if too long. */
static int
pathf(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static void
random_id(char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[SANDBOX_ID_LEN - 1];
	size_t i;

	if (crypto_random(rnd, sizeof(rnd)) == -1)
		fatalx("no randomness");
	out[0] = 'i';
	for (i = 0; i < sizeof(rnd); i++)
		out[i + 1] = alphabet[rnd[i] % 36];
	out[SANDBOX_ID_LEN] = '\0';
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
write_text(const char *path, const char *text)
{
	int fd, rv;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1)
		return -1;
	rv = write_all(fd, text, strlen(text));
	close(fd);
	return rv;
}

/* Removes dir and what is directly in it (sandbox dirs are shallow). */
static void
remove_dir(const char *dir)
{
	static const char *const names[] = { "run/kernel.sock", "run" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		pathf(path, "%s/%s", dir, names[i]);
		if (unlink(path) == -1 && errno == EISDIR)
			rmdir(path);
		else if (errno == EISDIR || errno == EPERM)
			rmdir(path);
	}
	if (rmdir(dir) == -1 && errno != ENOENT)
		log_warn("rmdir %s", dir);
}

/* --- set-up ---------------------------------------------------------------- */

static void
remove_stale_dirs(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (pathf(dir, "%s/sandboxes", cfg->state_dir) == -1 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' &&
		    pathf(path, "%s/%s", dir, de->d_name) == 0)
			remove_dir(path);
	closedir(d);
}

static int
copy_file(const char *from, const char *to)
{
	char chunk[65536];
	ssize_t n;
	int in, out, rv = 0;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if ((out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) ==
	    -1) {
		close(in);
		return -1;
	}
	while ((n = read(in, chunk, sizeof(chunk))) > 0)
		if (write_all(out, chunk, (size_t)n) == -1) {
			rv = -1;
			break;
		}
	if (n < 0)
		rv = -1;
	close(in);
	close(out);
	return rv;
}

/* 1 if rel is a relative path without "." or ".." components. */
static int
plain_relative(const char *rel)
{
	const char *p = rel;
	size_t n;

	if (*rel == '\0' || *rel == '/')
		return 0;
	for (;;) {
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (p[n] == '\0')
			return 1;
		p += n + 1;
	}
}

/* Copies cfg->progs_dir's rel into progs_dir, making its directories. */
static int
copy_program_file(const char *rel)
{
	char from[PATH_MAX], to[PATH_MAX], *slash;

	if (pathf(from, "%s/%s", cfg->progs_dir, rel) == -1 ||
	    pathf(to, "%s/%s", progs_dir, rel) == -1)
		return -1;
	for (slash = to + strlen(progs_dir) + 1; (slash = strchr(slash, '/'));
	    slash++) {
		*slash = '\0';
		if (mkdir(to, 0755) == -1 && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return copy_file(from, to);
}

/*
 * The node kernel's npm packages (sandbox/node, installed by
 * sandbox/node/install): only the files node/runtime-files names.  Missing
 * ones are logged, not fatal: without them a JavaScript cell's import
 * declarations and TypeScript cells fail, with an error saying why.
 */
static void
copy_node_files(void)
{
	char list[PATH_MAX], line[PATH_MAX], rel[PATH_MAX];
	FILE *f;
	size_t n;
	int missing = 0;

	if (pathf(list, "%s/node/runtime-files", cfg->progs_dir) == -1 ||
	    (f = fopen(list, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (!plain_relative(line) ||
		    pathf(rel, "node/%s", line) == -1 ||
		    copy_program_file(rel) == -1)
			missing++;
	}
	fclose(f);
	if (missing)
		log_warnx("%d of the JavaScript kernel's files are missing from "
		    "%s/node (run sandbox/node/install): its import declarations "
		    "and TypeScript will fail", missing, cfg->progs_dir);
}

/*
 * Copies the sandbox programs into our state dir: bwrap runs as the
 * slot's uid, which may not be able to reach the repo (under /root, say),
 * and a copy also keeps running sandboxes safe from edits to the repo.
 */
static int
copy_programs(void)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rv = 0;

	if (pathf(progs_dir, "%s/programs", cfg->state_dir) == -1 ||
	    (mkdir(progs_dir, 0755) == -1 && errno != EEXIST) ||
	    chmod(progs_dir, 0755) == -1 ||
	    (d = opendir(cfg->progs_dir)) == NULL) {
		log_warn("sandbox programs %s", cfg->progs_dir);
		return -1;
	}
	while (rv == 0 && (de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG || de->d_name[0] == '.')
			continue;
		if (pathf(from, "%s/%s", cfg->progs_dir, de->d_name) == -1 ||
		    pathf(to, "%s/%s", progs_dir, de->d_name) == -1 ||
		    copy_file(from, to) == -1) {
			log_warn("copying %s", de->d_name);
			rv = -1;
		}
	}
	closedir(d);
	if (rv == 0)
		copy_node_files();
	return rv;
}

int
sandbox_init(const struct sandbox_config *c)
{
	char path[PATH_MAX], name[64];
	pthread_t tid;
	long i;

	cfg = c;
	nslots = cfg->max_live + cfg->pool_size;
	if ((slots = calloc((size_t)nslots, 1)) == NULL)
		return -1;
	drop_uid = geteuid() == 0;
	if (!drop_uid)
		log_warnx("not running as root: sandboxes share this uid "
		    "(no per-sandbox uid, no cgroups)");
	pathf(path, "%s/sandboxes", cfg->state_dir);
	if ((mkdir(cfg->state_dir, 0711) == -1 && errno != EEXIST) ||
	    (mkdir(path, 0711) == -1 && errno != EEXIST)) {
		log_warn("mkdir %s", path);
		return -1;
	}
	/* A passwd naming uid 1000, for programs that look themselves up. */
	pathf(passwd_dir, "%s/etc", cfg->state_dir);
	pathf(path, "%s/passwd", passwd_dir);
	if ((mkdir(passwd_dir, 0755) == -1 && errno != EEXIST) ||
	    write_text(path, "root:x:0:0:root:/root:/usr/sbin/nologin\n"
	    "user:x:1000:1000:sandbox user:/home/user:/bin/bash\n"
	    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
	    == -1) {
		log_warn("%s", path);
		return -1;
	}
	pathf(path, "%s/group", passwd_dir);
	if (write_text(path, "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
	    == -1) {
		log_warn("%s", path);
		return -1;
	}
	if (copy_programs() == -1)
		return -1;
	if (pthread_create(&tid, NULL, launcher_main, NULL) != 0) {
		log_warnx("cannot start the launcher thread");
		return -1;
	}
	pthread_detach(tid);
	/* Whatever a daemon that died left: processes, then directories. */
	for (i = 0; i < nslots; i++)
		slot_sweep((uid_t)(cfg->uid_base + i));
	remove_stale_dirs();
	snprintf(name, sizeof(name), "iris-sandboxd-%ld", cfg->uid_base);
	if (drop_uid && cgroup_init(name))
		log_info("cgroups: memory and pids limits per sandbox");
	else
		log_info("cgroups unavailable: rlimits bound each process");
	return 0;
}

static int
slot_take(void)
{
	long i;

	for (i = 0; i < nslots; i++)
		if (!slots[i]) {
			slots[i] = 1;
			return (int)i;
		}
	return -1;
}

/* Kills every process of a slot's uid that escaped the tree. */
static void
slot_sweep(uid_t uid)
{
	pid_t pid;
	int status;

	if (!drop_uid)
		return;
	if ((pid = fork()) == 0) {
		if (setresuid(uid, uid, uid) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (pid > 0)
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
}

/* --- starting ------------------------------------------------------------- */

static int
make_listener(struct sandbox *sb)
{
	struct sockaddr_un sun;
	char run[PATH_MAX];
	int fd;

	pathf(run, "%s/run", sb->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/kernel.sock", run) >= sizeof(sun.sun_path)) {
		log_warnx("%s: path too long for a socket", run);
		return -1;
	}
	/* 0711: the slot's uid (bwrap) passes through to run/, no more. */
	if (mkdir(sb->dir, 0711) == -1 || mkdir(run, 0700) == -1) {
		log_warn("mkdir %s", run);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 16) == -1) {
		log_warn("kernel socket %s", sun.sun_path);
		if (fd != -1)
			close(fd);
		return -1;
	}
	/* Only the sandbox's uid may reach it (root always can). */
	if (drop_uid && (chown(run, sb->uid, sb->uid) == -1 ||
	    chown(sun.sun_path, sb->uid, sb->uid) == -1)) {
		log_warn("chown %s", run);
		close(fd);
		return -1;
	}
	sb->listener = fd;
	return 0;
}

#define SECCOMP_FD	3	/* where bwrap finds its program (--seccomp) */
#define SECCOMP_FD_ARG	"3"

/* Adds "a b" to argv. */
#define ARG(x)	do { if (argc >= ARGV_MAX - 1) return -1; argv[argc++] = (x); } while (0)
#define ARGV_MAX	160

static int
bwrap_argv(struct sandbox *sb, int preload, struct json_object *env_vars,
    char **argv, char *strs, size_t strsz)
{
	static const char *const etc_files[] = {
		"/etc/alternatives", "/etc/fonts", "/etc/matplotlibrc",
		"/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types",
		"/etc/ssl", "/etc/ca-certificates", "/etc/python3",
		"/etc/python3.11", "/etc/nsswitch.conf", "/etc/gai.conf",
	};
	static const char *const env[][2] = {
		{ "HOME", "/home/user" }, { "USER", "user" },
		{ "PATH", "/usr/local/bin:/usr/bin:/bin" },
		{ "LANG", "C.UTF-8" }, { "MPLBACKEND", "Agg" },
		{ "MPLCONFIGDIR", "/tmp/matplotlib" },
		{ "OPENBLAS_NUM_THREADS", "1" }, { "OMP_NUM_THREADS", "1" },
		{ "MKL_NUM_THREADS", "1" }, { "PYTHONDONTWRITEBYTECODE", "1" },
		{ "PYTHONUNBUFFERED", "1" }, { "TERM", "dumb" },
	};
	char *p = strs, *end = strs + strsz;
	size_t i;
	int argc = 0;

	/* Copies s into strs and returns it, for argv. */
#define SAVE(...) ({ char *_s = p; int _n = snprintf(p, (size_t)(end - p), \
	__VA_ARGS__); if (_n < 0 || _n >= end - p) return -1; p += _n + 1; _s; })

	ARG("bwrap");
	ARG("--unshare-all");
	ARG("--unshare-user");	/* (--unshare-all only tries) */
	ARG("--disable-userns");	/* no namespaces of its own inside */
	ARG("--die-with-parent");
	/* The supervisor is pid 1: user code can neither signal nor stop
	 * it (only handled signals reach a namespace's init), and when it
	 * dies the kernel kills everything else in the sandbox. */
	ARG("--as-pid-1");
	ARG("--new-session");
	ARG("--cap-drop"); ARG("ALL");
	ARG("--seccomp"); ARG(SECCOMP_FD_ARG);	/* no keyrings (seccomp.h) */
	ARG("--uid"); ARG("1000");
	ARG("--gid"); ARG("1000");
	ARG("--hostname"); ARG("sandbox");
	ARG("--ro-bind"); ARG("/usr"); ARG("/usr");
	ARG("--symlink"); ARG("usr/bin"); ARG("/bin");
	ARG("--symlink"); ARG("usr/sbin"); ARG("/sbin");
	ARG("--symlink"); ARG("usr/lib"); ARG("/lib");
	ARG("--symlink"); ARG("usr/lib64"); ARG("/lib64");
	for (i = 0; i < sizeof(etc_files) / sizeof(etc_files[0]); i++) {
		ARG("--ro-bind-try");
		ARG((char *)etc_files[i]);
		ARG((char *)etc_files[i]);
	}
	ARG("--ro-bind"); ARG(SAVE("%s/passwd", passwd_dir)); ARG("/etc/passwd");
	ARG("--ro-bind"); ARG(SAVE("%s/group", passwd_dir)); ARG("/etc/group");
	ARG("--proc"); ARG("/proc");
	ARG("--dev"); ARG("/dev");
	/* Every writable place is capped at the home's size (each counts
	 * against the sandbox's memory too); the rest is read-only. */
	ARG("--size"); ARG(SAVE("%ld", cfg->limits.home_mb * 1024 * 1024));
	ARG("--tmpfs"); ARG("/tmp");
	ARG("--size"); ARG(SAVE("%ld", cfg->limits.home_mb * 1024 * 1024));
	ARG("--tmpfs"); ARG("/dev/shm");
	ARG("--mqueue"); ARG("/dev/mqueue");	/* so a scrub can list them */
	ARG("--perms"); ARG("0700");
	ARG("--size"); ARG(SAVE("%ld", cfg->limits.home_mb * 1024 * 1024));
	ARG("--tmpfs"); ARG("/home/user");
	/* The one user's home is root's too: E2B's code runs as root, and
	 * its clients ask for /root as a context's cwd. */
	ARG("--symlink"); ARG("home/user"); ARG("/root");
	ARG("--ro-bind"); ARG(progs_dir); ARG("/opt/iris");
	/* Read-only: kernels connect to its socket, nothing more. */
	ARG("--ro-bind"); ARG(SAVE("%s/run", sb->dir)); ARG("/run/iris");
	ARG("--remount-ro"); ARG("/");
	ARG("--chdir"); ARG("/home/user");
	ARG("--clearenv");
	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
		ARG("--setenv");
		ARG((char *)env[i][0]);
		ARG((char *)env[i][1]);
	}
	if (env_vars != NULL) {
		json_object_object_foreach(env_vars, k, v) {
			ARG("--setenv");
			ARG(SAVE("%s", k));
			ARG(SAVE("%s", json_object_get_string(v)));
		}
	}
	ARG("--setenv"); ARG("E2B_SANDBOX"); ARG("true");
	/* E2B_SANDBOX_ID comes with each kernel's spawn: recycled, a sandbox
	 * has a new id, and no process's first environment may name the
	 * old one. */
	ARG("/usr/bin/python3");
	ARG("-E");		/* no PYTHON* variables from envVars */
	ARG("-s");		/* no user site directory */
	ARG("/opt/iris/supervisor.py");
	if (preload)
		ARG("--preload");
	argv[argc] = NULL;
#undef SAVE
	return argc;
}

static void
set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };

	setrlimit(resource, &rl);
}


/* In the child: limits, uid, exec.  Never returns. */
static void
child_exec(struct sandbox *sb, int in, int out, int sec, char **argv)
{
	const struct sandbox_limits *lim = &cfg->limits;
	int devnull;

	sigset_t none;

	/* The launcher thread lives as long as the daemon: so do we. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Our blocked and ignored signals must not reach user code. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (sb->cgroup && cgroup_enter(sb->name) == -1)
		_exit(120);
	if (!sb->cgroup)
		set_limit(RLIMIT_AS, (rlim_t)lim->memory_mb * 1024 * 1024);
	set_limit(RLIMIT_NPROC, (rlim_t)lim->procs);
	set_limit(RLIMIT_NOFILE, (rlim_t)lim->nofile);
	set_limit(RLIMIT_FSIZE, (rlim_t)lim->home_mb * 1024 * 1024);
	set_limit(RLIMIT_CORE, 0);
	if (dup2(in, 0) == -1 || dup2(out, 1) == -1 ||
	    (sec == SECCOMP_FD ? fcntl(sec, F_SETFD, 0) :
	    dup2(sec, SECCOMP_FD)) == -1)
		_exit(121);
	if (!cfg->debug && (devnull = open("/dev/null", O_WRONLY)) != -1)
		dup2(devnull, 2);
	closefrom(SECCOMP_FD + 1);
	if (drop_uid && (setgroups(0, NULL) == -1 ||
	    setresgid(sb->uid, sb->uid, sb->uid) == -1 ||
	    setresuid(sb->uid, sb->uid, sb->uid) == -1))
		_exit(122);
	/* bwrap is pid 1 inside: its environment must hold nothing of ours. */
	execve("/usr/bin/bwrap", argv, (char *[]){ "PATH=/usr/bin:/bin", NULL });
	_exit(127);
}

/*
 * The launcher: every container is forked by this one long-lived thread.
 * Parent-death signals (ours, and bwrap's --die-with-parent) fire when
 * the forking *thread* ends; an HTTP connection's thread ends with its
 * request, the launcher only with the daemon.
 */
static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cv;
	int		 state;		/* 0 idle, 1 asked, 2 answered */
	struct sandbox	*sb;
	int		 in, out, sec;
	char		**argv;
	pid_t		 pid;
} launcher = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static void *
launcher_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&launcher.lock);
	for (;;) {
		while (launcher.state != 1)
			pthread_cond_wait(&launcher.cv, &launcher.lock);
		launcher.pid = fork();
		if (launcher.pid == 0)
			child_exec(launcher.sb, launcher.in, launcher.out,
			    launcher.sec, launcher.argv);
		launcher.state = 2;
		pthread_cond_broadcast(&launcher.cv);
	}
	return NULL;
}

/* Forks the container on the launcher thread.  Returns its pid, or -1. */
static pid_t
launch(struct sandbox *sb, int in, int out, int sec, char **argv)
{
	pid_t pid;

	pthread_mutex_lock(&launcher.lock);
	while (launcher.state != 0)
		pthread_cond_wait(&launcher.cv, &launcher.lock);
	launcher.sb = sb;
	launcher.in = in;
	launcher.out = out;
	launcher.sec = sec;
	launcher.argv = argv;
	launcher.state = 1;
	pthread_cond_broadcast(&launcher.cv);
	while (launcher.state != 2)
		pthread_cond_wait(&launcher.cv, &launcher.lock);
	pid = launcher.pid;
	launcher.state = 0;
	pthread_cond_broadcast(&launcher.cv);
	pthread_mutex_unlock(&launcher.lock);
	return pid;
}

/* --- the supervisor's lines --------------------------------------------- */

/*
 * Gets the next line the supervisor wrote into out (cut to outsz - 1).
 * Returns 1, 0 on timeout, or -1 if the supervisor is gone.
 */
static int
sup_line(struct sandbox *sb, char *out, size_t outsz, int timeout_ms)
{
	int64_t deadline = ts_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd pfd = { .fd = sb->sup_out, .events = POLLIN };
	char chunk[4096], *nl;
	size_t n, rest;
	ssize_t r;
	int wait;

	for (;;) {
		if (sb->sup_buf.len > 0 &&
		    (nl = memchr(sb->sup_buf.data, '\n', sb->sup_buf.len))) {
			n = (size_t)(nl - sb->sup_buf.data);
			memcpy(out, sb->sup_buf.data, n < outsz ? n : outsz - 1);
			out[n < outsz ? n : outsz - 1] = '\0';
			rest = sb->sup_buf.len - n - 1;
			memmove(sb->sup_buf.data, nl + 1, rest);
			sb->sup_buf.len = rest;
			return 1;
		}
		if (sb->sup_out == -1)
			return -1;
		wait = (int)(deadline - ts_mono_ms());
		if (poll(&pfd, 1, wait > 0 ? wait : 0) == 0)
			return 0;
		if ((r = read(sb->sup_out, chunk, sizeof(chunk))) == -1 &&
		    errno == EINTR)
			continue;
		if (r <= 0) {
			close(sb->sup_out);
			sb->sup_out = -1;
			return -1;
		}
		/* A "line" longer than the buffer is garbage: drop it. */
		if (buf_append(&sb->sup_buf, chunk, (size_t)r) == -1) {
			buf_reset(&sb->sup_buf);
			log_warnx("sandbox %s: supervisor line too long", sb->id);
		}
	}
}

/* Parses a supervisor line; 1 if its op (and context, if given) match. */
static int
line_is(struct json_object *obj, const char *op, const char *context)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, "op", &v) ||
	    strcmp(json_object_get_string(v), op) != 0)
		return 0;
	if (context == NULL)
		return 1;
	return json_object_object_get_ex(obj, "context", &v) &&
	    strcmp(json_object_get_string(v), context) == 0;
}

static void
note_line(struct sandbox *sb, struct json_object *obj)
{
	if (line_is(obj, "exited", NULL))
		log_debug("sandbox %s: kernel exited: %s", sb->id,
		    json_object_to_json_string(obj));
}

int
sandbox_request(struct sandbox *sb, const char *line, const char *context,
    int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = ts_mono_ms() + timeout_ms;
	struct json_object *obj, *msg;
	char text[SUP_LINE_MAX];
	int rc;

	if (sb->sup_in == -1 || write_all(sb->sup_in, line, strlen(line)) == -1) {
		snprintf(err, errlen, "the sandbox's supervisor is gone");
		return -1;
	}
	for (;;) {
		rc = sup_line(sb, text, sizeof(text),
		    (int)(deadline - ts_mono_ms()));
		if (rc <= 0) {
			snprintf(err, errlen, rc == 0 ? "the sandbox did not "
			    "answer in time" : "the sandbox's supervisor is gone");
			return -1;
		}
		if ((obj = json_tokener_parse(text)) == NULL)
			continue;
		if (line_is(obj, "spawned", context)) {
			json_object_put(obj);
			return 0;
		}
		if (line_is(obj, "error", context)) {
			snprintf(err, errlen, "%s",
			    json_object_object_get_ex(obj, "message", &msg) ?
			    json_object_get_string(msg) : "spawn failed");
			json_object_put(obj);
			return -1;
		}
		note_line(sb, obj);
		json_object_put(obj);
	}
}

int
sandbox_drain(struct sandbox *sb)
{
	struct json_object *obj;
	char text[SUP_LINE_MAX];
	int rc;

	while ((rc = sup_line(sb, text, sizeof(text), 0)) == 1)
		if ((obj = json_tokener_parse(text)) != NULL) {
			note_line(sb, obj);
			json_object_put(obj);
		}
	return rc == -1 ? -1 : 0;
}

/* Waits for the supervisor's "ready".  Returns 0, or -1. */
static int
wait_ready(struct sandbox *sb)
{
	int64_t deadline = ts_mono_ms() + START_TIMEOUT_MS;
	struct json_object *obj;
	char text[SUP_LINE_MAX];
	int ready;

	for (;;) {
		if (sup_line(sb, text, sizeof(text),
		    (int)(deadline - ts_mono_ms())) != 1)
			return -1;
		if ((obj = json_tokener_parse(text)) == NULL)
			continue;
		ready = line_is(obj, "ready", NULL);
		json_object_put(obj);
		if (ready)
			return 0;
	}
}

/* --- lifecycle -------------------------------------------------------------- */

static struct sandbox *
sandbox_new(const char *template_id, int pooled)
{
	unsigned char rnd[32];
	struct sandbox *sb;

	if ((sb = calloc(1, sizeof(*sb))) == NULL)
		return NULL;
	random_id(sb->id);
	memcpy(sb->name, sb->id, sizeof(sb->name));
	snprintf(sb->template_id, sizeof(sb->template_id), "%s", template_id);
	if (crypto_random(rnd, sizeof(rnd)) == -1)
		fatalx("no randomness");
	crypto_hex(rnd, sizeof(rnd), sb->token);
	snprintf(sb->dir, sizeof(sb->dir), "%s/sandboxes/%s", cfg->state_dir,
	    sb->name);
	sb->pid = -1;
	sb->slot = -1;
	sb->sup_in = sb->sup_out = sb->listener = -1;
	sb->pooled = pooled;
	sb->refs = 1;
	sb->started_ms = ts_now_ms();
	sb->end_ms = INT64_MAX;
	pthread_mutex_init(&sb->lock, NULL);
	buf_init(&sb->sup_buf, 64 * 1024);
	return sb;
}

/* Kills the tree and frees the slot; the struct stays for its holders. */
static void
destroy(struct sandbox *sb)
{
	int status;

	kernel_close_all(sb);
	if (sb->pid > 0) {
		kill(sb->pid, SIGKILL);
		while (waitpid(sb->pid, &status, 0) == -1 && errno == EINTR)
			;
		sb->pid = -1;
	}
	if (sb->cgroup)
		cgroup_destroy(sb->name);
	if (sb->slot >= 0) {
		slot_sweep(sb->uid);
		pthread_mutex_lock(&reg_lock);
		slots[sb->slot] = 0;
		pthread_mutex_unlock(&reg_lock);
		sb->slot = -1;
	}
	if (sb->sup_in != -1)
		close(sb->sup_in);
	if (sb->sup_out != -1)
		close(sb->sup_out);
	if (sb->listener != -1)
		close(sb->listener);
	sb->sup_in = sb->sup_out = sb->listener = -1;
	remove_dir(sb->dir);
}

/* The one child of pid (host view), or -1: bwrap's, the supervisor. */
static pid_t
only_child(pid_t pid)
{
	pid_t kids[2];
	size_t n = 0;

	return proc_children(pid, kids, &n, 2) == 1 ? kids[0] : -1;
}

static int
spawn(struct sandbox *sb, int preload, struct json_object *env_vars)
{
	char *argv[ARGV_MAX], strs[32768];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, sec;

	sb->uid = drop_uid ? (uid_t)(cfg->uid_base + sb->slot) : geteuid();
	if (make_listener(sb) == -1)
		return -1;
	if (bwrap_argv(sb, preload, env_vars, argv, strs, sizeof(strs)) == -1) {
		log_warnx("sandbox %s: too many settings for bwrap", sb->id);
		return -1;
	}
	if (drop_uid)
		sb->cgroup = cgroup_create(sb->name, cfg->limits.memory_mb *
		    1024 * 1024, cfg->limits.procs) == 0;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1) {
		log_warn("pipe");
		goto fail;
	}
	if ((sec = seccomp_program_fd()) == -1)
		goto fail;
	sb->pid = launch(sb, in[0], out[1], sec, argv);
	close(sec);
	if (sb->pid == -1) {
		log_warn("fork");
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	sb->sup_in = in[1];
	sb->sup_out = out[0];
	if (wait_ready(sb) == -1) {
		log_warnx("sandbox %s: the supervisor did not start", sb->id);
		return -1;
	}
	sb->sup_pid = only_child(sb->pid);
	sb->recyclable = preload && env_vars == NULL && sb->cgroup &&
	    sb->sup_pid > 0;
	return 0;
fail:
	if (in[0] != -1) {
		close(in[0]);
		close(in[1]);
	}
	if (out[0] != -1) {
		close(out[0]);
		close(out[1]);
	}
	return -1;
}

/*
 * 1 if the host has too little memory left for another sandbox: less
 * available than one sandbox's limit, or than 1/16 of the host (the page
 * cache and everyone else need room too).
 */
static int
memory_low(void)
{
	long total, avail, reserve;

	if (hostmem_read(&total, &avail) == -1)
		return 0;
	reserve = total / 16 > cfg->limits.memory_mb ? total / 16 :
	    cfg->limits.memory_mb;
	return avail < reserve;
}

struct sandbox *
sandbox_start(const char *template_id, int preload, int pooled,
    struct json_object *env_vars, enum sandbox_err *err)
{
	struct sandbox *sb;

	/* Idle recycled sandboxes give their memory back first. */
	while (memory_low() && evict_recycled() == 0)
		;
	if (memory_low()) {
		log_warnx("the host is low on memory: no new sandbox");
		*err = pooled ? SANDBOX_FAILED : SANDBOX_LIMIT;
		return NULL;
	}
	if ((sb = sandbox_new(template_id, pooled)) == NULL) {
		*err = SANDBOX_FAILED;
		return NULL;
	}
	pthread_mutex_lock(&reg_lock);
	if (!pooled && sandbox_count_locked() >= cfg->max_live) {
		pthread_mutex_unlock(&reg_lock);
		*err = SANDBOX_LIMIT;
		sandbox_free(sb);
		return NULL;
	}
	if ((sb->slot = slot_take()) == -1) {
		pthread_mutex_unlock(&reg_lock);
		sandbox_free(sb);
		/* Recycled sandboxes wait in slots: the oldest gives its up. */
		if (evict_recycled() == 0)
			return sandbox_start(template_id, preload, pooled,
			    env_vars, err);
		*err = pooled ? SANDBOX_FAILED : SANDBOX_LIMIT;
		return NULL;
	}
	/* Registered now so that the cap counts it while it starts. */
	sb->next = registry;
	registry = sb;
	sb->refs++;
	pthread_mutex_unlock(&reg_lock);

	if (spawn(sb, preload, env_vars) == -1) {
		sandbox_kill(sb);
		sandbox_put(sb);
		*err = SANDBOX_FAILED;
		return NULL;
	}
	log_info("sandbox %s started (%s%s, uid %u)", sb->id, template_id,
	    preload ? ", data stack preloaded" : "", (unsigned)sb->uid);
	*err = SANDBOX_OK;
	return sb;
}

/* Claimed, live sandboxes; the caller holds reg_lock. */
static long
sandbox_count_locked(void)
{
	struct sandbox *sb;
	long n = 0;

	for (sb = registry; sb; sb = sb->next)
		if (!sb->pooled)
			n++;
	return n;
}

static void
sandbox_free(struct sandbox *sb)
{
	kernel_free_all(sb);
	json_object_put(sb->metadata);
	buf_release(&sb->sup_buf);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

int
sandbox_claim(struct sandbox *sb, int timeout_s, struct json_object *metadata,
    const char *group, int secure, enum sandbox_err *err)
{
	pthread_mutex_lock(&reg_lock);
	/* One started for this client already counts; a pooled one not yet. */
	if (sb->pooled && sandbox_count_locked() >= cfg->max_live) {
		pthread_mutex_unlock(&reg_lock);
		json_object_put(metadata);
		*err = SANDBOX_LIMIT;
		return -1;
	}
	sb->pooled = 0;
	sb->recycled = 0;
	sb->secure = secure;
	snprintf(sb->group, sizeof(sb->group), "%s", group ? group : "");
	sb->started_ms = ts_now_ms();
	sb->end_ms = sb->started_ms + (int64_t)timeout_s * 1000;
	json_object_put(sb->metadata);
	sb->metadata = metadata;
	pthread_mutex_unlock(&reg_lock);
	*err = SANDBOX_OK;
	return 0;
}

struct sandbox *
sandbox_find(const char *id)
{
	struct sandbox *sb;

	pthread_mutex_lock(&reg_lock);
	for (sb = registry; sb; sb = sb->next)
		if (!sb->pooled && strcmp(sb->id, id) == 0) {
			sb->refs++;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	return sb;
}

/* 1 if sb is offered and may go to group (a recycled one: its own only). */
static int
takeable(const struct sandbox *sb, const char *template_id,
    const char *group, int recycled)
{
	return sb->pooled == 1 && sb->offered && !sb->killed &&
	    sb->recycled == recycled &&
	    strcmp(sb->template_id, template_id) == 0 &&
	    (!recycled || strcmp(sb->group, group) == 0);
}

/* The first takeable one, reg_lock held; NULL if none. */
static struct sandbox *
find_takeable(const char *template_id, const char *group, int recycled)
{
	struct sandbox *sb;

	for (sb = registry; sb; sb = sb->next)
		if (takeable(sb, template_id, group, recycled))
			return sb;
	return NULL;
}

/* 1 if a sandbox of group is being scrubbed; reg_lock held. */
static int
scrubbing_for(const char *group)
{
	struct sandbox *sb;

	for (sb = registry; sb; sb = sb->next)
		if (sb->retiring && !sb->killed && strcmp(sb->group, group) == 0)
			return 1;
	return 0;
}

/* Waits on recycled_cv until deadline (monotonic ms); reg_lock held. */
static void
wait_offered(int64_t deadline)
{
	int64_t ms = deadline - ts_mono_ms();
	struct timespec until;

	if (ms <= 0)
		return;
	ts_realtime_in(ms, &until);
	pthread_cond_timedwait(&recycled_cv, &reg_lock, &until);
}

struct sandbox *
sandbox_pool_take(const char *template_id, const char *group, int wait_ms,
    int *recycled)
{
	int64_t deadline = ts_mono_ms() + wait_ms;
	struct sandbox *sb;

	if (group == NULL)
		group = "";
	pthread_mutex_lock(&reg_lock);
	/*
	 * The group's own recycled sandboxes first, even one still being
	 * scrubbed (milliseconds): the pool is for everyone, and refilling
	 * it costs a sandbox start.
	 */
	while ((sb = find_takeable(template_id, group, 1)) == NULL &&
	    group[0] && scrubbing_for(group) && ts_mono_ms() < deadline)
		wait_offered(deadline);
	*recycled = sb != NULL;
	if (sb == NULL)
		sb = find_takeable(template_id, group, 0);
	if (sb) {
		sb->pooled = 2;		/* out of the pool: no one else takes it */
		sb->refs++;
		stats.recycled_taken += *recycled;
	}
	pthread_mutex_unlock(&reg_lock);
	return sb;
}

void
sandbox_put(struct sandbox *sb)
{
	int last;

	if (sb == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	last = --sb->refs == 0;
	pthread_mutex_unlock(&reg_lock);
	if (last)
		sandbox_free(sb);
}

void
sandbox_kill(struct sandbox *sb)
{
	struct sandbox **pp;
	int first;

	pthread_mutex_lock(&reg_lock);
	first = !sb->killed;
	sb->killed = 1;
	if (sb->retiring)	/* a create may be waiting for it */
		pthread_cond_broadcast(&recycled_cv);
	for (pp = &registry; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	if (!first)
		return;
	sandbox_lock(sb);
	destroy(sb);
	sandbox_unlock(sb);
	log_info("sandbox %s killed", sb->id);
	sandbox_put(sb);	/* the registry's reference */
}

/* Takes references to the sandboxes that match, for work without the lock. */
static size_t
collect(struct sandbox ***out, int (*match)(struct sandbox *))
{
	struct sandbox *sb, **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&reg_lock);
	for (sb = registry; sb; sb = sb->next) {
		if (!match(sb))
			continue;
		if (n == cap) {
			struct sandbox **p;

			cap = cap ? cap * 2 : 16;
			if ((p = realloc(list, cap * sizeof(*p))) == NULL)
				break;
			list = p;
		}
		sb->refs++;
		list[n++] = sb;
	}
	pthread_mutex_unlock(&reg_lock);
	*out = list;
	return n;
}

static int
match_all(struct sandbox *sb)
{
	(void)sb;
	return 1;
}

static int
match_claimed(struct sandbox *sb)
{
	return !sb->pooled;
}

/* Over its lifetime, or its container is gone. */
static int
match_reapable(struct sandbox *sb)
{
	int status;

	if (sb->pid > 0 && waitpid(sb->pid, &status, WNOHANG) == sb->pid) {
		log_warnx("sandbox %s: its container exited (%s %d)", sb->id,
		    WIFSIGNALED(status) ? "signal" : "status",
		    WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status));
		sb->pid = -1;
		return 1;
	}
	if (sb->recycled && sb->offered) {	/* no one of its group came */
		if (sb->pooled != 1 ||
		    ts_mono_ms() - sb->offered_ms < RECYCLED_IDLE_MS)
			return 0;
		sb->pooled = 2;	/* taken by the reaper: no create gets it */
		return 1;
	}
	return !sb->pooled && ts_now_ms() >= sb->end_ms;
}

static void
kill_matching(int (*match)(struct sandbox *))
{
	struct sandbox **list;
	size_t i, n = collect(&list, match);

	for (i = 0; i < n; i++) {
		sandbox_kill(list[i]);
		sandbox_put(list[i]);
	}
	free(list);
}

static int
remove_entry(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void
sandbox_kill_all(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	kill_matching(match_all);
	/* Then what we made at start: nothing of ours is left behind (the
	 * node kernel's packages are a tree of ours, no sandbox's). */
	if (pathf(path, "%s/node", progs_dir) == 0)
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if ((d = opendir(progs_dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    pathf(path, "%s/%s", progs_dir, de->d_name) == 0)
				unlink(path);
		closedir(d);
	}
	rmdir(progs_dir);
	if (pathf(path, "%s/passwd", passwd_dir) == 0)
		unlink(path);
	if (pathf(path, "%s/group", passwd_dir) == 0)
		unlink(path);
	rmdir(passwd_dir);
	if (pathf(path, "%s/sandboxes", cfg->state_dir) == 0)
		rmdir(path);
	rmdir(cfg->state_dir);
	cgroup_release();
}

void
sandbox_reap(void (*recycle)(struct sandbox *))
{
	struct sandbox **list;
	size_t i, n = collect(&list, match_reapable);

	for (i = 0; i < n; i++) {
		/* A claimed one at the end of its life may serve again. */
		if (recycle && !list[i]->pooled)
			sandbox_end(list[i], recycle);
		else
			sandbox_kill(list[i]);
		sandbox_put(list[i]);
	}
	free(list);
}

void
sandbox_foreach(void (*fn)(struct sandbox *, void *), void *arg)
{
	struct sandbox **list;
	size_t i, n = collect(&list, match_claimed);

	for (i = 0; i < n; i++) {
		fn(list[i], arg);
		sandbox_put(list[i]);
	}
	free(list);
}

long
sandbox_count(void)
{
	long n;

	pthread_mutex_lock(&reg_lock);
	n = sandbox_count_locked();
	pthread_mutex_unlock(&reg_lock);
	return n;
}

long
sandbox_pool_count(void)
{
	struct sandbox *sb;
	long n = 0;

	pthread_mutex_lock(&reg_lock);
	for (sb = registry; sb; sb = sb->next)
		if (sb->pooled == 1 && !sb->recycled && !sb->retiring)
			n++;
	pthread_mutex_unlock(&reg_lock);
	return n;
}

long
sandbox_free_slots(void)
{
	long i, n = 0;

	pthread_mutex_lock(&reg_lock);
	for (i = 0; i < nslots; i++)
		n += !slots[i];
	pthread_mutex_unlock(&reg_lock);
	return n;
}

void
sandbox_get_stats(struct sandbox_stats *out)
{
	struct sandbox *sb;

	pthread_mutex_lock(&reg_lock);
	*out = stats;
	out->pooled = out->recycled_ready = out->scrubbing = 0;
	for (sb = registry; sb; sb = sb->next) {
		out->pooled += sb->pooled == 1 && !sb->recycled &&
		    !sb->retiring && sb->offered;
		out->recycled_ready += sb->recycled && sb->offered &&
		    sb->pooled == 1;
		out->scrubbing += sb->retiring;
	}
	pthread_mutex_unlock(&reg_lock);
}

/* Kills the recycled sandbox offered longest ago.  0, or -1 if none. */
static int
evict_recycled(void)
{
	struct sandbox *sb, *oldest = NULL;

	pthread_mutex_lock(&reg_lock);
	for (sb = registry; sb; sb = sb->next)
		if (sb->recycled && sb->offered && sb->pooled == 1 &&
		    (oldest == NULL || sb->offered_ms < oldest->offered_ms))
			oldest = sb;
	if (oldest) {
		oldest->pooled = 2;	/* no one takes it meanwhile */
		oldest->refs++;
	}
	pthread_mutex_unlock(&reg_lock);
	if (oldest == NULL)
		return -1;
	sandbox_kill(oldest);
	sandbox_put(oldest);
	return 0;
}

/* --- recycling ------------------------------------------------------------ */

int
sandbox_retire(struct sandbox *sb)
{
	int ok;

	pthread_mutex_lock(&reg_lock);
	ok = sb->recyclable && sb->group[0] && !sb->killed && !sb->retiring &&
	    sb->pooled != 1 && sb->pid > 0 &&
	    strlen(sb->group) < SANDBOX_GROUP_LEN;	/* not cut short */
	if (ok) {
		/* Unknown by id, not counted, not takeable: in limbo. */
		sb->retiring = 1;
		sb->pooled = 1;
		sb->offered = 0;
		sb->refs++;		/* the recycler's */
	}
	pthread_mutex_unlock(&reg_lock);
	if (!ok)
		return -1;
	/* Wake every relay blocked on its kernels: they let go of it. */
	sandbox_lock(sb);
	kernel_close_all(sb);
	sandbox_unlock(sb);
	return 0;
}

void
sandbox_end(struct sandbox *sb, void (*recycle)(struct sandbox *))
{
	if (sandbox_retire(sb) == 0)
		recycle(sb);
	else
		sandbox_kill(sb);
}

/* Waits until only the registry and the recycler hold sb. */
static int
drain_refs(struct sandbox *sb)
{
	int64_t deadline = ts_mono_ms() + DRAIN_REFS_MS;
	struct timespec nap = { 0, 1000000L };
	int refs;

	for (;;) {
		pthread_mutex_lock(&reg_lock);
		refs = sb->refs;
		pthread_mutex_unlock(&reg_lock);
		if (refs <= 2)
			return 0;
		if (ts_mono_ms() >= deadline)
			return -1;
		nanosleep(&nap, NULL);
	}
}

/* Accepts and drops whatever waits on the kernel socket (a run's). */
static void
drain_listener(struct sandbox *sb)
{
	struct pollfd pfd = { .fd = sb->listener, .events = POLLIN };
	int fd;

	while (poll(&pfd, 1, 0) == 1 &&
	    (fd = accept4(sb->listener, NULL, NULL, SOCK_CLOEXEC)) != -1)
		close(fd);
}

/* Sends the scrub and reads its answer.  0 if it says ok; else -1, err. */
static int
scrub_inside(struct sandbox *sb, char *err, size_t errlen)
{
	static const char line[] = "{\"op\":\"scrub\"}\n";
	int64_t deadline = ts_mono_ms() + SCRUB_TIMEOUT_MS;
	struct json_object *obj, *v;
	char text[SUP_LINE_MAX];
	int rc, ok;

	if (sb->sup_in == -1 || write_all(sb->sup_in, line, strlen(line)) ==
	    -1) {
		snprintf(err, errlen, "the supervisor is gone");
		return -1;
	}
	for (;;) {
		if ((rc = sup_line(sb, text, sizeof(text),
		    (int)(deadline - ts_mono_ms()))) != 1) {
			snprintf(err, errlen, rc == 0 ? "no answer in time" :
			    "the supervisor is gone");
			return -1;
		}
		if ((obj = json_tokener_parse(text)) == NULL)
			continue;
		if (!line_is(obj, "scrubbed", NULL)) {
			json_object_put(obj);
			continue;
		}
		ok = json_object_object_get_ex(obj, "ok", &v) &&
		    json_object_get_boolean(v);
		snprintf(err, errlen, "%s", json_object_object_get_ex(obj,
		    "message", &v) ? json_object_get_string(v) : "not ok");
		json_object_put(obj);
		return ok ? 0 : -1;
	}
}

/*
 * What the daemon checks from outside, trusting nothing the sandbox says:
 * its cgroup holds exactly the outer bwrap and the supervisor, the same
 * supervisor as at start, untraced and running.
 */
static int
scrub_outside(struct sandbox *sb, char *err, size_t errlen)
{
	char v[64];
	pid_t pids[4];
	int n = cgroup_procs(sb->name, pids, 4);

	if (n != 2 || !((pids[0] == sb->pid && pids[1] == sb->sup_pid) ||
	    (pids[1] == sb->pid && pids[0] == sb->sup_pid))) {
		snprintf(err, errlen, "its cgroup holds %d processes", n);
		return -1;
	}
	if (only_child(sb->pid) != sb->sup_pid) {
		snprintf(err, errlen, "the supervisor changed");
		return -1;
	}
	if (proc_status(sb->sup_pid, "TracerPid", v, sizeof(v)) == -1 ||
	    strcmp(v, "0") != 0) {
		snprintf(err, errlen, "the supervisor is traced");
		return -1;
	}
	if (proc_status(sb->sup_pid, "State", v, sizeof(v)) == -1 ||
	    (v[0] != 'S' && v[0] != 'R')) {
		snprintf(err, errlen, "the supervisor is not running (%s)", v);
		return -1;
	}
	return 0;
}

/*
 * Gives sb the identity of a new sandbox.  Its directory is renamed after
 * the new id: inside, /proc/self/mountinfo names the source of /run/iris
 * by its path now, so no earlier id shows.  Returns 0, or -1.
 */
static int
renew(struct sandbox *sb, char *err, size_t errlen)
{
	char dir[PATH_MAX], id[SANDBOX_ID_LEN + 1];
	unsigned char rnd[32];

	random_id(id);
	if (pathf(dir, "%s/sandboxes/%s", cfg->state_dir, id) == -1 ||
	    rename(sb->dir, dir) == -1) {
		snprintf(err, errlen, "its directory could not be renamed");
		return -1;
	}
	memcpy(sb->dir, dir, sizeof(sb->dir));
	memcpy(sb->id, id, sizeof(sb->id));
	if (crypto_random(rnd, sizeof(rnd)) == -1)
		fatalx("no randomness");
	crypto_hex(rnd, sizeof(rnd), sb->token);
	crypto_wipe(rnd, sizeof(rnd));
	json_object_put(sb->metadata);
	sb->metadata = NULL;
	sb->started_ms = ts_now_ms();
	sb->end_ms = INT64_MAX;
	return 0;
}

int
sandbox_scrub(struct sandbox *sb, char *err, size_t errlen)
{
	char old[SANDBOX_ID_LEN + 1];
	int rc = -1;

	memcpy(old, sb->id, sizeof(old));
	if (drain_refs(sb) == -1) {
		snprintf(err, errlen, "still in use");
		goto done;
	}
	sandbox_lock(sb);
	kernel_free_all(sb);
	if (!sb->killed && scrub_inside(sb, err, errlen) == 0 &&
	    scrub_outside(sb, err, errlen) == 0) {
		drain_listener(sb);
		rc = renew(sb, err, errlen);
	}
	sandbox_unlock(sb);
done:
	pthread_mutex_lock(&reg_lock);
	if (rc == 0)
		stats.scrubs++;
	else
		stats.scrub_failures++;
	pthread_mutex_unlock(&reg_lock);
	if (rc == 0)
		log_info("sandbox %s scrubbed: offered again as %s", old,
		    sb->id);
	else
		log_warnx("sandbox %s: scrub failed (%s): destroyed", old, err);
	return rc;
}

void
sandbox_offer_recycled(struct sandbox *sb)
{
	pthread_mutex_lock(&reg_lock);
	sb->retiring = 0;
	sb->recycled = 1;
	sb->offered = 1;
	sb->offered_ms = ts_mono_ms();
	pthread_cond_broadcast(&recycled_cv);
	pthread_mutex_unlock(&reg_lock);
}

void
sandbox_set_timeout(struct sandbox *sb, long seconds)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds > cfg->max_timeout_s)
		seconds = cfg->max_timeout_s;
	pthread_mutex_lock(&reg_lock);
	sb->end_ms = ts_now_ms() + (int64_t)seconds * 1000;
	pthread_mutex_unlock(&reg_lock);
}

void
sandbox_extend(struct sandbox *sb, long seconds)
{
	int64_t end;

	if (seconds > cfg->max_timeout_s)
		seconds = cfg->max_timeout_s;
	end = ts_now_ms() + (int64_t)seconds * 1000;
	pthread_mutex_lock(&reg_lock);
	if (end > sb->end_ms)
		sb->end_ms = end;
	pthread_mutex_unlock(&reg_lock);
}

const char *
sandbox_id(const struct sandbox *sb)
{
	return sb->id;
}

const char *
sandbox_cgroup(const struct sandbox *sb)
{
	return sb->name;
}

const char *
sandbox_template(const struct sandbox *sb)
{
	return sb->template_id;
}

const char *
sandbox_token(const struct sandbox *sb)
{
	return sb->token;
}

int64_t
sandbox_started_ms(const struct sandbox *sb)
{
	return sb->started_ms;
}

int64_t
sandbox_end_ms(const struct sandbox *sb)
{
	int64_t end;

	pthread_mutex_lock(&reg_lock);
	end = sb->end_ms;
	pthread_mutex_unlock(&reg_lock);
	return end;
}

const struct json_object *
sandbox_metadata(const struct sandbox *sb)
{
	return sb->metadata;
}

const struct sandbox_limits *
sandbox_limits(void)
{
	return &cfg->limits;
}

void
sandbox_offer(struct sandbox *sb)
{
	pthread_mutex_lock(&reg_lock);
	sb->offered = 1;
	pthread_mutex_unlock(&reg_lock);
}

int
sandbox_killed(const struct sandbox *sb)
{
	return sb->killed;
}

int
sandbox_gone(const struct sandbox *sb)
{
	int gone;

	pthread_mutex_lock(&reg_lock);
	gone = sb->killed || sb->retiring;
	pthread_mutex_unlock(&reg_lock);
	return gone;
}

uid_t
sandbox_uid(const struct sandbox *sb)
{
	return sb->uid;
}

/* CPU ticks of every process in sb's group; its supervisor's with what
 * it reaped (the kernels that ended). */
static long long
group_ticks(const struct sandbox *sb)
{
	pid_t pids[1024];
	long long total = 0, t;
	int n, i;

	if (!sb->cgroup || (n = cgroup_procs(sb->name, pids, 1024)) < 0) {
		n = 1;			/* no group: the supervisor's tree */
		pids[0] = sb->sup_pid;
	}
	for (i = 0; i < n && i < 1024; i++)
		if ((t = proc_cpu_ticks(pids[i], pids[i] == sb->sup_pid)) > 0)
			total += t;
	return total;
}

int
sandbox_metrics(struct sandbox *sb, int cpus, struct sandbox_metrics *out)
{
	struct cgroup_memory mem;
	struct statfs fs;
	long long ticks;
	int64_t now = ts_now_ms(), since;
	long hz = sysconf(_SC_CLK_TCK);
	int root, home;

	memset(out, 0, sizeof(*out));
	if ((root = sandbox_root_fd(sb)) == -1)
		return -1;
	home = openat(root, "home/user", O_PATH | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	close(root);
	if (home != -1) {
		if (fstatfs(home, &fs) == 0) {
			out->disk_total = (long long)fs.f_blocks * fs.f_frsize;
			out->disk_used = (long long)(fs.f_blocks - fs.f_bfree) *
			    fs.f_frsize;
		}
		close(home);
	}
	if (cgroup_memory(sb->name, &mem) == 0) {
		out->mem_used = mem.used;
		out->mem_cache = mem.cache;
	}
	out->mem_total = (long long)cfg->limits.memory_mb << 20;
	ticks = group_ticks(sb);
	pthread_mutex_lock(&sb->lock);
	since = sb->cpu_ms ? sb->cpu_ms : sb->started_ms;
	if (now > since && hz > 0 && cpus > 0)
		out->cpu_used_pct = (double)(ticks - (sb->cpu_ms ? sb->cpu_ticks :
		    0)) * 1000.0 / (double)hz / (double)(now - since) /
		    (double)cpus * 100.0;
	sb->cpu_ticks = ticks;
	sb->cpu_ms = now;
	pthread_mutex_unlock(&sb->lock);
	if (out->cpu_used_pct < 0)
		out->cpu_used_pct = 0;
	if (out->cpu_used_pct > 100)
		out->cpu_used_pct = 100;
	return 0;
}

int
sandbox_secure(const struct sandbox *sb)
{
	return sb->secure;
}

int
sandbox_root_fd(const struct sandbox *sb)
{
	char path[64];
	int fd;

	if (sb->sup_pid <= 0 || sb->pid <= 0) {
		errno = ESRCH;
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)sb->sup_pid);
	if ((fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		errno = ESRCH;
		return -1;
	}
	/* Still bwrap's only child (bwrap is ours, not yet reaped, and forks
	 * no other): the pid was not reused, the root is the sandbox's. */
	if (only_child(sb->pid) != sb->sup_pid) {
		close(fd);
		errno = ESRCH;
		return -1;
	}
	return fd;
}

void
sandbox_lock(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
}

void
sandbox_unlock(struct sandbox *sb)
{
	pthread_mutex_unlock(&sb->lock);
}

int
sandbox_kernel_listener(const struct sandbox *sb)
{
	return sb->listener;
}

struct context **
sandbox_contexts(struct sandbox *sb)
{
	return &sb->contexts;
}
