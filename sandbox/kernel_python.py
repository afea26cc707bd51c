"""Iris Python kernel: runs user code for one context on IPython.

Contract: docs/sandbox-internals.md.  Normally started in-process by a zygote
fork of supervisor.py (``main(ctx, zygote=True)``), which built the IPython
shell before the fork (``prepare()``); it can also be run on its own:
``python3 kernel_python.py <context-id>``.

Protocol: connect to the kernel socket (``IRIS_KERNEL_SOCK``, default
``/run/iris/kernel.sock``), send ``hello``, then for each ``execute`` line
stream event lines and finish with ``end_of_execution``.

Running code: IPython's ``InteractiveShell`` (input transforms and common
indent stripping, magics, ``!shell`` escapes, top-level await, the display
formatters and ``display()``).  Its display hook and display publisher are
replaced by ones that turn each mimebundle into a ``result`` line; its
traceback display by one that sends the ``error`` line.

Output capture: iris_capture (fds 1 and 2 are pipes read by one thread; the
``sys.stdout`` / ``sys.stderr`` writers share that path).  Before every
result line and at the end of an execution the pipes are drained, so
everything written so far precedes the next result / ``end_of_execution``.

Interrupts: SIGINT raises KeyboardInterrupt only while a cell runs; during
the kernel's own socket writes it is deferred, between executions ignored.
It is forwarded to the kernel's process group (foreground children), and
os.system is replaced by an interruptible equivalent.

More (results, matplotlib, PIL, plotly, limits): sandbox/README.md.
"""

import asyncio
import base64
import builtins
import ctypes
import datetime
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import types

from iris_capture import Capture, _Writer

DEFAULT_SOCK = "/run/iris/kernel.sock"
MAX_REQUEST = 64 << 20        # a request line longer than this is refused
MAX_DATA_CELLS = 100000       # DataFrames larger than this get no `data`
MAX_DATA_BYTES = 4 << 20      # nor does any `data` / `json` larger than this

_KERNEL_FILE = os.path.abspath(__file__)
if _KERNEL_FILE.endswith((".pyc", ".pyo")):
    _KERNEL_FILE = _KERNEL_FILE[:-1]
_HERE = os.path.dirname(_KERNEL_FILE)
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep

_KERNEL = None                # the running Kernel (module global for hooks)
_SHELL = None                 # the IPython shell, built once (prepare())

_CHARTS = []                  # [iris_charts module or None], once looked up


def _charts():
    """iris_charts (chart_of(fig) -> E2B's chart schema, or None) if it
    imports: looked up at the first figure (the supervisor's preload
    imports it), so a kernel without matplotlib never loads it."""
    if not _CHARTS:
        mod = sys.modules.get("iris_charts")
        path = os.path.join(_HERE, "iris_charts.py")
        if mod is None and os.path.exists(path):
            # Not on sys.path in a kernel (main() takes this directory off).
            import importlib.util
            try:
                spec = importlib.util.spec_from_file_location("iris_charts", path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules["iris_charts"] = mod
                spec.loader.exec_module(mod)
            except Exception:
                sys.modules.pop("iris_charts", None)
                mod = None
        _CHARTS.append(mod)
    return _CHARTS[0]

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


# ---------------------------------------------------------------------------
# Results: a mimebundle -> the fields of a `result` line (E2B's names).

_MIME_FIELDS = {
    "text/plain": "text", "text/html": "html", "text/markdown": "markdown",
    "image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpeg",
    "application/pdf": "pdf", "text/latex": "latex", "application/json": "json",
    "application/javascript": "javascript",
}
_BINARY_FIELDS = ("png", "jpeg", "pdf")
_IMAGE_FIELDS = ("png", "jpeg", "svg", "pdf")
_FIELD_ORDER = ("text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex",
                "json", "javascript", "data", "chart")
# Our own formatters' mime types: never sent as such.
DATA_MIME = "application/x-iris-data"        # a DataFrame's `data`
FIGURE_MIME = "application/x-iris-figure"    # a matplotlib Figure: {"chart": ...}


def _convert(field, data):
    """A formatter's answer -> wire value for `field`, or None."""
    if isinstance(data, tuple) and data:          # (data, metadata)
        data = data[0]
    if data is None:
        return None
    if field in _BINARY_FIELDS:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(data)).decode("ascii")
        if isinstance(data, str):
            return _clean_str(data.strip())       # already base64 (IPython's ends in "\n")
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


def _bundle_fields(bundle):
    """(fields, extra, is_figure) of a mimebundle: E2B's fields in their
    order, mime types without a field in extra."""
    out, extra, figure = {}, {}, None
    for mime, data in bundle.items():
        if not isinstance(mime, str):
            continue
        if mime == DATA_MIME:
            out["data"] = data
        elif mime == FIGURE_MIME:
            figure = data
        elif mime in _MIME_FIELDS:
            field = _MIME_FIELDS[mime]
            v = _convert(field, data)
            if v is not None:
                out[field] = _strip_quotes(v) if field == "text" else v
        else:
            extra[_clean_str(mime)] = _clean(data)
    if isinstance(figure, dict) and figure.get("chart") is not None:
        out["chart"] = figure["chart"]
    return {f: out[f] for f in _FIELD_ORDER if f in out}, extra, figure is not None


def _is_figure(value):
    mf = sys.modules.get("matplotlib.figure")
    return mf is not None and isinstance(value, mf.Figure)


def _close_figure(fig):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close(fig)
        except Exception:
            pass


def _unique(names):
    """Labels made unique as pandas' readers do: x, x.1, x.2."""
    seen, out = set(), []
    for name in names:
        key, i = name, 0
        while key in seen:
            i += 1
            key = "%s.%d" % (name, i)
        seen.add(key)
        out.append(key)
    return out


def _label(label, default):
    if label is None:
        return default
    if isinstance(label, tuple):                  # MultiIndex columns
        return ".".join(str(x) for x in label if x is not None and str(x) != "")
    return label if isinstance(label, str) else str(label)


def _dataframe_data(df):
    """A DataFrame's `data`: {column: [values]} in column order, values
    (NaN/NaT -> null, timestamps -> ISO 8601), never labels.  The index
    comes first as columns of its own (named as reset_index() names them:
    its name, else "index" / "level_N") unless it is the default
    0..n-1; duplicate names get ".1", ".2" (docs/sandbox-internals.md).
    None when the frame is too large."""
    if df.size > MAX_DATA_CELLS:
        return None
    names, columns = [], []
    index = df.index
    pd = sys.modules.get("pandas")
    # The default index says nothing: 0..n-1 (a RangeIndex), or no rows.
    default = index.name is None and index.nlevels == 1 and (
        len(index) == 0 or pd is not None and isinstance(index, pd.RangeIndex)
        and index.start == 0 and index.step == 1)
    if not default:
        levels = index.nlevels
        for i in range(levels):
            fallback = "index" if levels == 1 else "level_%d" % i
            names.append(_label(index.names[i], fallback))
            columns.append(index.get_level_values(i))
    for i, col in enumerate(df.columns):
        names.append(_label(col, str(i)))
        columns.append(df.iloc[:, i])
    out = {}
    for name, values in zip(_unique(names), columns):
        out[name] = _clean(values.tolist())
    if len(_dumps(out)) > MAX_DATA_BYTES:
        return None
    return out


def _figure_info(fig):
    """A matplotlib Figure: {"chart": E2B's chart or None} (iris_charts)."""
    chart = None
    charts = _charts() if (fig.axes or fig.lines) else None
    if charts is not None:
        try:
            chart = charts.chart_of(fig)
        except Exception as e:
            k = _KERNEL
            if k is not None:
                k.log("chart_of failed: %r" % (e,))
    return {"chart": chart}


_NOT_JSON = object()


def _plain_json(o, depth=0, budget=None):
    """o as JSON if it is made of JSON's types (numpy scalars and arrays
    included, keys turned into strings), else _NOT_JSON (also past
    MAX_DATA_CELLS values: a value that large gets no `json`)."""
    if budget is None:
        budget = [MAX_DATA_CELLS]
    budget[0] -= 1
    if depth > 64 or budget[0] < 0:
        return _NOT_JSON
    if o is None or isinstance(o, (bool, str)):
        return _clean(o)
    if isinstance(o, (int, float)):
        return _clean(o)
    if isinstance(o, (list, tuple)):
        if len(o) > budget[0]:
            return _NOT_JSON
        out = []
        for v in o:
            v = _plain_json(v, depth + 1, budget)
            if v is _NOT_JSON:
                return _NOT_JSON
            out.append(v)
        return out
    if isinstance(o, dict):
        if len(o) > budget[0]:
            return _NOT_JSON
        out = {}
        for k, v in o.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                return _NOT_JSON
            v = _plain_json(v, depth + 1, budget)
            if v is _NOT_JSON:
                return _NOT_JSON
            out[k if isinstance(k, str) else json.dumps(_clean(k))] = v
        return _clean(out)
    if (type(o).__module__ or "").startswith("numpy") and hasattr(o, "tolist"):
        if getattr(o, "size", 1) > budget[0]:
            return _NOT_JSON
        return _plain_json(o.tolist(), depth + 1, budget)
    return _NOT_JSON


def _json_of(obj):
    """E2B's `json` of a list or dict value (what orjson would serialize)."""
    v = _plain_json(obj)
    if v is _NOT_JSON or len(_dumps(v)) > MAX_DATA_BYTES:
        return None
    return v


# ---------------------------------------------------------------------------
# Tracebacks: the user's frames only, in Python's own format.

def _is_kernel_frame(filename):
    return filename == _KERNEL_FILE


def _is_machinery(filename):
    """Frames that ran the cell: the kernel, IPython, asyncio."""
    return (_is_kernel_frame(filename) or filename.startswith(_ASYNCIO_DIR) or
            (_IPYTHON_DIR is not None and filename.startswith(_IPYTHON_DIR)))


_IPYTHON_DIR = None


def _filter_tb(tb):
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    i = 0
    while i < len(entries) and _is_machinery(entries[i].tb_frame.f_code.co_filename):
        i += 1
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
        if isinstance(exc, SyntaxError) and getattr(exc, "filename", "").startswith("<cell-"):
            exc.__traceback__ = None          # the cell's own syntax: no frames
        else:
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
    return {"type": "error", "name": _clean_str(name), "value": _clean_str(value),
            "traceback": _clean_str(tb)}


# ---------------------------------------------------------------------------
# The IPython shell: built once, before the zygote forks (prepare()).

def _shell_class():
    from IPython.core.compilerop import CachingCompiler
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type

    class Compiler(CachingCompiler):
        def get_code_name(self, raw_code, transformed_code, number):
            return "<cell-%d>" % number      # what tracebacks name the cell

    class Hook(DisplayHook):
        """The cell's value: the main result."""
        _iris_value = None

        def write_output_prompt(self):
            pass

        def compute_format_data(self, result):
            self._iris_value = result
            return super().compute_format_data(result)

        def write_format_data(self, format_dict, md_dict=None):
            value, self._iris_value = self._iris_value, None
            k = _KERNEL
            if k is not None:
                k.send_bundle(format_dict, True)
            if _is_figure(value):
                _close_figure(value)          # shown: not again at the cell's end

        def finish_displayhook(self):
            pass

    class Publisher(DisplayPublisher):
        """display() and everything built on it: non-main results."""

        def publish(self, data, metadata=None, source=None, *, transient=None,
                    update=False, **kwargs):
            k = _KERNEL
            if k is not None:
                k.send_bundle(data, False)

        def clear_output(self, wait=False):
            pass

    class Shell(InteractiveShell):
        compiler_class = Type(Compiler)
        displayhook_class = Type(Hook)
        display_pub_class = Type(Publisher)
        # `!cmd`: subprocess on our fds (stdout and stderr apart), not a pty.
        system = InteractiveShell.system_raw

        def init_virtualenv(self):
            pass

        def enable_gui(self, gui=None):
            pass                              # `%matplotlib inline`: no GUI loop

        def ask_exit(self):
            # exit() / quit(): as in a Jupyter kernel, the cell goes on and
            # the kernel stays (IPython's base shell has no ask_exit).
            pass

        def transform_cell(self, raw_cell):
            # IPython drops leading blank lines; put them back so that
            # line numbers are the sender's.
            cell = super().transform_cell(raw_cell)
            blank = 0
            for line in raw_cell.splitlines():
                if line and not line.isspace():
                    break
                blank += 1
            return "\n" * blank + cell if blank and not cell.startswith("\n") else cell

        def showtraceback(self, exc_tuple=None, filename=None, tb_offset=None,
                          exception_only=False, running_compiled_code=False):
            try:
                etype, value, tb = self._get_exc_info(exc_tuple)
            except ValueError:
                return
            k = _KERNEL
            if k is not None:
                k.send_error(value)

        def showsyntaxerror(self, filename=None, running_compiled_code=False):
            self.showtraceback()

        def show_usage_error(self, exc):
            k = _KERNEL
            if k is not None:
                k.send_error(exc)

    return Shell


def _formatter(mime, test, func):
    """An IPython formatter for one of our own mime types: func(obj) for
    the objects test(obj) accepts.  (Not by type registration: enabling
    matplotlib's inline support unregisters every formatter's Figure.)"""
    from IPython.core.formatters import BaseFormatter
    from traitlets import Unicode

    class Formatter(BaseFormatter):
        format_type = Unicode(mime)
        _return_type = (dict,)

        def __call__(self, obj):
            if not test(obj):
                return None
            try:
                return func(obj)
            except Exception as e:
                k = _KERNEL
                if k is not None:
                    k.log("%s failed: %r" % (func.__name__, e))
                return None

    return Formatter()


def _is_dataframe(value):
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _json_formatter(parent):
    """application/json for list and dict values too, as E2B gives it."""
    from IPython.core.formatters import JSONFormatter

    class Formatter(JSONFormatter):
        def __call__(self, obj):
            if isinstance(obj, (list, dict)):
                v = _json_of(obj)
                if v is not None:
                    return v
            return super().__call__(obj)

    return Formatter(parent=parent)


_PRETTY_MAX = 2000            # values in built-in containers pretty-printed


def _large(obj):
    """A list/tuple/dict/set holding more than _PRETTY_MAX values in all
    (walked no further than that)."""
    budget, todo = _PRETTY_MAX, [obj]
    while todo:
        o = todo.pop()
        if type(o) in (list, tuple, set, frozenset):
            budget -= len(o)
            todo.extend(o if len(o) <= budget else ())
        elif type(o) is dict:
            budget -= len(o)
            todo.extend(o.values() if len(o) <= budget else ())
        if budget < 0:
            return True
    return False


def _text_formatter(parent):
    """IPython's text/plain, but a large built-in container is repr()'d:
    the pretty printer takes ~30 us a value (a million-item list: 30 s)."""
    from IPython.core.formatters import PlainTextFormatter

    class Formatter(PlainTextFormatter):
        def __call__(self, obj):
            if type(obj) in (list, tuple, dict, set, frozenset) and _large(obj):
                try:
                    return repr(obj)
                except Exception:
                    pass
            return super().__call__(obj)

    return Formatter(parent=parent)


def _add_formatters(shell):
    fmt = shell.display_formatter
    fmt.formatters["text/plain"] = _text_formatter(fmt)
    fmt.formatters[DATA_MIME] = _formatter(DATA_MIME, _is_dataframe, _dataframe_data)
    fmt.formatters[FIGURE_MIME] = _formatter(FIGURE_MIME, _is_figure, _figure_info)
    fmt.formatters["application/json"] = _json_formatter(fmt)


def _run_async(coro):
    """IPython's loop runner for cells with top-level await: one event
    loop for the kernel's life; an interrupted cell's task is cancelled
    (and its cancellation run) before the error is reported."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()     # in the kernel, never in the zygote
    task = _LOOP.create_task(coro)
    try:
        return _LOOP.run_until_complete(task)
    except BaseException:
        task.cancel()
        k = _KERNEL
        if k is not None:
            k.quiet = True                   # the cancellation's own error is not the cell's
        try:
            _LOOP.run_until_complete(asyncio.wait([task], timeout=1.0))
        except BaseException:
            pass
        finally:
            if k is not None:
                k.quiet = False
        raise


_LOOP = None


# ---------------------------------------------------------------------------
# Libraries set up for the kernel as they are imported (or at once if they
# already are): matplotlib on the inline backend, PIL images displayed when
# shown or saved, plotly figures as HTML plus their JSON.

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _setup_matplotlib(mod):
    use = mod.use
    if not getattr(use, "_iris", False):
        def iris_use(backend, *args, **kwargs):
            # Scripts often pick Agg: the inline backend draws with Agg
            # too, and shows the figures (as this kernel always did).
            if isinstance(backend, str) and backend.lower() == "agg":
                backend = INLINE_BACKEND
            return use(backend, *args, **kwargs)
        iris_use._iris = True
        iris_use.__doc__ = use.__doc__
        mod.use = iris_use
    if "matplotlib.pyplot" not in sys.modules:
        mod.use(INLINE_BACKEND)
        return
    if mod.get_backend() != INLINE_BACKEND:
        _SHELL.enable_matplotlib("inline")


def _display(obj):
    k = _KERNEL
    if k is not None and k.in_exec:
        from IPython.display import display
        display(obj)


def _setup_pil_image(mod):
    save = mod.Image.save
    if getattr(save, "_iris", False):
        return

    def iris_save(self, fp, format=None, **params):
        # Saved to a file: shown too -- unless matplotlib (savefig) or PIL
        # itself is saving.
        caller = sys._getframe(1).f_globals.get("__name__") or ""
        if isinstance(fp, (str, os.PathLike)) and not caller.startswith(("matplotlib", "PIL")):
            _display(self)
        return save(self, fp, format, **params)

    iris_save._iris = True
    iris_save.__doc__ = save.__doc__
    mod.Image.save = iris_save


def _setup_pil_show(mod):
    # No desktop viewer in a sandbox: they show nothing, so Image.show()
    # reaches PIL's IPython viewer (display()).
    viewer = getattr(mod, "UnixViewer", None)
    if viewer is not None and not getattr(viewer.show_file, "_iris", False):
        def show_file(self, path=None, **options):
            return 0
        show_file._iris = True
        viewer.show_file = show_file


def _setup_plotly(mod):
    from plotly.io._base_renderers import HtmlRenderer
    # A self-contained <div> (plotly.js from its CDN, no require.js, no
    # notebook set-up output) plus the figure's JSON.
    mod.renderers["iris"] = HtmlRenderer(connected=True, full_html=False, requirejs=False)
    mod.renderers.default = "plotly_mimetype+iris"


_SETUPS = {
    "matplotlib": _setup_matplotlib,
    "PIL.Image": _setup_pil_image,
    "PIL.ImageShow": _setup_pil_show,
    "plotly.io._renderers": _setup_plotly,
}


def _set_up(name, module):
    try:
        _SETUPS[name](module)
    except Exception as e:
        try:
            os.write(2, ("iris-kernel-python: setting up %s failed: %r\n"
                         % (name, e)).encode("utf-8", "replace"))
        except OSError:
            pass


class _SetupHook:
    """Meta-path finder: runs _SETUPS[name] right after module name runs."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _SETUPS:
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
                    _set_up(fullname, module)
                try:
                    spec.loader.exec_module = exec_module
                except Exception:
                    return None
                return spec
        return None

    def invalidate_caches(self):
        pass


class _MemoryDB(dict):
    """The shell's ``db`` (what %store keeps), in memory: IPython's own is
    a directory of pickles under the profile directory."""

    def __init__(self, root=None):
        super().__init__()

    def keys(self, globpat=None):
        import fnmatch
        names = list(super().keys())
        return names if globpat is None else fnmatch.filter(names, globpat)

    def hget(self, hashroot, key, default=None):
        return self.get(hashroot + "/" + key, default)

    def hset(self, hashroot, key, value):
        self[hashroot + "/" + key] = value

    def uncache(self, *items):
        pass


def prepare():
    """Builds the IPython shell (idempotent; returns it): imports IPython,
    constructs the shell without history or profile directory, adds our
    formatters and the library set-ups.  The supervisor calls it before
    forking, so a kernel costs no import or construction."""
    global _SHELL, _IPYTHON_DIR
    if _SHELL is not None:
        return _SHELL
    saved = sys.stdout
    sys.stdout = sys.stderr        # in the zygote fd 1 is the supervisor's channel
    # No completion here: IPython's completer imports jedi (and parso,
    # ~5 MiB, 100 modules) only if it can.  User code still can.
    blocked = [m for m in ("jedi",) if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None
    try:
        import IPython
        from IPython.core.profiledir import ProfileDir
        from traitlets.config import Config
        _IPYTHON_DIR = os.path.dirname(IPython.__file__) + os.sep
        c = Config()
        c.HistoryManager.enabled = False          # no sqlite file, no thread
        c.InteractiveShell.colors = "NoColor"
        c.PlainTextFormatter.max_seq_length = 0   # E2B: long lists in full
        # ipython_dir: an existing read-only place, profile_dir: none, so
        # nothing is ever written under $HOME.
        from IPython.core import interactiveshell
        real_db = interactiveshell.PickleShareDB
        interactiveshell.PickleShareDB = _MemoryDB    # %store: in memory only
        try:
            shell = _shell_class().instance(config=c, ipython_dir=_HERE,
                                            profile_dir=ProfileDir())
        finally:
            interactiveshell.PickleShareDB = real_db
        shell.loop_runner = _run_async
        _add_formatters(shell)
        _SHELL = shell
        # One cell and one display, so that what IPython sets up on first
        # use is the zygote's (shared), not every kernel's.
        shell.run_cell("None", store_history=False, silent=True)
        shell.display_formatter.format(["warm", 1, {"up": None}])
        if not any(isinstance(f, _SetupHook) for f in sys.meta_path):
            sys.meta_path.insert(0, _SetupHook())
        for name in _SETUPS:
            if name in sys.modules:
                _set_up(name, sys.modules[name])
    finally:
        sys.stdout = saved
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]
    return _SHELL


# ---------------------------------------------------------------------------
# The kernel.

class Kernel:
    def __init__(self, conn, context, log_fd, shell):
        self.conn = conn
        self.context = context
        self.log_fd = log_fd
        self.shell = shell
        self.pid = os.getpid()
        # SIGINT state (main thread only).
        self.intr_enabled = False     # raise KeyboardInterrupt now
        self.in_exec = False
        self.intr_pending = False
        self.error_sent = False
        self.quiet = False            # errors not reported (a cancelled cell's)
        self.libc = None
        self.sigint_handler = None    # set by main()

        self.capture = Capture(conn)
        self.stdout = _Writer(1, "<stdout>",
                              lambda t: self.capture.write_direct("stdout", t))
        self.stderr = _Writer(2, "<stderr>",
                              lambda t: self.capture.write_direct("stderr", t))
        self.stdin = None
        self._install_streams()
        builtins.input = _input
        _system.__doc__ = os.system.__doc__
        os.system = _system
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
        # stdin is /dev/null; renew it if user code closed it.
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

    def _critical_send(self, obj):
        """Send a line from inside a cell: not interruptible meanwhile;
        everything written to fds 1/2 so far goes first."""
        main = threading.current_thread() is threading.main_thread()
        was = self.intr_enabled if main else False
        if main:
            self.intr_enabled = False
        try:
            self._flush_streams()
            self.capture.drain()
            self.conn.send(obj)
        finally:
            if main:
                self.intr_enabled = was
        if was and self.intr_pending:
            self.intr_pending = False
            raise KeyboardInterrupt

    # -- results and errors (called by the shell's hooks) ----------------------
    def send_bundle(self, bundle, main):
        """A displayed mimebundle -> a `result` line.  A figure without an
        image (nothing drawn) is not sent unless it is the cell's value."""
        if not self.in_exec or not isinstance(bundle, dict) or os.getpid() != self.pid:
            return                    # (a fork of user code finishing the cell: silent)
        fields, extra, figure = _bundle_fields(bundle)
        if not fields and not extra:
            return
        if figure and not main and not any(f in fields for f in _IMAGE_FIELDS):
            return
        line = {"type": "result"}
        line.update(fields)
        line["is_main_result"] = main
        line["extra"] = extra
        self._critical_send(line)

    def send_error(self, exc):
        """The execution's error line (the first one only)."""
        if self.error_sent or self.quiet or not self.in_exec or os.getpid() != self.pid:
            return
        line = _error_line(exc)
        if self.error_sent:
            return
        self.error_sent = True
        self._critical_send(line)

    # -- running code --------------------------------------------------------
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

    def execute(self, code, env_vars, store_history=True):
        """Runs one cell; store_history False (Jupyter's: a run of the
        caller's own, such as Iris's context helper) leaves the execution
        count as it was."""
        shell = self.shell
        n = shell.execution_count
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
        saved = self._apply_env(env_vars)
        result = None
        try:
            try:
                self._user_enter()
                try:
                    result = shell.run_cell(code, store_history=store_history)
                finally:
                    self._user_leave()
            except BaseException as e:        # interrupted outside the cell's code
                self.send_error(e)
            if result is not None:
                err = result.error_before_exec or result.error_in_exec
                if err is not None:
                    self.send_error(err)      # if its display did not get through
        except BaseException as e:            # a bug of ours: still end cleanly
            self.intr_enabled = False
            try:
                self.send_error(e)
            except BaseException:
                pass
        finally:
            self.intr_enabled = False
            if store_history and shell.execution_count <= n:
                shell.execution_count = n + 1     # IPython skips it when interrupted
            self._restore_env(saved)
            self._flush_streams()
            self.capture.end({"type": "end_of_execution"})
            self.in_exec = False
            self.intr_pending = False
            result = None             # drop references to the cell's frames

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
                self.execute(code, req.get("env_vars"),
                             req.get("store_history") is not False)
            else:
                self.log("unknown op skipped: %r" % (op,))


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
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE or p == ""]
    if not sys.path or sys.path[0] != "":
        sys.path.insert(0, "")
    sys.argv = [""]

    sock = _connect(os.environ.get("IRIS_KERNEL_SOCK") or DEFAULT_SOCK)
    conn = Conn(sock)
    conn.send({"type": "hello", "context": context, "language": "python",
               "pid": os.getpid()})
    log_fd = os.dup(2)                     # the sandbox log, before fd 2 is captured
    conn.log_fd = log_fd
    shell = prepare()                      # built already in a zygote
    kernel = Kernel(conn, context, log_fd, shell)
    kernel.sigint_handler = early_sigint
    _KERNEL = kernel
    holder["k"] = kernel
    kernel.serve()
    return 0


if __name__ == "__main__":
    main()
    os._exit(0)
