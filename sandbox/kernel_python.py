"""Iris Python kernel: runs user code for one context, IPython-like.

Contract: docs/sandbox-internals.md.  Normally started in-process by a zygote
fork of supervisor.py (``main(ctx, zygote=True)``); it can also be run on its
own: ``python3 kernel_python.py <context-id>``.

Protocol: connect to the kernel socket (``IRIS_KERNEL_SOCK``, default
``/run/iris/kernel.sock``), send ``hello``, then for each ``execute`` line
stream event lines and finish with ``end_of_execution``.

Output capture: fds 1 and 2 are pipes read by one reader thread that forwards
what it reads as ``stdout`` / ``stderr`` lines, so output of C code and of
subprocesses is captured too; ``sys.stdout`` / ``sys.stderr`` are thin
line-buffered writers onto the same fds (one path, so ordering within a
stream holds).  At the end of an execution (and before every result line)
the pipes are drained, so everything written so far precedes the next
result / ``end_of_execution``.  Output written between executions (threads,
background processes) is kept (at most 64 KiB) and sent at the start of the
next execution.

Interrupts: SIGINT raises KeyboardInterrupt only while user code runs; during
the kernel's own socket writes it is deferred, between executions ignored.
It is forwarded to the kernel's process group (foreground children), and
os.system is replaced by an interruptible equivalent.

More (results, matplotlib, IPython syntax, limits): sandbox/README.md.
"""

import ast
import asyncio
import base64
import builtins
import ctypes
import datetime
import io
import json
import linecache
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import types

from iris_capture import Capture, _Writer

DEFAULT_SOCK = "/run/iris/kernel.sock"
MAX_REQUEST = 64 << 20        # a request line longer than this is refused
MAX_SOURCE_CACHE = 32 << 20   # cell sources kept for tracebacks
MAX_DATA_CELLS = 100000       # DataFrames larger than this get no `data`
MAX_DATA_BYTES = 4 << 20

_KERNEL_FILE = os.path.abspath(__file__)
if _KERNEL_FILE.endswith((".pyc", ".pyo")):
    _KERNEL_FILE = _KERNEL_FILE[:-1]
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep

_KERNEL = None                # the running Kernel (module global for hooks)


# ---------------------------------------------------------------------------
# JSON hygiene: valid JSON only (no NaN/Infinity, no lone surrogates).

def _strip_quotes(text):
    """One pair of surrounding quotes off, as E2B's server does."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _clean_str(s):
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def _clean(o, depth=0):
    """Turn o into something json.dumps(allow_nan=False) accepts."""
    if depth > 64:
        return None
    if o is None or o is True or o is False:
        return o
    if isinstance(o, str):
        return _clean_str(o)
    if isinstance(o, int):
        return int(o)
    if isinstance(o, float):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if isinstance(k, str):
                key = _clean_str(k)
            elif k is None or isinstance(k, (bool, int, float)):
                key = json.dumps(_clean(k))
            else:
                key = _clean_str(str(k))
            out[key] = _clean(v, depth + 1)
        return out
    if isinstance(o, (list, tuple)):
        return [_clean(v, depth + 1) for v in o]
    mod = type(o).__module__ or ""
    if mod.startswith(("numpy", "pandas")):
        try:
            if not hasattr(o, "__len__") and bool(o != o):   # scalar NaN, NaT, NA
                return None
        except Exception:
            pass
        try:
            if hasattr(o, "tolist"):
                return _clean(o.tolist(), depth + 1)
            if hasattr(o, "isoformat"):          # pandas Timestamp / NaT
                return _clean(o.isoformat(), depth + 1)
            if hasattr(o, "item"):
                return _clean(o.item(), depth + 1)
        except Exception:
            pass
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        try:
            return o.isoformat()
        except Exception:
            return None
    try:
        return _clean_str(str(o))
    except Exception:
        return None


def _dumps(obj):
    try:
        return json.dumps(obj, allow_nan=False)
    except (ValueError, TypeError):
        return json.dumps(_clean(obj), allow_nan=False)


# ---------------------------------------------------------------------------
# The socket to the daemon.

class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.rbuf = bytearray()
        self.disabled = False     # set in forked children of user code
        self.log_fd = 2

    def send_locked(self, obj):
        if self.disabled:
            return
        data = (_dumps(obj) + "\n").encode("ascii")
        try:
            self.sock.sendall(data)
        except OSError:
            # The daemon is gone: nothing left to do for this kernel.
            os._exit(0)

    def send(self, obj):
        with self.lock:
            self.send_locked(obj)

    def read_line(self):
        """Next request line (bytes); b"" for an over-long line; None on EOF."""
        skipping = False
        while True:
            nl = self.rbuf.find(b"\n")
            if nl >= 0:
                line = bytes(self.rbuf[:nl])
                del self.rbuf[:nl + 1]
                if skipping:
                    return b""
                return line
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



class StdinNotImplementedError(EOFError):
    """input() in a sandbox: there is no one to answer."""


StdinNotImplementedError.__module__ = "builtins"


def _input(prompt=""):
    raise StdinNotImplementedError(
        "input() is not supported: code in this sandbox has no stdin")


def _system(command):
    """os.system() that can be interrupted.

    The C library's system() ignores SIGINT in the caller while the command
    runs, so the daemon's interrupt would wait for the command to end.  This
    runs the same `/bin/sh -c command` with subprocess (same fds, same
    process group) and returns the same wait status."""
    import subprocess
    rc = subprocess.call(command, shell=True)
    return (rc & 0xff) << 8 if rc >= 0 else -rc


# IPython syntax that LLM-written notebook code often contains.  Only tried
# when a cell does not parse as Python: `!command` lines, a few line magics
# (`%matplotlib` is a no-op, `%pip`/`%conda` run pip, `%cd`, `%env`, `%pwd`)
# and the cell magics `%%bash`/`%%sh` and `%%writefile`.  Anything else
# `%...` raises UsageError, as IPython does for an unknown magic.
_SHELL_LINE = re.compile(r"^([ \t]*)!(.*)$", re.M)
_MAGIC_LINE = re.compile(r"^([ \t]*)%([A-Za-z_]\w*)[ \t]*(.*)$", re.M)
_CELL_MAGIC = re.compile(r"\A[ \t]*%%([A-Za-z_]\w*)[ \t]*(.*)(?:\n|\Z)")


class UsageError(Exception):
    pass


UsageError.__module__ = "builtins"


def _ipython_syntax(code):
    m = _CELL_MAGIC.match(code)
    if m:
        return "__iris_cell_magic__(%r, %r, %r)\n" % (m.group(1), m.group(2), code[m.end():])
    code = _SHELL_LINE.sub(lambda m: "%s__iris_shell__(%r)" % (m.group(1), m.group(2)), code)
    return _MAGIC_LINE.sub(lambda m: "%s__iris_magic__(%r, %r)" % m.groups(), code)


def _shell(command):
    """`!command` in a cell (IPython's shell escape): run it, output streamed."""
    _system(command)


def _magic(name, arg):
    import shlex
    if name == "matplotlib":
        return None                       # figures are always shown inline
    if name in ("pip", "conda"):
        _system("%s -m pip %s" % (shlex.quote(sys.executable), arg))
        return None
    if name == "cd":
        os.chdir(os.path.expanduser(arg.strip() or "~"))
        print(os.getcwd())
        return None
    if name == "pwd":
        return os.getcwd()
    if name == "env":
        arg = arg.strip()
        if not arg:
            return dict(os.environ)
        if "=" in arg or " " in arg:
            k, _, v = arg.partition("=" if "=" in arg else " ")
            os.environ[k.strip()] = v.strip()
            return None
        return os.environ[arg]
    raise UsageError("Line magic function `%%%s` not found." % name)


def _cell_magic(name, arg, body):
    import shlex
    if name in ("bash", "sh"):
        import subprocess
        rc = subprocess.call(["/bin/bash" if name == "bash" else "/bin/sh", "-c", body])
        if rc:
            raise subprocess.CalledProcessError(rc, name)
        return None
    if name == "writefile":
        args = shlex.split(arg)
        append = "-a" in args or "--append" in args
        files = [a for a in args if a not in ("-a", "--append")]
        if len(files) != 1:
            raise UsageError("%%writefile needs one file name")
        with open(os.path.expanduser(files[0]), "a" if append else "w") as f:
            f.write(body)
        print("%s %s" % ("Appending to" if append else "Writing", files[0]))
        return None
    raise UsageError("Cell magic `%%%%%s` not found." % name)


def _display(*objs, **kwargs):
    """IPython-style display(): each object becomes a (non-main) result."""
    k = _KERNEL
    if k is not None:
        for obj in objs:
            k.display(obj)


# ---------------------------------------------------------------------------
# Rich results.

_REPR_METHODS = (
    ("_repr_html_", "html"),
    ("_repr_markdown_", "markdown"),
    ("_repr_svg_", "svg"),
    ("_repr_png_", "png"),
    ("_repr_jpeg_", "jpeg"),
    ("_repr_pdf_", "pdf"),
    ("_repr_latex_", "latex"),
    ("_repr_json_", "json"),
    ("_repr_javascript_", "javascript"),
)
_MIME_FIELDS = {
    "text/plain": "text", "text/html": "html", "text/markdown": "markdown",
    "image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpeg",
    "application/pdf": "pdf", "text/latex": "latex", "application/json": "json",
    "application/javascript": "javascript",
}
_BINARY_FIELDS = ("png", "jpeg", "pdf")
_FIELD_ORDER = ("text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex",
                "json", "javascript", "data", "chart")


def _convert(field, data):
    """A repr method's return value -> wire value for `field`, or None."""
    if isinstance(data, tuple) and data:          # (data, metadata)
        data = data[0]
    if data is None:
        return None
    if field in _BINARY_FIELDS:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(data)).decode("ascii")
        if isinstance(data, str):
            return _clean_str(data)           # already base64
        return None
    if field == "json":
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError:
                return None
        if isinstance(data, (dict, list, tuple)):
            return _clean(data)
        return None
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        return _clean_str(data)
    return None


def _is_figure(value):
    mf = sys.modules.get("matplotlib.figure")
    return mf is not None and isinstance(value, mf.Figure)


def _is_dataframe(value):
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _dataframe_data(df):
    """E2B's `data` for a DataFrame: column -> list of values (bounded)."""
    if df.size > MAX_DATA_CELLS:
        return None
    out = {}
    for col in df.columns:
        key = col if isinstance(col, str) else str(col)
        out[key] = _clean(df[col].tolist() if hasattr(df[col], "tolist") else list(df[col]))
    if len(_dumps(out)) > MAX_DATA_BYTES:
        return None
    return out


# ---------------------------------------------------------------------------
# Tracebacks: the user's frames only.

def _is_kernel_frame(filename):
    return filename == _KERNEL_FILE


def _filter_tb(tb):
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    # Leading frames: the kernel and the asyncio machinery that ran the cell.
    i = 0
    while i < len(entries):
        fn = entries[i].tb_frame.f_code.co_filename
        if _is_kernel_frame(fn) or fn.startswith(_ASYNCIO_DIR):
            i += 1
        else:
            break
    kept = [e for e in entries[i:] if not _is_kernel_frame(e.tb_frame.f_code.co_filename)]
    new = None
    for e in reversed(kept):
        new = types.TracebackType(new, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return new


def _filter_exc(exc, seen=None):
    if seen is None:
        seen = set()
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    try:
        exc.__traceback__ = _filter_tb(exc.__traceback__)
    except Exception:
        pass
    _filter_exc(exc.__cause__, seen)
    _filter_exc(exc.__context__, seen)
    for sub in getattr(exc, "exceptions", None) or ():
        if isinstance(sub, BaseException):
            _filter_exc(sub, seen)


def _error_line(exc):
    import traceback
    try:
        _filter_exc(exc)
    except Exception:
        pass
    name = type(exc).__name__
    try:
        value = str(exc)
    except BaseException:
        value = "<exception str() failed>"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:
        tb = "%s: %s\n" % (name, value)
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
    return {"type": "error", "name": _clean_str(name), "value": _clean_str(value),
            "traceback": _clean_str(tb)}


# ---------------------------------------------------------------------------
# matplotlib: plt.show() emits the open figures (Agg's show does nothing).

def _iris_show(*args, **kwargs):
    k = _KERNEL
    if k is not None:
        k.show_figures()


_iris_show._iris = True


def _patch_pyplot(mod):
    try:
        if getattr(mod.show, "_iris", False):
            return
        _iris_show.__doc__ = mod.show.__doc__
        mod.show = _iris_show
    except Exception:
        pass


class _PyplotHook:
    """Meta-path finder: patches matplotlib.pyplot.show as pyplot is imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "matplotlib.pyplot":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            try:
                spec = finder.find_spec(fullname, path, target)
            except Exception:
                continue
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                inner = spec.loader.exec_module

                def exec_module(module, _inner=inner):
                    _inner(module)
                    _patch_pyplot(module)
                try:
                    spec.loader.exec_module = exec_module
                except Exception:
                    return None
                return spec
        return None

    def invalidate_caches(self):
        pass


# ---------------------------------------------------------------------------
# The kernel.

class Kernel:
    def __init__(self, conn, context, log_fd):
        self.conn = conn
        self.context = context
        self.log_fd = log_fd
        self.pid = os.getpid()
        self.count = 0
        # SIGINT state (main thread only).
        self.intr_enabled = False     # raise KeyboardInterrupt now
        self.in_exec = False
        self.intr_pending = False
        self.sources = {}             # filename -> size, oldest first
        self.sources_size = 0
        self.aloop = None
        self.libc = None
        self.error_sent = False
        self.sigint_handler = None    # set by main()

        self.main_mod = types.ModuleType("__main__")
        self.ns = self.main_mod.__dict__
        self.ns["__builtins__"] = builtins
        sys.modules["__main__"] = self.main_mod

        self.capture = Capture(conn)
        self.stdout = _Writer(1, "<stdout>",
                              lambda t: self.capture.write_direct("stdout", t))
        self.stderr = _Writer(2, "<stderr>",
                              lambda t: self.capture.write_direct("stderr", t))
        self.stdin = None
        self._install_streams()
        builtins.input = _input
        builtins.display = _display
        builtins.__iris_shell__ = _shell
        builtins.__iris_magic__ = _magic
        builtins.__iris_cell_magic__ = _cell_magic
        _system.__doc__ = os.system.__doc__
        os.system = _system

        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            _patch_pyplot(pyplot)
        else:
            sys.meta_path.insert(0, _PyplotHook())
        os.register_at_fork(after_in_child=self._after_fork_child)

    def log(self, msg):
        try:
            os.write(self.log_fd, ("iris-kernel-python: %s\n" % msg).encode("utf-8", "replace"))
        except OSError:
            pass

    def _after_fork_child(self):
        # A fork made by user code (multiprocessing, os.fork) is not the
        # kernel: it must never talk on the kernel's socket, and SIGINT is a
        # plain KeyboardInterrupt there.
        self.conn.disabled = True
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except Exception:
            pass

    def _install_streams(self):
        sys.stdout = sys.__stdout__ = self.stdout
        sys.stderr = sys.__stderr__ = self.stderr
        # stdin is /dev/null; exit() closes sys.stdin, so renew it when needed.
        if self.stdin is None or self.stdin.closed or sys.stdin is not self.stdin:
            try:
                self.stdin = open(0, "r", encoding="utf-8", closefd=False)
            except OSError:
                self.stdin = None
            sys.stdin = sys.__stdin__ = self.stdin

    # -- SIGINT ------------------------------------------------------------
    def on_sigint(self, signum, frame):
        if not self.in_exec:
            return                    # between executions: ignored
        # Like Ctrl-C in a terminal: the foreground children (os.system,
        # subprocess.run, ... : our process group) get SIGINT too.
        self._interrupt_group()
        if self.intr_enabled:
            self.intr_pending = False
            raise KeyboardInterrupt
        self.intr_pending = True

    def _interrupt_group(self):
        if os.getpid() != self.pid:
            return
        try:
            pgid = os.getpgid(0)
            if pgid != self.pid:
                return                # not our own group: leave it alone
            for name in os.listdir("/proc"):
                if not name.isdigit() or int(name) == self.pid:
                    continue
                try:
                    with open("/proc/%s/stat" % name, "rb") as f:
                        stat = f.read()
                    fields = stat[stat.rindex(b")") + 2:].split()
                    if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                        os.kill(int(name), signal.SIGINT)
                except (OSError, ValueError, IndexError):
                    continue
        except Exception:
            pass

    def _user_enter(self):
        self.intr_enabled = True
        if self.intr_pending:
            self.intr_pending = False
            raise KeyboardInterrupt

    def _user_leave(self):
        self.intr_enabled = False
        if os.getpid() != self.pid:       # user code forked and the child got here
            os._exit(0)

    def _critical_send(self, obj, drain=True):
        """Send a line from inside user code: not interruptible meanwhile."""
        main = threading.current_thread() is threading.main_thread()
        was = self.intr_enabled if main else False
        if main:
            self.intr_enabled = False
        try:
            if drain:
                self._flush_streams()
                self.capture.drain()
            self.conn.send(obj)
        finally:
            if main:
                self.intr_enabled = was
        if was and self.intr_pending:
            self.intr_pending = False
            raise KeyboardInterrupt

    # -- results -----------------------------------------------------------
    # (E2B's code interpreter strips one pair of quotes around text/plain,
    # so a string result reads 'abc' -> abc there: _strip_quotes does too.)
    def _format(self, value):
        """Rich representation of value (runs user code: __repr__ & co)."""
        if _is_figure(value):
            out = self._figure_fields(value)
            self._close_figure(value)
            return out
        out = {"text": _strip_quotes(_clean_str(repr(value)))}
        extra = {}
        # Objects that claim to have every attribute (mocks, proxies) get text only.
        try:
            fake = hasattr(value, "_iris_canary_method_should_not_exist_")
        except Exception:
            fake = True
        if not fake:
            bundle = self._call_repr(value, "_repr_mimebundle_")
            if isinstance(bundle, tuple) and bundle:
                bundle = bundle[0]
            if isinstance(bundle, dict):
                for mime, data in bundle.items():
                    if not isinstance(mime, str) or mime == "text/plain":
                        continue
                    field = _MIME_FIELDS.get(mime)
                    if field is None:
                        extra[_clean_str(mime)] = _clean(data)
                    else:
                        v = _convert(field, data)
                        if v is not None:
                            out[field] = v
            for meth, field in _REPR_METHODS:
                if field in out:
                    continue
                v = _convert(field, self._call_repr(value, meth))
                if v is not None:
                    out[field] = v
        if _is_dataframe(value):
            try:
                data = _dataframe_data(value)
                if data is not None:
                    out["data"] = data
            except Exception:
                pass
        ordered = {f: out[f] for f in _FIELD_ORDER if f in out}
        return ordered, extra

    def _call_repr(self, value, name):
        try:
            meth = getattr(value, name, None)
            if meth is None or not callable(meth):
                return None
            return meth()
        except KeyboardInterrupt:
            raise
        except Exception as e:
            try:
                self.stderr.write("%s.%s failed: %s: %s\n"
                                  % (type(value).__name__, name, type(e).__name__, e))
            except Exception:
                pass
            return None

    def _figure_fields(self, fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return ({"text": _clean_str(repr(fig)),
                 "png": base64.b64encode(buf.getvalue()).decode("ascii")}, {})

    def _close_figure(self, fig):
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close(fig)
            except Exception:
                pass

    @staticmethod
    def _result_line(fields, extra, main):
        line = {"type": "result"}
        line.update(fields)
        line["is_main_result"] = main
        line["extra"] = extra
        return line

    def display(self, obj):
        if not self.in_exec:
            return
        fields, extra = self._format(obj)
        self._critical_send(self._result_line(fields, extra, False))

    def _open_figures(self):
        if "matplotlib.pyplot" not in sys.modules:
            return []
        try:
            from matplotlib._pylab_helpers import Gcf
            return [m.canvas.figure for m in Gcf.get_all_fig_managers()]
        except Exception:
            return []

    def show_figures(self):
        """plt.show(): every open figure becomes a PNG result, then is closed."""
        if not self.in_exec:
            return
        for fig in self._open_figures():
            try:
                fields, extra = self._figure_fields(fig)
            finally:
                self._close_figure(fig)
            self._critical_send(self._result_line(fields, extra, False))

    # -- running code --------------------------------------------------------
    def _register_source(self, filename, code):
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.sources[filename] = len(code)
        self.sources_size += len(code)
        while self.sources_size > MAX_SOURCE_CACHE and len(self.sources) > 1:
            old = next(iter(self.sources))
            self.sources_size -= self.sources.pop(old)
            linecache.cache.pop(old, None)

    @staticmethod
    def _suppressed(code):
        """IPython: a trailing ';' hides the value of the last expression."""
        import tokenize
        last = None
        try:
            for tok in tokenize.generate_tokens(io.StringIO(code).readline):
                if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                    continue
                last = tok
        except Exception:
            return False
        return last is not None and last.type == tokenize.OP and last.string == ";"

    def _run(self, code_obj):
        if code_obj.co_flags & 0x80:           # CO_COROUTINE: top-level await
            if self.aloop is None or self.aloop.is_closed():
                self.aloop = asyncio.new_event_loop()
            coro = eval(code_obj, self.ns)
            task = self.aloop.create_task(coro)
            try:
                return self.aloop.run_until_complete(task)
            except BaseException:
                task.cancel()
                raise
        return eval(code_obj, self.ns)

    def _run_cell(self, code, filename):
        """Runs the cell; returns (has_value, value)."""
        self._register_source(filename, code)
        try:
            mod_code, expr_code = self._compile(code, filename)
        except SyntaxError as e:
            e.__traceback__ = None        # no frames of ast & co.
            raise e
        self._run(mod_code)
        if expr_code is None:
            return False, None
        return True, self._run(expr_code)

    def _compile(self, code, filename):
        try:
            tree = ast.parse(code, filename, "exec")
        except SyntaxError:
            # IPython syntax (`!command`, magics): only tried when the code
            # is not Python as it stands.
            shelled = _ipython_syntax(code)
            try:
                tree = ast.parse(shelled, filename, "exec") if shelled != code else None
            except SyntaxError:
                tree = None
            if tree is None:
                raise
            code = shelled
        expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not self._suppressed(code):
            expr = ast.Expression(tree.body.pop().value)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        mod_code = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        expr_code = compile(expr, filename, "eval", flags=flags, dont_inherit=True) if expr else None
        return mod_code, expr_code

    def _flush_streams(self):
        for s in (sys.stdout, sys.stderr, self.stdout, self.stderr):
            try:
                s.flush()
            except BaseException:
                pass
        try:
            if self.libc is None:
                self.libc = ctypes.CDLL(None)
            self.libc.fflush(None)            # C stdio buffers of extensions
        except Exception:
            self.libc = False

    def _apply_env(self, env):
        saved = []
        if not isinstance(env, dict):
            return saved
        for k, v in env.items():
            if not isinstance(k, str) or not k or "=" in k or "\0" in k:
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                continue
            v = str(v)
            if "\0" in v:
                continue
            try:
                saved.append((k, os.environ.get(k)))
                os.environ[k] = v
            except (ValueError, OSError, UnicodeError):
                saved.pop()
        return saved

    @staticmethod
    def _restore_env(saved):
        for k, old in reversed(saved):
            try:
                if old is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = old
            except Exception:
                pass

    def _send_error(self, exc):
        if self.error_sent:
            return
        self.error_sent = True
        line = _error_line(exc)
        self._flush_streams()
        self.capture.drain()
        self.conn.send(line)

    def execute(self, code, env_vars):
        self.count += 1
        n = self.count
        self.in_exec = True
        self.intr_pending = False
        self.error_sent = False
        try:
            if signal.getsignal(signal.SIGINT) is not self.sigint_handler:
                signal.signal(signal.SIGINT, self.sigint_handler)
        except (ValueError, TypeError):
            pass
        self.conn.send({"type": "number_of_executions", "execution_count": n})
        self.capture.begin()
        self.capture.repair_fds()
        self._install_streams()
        builtins.input = _input
        builtins.display = _display
        builtins.__iris_shell__ = _shell
        builtins.__iris_magic__ = _magic
        builtins.__iris_cell_magic__ = _cell_magic
        saved = self._apply_env(env_vars)
        error = None
        try:
            # Phase 1: the code and its value's representation (user code).
            main = None
            try:
                self._user_enter()
                try:
                    has_value, value = self._run_cell(code, "<cell-%d>" % n)
                    if has_value and value is not None:
                        self.ns["_"] = value
                        main = self._format(value)
                finally:
                    self._user_leave()
            except BaseException as e:
                error = e
            if error is not None:
                self._send_error(error)
            elif main is not None:
                self._flush_streams()
                self.capture.drain()
                self.conn.send(self._result_line(main[0], main[1], True))
            # Phase 2: figures left open (skipped after an interrupt).
            figures = self._open_figures()
            if figures and not isinstance(error, KeyboardInterrupt):
                for fig in figures:
                    fields = None
                    try:
                        self._user_enter()
                        try:
                            fields = self._figure_fields(fig)
                        finally:
                            self._user_leave()
                    except BaseException as e:
                        self._send_error(e)
                        if isinstance(e, KeyboardInterrupt):
                            break
                    if fields is not None:
                        self._flush_streams()
                        self.capture.drain()
                        self.conn.send(self._result_line(fields[0], fields[1], False))
            if figures:
                plt = sys.modules.get("matplotlib.pyplot")
                try:
                    plt.close("all")
                except Exception:
                    pass
        except BaseException as e:            # a bug of ours: still end cleanly
            self.intr_enabled = False
            try:
                self._send_error(e)
            except BaseException:
                pass
        finally:
            self.intr_enabled = False
            self._restore_env(saved)
            self._flush_streams()
            self.capture.end({"type": "end_of_execution"})
            self.in_exec = False
            self.intr_pending = False
            error = None              # drop references to the cell's frames

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
                self.log("malformed request line skipped")
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
                self.log("unknown op skipped: %r" % (op,))


def prewarm():
    """In the zygote, before any fork: compile a cell the way execute()
    does, so the caches that fills (tokenize's regular expressions, above
    all) are made once here and shared, not rebuilt by every kernel (about
    5 ms of CPU per fork).  Runs no user code and keeps no state a kernel
    could see."""
    cell = "x = 1\nx;\n"
    Kernel._suppressed(cell)
    for mode, src in (("exec", cell), ("eval", "x")):
        compile(ast.parse(src, "<prewarm>", mode), "<prewarm>", mode,
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def main(context=None, zygote=False):
    global _KERNEL
    if context is None:
        context = sys.argv[1] if len(sys.argv) > 1 else "default"
    holder = {}

    def early_sigint(signum, frame):
        k = holder.get("k")
        if k is not None:
            k.on_sigint(signum, frame)

    signal.signal(signal.SIGINT, early_sigint)
    if zygote:
        np = sys.modules.get("numpy")
        if np is not None:
            try:
                # Forks must not share the zygote's stream.  A full
                # 624-word state from the OS, as seed() would draw, but
                # without its Python-level entropy pooling (a fork pays for
                # every page it touches).
                np.random.seed(np.frombuffer(os.urandom(2496),
                                             dtype=np.uint32))
            except Exception:
                pass
    here = os.path.dirname(_KERNEL_FILE)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here or p == ""]
    if not sys.path or sys.path[0] != "":
        sys.path.insert(0, "")
    sys.argv = [""]

    sock = _connect(os.environ.get("IRIS_KERNEL_SOCK") or DEFAULT_SOCK)
    conn = Conn(sock)
    conn.send({"type": "hello", "context": context, "language": "python",
               "pid": os.getpid()})
    log_fd = os.dup(2)                     # the sandbox log, before fd 2 is captured
    conn.log_fd = log_fd
    kernel = Kernel(conn, context, log_fd)
    kernel.sigint_handler = early_sigint
    _KERNEL = kernel
    holder["k"] = kernel
    kernel.serve()
    return 0


if __name__ == "__main__":
    main()
    os._exit(0)
