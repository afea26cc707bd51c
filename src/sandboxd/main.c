/*
 * iris-sandboxd: a local, E2B-compatible sandbox provider.  Runs in the
 * foreground, logs to stderr, serves the control and sandbox planes on
 * one loopback port; SIGTERM or SIGINT kills every sandbox and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/envconf.h"
#include "common/hostmem.h"
#include "common/log.h"
#include "sandboxd/api.h"
#include "sandboxd/http.h"
#include "sandboxd/pool.h"
#include "sandboxd/sandbox.h"

#define MAX_BODY	(16 << 20)	/* as E2B's API */

struct settings {
	long		 port;
	const char	*addr;
	const char	*key_file;
	const char	*state_dir;
	const char	*progs_dir;
	long		 max_live;
	long		 pool;
	long		 pool_max;
	long		 memory_mb;
	long		 procs;
	long		 home_mb;
	long		 output_bytes;
	long		 max_timeout;
	long		 uid_base;
	long		 verbose;
};

static const struct envconf table[] = {
	{ "IRIS_SANDBOXD_PORT", ENVCONF_LONG, offsetof(struct settings, port),
	  "49999", 1, 65535, "port of both planes" },
	{ "IRIS_SANDBOXD_ADDR", ENVCONF_STRING,
	  offsetof(struct settings, addr), "127.0.0.1", 0, 0,
	  "IPv4 address to listen on" },
	{ "IRIS_SANDBOXD_API_KEY_FILE", ENVCONF_STRING,
	  offsetof(struct settings, key_file), "./var/sandboxd-api-key", 0, 0,
	  "file holding the API key (e2b_ and hex digits)" },
	{ "IRIS_SANDBOXD_DIR", ENVCONF_STRING,
	  offsetof(struct settings, state_dir), NULL, 0, 0,
	  "state directory (default /run/iris-sandboxd-PORT as root, "
	  "else ./var/sandboxd)" },
	{ "IRIS_SANDBOX_PROGRAMS", ENVCONF_STRING,
	  offsetof(struct settings, progs_dir), NULL, 0, 0,
	  "the sandbox/ directory (default: next to this program)" },
	{ "IRIS_SANDBOX_MAX", ENVCONF_LONG,
	  offsetof(struct settings, max_live), "0", 0, 900,
	  "live sandboxes at most, then 429 (0: one per 256 MiB of 3/4 of "
	  "the host's memory, 4 to 900)" },
	{ "IRIS_SANDBOX_POOL", ENVCONF_LONG, offsetof(struct settings, pool),
	  "2", 0, 64, "pre-started Python sandboxes kept when idle" },
	{ "IRIS_SANDBOX_POOL_MAX", ENVCONF_LONG,
	  offsetof(struct settings, pool_max), "0", 0, 256,
	  "pre-started sandboxes at most, under demand (0: one per 160 MiB "
	  "of 1/8 of the host's memory, at least IRIS_SANDBOX_POOL, at most "
	  "64; none if IRIS_SANDBOX_POOL is 0)" },
	{ "IRIS_SANDBOX_MEMORY_MB", ENVCONF_LONG,
	  offsetof(struct settings, memory_mb), "1024", 64, 1 << 20,
	  "memory per sandbox, MiB" },
	{ "IRIS_SANDBOX_PROCS", ENVCONF_LONG,
	  offsetof(struct settings, procs), "256", 16, 1 << 16,
	  "processes per sandbox" },
	{ "IRIS_SANDBOX_HOME_MB", ENVCONF_LONG,
	  offsetof(struct settings, home_mb), "512", 1, 1 << 20,
	  "size of /home/user, MiB" },
	{ "IRIS_SANDBOX_OUTPUT_BYTES", ENVCONF_LONG,
	  offsetof(struct settings, output_bytes), "1048576", 1024, 1L << 30,
	  "output per stream per execution, bytes (then cut)" },
	{ "IRIS_SANDBOX_MAX_TIMEOUT", ENVCONF_LONG,
	  offsetof(struct settings, max_timeout), "3600", 1, 86400 * 30,
	  "longest sandbox lifetime, seconds" },
	{ "IRIS_SANDBOX_UID_BASE", ENVCONF_LONG,
	  offsetof(struct settings, uid_base), "0", 0, 2000000000,
	  "first host uid of the sandbox slots (0: 1000000 + 1000 * port)" },
	{ "IRIS_VERBOSE", ENVCONF_LONG, offsetof(struct settings, verbose),
	  "0", 0, 1, "debug logging, and sandboxes' stderr to ours" },
};

#define NTABLE	(sizeof(table) / sizeof(table[0]))

/* Reads the key: "e2b_" and lowercase hex, as E2B's SDKs require. */
static int
read_key(const char *path, char *key, size_t keysz)
{
	size_t n, i;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	r = read(fd, key, keysz - 1);
	close(fd);
	if (r <= 0)
		return -1;
	n = (size_t)r;
	while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
		n--;
	key[n] = '\0';
	if (n < 4 + 16 || strncmp(key, "e2b_", 4) != 0)
		return -1;
	for (i = 4; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') ||
		    (key[i] >= 'a' && key[i] <= 'f')))
			return -1;
	return 0;
}

/* The sandbox/ directory installed next to the executable. */
static const char *
default_progs(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return NULL;
	exe[n] = '\0';
	snprintf(dir, sizeof(dir), "%s/sandbox", dirname(exe));
	return dir;
}

/*
 * Defaults from the host's memory: a sandbox idles at ~60-100 MiB (PSS,
 * bench/capacity) and may use up to IRIS_SANDBOX_MEMORY_MB, so 256 MiB a
 * live one over 3/4 of the host, and 160 MiB a pooled one over 1/8.
 */
static void
size_from_memory(struct settings *st)
{
	long total, avail;

	hostmem_read(&total, &avail);
	if (st->max_live == 0)
		st->max_live = hostmem_count(total, 3, 4, 256, 4, 900);
	if (st->pool_max == 0 && st->pool > 0)	/* POOL=0: no pool at all */
		st->pool_max = hostmem_count(total, 1, 8, 160, st->pool, 64);
	if (st->pool_max < st->pool)
		st->pool_max = st->pool;
}

static long
ncores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? n : 1;
}

static volatile sig_atomic_t quitting;

static void *
reaper(void *arg)
{
	struct timespec second = { 1, 0 };

	(void)arg;
	while (!quitting) {
		nanosleep(&second, NULL);
		sandbox_reap(pool_recycle);
	}
	return NULL;
}

int
main(int argc, char *argv[] __attribute__((unused)))
{
	static struct settings st;
	static struct sandbox_config sc;
	static struct api_config ac;
	struct pool_config pc;
	static char key[256], progs[PATH_MAX];
	struct http_server *srv;
	struct api *api;
	pthread_t reaper_thread;
	sigset_t sigs;
	char err[256];
	int sig;

	log_init("iris-sandboxd", 0);
	if (argc > 1) {
		fprintf(stderr, "usage: iris-sandboxd\nSettings, from the "
		    "environment:\n");
		envconf_usage(stderr, table, NTABLE);
		return 2;
	}
	if (envconf_load(&st, table, NTABLE, NULL, err, sizeof(err)) == -1)
		fatalx("%s", err);
	log_init("iris-sandboxd", (int)st.verbose);
	if (read_key(st.key_file, key, sizeof(key)) == -1)
		fatalx("IRIS_SANDBOXD_API_KEY_FILE %s: missing, or not e2b_ "
		    "followed by at least 16 lowercase hex digits", st.key_file);
	if (st.progs_dir == NULL && (st.progs_dir = default_progs()) == NULL)
		fatalx("cannot find the sandbox/ directory; set "
		    "IRIS_SANDBOX_PROGRAMS");
	if (realpath(st.progs_dir, progs) == NULL ||
	    access("/usr/bin/bwrap", X_OK) == -1)
		fatal("%s or /usr/bin/bwrap", st.progs_dir);
	if (st.uid_base == 0)
		st.uid_base = 1000000 + 1000 * st.port;
	size_from_memory(&st);
	/* Under /run as root: every slot's uid can pass through it. */
	if (st.state_dir == NULL) {
		static char dir[64];

		if (geteuid() == 0)
			snprintf(dir, sizeof(dir), "/run/iris-sandboxd-%ld",
			    st.port);
		else
			snprintf(dir, sizeof(dir), "./var/sandboxd");
		st.state_dir = dir;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	sc = (struct sandbox_config){
		.state_dir = st.state_dir, .progs_dir = progs,
		.uid_base = st.uid_base, .max_live = st.max_live,
		.pool_size = st.pool_max, .max_timeout_s = st.max_timeout,
		.debug = (int)st.verbose,
		.limits = { .memory_mb = st.memory_mb, .procs = st.procs,
		    .home_mb = st.home_mb, .output_bytes = st.output_bytes,
		    .nofile = 1024 },
	};
	if (sandbox_init(&sc) == -1)
		fatalx("cannot prepare %s", st.state_dir);
	ac = (struct api_config){ .api_key = key,
	    .max_sandboxes = st.max_live, .pool_wake = pool_wake,
	    .pool_demand = pool_demand, .pool_target = pool_target,
	    .recycle = pool_recycle };
	if ((api = api_new(&ac)) == NULL)
		fatalx("out of memory");
	if ((srv = http_start(st.addr, (int)st.port, MAX_BODY, api_handle,
	    api_body_sink, api)) == NULL)
		fatalx("cannot serve on %s:%ld", st.addr, st.port);
	if (pthread_create(&reaper_thread, NULL, reaper, NULL) != 0)
		fatalx("cannot start the reaper");
	pc = (struct pool_config){ .min = st.pool, .max = st.pool_max,
	    .threads = ncores(), .recyclers = ncores() };
	if (pool_start(&pc) == -1)
		fatalx("cannot start the pool");
	log_info("serving on %s:%ld (sandboxes: at most %ld, pool %ld to "
	    "%ld, %ld MiB, %ld processes, home %ld MiB each)", st.addr,
	    st.port, st.max_live, st.pool, st.pool_max, st.memory_mb,
	    st.procs, st.home_mb);

	do {
		if (sigwait(&sigs, &sig) != 0)
			fatalx("sigwait");
	} while (sig == SIGHUP);
	log_info("signal %d: killing every sandbox", sig);
	quitting = 1;
	pool_stop();
	http_stop(srv);
	api_free(api);
	pthread_join(reaper_thread, NULL);
	sandbox_kill_all();
	crypto_wipe(key, sizeof(key));
	log_info("stopped");
	return 0;
}
