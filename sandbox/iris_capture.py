"""Iris kernels' output capture: fds 1 and 2 of a kernel -> pipes -> one
reader thread -> ``stdout`` / ``stderr`` lines on the kernel's socket, and the
``sys.stdout`` / ``sys.stderr`` writers of the Python kernel onto the same
path.  Contract: docs/sandbox-internals.md.

Capture(conn) needs of conn only ``lock`` (a threading.Lock),
``send_locked(obj)`` (one JSON line; called with the lock held) and
``log_fd`` (the sandbox log, for its own failure).  It replaces ``os.write``
with a wrapper that keeps this process's fd 1/2 writes in order across the
two streams at any speed (see _install_fd_writes).  Interface used by the
kernel: ``Capture(conn)``, ``begin()``, ``end(last)``, ``drain()``,
``repair_fds()``, ``write_direct(name, text)``, ``_Writer(fd, name, sink)``.
``OutputPipes`` (the pipes read in the order of their writes) serves the bash
kernel too.
"""

import codecs
import ctypes
import datetime
import fcntl
import io
import os
import selectors
import signal
import struct
import termios
import threading
import time

MAX_TEXT = 65536              # characters of text per stdout/stderr line
MAX_IDLE_OUTPUT = 65536       # output kept between executions
FLUSH_AFTER = 0.2             # s a partial line waits before it is sent


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# ---------------------------------------------------------------------------
# Pipes read in the order they were written to.
#
# Two pipes alone cannot tell which of their writes came first, and output
# must stay pipes (a socket breaks `> /dev/stderr`).  So each pipe is in
# packet mode (O_DIRECT: one read returns one write of up to PIPE_BUF bytes,
# pipe(2)) and signal-driven (O_ASYNC with F_SETSIG and F_SETOWN_EX, fcntl(2)):
# Linux queues one real-time signal per write, naming the pipe, at the end of
# the write (every write since 5.15), so the queue of a signalfd is the order
# of the writes across all the pipes.  A write to /dev/stdout reopened is not
# a packet (its file lacks O_DIRECT): its bytes come, but may join a
# neighbour.  A writer that finds its pipe full signals before it waits, with
# no data yet: so each pipe is made as large as Linux allows a user (1 MiB,
# 256 writes) and order is exact while no process gets that far ahead of the
# reader.  If the signal queue is full (RLIMIT_SIGPENDING) the kernel sends
# SIGIO instead: the pipes are then read as they come.

PIPE_BUF = 4096               # packet size: longer writes are several packets
SIGNAL = signal.SIGRTMIN + 4  # one the kernels' own code does not use
_F_SETSIG = 10                # <linux/fcntl.h>; the fcntl module lacks them
_F_SETOWN_EX = 15
_F_OWNER_TID = 0
_F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20           # /proc/sys/fs/pipe-max-size's default
_SIGINFO = struct.Struct("IiiIIi")   # struct signalfd_siginfo's head: signo .. fd
_SIGINFO_SIZE = 128
_MAX_PACKETS = 256            # per signal: a flood of full packets yields


try:                          # looked up once, in the zygote, for every fork
    _signalfd = ctypes.CDLL(None, use_errno=True).signalfd
except (OSError, AttributeError):
    _signalfd = None


def _sigset(sigs):
    mask = (ctypes.c_uint64 * 16)()       # sigset_t: 1024 bits
    for s in sigs:
        mask[(s - 1) // 64] |= 1 << ((s - 1) % 64)
    return mask


class OutputPipes:
    """Pipes whose writes are read back in the order they were made.

    OutputPipes(names): one pipe per name; ``write_fds[name]`` to hand out,
    ``read_fds[name]`` non-blocking.  ``arm()``, in the one thread that will
    read, routes the pipes' signals to it and returns the fd to wait on (a
    signalfd), or None when order cannot be had (then wait on read_fds).
    ``read()`` returns [(name, bytes)] of what was written so far, in order.
    The reading thread keeps SIGNAL and SIGIO blocked; processes it starts
    should unblock them (``unblock()``, for a preexec_fn)."""

    def __init__(self, names):
        self.read_fds, self.write_fds, self.names = {}, {}, {}
        for name in names:
            try:
                r, w = os.pipe2(os.O_DIRECT)
            except OSError:
                r, w = os.pipe()
            os.set_blocking(r, False)
            try:
                fcntl.fcntl(r, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass                      # over the user's pipe budget: 16 writes
            self.read_fds[name], self.write_fds[name] = r, w
            self.names[r] = name
        self.sfd = None

    @staticmethod
    def unblock():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [SIGNAL, signal.SIGIO])

    def arm(self):
        if _signalfd is None:
            return None
        try:
            sigs = [SIGNAL, signal.SIGIO]
            signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
            sfd = _signalfd(-1, ctypes.byref(_sigset(sigs)), os.O_NONBLOCK | os.O_CLOEXEC)
            if sfd < 0:
                return None
            owner = struct.pack("ii", _F_OWNER_TID, threading.get_native_id())
            for r in self.names:
                fcntl.fcntl(r, _F_SETOWN_EX, owner)
                fcntl.fcntl(r, _F_SETSIG, SIGNAL)
                fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
        except (OSError, AttributeError):
            return None
        self.sfd = sfd
        return sfd

    def pending(self):
        """Whether any pipe holds bytes not read yet."""
        buf = bytearray(4)
        for r in self.names:
            try:
                fcntl.ioctl(r, termios.FIONREAD, buf)
            except OSError:
                return True
            if int.from_bytes(buf, "little"):
                return True
        return False

    def read(self, budget=1024):
        """[(name, bytes)] written so far, in order (at most ~budget reads)."""
        out = []
        if self.sfd is None:
            self._read_all(out, budget)
            return out
        lost = False
        while budget > 0:
            try:
                data = os.read(self.sfd, _SIGINFO_SIZE * 32)
            except (BlockingIOError, InterruptedError):
                break
            for off in range(0, len(data), _SIGINFO_SIZE):
                signo, _, _, _, _, fd = _SIGINFO.unpack_from(data, off)
                if signo == SIGNAL and fd in self.names:
                    budget -= self._read_write(fd, out)
                else:
                    lost = True           # SIGIO: some writes have no signal
        if lost:
            self._read_all(out, budget)
        return out

    @staticmethod
    def _packet(fd):
        try:
            return os.read(fd, 65536)     # never less than a packet: the rest would be lost
        except OSError:                   # EAGAIN: nothing there
            return b""

    def _read_write(self, fd, out):
        """One write's packets (full ones until a short one); the count of reads."""
        for n in range(1, _MAX_PACKETS + 1):
            data = self._packet(fd)
            if not data:
                return n
            out.append((self.names[fd], data))
            if len(data) < PIPE_BUF:
                return n
        return _MAX_PACKETS

    def _read_all(self, out, budget):
        for fd, name in self.names.items():
            for _ in range(budget):
                data = self._packet(fd)
                if not data:
                    break
                out.append((name, data))

    def close(self):
        for fd in list(self.names) + list(self.write_fds.values()) + (
                [self.sfd] if self.sfd is not None else []):
            try:
                os.close(fd)
            except OSError:
                pass
        self.names, self.sfd = {}, None



# ---------------------------------------------------------------------------
# Output capture: fds 1/2 -> pipes -> reader thread -> socket.

class Capture:
    STREAMS = ("stdout", "stderr")

    def __init__(self, conn):
        self.conn = conn
        self.active = False
        self.idle = []            # (name, text) produced between executions
        self.idle_size = 0
        self.pipes = OutputPipes(self.STREAMS)
        for fdno, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(self.pipes.write_fds[name], fdno)   # inheritable: children write here too
        self.decoders = {n: codecs.getincrementaldecoder("utf-8")("replace")
                         for n in self.STREAMS}
        self.ctl_r, self.ctl_w = os.pipe()
        os.set_blocking(self.ctl_r, False)
        os.set_blocking(self.ctl_w, False)
        self.cond = threading.Condition()
        self.requested = 0
        self.done = 0
        # Reading the pipes and sending Python-level writes take turns, so
        # both streams keep the order in which they were written.  (An
        # RLock: a signal handler's print may come while it is held.)
        self.read_lock = threading.RLock()
        self.direct = threading.local()     # write_direct's depth in this thread
        self.armed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="iris-output", daemon=True)
        self.thread.start()
        self.armed.wait()         # a write before arm() would have no signal
        _flusher.start()
        self._install_fd_writes()

    def repair_fds(self):
        """Point fds 0/1/2 at /dev/null and the pipes again (user code may
        have closed or moved them)."""
        try:
            os.fstat(0)
        except OSError:
            try:
                fd = os.open(os.devnull, os.O_RDONLY)
                if fd != 0:
                    os.dup2(fd, 0)
                    os.close(fd)
            except OSError:
                pass
        for fdno, name in ((1, "stdout"), (2, "stderr")):
            try:
                os.dup2(self.pipes.write_fds[name], fdno)
            except OSError:
                pass

    # -- reader thread -----------------------------------------------------
    def _run(self):
        try:
            self._loop()
        except BaseException as e:
            # Without its reader the kernel cannot work (user code closed our
            # fds?): die, the daemon starts a fresh kernel next time.
            try:
                os.write(self.conn.log_fd, ("iris-kernel-python: output reader failed: %r\n"
                                            % (e,)).encode("utf-8", "replace"))
            except Exception:
                pass
            os._exit(70)

    def _loop(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        sel = selectors.DefaultSelector()
        sel.register(self.ctl_r, selectors.EVENT_READ, None)
        try:
            sfd = self.pipes.arm()
        finally:
            self.armed.set()
        for fd in [sfd] if sfd is not None else self.pipes.read_fds.values():
            sel.register(fd, selectors.EVENT_READ, "output")
        while True:
            try:
                events = sel.select()
            except InterruptedError:
                continue
            for key, _ in events:
                if key.data is None:
                    try:
                        while os.read(self.ctl_r, 4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    with self.cond:
                        target = self.requested
                    self._drain_all()
                    with self.cond:
                        if target > self.done:
                            self.done = target
                        self.cond.notify_all()
                else:
                    self._read_pipes()

    def _read_pipes(self):
        """Sends what the pipes hold, in the order it was written; whether
        there was any.  Bounded, so that a process writing without pause
        cannot stall us."""
        with self.read_lock:
            writes = self.pipes.read()
            for name, data in writes:
                text = self.decoders[name].decode(data)
                if text:
                    self._forward(name, text)
        return bool(writes)

    def _drain_all(self):
        # The signals of every write made so far are queued: a few rounds
        # take them all, unless a process writes without pause.
        for _ in range(64):
            if not self._read_pipes():
                break

    def write_direct(self, name, text):
        """A Python-level write (print): whatever fds 1 and 2 got before it
        goes first (the output thread sends it: only it reads the pipes'
        signals), then it, straight to the socket -- so stdout and stderr
        keep their order across the two streams."""
        depth = getattr(self.direct, "depth", 0)
        self.direct.depth = depth + 1
        try:
            with self.read_lock:
                if not self.pipes.pending():
                    self._forward(name, text)
                    return
            if depth == 0:        # not in a signal handler that interrupted us
                self.drain()
            with self.read_lock:
                self._forward(name, text)
        finally:
            self.direct.depth = depth

    def _install_fd_writes(self):
        """os.write of this process to fd 1 after fd 2 (or 2 after 1) first
        waits until the pipes' earlier writes are sent: the kernel's own
        fd-level writes (os.write, sys.stdout.buffer) keep their order
        however fast they come (other processes' keep it while they are not
        a pipe's size ahead of the reader).  Writes to the stream last
        written go at full speed; every write is still the real os.write
        (same errors, same blocking); forked children only write."""
        real = os.write
        pid = os.getpid()
        last = [1]

        def write(fd, data, /):
            if (fd == 1 or fd == 2) and fd != last[0]:
                last[0] = fd
                if os.getpid() == pid and not getattr(self.direct, "depth", 0):
                    self.drain()
            return real(fd, data)

        write.__doc__ = real.__doc__
        write.__module__ = real.__module__
        write.__qualname__ = write.__name__ = real.__name__
        os.write = write

    def _forward(self, name, text):
        with self.conn.lock:
            if self.active:
                for i in range(0, len(text), MAX_TEXT):
                    self.conn.send_locked({"type": name, "text": text[i:i + MAX_TEXT],
                                           "timestamp": _now()})
            elif self.idle_size < MAX_IDLE_OUTPUT:
                text = text[:MAX_IDLE_OUTPUT - self.idle_size]
                self.idle.append((name, text))
                self.idle_size += len(text)

    # -- main thread -------------------------------------------------------
    def drain(self):
        """Return once everything written to fds 1/2 so far has been sent."""
        with self.cond:
            self.requested += 1
            target = self.requested
        try:
            os.write(self.ctl_w, b"x")
        except BlockingIOError:
            pass                  # a wake-up is already pending
        with self.cond:
            while self.done < target:
                self.cond.wait()

    def begin(self):
        with self.conn.lock:
            self.active = True
            idle, self.idle, self.idle_size = self.idle, [], 0
            for name, text in idle:
                self.conn.send_locked({"type": name, "text": text, "timestamp": _now()})

    def end(self, last):
        self.drain()
        # Each execution's bytes are decoded on their own: a sequence left
        # incomplete at its end is U+FFFD here, never the next one's start.
        with self.read_lock:
            for name in self.STREAMS:
                text = self.decoders[name].decode(b"", True)
                self.decoders[name].reset()
                if text:
                    self._forward(name, text)
        with self.conn.lock:
            self.active = False
            self.conn.send_locked(last)


class _Flusher:
    """Sends a writer's partial line once it has waited FLUSH_AFTER s (as
    Jupyter does), so ``print("x", end="")`` shows while the code runs.
    One thread per process, started with the kernel's Capture (else on
    first use); it sleeps while no writer holds a partial line."""

    def __init__(self):
        self.cond = threading.Condition()
        self.due = {}             # writer -> monotonic time to look at it
        self.pid = None

    def start(self):
        """Starts this process's thread (the kernel does at its start: later
        a process limit reached by user code could refuse it).  Returns
        False if there is none; partial lines then wait for their newline."""
        with self.cond:
            return self._start_locked()

    def _start_locked(self):
        if self.pid != os.getpid():
            try:
                threading.Thread(target=self._run, name="iris-flush", daemon=True).start()
            except RuntimeError:          # no thread to be had: try next time
                return False
            self.pid = os.getpid()
            self.due = {}
        return True

    def arm(self, writer, when):
        with self.cond:
            if not self._start_locked():
                return
            writer._armed = True
            if writer in self.due:
                return
            wake = not self.due or when < min(self.due.values())
            self.due[writer] = when
            if wake:
                self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                now = time.monotonic()
                ready = [w for w, t in self.due.items() if t <= now]
                if not ready:
                    self.cond.wait(min(self.due.values()) - now if self.due else None)
                    continue
                for w in ready:
                    del self.due[w]
            for w in ready:
                w._armed = False          # before its lock: a write now re-arms
                try:
                    when = w._flush_stale(now)
                except Exception:
                    when = None
                if when is not None:
                    self.arm(w, when)


_flusher = _Flusher()


class _BinaryWriter:
    """``sys.stdout.buffer``: bytes straight to the fd."""

    def __init__(self, parent):
        self._parent = parent

    def write(self, b):
        self._parent.flush()
        data = bytes(b)
        _write_all(self._parent._fd, data)
        return len(data)

    def flush(self):
        pass

    def fileno(self):
        return self._parent._fd

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def closed(self):
        return False


class _Writer(io.TextIOBase):
    """sys.stdout / sys.stderr: line-buffered UTF-8 writes onto fd 1 / 2."""

    encoding = "utf-8"
    errors = "backslashreplace"
    newlines = None

    def __init__(self, fd, name, sink=None):
        super().__init__()
        self._fd = fd
        self._name = name
        # In the kernel process, writes go to sink (ordered with the fds);
        # in a process forked by user code, to the fd as any output does.
        self._sink = sink
        self._pid = os.getpid()
        self._buf = []
        self._size = 0
        self._since = 0.0         # when the pending partial line began
        self._armed = False       # the flusher will look at us
        self._lock = threading.RLock()
        self.buffer = _BinaryWriter(self)

    @property
    def name(self):
        return self._name

    @property
    def closed(self):
        return False

    def close(self):
        self.flush()

    def writable(self):
        return True

    def readable(self):
        return False

    def seekable(self):
        return False

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    @property
    def line_buffering(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if not s:
            return 0
        with self._lock:
            if not self._buf:
                self._since = time.monotonic()
            self._buf.append(s)
            self._size += len(s)
            if "\n" in s or "\r" in s or self._size >= 8192:
                self._flush_locked()
            elif not self._armed and os.getpid() == self._pid:
                _flusher.arm(self, self._since + FLUSH_AFTER)
        return len(s)

    def _flush_stale(self, now):
        """The flusher's call: flush a partial line begun FLUSH_AFTER s ago
        or more (so one print's pieces stay together); else return when to
        look again (None: nothing is pending)."""
        with self._lock:
            if not self._buf:
                return None
            if now - self._since < FLUSH_AFTER:
                return self._since + FLUSH_AFTER
            self._flush_locked()
            return None

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        with self._lock:
            self._flush_locked()

    def _flush_locked(self):
        if not self._buf:
            return
        data = "".join(self._buf).encode("utf-8", "backslashreplace")
        self._buf = []
        self._size = 0
        if self._sink is not None and os.getpid() == self._pid:
            self._sink(data.decode("utf-8"))
        else:
            _write_all(self._fd, data)
