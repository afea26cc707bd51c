#!/usr/bin/python3
"""Iris sandbox supervisor: the first program inside every sandbox.

Contract: docs/sandbox-internals.md.  One JSON object per line on stdin
(``spawn``, ``scrub``) and on stdout (``ready``, ``spawned``, ``exited``,
``error``, ``scrubbed``).
Nothing else is ever written to stdout; stderr is the daemon's log.

The supervisor is single-threaded (so forking it is safe) and never runs
user code itself.  Python kernels are zygote forks of this process: the
child imports ``kernel_python`` (already imported here) and runs it
in-process, so modules preloaded with ``--preload`` are shared.  JavaScript
and bash kernels are exec'd.

Child reaping: SIGCHLD is turned into a byte on a self-pipe
(``signal.set_wakeup_fd``) watched by the same selector as stdin, so reading
stdin never blocks reaping and vice versa.
"""

import gc
import json
import os
import selectors
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LANGUAGES = ("python", "javascript", "typescript", "bash")
# The node kernel's fds (kernel.js): read ends of the pipes at its fds 1/2,
# and the sandbox log.
NODE_FDS = (3, 4, 5)
MAX_LINE = 1 << 20          # a control line longer than this is dropped
MAX_CONTEXT_ID = 256
# Where user code can write (docs/sandbox-internals.md): what a scrub empties.
WRITABLE = ("/dev", "/dev/shm", "/dev/mqueue", "/home/user", "/tmp")
BASELINE_MAX = 16 << 20     # bytes of start-up files a scrub puts back
SCRUB_KILL_S = 5            # for every other process to be gone
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25   # <asm-generic/mman-common.h>


def log(msg):
    try:
        os.write(2, ("iris-supervisor: %s\n" % msg).encode("utf-8", "replace"))
    except OSError:
        pass


def descendants(root):
    """pids of every live descendant of root, from /proc."""
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if fields[0] in (b"Z", b"X"):
                continue
            children.setdefault(int(fields[1]), []).append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            out.append(pid)
            todo.append(pid)
    return out


def prctl(option, value):
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0)
    except Exception as e:  # pragma: no cover
        log("prctl(%d) failed: %r" % (option, e))
        return -1


def set_dumpable(flag):
    """PR_SET_DUMPABLE: a non-dumpable supervisor's /proc/<pid>/fd cannot be
    opened by kernels running as the same uid, so user code cannot write to
    the supervisor's stdout or stdin (or ptrace it)."""
    prctl(4, 1 if flag else 0)                    # PR_SET_DUMPABLE


def libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def other_pids():
    """Every process of the sandbox's pid namespace but ourselves."""
    me = str(os.getpid())
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and n != me]


def kill_others(deadline):
    """As pid 1: SIGKILL every other process of the namespace and reap them.
    kill(-1) reaches all of them at once (a fork storm cannot outrun it), and
    nothing can leave the namespace.  True once none is left."""
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not other_pids():
            return True
        time.sleep(0.001)
    return False


def sysv_ids(kind):
    """Ids of the System V IPC objects of kind (shm, sem, msg)."""
    ids = []
    with open("/proc/sysvipc/" + kind) as f:
        next(f, None)                               # the header
        for line in f:
            fields = line.split()
            if len(fields) > 1:
                ids.append(int(fields[1]))
    return ids


def remove_sysv():
    """IPC_RMID every System V object (the sandbox has its own namespace)."""
    lc = libc()
    rmid = {"shm": lambda i: lc.shmctl(i, 0, None),
            "sem": lambda i: lc.semctl(i, 0, 0),
            "msg": lambda i: lc.msgctl(i, 0, None)}   # IPC_RMID == 0
    for kind, rm in rmid.items():
        for ident in sysv_ids(kind):
            rm(ident)


# System call numbers the standard library does not wrap, by machine.
SYSCALLS = {"x86_64": {"keyctl": 250, "ioprio_get": 252},
            "aarch64": {"keyctl": 219, "ioprio_get": 31}}
KEYCTL_CLEAR, KEYCTL_GET_PERSISTENT = 7, 22
KEY_SPEC_PROCESS = -2
SESSION_USER_RINGS = (-3, -4, -5)   # KEY_SPEC_SESSION/USER/USER_SESSION_KEYRING


def syscall(name, *args):
    """A raw system call by name; -1 with errno set, or ENOSYS if unknown."""
    import platform
    nr = SYSCALLS.get(platform.machine(), {}).get(name)
    if nr is None:
        raise OSError(38, "%s: unknown on this machine" % name)
    return libc().syscall(nr, *args)


def keyctl(*args):
    """keyctl(2); None when seccomp refuses it (iris-sandboxd's filter
    refuses every keyring call: then no run can have made a key)."""
    import ctypes
    rc = syscall("keyctl", *args)
    if rc == -1 and ctypes.get_errno() == 38:           # ENOSYS
        return None
    return rc


def keyrings():
    """The keyrings a run can leave keys in, all of them the uid's: the
    session, user and user-session keyrings and the persistent one
    (created here if missing, so that it is part of the baseline)."""
    persistent = keyctl(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_PROCESS)
    if persistent is None:
        return ()
    return SESSION_USER_RINGS + ((persistent,) if persistent > 0 else ())


def clear_keyrings():
    """KEYCTL_CLEAR every keyring of the uid; a keyring a run locked
    against it is an error (then the sandbox is destroyed)."""
    for ring in keyrings():
        if keyctl(KEYCTL_CLEAR, ring) not in (0, None):
            return "keyring %d could not be cleared" % ring
    return None


def key_counts():
    """The uid's key counts from /proc/key-users: (nkeys/nikeys,
    qnkeys/maxkeys), every key and keyring it owns, visible or not."""
    with open("/proc/key-users") as f:
        for line in f:
            uid, _, rest = line.partition(":")
            if uid.strip() == str(os.getuid()):
                return tuple(rest.split()[1:3])
    return None


def keys_back_to(counts, deadline):
    """Waits for the kernel's key collector to drop the cleared keys:
    True once the counts are those of the baseline."""
    while key_counts() != counts:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def process_settings():
    """What a process of the same uid may change about us without ptrace,
    and every kernel we fork inherits: rlimits (prlimit), nice, CPU
    affinity, scheduling policy and I/O priority."""
    import resource
    limits = tuple((name, resource.getrlimit(getattr(resource, name)))
                   for name in sorted(dir(resource)) if name.startswith("RLIMIT_"))
    try:
        ioprio = syscall("ioprio_get", 1, 0)         # IOPRIO_WHO_PROCESS, self
    except OSError:
        ioprio = None
    return (limits, os.getpriority(os.PRIO_PROCESS, 0),
            tuple(sorted(os.sched_getaffinity(0))), os.sched_getscheduler(0),
            os.sched_getparam(0).sched_priority, ioprio)


def empty_dir(fd, dev):
    """Removes everything in the directory open at fd that lives on its
    file system (device dev), never following a symbolic link; mount
    points (another device: /dev's nodes, its tmpfs mounts) stay.

    Flat, with two descriptors at most: the subdirectories of each
    directory are first moved up into fd's, so no tree is too deep (a
    run may leave thousands of levels).  Directories a run made
    unreadable are opened up first.  No process is left to race it."""
    tag, moved = os.urandom(8).hex(), 0
    while True:
        dirs = []
        for entry in os.scandir(fd):
            if entry.stat(follow_symlinks=False).st_dev != dev:
                continue
            if entry.is_dir(follow_symlinks=False):
                dirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
        if not dirs:
            return
        for name in dirs:
            os.chmod(name, 0o700, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                          dir_fd=fd)
            try:
                for entry in os.scandir(sub):
                    if entry.is_dir(follow_symlinks=False):
                        # Moving a directory rewrites its "..": it must be
                        # writable.
                        os.chmod(entry.name, 0o700, dir_fd=sub)
                        moved += 1
                        os.rename(entry.name, ".iris-%s-%d" % (tag, moved),
                                  src_dir_fd=sub, dst_dir_fd=fd)
                    else:
                        os.unlink(entry.name, dir_fd=sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=fd)


def snapshot(root, contents=True):
    """What root holds on its own file system: {relative path: (kind, mode,
    payload)}, kind "d"irectory, "f"ile (payload: its bytes, or its size
    without contents), "l"ink (payload: the target) or "o"ther (a node or
    mount point, left as it is)."""
    tree, dev = {}, os.lstat(root).st_dev
    todo = [""]
    while todo:
        rel = todo.pop()
        for entry in os.scandir(os.path.join(root, rel) if rel else root):
            path = os.path.join(rel, entry.name)
            st = entry.stat(follow_symlinks=False)
            if st.st_dev != dev:
                tree[path] = ("o", st.st_mode, None)
            elif entry.is_symlink():
                tree[path] = ("l", st.st_mode, os.readlink(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                tree[path] = ("d", st.st_mode, None)
                todo.append(path)
            elif entry.is_file(follow_symlinks=False):
                if contents:
                    with open(entry.path, "rb") as f:
                        payload = f.read()
                else:
                    payload = st.st_size
                tree[path] = ("f", st.st_mode, payload)
            else:
                tree[path] = ("o", st.st_mode, None)
    return tree


class Baseline:
    """The writable places as they were at start-up (after preloading: the
    matplotlib font cache in /tmp), kept in our memory, which no run can
    reach: a scrub puts them back exactly, then compares."""

    def __init__(self):
        self.roots = {}
        clear_keyrings()               # makes every keyring a scrub touches
        self.keys = key_counts()
        self.settings = process_settings()
        total = 0
        for root in WRITABLE:
            try:
                st = os.lstat(root)
                tree = snapshot(root)
            except OSError:
                continue
            total += sum(len(v[2]) for v in tree.values() if v[0] == "f")
            self.roots[root] = (st.st_mode, tree)
        if total > BASELINE_MAX:
            raise ValueError("start-up files over %d bytes" % BASELINE_MAX)

    def restore(self, root):
        mode, tree = self.roots[root]
        os.chmod(root, 0o700)          # a run may have made it unreadable
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for attr in os.listxattr(fd):
                os.removexattr(fd, attr)
            empty_dir(fd, os.fstat(fd).st_dev)
            for rel in sorted(tree):
                kind, m, payload = tree[rel]
                if kind == "d":
                    os.mkdir(rel, 0o700, dir_fd=fd)
                elif kind == "l":
                    os.symlink(payload, rel, dir_fd=fd)
                elif kind == "f":
                    f = os.open(rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                0o600, dir_fd=fd)
                    with os.fdopen(f, "wb") as out:
                        out.write(payload)
            for rel in sorted(tree, reverse=True):     # parents last
                kind, m, _ = tree[rel]
                if kind in "df":
                    os.chmod(rel, m & 0o7777, dir_fd=fd)
            os.chmod(fd, mode & 0o7777)
        finally:
            os.close(fd)

    def matches(self, root):
        mode, tree = self.roots[root]
        want = {rel: (k, m, len(p) if k == "f" else p)
                for rel, (k, m, p) in tree.items()}
        return (os.lstat(root).st_mode == mode and
                snapshot(root, contents=False) == want and
                not os.listxattr(root))


def preload():
    """Import the data stack so forked Python kernels start with it loaded:
    the IPython shell first (kernel_python.prepare(), so that matplotlib
    comes up on the inline backend), then numpy, pandas, matplotlib and
    PIL, each warmed."""
    t0 = time.monotonic()
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import kernel_python
        kernel_python.prepare()
    except Exception as e:  # pragma: no cover - depends on the image
        log("preload IPython failed: %r" % (e,))
    try:
        import numpy  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the image
        log("preload numpy failed: %r" % (e,))
    try:
        import pandas
        try:
            pandas.DataFrame({"a": [1]})._repr_html_()   # warm the html formatter
        except Exception:
            pass
    except Exception as e:  # pragma: no cover
        log("preload pandas failed: %r" % (e,))
    try:
        import io
        import matplotlib.pyplot as plt
        # Warm the font cache and the Agg renderer (MPLCONFIGDIR is fresh in
        # every sandbox, so the first figure would otherwise build the cache).
        fig = plt.figure()
        fig.add_subplot().plot([0, 1])
        fig.savefig(io.BytesIO(), format="png")
        plt.close("all")
        try:
            from matplotlib_inline.backend_inline import show
            show._draw_called = False       # the warm-up is not a kernel's figure
        except ImportError:
            pass
    except Exception as e:  # pragma: no cover
        log("preload matplotlib failed: %r" % (e,))
    try:
        import PIL.Image  # noqa: F401
        import PIL.ImageShow  # noqa: F401
    except Exception as e:  # pragma: no cover
        log("preload PIL failed: %r" % (e,))
    try:
        import iris_charts  # noqa: F401  (optional: the figures' `chart`)
    except ImportError:
        pass
    except Exception as e:  # pragma: no cover
        log("preload iris_charts failed: %r" % (e,))
    log("preload took %.0f ms" % ((time.monotonic() - t0) * 1000))


def huge_pages():
    """Backs the zygote's heap with transparent huge pages (madvise(2)
    MADV_HUGEPAGE, then MADV_COLLAPSE, Linux 6.1+): each fork of it then
    copies one page-table entry per 2 MiB instead of 512, and each kernel's
    exit frees as few.  A kernel's writes still copy 4 KiB pages (Linux
    splits a shared huge page on write).  Best effort: nothing changes
    where the kernel says no."""
    try:
        import ctypes
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
    except (OSError, AttributeError):
        return
    huge = 2 << 20
    for line in maps:
        fields = line.split()
        if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue              # private anonymous memory and the brk heap only
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        lo, hi = (lo + huge - 1) & ~(huge - 1), hi & ~(huge - 1)
        if hi - lo >= huge and madvise(lo, hi - lo, MADV_HUGEPAGE) == 0:
            madvise(lo, hi - lo, MADV_COLLAPSE)


def node_pipes():
    """For the node kernel, before its exec: fds 1 and 2 become pipes whose
    read ends it gets at NODE_FDS[0:2] (its children inherit the write ends,
    so their output is captured too), the sandbox log moves to NODE_FDS[2].
    node itself cannot make pipes or move fds."""
    import fcntl
    log_fd = fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, 10)
    ends = []
    for _ in range(2):
        for fd in os.pipe():
            ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
            os.close(fd)
    out_r, out_w, err_r, err_w = ends
    for src, dst in ((out_w, 1), (err_w, 2), (out_r, NODE_FDS[0]),
                     (err_r, NODE_FDS[1]), (log_fd, NODE_FDS[2])):
        os.dup2(src, dst)                       # inheritable
        os.close(src)


class Supervisor:
    def __init__(self):
        self.kernels = {}            # pid -> context id
        self.inbuf = bytearray()
        self.skipping = False        # inside an over-long line
        self.stdout_ok = True
        self.stopping = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, self._on_signal)
        # As pid 1 of the sandbox's namespace, a signal from user code
        # reaches us only if we handle it: then handle none that stops us.
        # The daemon ends us with EOF on stdin, or SIGKILL.
        if os.getpid() != 1:
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGHUP, self._on_stop)
        self.baseline = None
        # The daemon interrupts kernels, never us; a stray SIGINT (e.g. to the
        # whole process group) must not kill the sandbox.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.sel.register(0, selectors.EVENT_READ, "stdin")

    # -- signals -----------------------------------------------------------
    def _on_signal(self, signum, frame):
        pass                          # the wakeup fd does the work

    def _on_stop(self, signum, frame):
        self.stopping = True

    # -- output ------------------------------------------------------------
    def emit(self, obj):
        if not self.stdout_ok:
            return
        data = (json.dumps(obj) + "\n").encode("ascii")
        view = memoryview(data)
        try:
            while view:
                n = os.write(1, view)
                view = view[n:]
        except OSError as e:
            log("stdout write failed: %s" % e)
            self.stdout_ok = False
            self.stopping = True

    # -- children ----------------------------------------------------------
    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            ctx = self.kernels.pop(pid, None)
            if ctx is None:
                continue
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                code = 128 + sig
            else:
                sig = 0
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0
            if not self.stopping:
                self.emit({"op": "exited", "context": ctx, "pid": pid,
                           "status": code, "signal": sig})

    def spawn(self, req):
        ctx = req.get("context")
        if not isinstance(ctx, str) or not ctx or len(ctx) > MAX_CONTEXT_ID or "\0" in ctx:
            self.emit({"op": "error", "context": ctx if isinstance(ctx, str) else None,
                       "message": "invalid context id"})
            return
        lang = req.get("language", "python")
        if lang not in LANGUAGES:
            self.emit({"op": "error", "context": ctx,
                       "message": "unsupported language: %s" % (lang,)})
            return
        cwd = req.get("cwd")
        if cwd is None:
            cwd = os.environ.get("HOME") or "/"
        if not isinstance(cwd, str) or "\0" in cwd or not os.path.isdir(cwd):
            self.emit({"op": "error", "context": ctx,
                       "message": "cwd is not a directory: %s" % (cwd,)})
            return
        env = req.get("env") or {}
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and k and "=" not in k
                and "\0" not in k + v for k, v in env.items()):
            self.emit({"op": "error", "context": ctx,
                       "message": "env must map names to strings"})
            return
        argv = None
        if lang in ("javascript", "typescript"):
            node = None
            for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
                p = os.path.join(d or ".", "node")
                if os.path.isfile(p) and os.access(p, os.X_OK):
                    node = p
                    break
            if node is None:
                self.emit({"op": "error", "context": ctx, "message": "node not found"})
                return
            # --expose-internals gives kernel.js node's own REPL rewriter
            # for top-level await (internal/repl/await);
            # --experimental-vm-modules, a cell's dynamic import().
            argv = [node, "--expose-internals", "--experimental-vm-modules",
                    os.path.join(HERE, "kernel.js"), ctx, lang] + \
                [str(fd) for fd in NODE_FDS]
        elif lang == "bash":
            argv = [sys.executable, os.path.join(HERE, "kernel_bash.py"), ctx]
        try:
            pid = os.fork()
        except OSError as e:
            self.emit({"op": "error", "context": ctx, "message": "fork failed: %s" % e})
            return
        if pid == 0:
            self._child(ctx, lang, cwd, argv, env)      # never returns
        self.kernels[pid] = ctx
        self.emit({"op": "spawned", "context": ctx, "pid": pid})

    def _child(self, ctx, lang, cwd, argv, env):
        code = 1
        try:
            os.environ.update(env)
            try:
                os.setpgid(0, 0)
            except OSError:
                pass
            set_dumpable(True)           # exec resets it anyway; forks need it
            signal.set_wakeup_fd(-1)
            for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(s, signal.SIG_DFL)
            # SIGINT stays ignored until the Python kernel installs its own
            # handler; exec'd kernels get the default back (below).
            try:
                self.sel.close()
            except Exception:
                pass
            for fd in (self.wake_r, self.wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            # Kernels never see the supervisor's stdin/stdout: they talk only
            # over their socket.  fd 2 stays the sandbox log until the kernel
            # redirects it (the Python kernels point fds 1 and 2 at pipes).
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            if devnull > 2:
                os.close(devnull)
            os.chdir(cwd)
            if lang in ("javascript", "typescript"):
                node_pipes()
            if argv is not None:
                for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                    signal.signal(s, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.execv(argv[0], argv)
            # Python: zygote child, the kernel runs in this very process.
            import kernel_python
            kernel_python.main(ctx, zygote=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:
            try:
                log("kernel %s (%s) failed to start: %r" % (ctx, lang, e))
            except BaseException:
                pass
            code = 127 if argv is not None else 1
        os._exit(code)

    # -- control input -----------------------------------------------------
    def handle_line(self, line):
        line = line.strip()
        if not line:
            return
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            log("malformed control line skipped")
            return
        if not isinstance(req, dict):
            log("non-object control line skipped")
            return
        op = req.get("op")
        handler = {"spawn": self.spawn, "scrub": self.scrub}.get(op)
        if handler is not None:
            handler(req)
        else:
            log("unknown op skipped: %r" % (op,))

    def read_stdin(self):
        try:
            data = os.read(0, 65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as e:
            log("stdin read failed: %s" % e)
            return False
        if not data:
            return False
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                if not self.skipping:
                    self.inbuf += data[start:]
                    if len(self.inbuf) > MAX_LINE:
                        log("over-long control line dropped")
                        self.inbuf.clear()
                        self.skipping = True
                return True
            if self.skipping:
                self.skipping = False
            else:
                self.inbuf += data[start:nl]
                line = bytes(self.inbuf)
                self.inbuf.clear()
                if len(line) <= MAX_LINE:
                    self.handle_line(line)
            start = nl + 1

    def scrub(self, req):
        """Makes the sandbox what it was at start-up, for its next user:
        every other process killed, System V objects and keyrings cleared,
        every writable place put back as it was.  Then checks each of those
        and answers {"op": "scrubbed", "ok": bool, "message": ...}; the
        daemon destroys the sandbox unless ok (docs/sandbox-internals.md)."""
        t0, c0 = time.monotonic(), time.process_time()
        try:
            problem = self._scrub()
        except Exception as e:                      # any failure fails it
            problem = "scrub failed: %r" % (e,)
        log("scrub: %s in %.1f ms (%.1f ms of CPU)" % (
            problem or "ok", (time.monotonic() - t0) * 1000,
            (time.process_time() - c0) * 1000))
        self.emit({"op": "scrubbed", "ok": problem is None,
                   "message": problem or ""})

    def _scrub(self):
        if os.getpid() != 1:
            return "the supervisor is not pid 1 of its sandbox"
        if self.baseline is None:
            return "no start-up baseline"
        self.kernels.clear()
        if not kill_others(time.monotonic() + SCRUB_KILL_S):
            return "processes outlived SIGKILL"
        remove_sysv()
        problem = clear_keyrings()
        if problem:
            return problem
        for root in self.baseline.roots:
            self.baseline.restore(root)
        # The checks, each on its own, after all of it.
        if other_pids():
            return "a process is left"
        for kind in ("shm", "sem", "msg"):
            if sysv_ids(kind):
                return "a System V %s object is left" % kind
        for root in self.baseline.roots:
            if not self.baseline.matches(root):
                return "%s differs from its start-up state" % root
        if not keys_back_to(self.baseline.keys, time.monotonic() + 1):
            return "keys are left"
        if process_settings() != self.baseline.settings:
            return "the supervisor's limits or scheduling were changed"
        if prctl(3, 0) != 0:                        # PR_GET_DUMPABLE
            return "the supervisor became dumpable"
        with open("/proc/self/status") as f:
            if "TracerPid:\t0\n" not in f.read():
                return "the supervisor is being traced"
        return None

    def run(self):
        if os.getpid() == 1:
            try:
                self.baseline = Baseline()
            except (OSError, ValueError) as e:
                log("no baseline, so no scrub: %r" % (e,))
        self.emit({"op": "ready"})
        while not self.stopping:
            try:
                events = self.sel.select()
            except InterruptedError:
                continue
            eof = False
            for key, _ in events:
                if key.data == "wake":
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    self.reap()
                elif key.data == "stdin":
                    if not self.read_stdin():
                        eof = True
            self.reap()
            if eof:
                break
        self.shutdown()

    def shutdown(self):
        """SIGKILL every kernel and everything they started, reap, return.

        Kernels are process-group leaders (a bash kernel's shell leads its
        own group), and daemons started by user code are reparented to us
        (we are a child subreaper), so "every descendant" is all of it."""
        self.stopping = True
        for pid in list(self.kernels):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = descendants(os.getpid())
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                while True:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    self.kernels.pop(pid, None)
            except ChildProcessError:
                self.kernels.clear()
            if not pids and not self.kernels:
                break
            time.sleep(0.005)


def main():
    set_dumpable(False)
    prctl(36, 1)          # PR_SET_CHILD_SUBREAPER: orphans of kernels stay ours
    args = sys.argv[1:]
    do_preload = "--preload" in args
    if do_preload:
        preload()
    # Import the Python kernel (and, preloading, build its IPython shell)
    # now so that a fork needs no import or construction work.
    try:
        import kernel_python
        if do_preload:
            kernel_python.prepare()
    except Exception as e:
        log("cannot import kernel_python: %r" % (e,))
    gc.collect()
    try:
        gc.freeze()           # keep the zygote's objects out of copy-on-write
    except AttributeError:
        pass
    if do_preload:
        huge_pages()
    sup = Supervisor()
    sup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
