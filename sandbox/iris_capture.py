"""Iris kernels' output capture: fds 1 and 2 of a kernel -> pipes -> one
reader thread -> ``stdout`` / ``stderr`` lines on the kernel's socket, and the
``sys.stdout`` / ``sys.stderr`` writers of the Python kernel onto the same
path.  Contract: docs/sandbox-internals.md.

Capture(conn) needs of conn only ``lock`` (a threading.Lock),
``send_locked(obj)`` (one JSON line; called with the lock held) and
``log_fd`` (the sandbox log, for its own failure).  It replaces ``os.write``
with a wrapper that keeps this process's fd 1/2 writes in order across the
two streams (see _install_fd_writes).  Interface used by the kernel:
``Capture(conn)``, ``begin()``, ``end(last)``, ``drain()``, ``repair_fds()``,
``write_direct(name, text)``, ``_Writer(fd, name, sink)``.
"""

import codecs
import datetime
import io
import os
import selectors
import signal
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
# Output capture: fds 1/2 -> pipes -> reader thread -> socket.

class Capture:
    STREAMS = ("stdout", "stderr")

    def __init__(self, conn):
        self.conn = conn
        self.active = False
        self.idle = []            # (name, text) produced between executions
        self.idle_size = 0
        self.fds = {}             # name -> (read end, write end)
        for fdno, name in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            os.set_blocking(r, False)
            self.fds[name] = (r, w)
            os.dup2(w, fdno)      # inheritable: children write here too
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
        # RLock: a signal handler's os.write may come while it is held.)
        self.read_lock = threading.RLock()
        self.thread = threading.Thread(target=self._run, name="iris-output", daemon=True)
        self.thread.start()
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
                os.dup2(self.fds[name][1], fdno)
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
        for name in self.STREAMS:
            sel.register(self.fds[name][0], selectors.EVENT_READ, name)
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
                    self._read_once(key.data)

    def _read_once(self, name):
        with self.read_lock:
            return self._read_once_locked(name)

    def _read_once_locked(self, name):
        try:
            data = os.read(self.fds[name][0], MAX_TEXT)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:
            return False
        text = self.decoders[name].decode(data)
        if text:
            self._forward(name, text)
        return True

    def _drain_all(self):
        # Bounded so that a process writing without pause cannot stall us.
        for name in self.STREAMS:
            for _ in range(1024):
                if not self._read_once(name):
                    break

    def _drain_locked(self):
        for n in self.STREAMS:
            for _ in range(1024):
                if not self._read_once_locked(n):
                    break

    def write_direct(self, name, text):
        """A Python-level write (print): whatever fds 1 and 2 got before it
        goes first, then it, straight to the socket -- so stdout and stderr
        lines keep their order across the two streams."""
        with self.read_lock:
            self._drain_locked()
            self._forward(name, text)

    def _install_fd_writes(self):
        """os.write of this process to fd 1 after fd 2 (or 2 after 1) first
        sends what the pipes hold, so the kernel's own fd-level writes
        (os.write, sys.stdout.buffer) keep their order across the two
        streams; writes to the stream last written go to its pipe at full
        speed.  Every write is still the real os.write (same errors, same
        blocking); forked children only write."""
        real = os.write
        pid = os.getpid()
        last = [1]

        def write(fd, data, /):
            if (fd == 1 or fd == 2) and fd != last[0]:
                last[0] = fd
                if os.getpid() == pid:
                    with self.read_lock:
                        self._drain_locked()
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
