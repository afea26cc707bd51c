#!/usr/bin/python3
"""Iris bash kernel: a wrapper keeping one persistent bash for one context.

Contract: docs/sandbox-internals.md.  Started by supervisor.py as
``python3 /opt/iris/kernel_bash.py <context-id>``.

The shell is ``bash --noprofile --norc`` in its own process group, reading
commands from a pipe (its stdin), with stdout and stderr on two pipes that are
also available to it as fds 61 and 62, read in the order of their writes
across the two (iris_capture.OutputPipes).  Per execution the wrapper writes the
code to a private file and sends bash one command line::

    trap '<interrupt handler>' INT; [K=V ...] source <cell file> </dev/null; <sentinel>

``source`` runs the code in the shell itself, so variables, functions, cwd,
aliases persist; the code's stdin is /dev/null; env_vars are temporary
assignments on the ``source`` command (bash restores them afterwards).  The
sentinel prints a per-execution random marker with ``$?`` to fd 61 (stdout)
and a marker to fd 62 (stderr); the wrapper streams both pipes live and the
execution is over when both markers have arrived (so both streams are drained
up to that point).  Non-zero status -> error ``ExitStatus`` ``exit status N``.

Interrupts: SIGINT to the wrapper -> SIGINT to bash's whole process group.
The foreground command dies (commands started with ``&`` ignore SIGINT, as in
any non-interactive shell); bash, which traps INT, then turns on extdebug and
a DEBUG trap that makes every further command of the cell (at any function
depth) return, so the rest of the cell is skipped and the sentinel runs.
Escalation if the markers do not come: after 2 s every other process in the
shell's group is SIGKILLed; after 4 s the shell itself is killed and a fresh
one started (state lost, said in the error).

``exit`` (or anything ending bash) -> error ``ExitStatus`` saying the shell
exited and its state is lost; the next execution starts a fresh shell.
"""

import codecs
import datetime
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from iris_capture import OutputPipes

DEFAULT_SOCK = "/run/iris/kernel.sock"
MAX_TEXT = 65536
MAX_REQUEST = 64 << 20
OUT_FD, ERR_FD = 61, 62
KILL_CHILDREN_AFTER = 2.0     # s after SIGINT without markers
KILL_SHELL_AFTER = 4.0
FLUSH_AFTER = 0.2             # s a held-back tail waits before it is sent
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _clean_str(s):
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def _quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def log(msg):
    try:
        os.write(2, ("iris-kernel-bash: %s\n" % msg).encode("utf-8", "replace"))
    except OSError:
        pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.rbuf = bytearray()

    def send(self, obj):
        data = (json.dumps(obj) + "\n").encode("ascii")
        try:
            self.sock.sendall(data)
        except OSError:
            os._exit(0)

    def read_line(self):
        skipping = False
        while True:
            nl = self.rbuf.find(b"\n")
            if nl >= 0:
                line = bytes(self.rbuf[:nl])
                del self.rbuf[:nl + 1]
                return b"" if skipping else line
            if len(self.rbuf) > MAX_REQUEST:
                self.rbuf.clear()
                skipping = True
            try:
                chunk = self.sock.recv(1 << 20)
            except InterruptedError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self.rbuf += chunk


class Stream:
    """One of the shell's output pipes, scanned for the execution's marker."""

    def __init__(self, name, fd):
        self.name = name
        self.fd = fd
        self.buf = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.done = False
        self.status = None
        self.opts = None
        self.fed_at = 0.0             # when data last arrived

    def reset(self):
        self.done = False
        self.status = None

    def feed(self, data, marker, pattern, forward):
        """Add data; forward user output; detect the marker line."""
        if data:
            self.buf += data
            self.fed_at = time.monotonic()
        if self.done:
            return                    # after the marker: kept for next time
        m = pattern.search(self.buf)
        if m:
            self._forward(bytes(self.buf[:m.start()]), forward)
            self._end_text(forward)
            if m.lastindex:
                self.status = int(m.group(1))
                self.opts = m.group(2).decode("ascii")
            del self.buf[:m.end()]
            self.done = True
            return
        # Hold back a tail that could be the beginning of the marker line.
        hold = 0
        partial = re.compile(re.escape(marker) + rb"(:[0-9]*(:[A-Za-z]*)?)?")
        idx = self.buf.find(marker[:1], max(0, len(self.buf) - (len(marker) + 24)))
        while idx >= 0:
            tail = bytes(self.buf[idx:])
            if (len(tail) < len(marker) and marker.startswith(tail)) or partial.fullmatch(tail):
                hold = len(tail)
                break
            idx = self.buf.find(marker[:1], idx + 1)
        cut = len(self.buf) - hold
        if cut > 0:
            self._forward(bytes(self.buf[:cut]), forward)
            del self.buf[:cut]

    def flush_held(self, forward):
        """A tail held back as a possible marker start, quiet for
        FLUSH_AFTER s, is output: the marker comes in one write."""
        if self.buf and not self.done and time.monotonic() - self.fed_at >= FLUSH_AFTER:
            self._forward(bytes(self.buf), forward)
            self.buf.clear()

    def flush_all(self, forward):
        if self.buf:
            self._forward(bytes(self.buf), forward)
            self.buf.clear()
        self._end_text(forward)

    def _end_text(self, forward):
        # Each execution's bytes are decoded on their own: a sequence left
        # incomplete at its end is U+FFFD, never the next one's start.
        text = self.decoder.decode(b"", True)
        self.decoder.reset()
        if text:
            forward(self.name, text)

    def _forward(self, data, forward):
        if not data:
            return
        text = self.decoder.decode(data)
        for i in range(0, len(text), MAX_TEXT):
            forward(self.name, text[i:i + MAX_TEXT])


class Shell:
    def __init__(self, cwd):
        self.pipes = OutputPipes(("stdout", "stderr"))
        out_w, err_w = self.pipes.write_fds["stdout"], self.pipes.write_fds["stderr"]
        self.pipes.write_fds = {}    # the shell's alone
        # Copies of the pipes' write ends at fixed high fds for the sentinel.
        os.dup2(out_w, OUT_FD, inheritable=True)
        os.dup2(err_w, ERR_FD, inheritable=True)
        try:
            self.proc = subprocess.Popen(
                [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc"],
                stdin=subprocess.PIPE, stdout=out_w, stderr=err_w, cwd=cwd,
                process_group=0, pass_fds=(OUT_FD, ERR_FD), close_fds=True,
                preexec_fn=OutputPipes.unblock)
        finally:
            for fd in (out_w, err_w, OUT_FD, ERR_FD):
                os.close(fd)
        self.pgid = self.proc.pid
        self.opts = ""               # bash's $- after the last execution
        self.out = Stream("stdout", self.pipes.read_fds["stdout"])
        self.err = Stream("stderr", self.pipes.read_fds["stderr"])
        self.streams = {"stdout": self.out, "stderr": self.err}
        self.sfd = self.pipes.arm()  # this (the only) thread reads them
        self.send_line("shopt -s expand_aliases")

    def wait_fds(self):
        """What to wait on for output: the pipes' signals, or the pipes."""
        return [self.sfd] if self.sfd is not None else [self.out.fd, self.err.fd]

    def read(self):
        """[(Stream, bytes)] of the output there now, in the order written."""
        return [(self.streams[name], data) for name, data in self.pipes.read()]

    def send_line(self, line):
        data = (line + "\n").encode("utf-8", "replace")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def alive(self):
        return self.proc.poll() is None

    def group_members(self):
        """pids in the shell's process group, other than the shell."""
        pids = []
        try:
            names = os.listdir("/proc")
        except OSError:
            return pids
        for name in names:
            if not name.isdigit() or int(name) == self.proc.pid:
                continue
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    stat = f.read()
                fields = stat[stat.rindex(b")") + 2:].split()
                if int(fields[2]) == self.pgid:
                    pids.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def signal_group(self, sig):
        try:
            os.killpg(self.pgid, sig)
        except OSError:
            pass

    def kill(self):
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass
        self.close()

    def close(self):
        self.pipes.close()
        try:
            self.proc.stdin.close()
        except Exception:
            pass


# The INT trap: from the next command on, every command of the cell returns
# (DEBUG trap + extdebug: status 2 in a function or sourced file = return).
# Top-level commands (the sentinel) have an empty BASH_SOURCE and run.
_DEBUG_TRAP = '[[ ${#BASH_SOURCE[@]} -gt 0 ]] && return 2; :'
_INT_TRAP = "__iris_intr=1; shopt -s extdebug; trap %s DEBUG" % _quote(_DEBUG_TRAP)


class Kernel:
    def __init__(self, conn, context):
        self.conn = conn
        self.context = context
        self.cwd = os.getcwd()
        self.count = 0
        self.shell = None
        self.in_exec = False
        self.interrupted_at = None
        self.tmpdir = tempfile.mkdtemp(prefix="iris-bash-")
        self.error_sent = False

    def on_sigint(self, signum, frame):
        if not self.in_exec or self.shell is None:
            return
        if self.interrupted_at is None:
            self.interrupted_at = time.monotonic()
        self.shell.signal_group(signal.SIGINT)

    def forward(self, name, text):
        self.conn.send({"type": name, "text": _clean_str(text), "timestamp": _now()})

    def error(self, name, value, traceback=""):
        if self.error_sent:
            return
        self.error_sent = True
        self.conn.send({"type": "error", "name": name, "value": value, "traceback": traceback})

    def ensure_shell(self):
        if self.shell is not None and not self.shell.alive():
            self.shell.close()
            self.shell = None
            self.forward("stderr", "[the shell had exited; a fresh one was started, "
                                   "its state is lost]\n")
        if self.shell is None:
            self.shell = Shell(self.cwd)

    def execute(self, code, env_vars):
        self.count += 1
        n = self.count
        self.error_sent = False
        self.conn.send({"type": "number_of_executions", "execution_count": n})
        try:
            self._execute(code, env_vars, n)
        except Exception as e:         # a bug of ours: end the execution cleanly
            log("execution failed: %r" % (e,))
            self.error("KernelError", "bash kernel error: %s" % (e,))
        finally:
            self.in_exec = False
            self.interrupted_at = None
            self.conn.send({"type": "end_of_execution"})

    def _execute(self, code, env_vars, n):
        self.ensure_shell()
        sh = self.shell
        path = os.path.join(self.tmpdir, "cell-%d" % n)
        with open(path, "wb") as f:
            # The user's `set -x` is switched off between executions (so our
            # own commands are not traced) and back on here, on line 1 so
            # that line numbers in bash's messages stay right.
            if "x" in sh.opts:
                f.write(b"set -x; ")
            f.write(code.encode("utf-8", "replace"))
        assigns = []
        if isinstance(env_vars, dict):
            for k, v in env_vars.items():
                if isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, (str, int, float)) \
                        and not isinstance(v, bool) and "\0" not in str(v):
                    assigns.append("%s=%s" % (k, _quote(str(v))))
        token = "__IRIS_%s__" % secrets.token_hex(16)
        half = len(token) // 2
        marker = token.encode()
        out_pat = re.compile(re.escape(marker) + rb":([0-9]+):([A-Za-z]*)\n")
        err_pat = re.compile(re.escape(marker) + rb"\n")
        # The marker is printed from two halves so the command text never
        # contains it (`set -v` echoes commands to stderr).
        sentinel = ("{ __iris_rc=$?; __iris_opts=$-; set +vx; "
                    "if [[ -n ${__iris_intr-} ]]; then trap - DEBUG; shopt -u extdebug; __iris_intr=; fi; "
                    "printf '%%s%%s:%%d:%%s\\n' %s %s \"$__iris_rc\" \"$__iris_opts\" >&%d; "
                    "printf '%%s%%s\\n' %s %s >&%d; } 2>/dev/null"
                    % (_quote(token[:half]), _quote(token[half:]), OUT_FD,
                       _quote(token[:half]), _quote(token[half:]), ERR_FD))
        # `set -v` too is off while bash reads this line, and back on for the
        # cell (bash echoes lines as it reads them).
        line = ("{ trap %s INT; [[ ${__iris_opts-} != *v* ]] || set -v; } 2>/dev/null; "
                "%s%ssource %s </dev/null; %s" % (
                    _quote(_INT_TRAP), " ".join(assigns), " " if assigns else "",
                    _quote(path), sentinel))
        sh.out.reset()
        sh.err.reset()
        self.in_exec = True
        try:
            sh.send_line(line)
        except OSError:
            pass                       # the shell died: found below
        # Output left from between executions comes first.
        sh.out.feed(b"", marker, out_pat, self.forward)
        sh.err.feed(b"", marker, err_pat, self.forward)

        sel = selectors.DefaultSelector()
        for fd in sh.wait_fds():
            sel.register(fd, selectors.EVENT_READ)
        pats = {id(sh.out): out_pat, id(sh.err): err_pat}
        killed_children = False
        try:
            while not (sh.out.done and sh.err.done):
                try:
                    events = sel.select(timeout=0.1)
                except InterruptedError:
                    events = []
                if events:
                    for st, data in sh.read():
                        st.feed(data, marker, pats[id(st)], self.forward)
                if sh.out.done and sh.err.done:
                    break
                for st in (sh.out, sh.err):
                    st.flush_held(self.forward)
                if not sh.alive():
                    # Read what is left: the markers may be in it.
                    for st, data in self._read_rest(sh):
                        st.feed(data, marker, pats[id(st)], self.forward)
                    if sh.out.done and sh.err.done:
                        break
                    self._shell_exited(sh)
                    return
                if self.interrupted_at is not None:
                    waited = time.monotonic() - self.interrupted_at
                    if waited > KILL_SHELL_AFTER:
                        sh.kill()
                        self._drain_and_flush(sh)
                        self.shell = None
                        self.error("Interrupted", "interrupted by SIGINT; the shell did not "
                                   "stop, so it was killed: its state is lost and the next "
                                   "execution starts a fresh shell")
                        return
                    if waited > KILL_CHILDREN_AFTER and not killed_children:
                        killed_children = True
                        for pid in sh.group_members():
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except OSError:
                                pass
        finally:
            sel.close()
        if sh.out.opts is not None:
            sh.opts = sh.out.opts
        if self.interrupted_at is not None:
            self.error("Interrupted", "interrupted by SIGINT")
        elif sh.out.status:
            self.error("ExitStatus", "exit status %d" % sh.out.status)
        try:
            os.unlink(path)
        except OSError:
            pass

    @staticmethod
    def _read_rest(sh):
        """What can be read now, without blocking (bounded), in order."""
        writes = []
        for _ in range(64):
            more = sh.read()
            if not more:
                break
            writes += more
        return writes

    def _drain_and_flush(self, sh):
        for st, data in self._read_rest(sh):          # in order, nothing held back
            st.buf += data
            st._forward(bytes(st.buf), self.forward)
            st.buf.clear()
        for st in (sh.out, sh.err):
            st.flush_all(self.forward)

    def _shell_exited(self, sh):
        status = sh.proc.wait()
        self._drain_and_flush(sh)
        sh.close()
        self.shell = None
        if status < 0:
            desc = "killed by signal %d" % -status
        else:
            desc = "exit status %d" % status
        if self.interrupted_at is not None:
            self.error("Interrupted", "interrupted by SIGINT; the shell exited (%s): its "
                       "state is lost and the next execution starts a fresh shell" % desc)
        else:
            self.error("ExitStatus", "%s (the shell exited: its state is lost and the next "
                       "execution starts a fresh shell)" % desc)

    def bad_request(self, message):
        self.conn.send({"type": "error", "name": "InvalidRequest", "value": message,
                        "traceback": ""})
        self.conn.send({"type": "end_of_execution"})

    def serve(self):
        while True:
            line = self.conn.read_line()
            if line is None:
                return
            if line == b"":
                self.bad_request("request line too long")
                continue
            try:
                req = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                log("malformed request line skipped")
                continue
            if not isinstance(req, dict):
                continue
            op = req.get("op")
            if op == "execute":
                code = req.get("code")
                if not isinstance(code, str):
                    self.bad_request('"code" must be a string')
                    continue
                self.execute(code, req.get("env_vars"))
            else:
                log("unknown op skipped: %r" % (op,))

    def shutdown(self):
        if self.shell is not None:
            self.shell.kill()
            self.shell = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _connect(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main():
    context = sys.argv[1] if len(sys.argv) > 1 else "default"
    holder = {}

    def on_sigint(signum, frame):
        k = holder.get("k")
        if k is not None:
            k.on_sigint(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    sock = _connect(os.environ.get("IRIS_KERNEL_SOCK") or DEFAULT_SOCK)
    conn = Conn(sock)
    conn.send({"type": "hello", "context": context, "language": "bash", "pid": os.getpid()})
    kernel = Kernel(conn, context)
    holder["k"] = kernel
    try:
        kernel.ensure_shell()
        kernel.serve()
    finally:
        kernel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
