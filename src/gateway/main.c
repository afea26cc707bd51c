/*
 * iris-gateway: a FastCGI responder.  Worker threads each accept and serve
 * one request at a time; the main thread waits for SIGTERM/SIGINT, then
 * stops the accepting, lets in-flight requests finish (bounded), flushes
 * the audit writer and exits.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/log.h"
#include "gateway/writer.h"
#include "gateway/admission.h"
#include "gateway/config.h"
#include "gateway/e2b.h"
#include "gateway/lease.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/store.h"

#define ARENA_MAX	((size_t)64 << 20)

static struct config cfg;
static struct e2b_config e2b_cfg;
static struct admission *admission;	/* shared by every worker */
static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };	/* readable once we are stopping */
static int owns_socket;

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static long live_workers;

/*
 * Each worker waits on its own epoll set: the listening socket with
 * EPOLLEXCLUSIVE, so a new connection wakes one worker, not all of them,
 * and the stop pipe, which wakes every worker at once.
 */
static int
watch_new(void)
{
	struct epoll_event ev;
	int ep;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLEXCLUSIVE,
	    .data.fd = listen_fd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) == -1)
		goto fail;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = stop_pipe[0] };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, stop_pipe[0], &ev) == -1)
		goto fail;
	return ep;
fail:
	close(ep);
	return -1;
}

/* Blocks until a connection may be waiting.  Returns 0, or -1 to stop. */
static int
wait_for_connection(int ep)
{
	struct epoll_event ev[2];
	int i, n;

	for (;;) {
		if ((n = epoll_wait(ep, ev, 2, -1)) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return -1;
		}
		for (i = 0; i < n; i++)
			if (ev[i].data.fd == stop_pipe[0])
				return -1;
		if (n > 0)
			return 0;
	}
}

static void
serve_one(FCGX_Request *fr, struct arena *arena, struct store *st,
    struct e2b *c)
{
	struct request req;

	memset(&req, 0, sizeof(req));
	req.arena = arena;
	req.store = st;
	req.e2b = c;
	req.admission = admission;
	req.cfg = &cfg;
	req.fcgi = fr;
	if (request_init(&req) == 0)
		router_serve(&req);
	request_release(&req);
	arena_reset(arena);
}

static void *
worker(void *arg)
{
	FCGX_Request fr;
	struct arena *arena = NULL;
	struct store *st = NULL;
	struct e2b *c = NULL;
	int ep = -1;

	(void)arg;
	if ((arena = arena_new(ARENA_MAX)) == NULL ||
	    (st = store_open(cfg.db_path, (int)cfg.db_busy_ms)) == NULL ||
	    (c = e2b_new()) == NULL || (ep = watch_new()) == -1) {
		log_warnx("worker could not start");
		goto done;
	}
	if (FCGX_InitRequest(&fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_warnx("FCGX_InitRequest failed");
		goto done;
	}
	/*
	 * The listening socket is non-blocking: epoll says a connection may
	 * be waiting, and when another worker took it first, accept fails
	 * with EAGAIN and we wait again.  So a stop is seen at once.
	 */
	while (wait_for_connection(ep) == 0) {
		if (FCGX_Accept_r(&fr) < 0)
			continue;
		serve_one(&fr, arena, st, c);
		FCGX_Finish_r(&fr);
	}
	FCGX_Free(&fr, 1);
done:
	if (ep != -1)
		close(ep);
	e2b_free(c);
	store_close(st);
	arena_free(arena);
	pthread_mutex_lock(&live_lock);
	live_workers--;
	pthread_cond_signal(&live_cond);
	pthread_mutex_unlock(&live_lock);
	return NULL;
}

/* Ends idle sandboxes, every few seconds, until we stop. */
static void *
reaper(void *arg)
{
	struct store *st;
	struct e2b *c;
	struct pollfd pfd = { .fd = stop_pipe[0], .events = POLLIN };

	(void)arg;
	if ((st = store_open(cfg.db_path, (int)cfg.db_busy_ms)) == NULL ||
	    (c = e2b_new()) == NULL) {
		log_warnx("the sandbox reaper could not start");
		store_close(st);
		return NULL;
	}
	while (poll(&pfd, 1, 5000) == 0)
		lease_reap(st, c);
	e2b_free(c);
	store_close(st);
	return NULL;
}

/* fd 0 as spawn-fcgi leaves it, or fd 3 as systemd's LISTEN_FDS=1 does. */
static int
inherited_socket(void)
{
	const char *lf = getenv("LISTEN_FDS");
	int fd = lf && strcmp(lf, "1") == 0 ? 3 : 0, acc = 0;
	socklen_t len = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
		return fd;
	return -1;
}

static int
open_socket(const char *path, mode_t mode)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("IRIS_SOCKET is longer than %zu bytes",
		    sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	/* A stale socket from an unclean exit would block bind. */
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("unlink %s", path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", path);
	if (chmod(path, mode) == -1)
		fatal("chmod %s", path);
	if (listen(fd, 1024) == -1)
		fatal("listen %s", path);
	owns_socket = 1;
	return fd;
}

static void
set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		fatal("fcntl");
}

static void
usage(void)
{
	fprintf(stderr, "usage: iris-gateway\n"
	    "Serves the Iris API over FastCGI.  Settings, from the "
	    "environment:\n");
	config_usage(stderr);
	exit(2);
}

/* Waits for workers to finish, until deadline.  Returns those left. */
static long
drain(long seconds)
{
	struct timespec deadline;
	long left;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += seconds;
	pthread_mutex_lock(&live_lock);
	while (live_workers > 0 && pthread_cond_timedwait(&live_cond,
	    &live_lock, &deadline) != ETIMEDOUT)
		;
	left = live_workers;
	pthread_mutex_unlock(&live_lock);
	return left;
}

int
main(int argc, char *argv[] __attribute__((unused)))
{
	char err[256];
	sigset_t sigs;
	pthread_t tid;
	pthread_attr_t attr;
	long i, left;
	int sig;

	if (argc > 1)
		usage();
	log_init("iris-gateway", 0);
	if (config_load(&cfg, NULL, err, sizeof(err)) == -1)
		fatalx("%s", err);
	log_init("iris-gateway", (int)cfg.verbose);

	/* Every thread inherits this mask; only sigwait below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (store_migrate(cfg.db_path, (int)cfg.db_busy_ms) == -1)
		fatalx("database %s cannot be opened or migrated",
		    cfg.db_path);
	if (FCGX_Init() != 0)
		fatalx("FCGX_Init failed");
	if ((listen_fd = inherited_socket()) == -1)
		listen_fd = open_socket(cfg.socket_path,
		    (mode_t)cfg.socket_mode);
	set_nonblocking(listen_fd);
	if (pipe2(stop_pipe, O_CLOEXEC) == -1)
		fatal("pipe");
	if (writer_start(cfg.db_path, (int)cfg.db_busy_ms) == -1)
		fatalx("the database writer could not start");
	e2b_cfg = (struct e2b_config){
		.api_url = cfg.e2b_api_url, .sandbox_url = cfg.e2b_sandbox_url,
		.domain = cfg.e2b_domain, .scheme = cfg.e2b_scheme,
		.connect_to = cfg.e2b_connect_to, .api_key = cfg.e2b_api_key,
		.template_id = cfg.e2b_template,
		.connect_timeout_ms = cfg.connect_timeout_ms,
		.request_timeout_ms = cfg.provider_timeout_ms,
		.create_retries = 3,
		/* iris-sandboxd's KERNEL_INTERRUPT_GRACE_MS (kernel.h). */
		.run_deadline_grace_ms = strcmp(cfg.provider, "local") == 0 ?
		    2000 : 0,
	};
	if (e2b_global_init(&e2b_cfg) == -1)
		fatalx("the provider's client could not start");
	if ((admission = admission_new(cfg.admission_queue)) == NULL)
		fatalx("out of memory");

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)512 << 10);
	for (i = 0; i < cfg.workers; i++) {
		pthread_mutex_lock(&live_lock);
		live_workers++;
		pthread_mutex_unlock(&live_lock);
		if (pthread_create(&tid, &attr, worker, NULL) != 0)
			fatalx("cannot start worker %ld", i);
	}
	if (cfg.e2b_api_url &&
	    pthread_create(&tid, &attr, reaper, NULL) != 0)
		fatalx("cannot start the sandbox reaper");
	pthread_attr_destroy(&attr);
	log_info("version %s serving on %s with %ld workers; sandboxes: %s",
	    PACKAGE_VERSION, owns_socket ? cfg.socket_path : "an inherited "
	    "socket", cfg.workers, cfg.e2b_api_url ? cfg.provider : "none "
	    "(E2B_API_URL is unset)");

	do {
		if (sigwait(&sigs, &sig) != 0)
			fatalx("sigwait");
	} while (sig == SIGHUP);

	log_info("signal %d: draining in-flight requests (up to %ld s)", sig,
	    cfg.drain_s);
	if (write(stop_pipe[1], "x", 1) != 1)
		log_warn("stop pipe");
	if (owns_socket)
		unlink(cfg.socket_path);
	if ((left = drain(cfg.drain_s)) > 0)
		log_warnx("%ld requests still running after %ld s; exiting",
		    left, cfg.drain_s);
	close(listen_fd);
	writer_stop();
	if (left == 0)
		admission_free(admission);
	log_info("stopped");
	return left > 0 ? 1 : 0;
}
