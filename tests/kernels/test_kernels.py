"""Tests of the programs that run inside a sandbox (sandbox/): the supervisor
and the Python, JavaScript and bash kernels, without bubblewrap.

Run with: /usr/bin/python3 -m pytest tests/kernels

A test plays the daemon: it listens on a unix socket (IRIS_KERNEL_SOCK), runs
supervisor.py with the sandbox-like environment of docs/sandbox-internals.md,
spawns contexts over the supervisor's stdin, accepts the kernels' connections
and drives executions over them.
"""

import base64
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox"
PYTHON = "/usr/bin/python3"


def _have_pylibs():
    r = subprocess.run([PYTHON, "-c", "import numpy, pandas, matplotlib"],
                       capture_output=True)
    return r.returncode == 0


HAVE_PYLIBS = _have_pylibs()
HAVE_NODE = shutil.which("node") is not None
needs_pylibs = pytest.mark.skipif(not HAVE_PYLIBS, reason="numpy/pandas/matplotlib missing")
needs_node = pytest.mark.skipif(not HAVE_NODE, reason="node missing")


def proc_start(pid):
    """(state, start time) of pid from /proc, or None if there is none."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid, started=None):
    """pid runs (not a zombie) -- and, given started (its start time then),
    is still that process: pids are reused, and fast on a busy machine
    (pid_max may be 32768)."""
    now = proc_start(pid)
    return now is not None and now[0] != "Z" and (started is None or
                                                  now[1] == started)


class Kernel:
    """The daemon's side of one kernel connection."""

    def __init__(self, conn, spawned_pid):
        self.conn = conn
        self.buf = b""
        self.spawned_pid = spawned_pid
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        self.pid, self.uid, self.gid = struct.unpack("3i", creds)
        self.hello = self.read(timeout=20)

    def read(self, timeout=20):
        """Next line as a dict; None on EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from kernel; have %r" % self.buf[:200])
            r, _, _ = select.select([self.conn], [], [], left)
            if not r:
                continue
            chunk = self.conn.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.strip():
            return self.read(timeout=max(0.1, deadline - time.monotonic()))
        return json.loads(line)

    def start(self, code, env_vars=None):
        req = {"op": "execute", "code": code}
        if env_vars is not None:
            req["env_vars"] = env_vars
        self.conn.sendall((json.dumps(req) + "\n").encode())
        self.t0 = time.monotonic()

    def collect(self, timeout=20):
        """Lines until end_of_execution, each with its arrival time (s)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.read(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise EOFError("kernel closed the socket; got %r" % out)
            line["_t"] = time.monotonic() - self.t0
            out.append(line)
            if line["type"] == "end_of_execution":
                return out

    def run(self, code, env_vars=None, timeout=20):
        self.start(code, env_vars)
        return Result(self.collect(timeout))

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


class Result:
    def __init__(self, lines):
        self.lines = lines
        assert lines[0]["type"] == "number_of_executions", lines
        assert lines[-1]["type"] == "end_of_execution", lines
        assert sum(1 for x in lines if x["type"] == "end_of_execution") == 1
        self.count = lines[0]["execution_count"]
        self.stdout = "".join(x["text"] for x in lines if x["type"] == "stdout")
        self.stderr = "".join(x["text"] for x in lines if x["type"] == "stderr")
        self.results = [x for x in lines if x["type"] == "result"]
        self.main = [x for x in self.results if x["is_main_result"]]
        errors = [x for x in lines if x["type"] == "error"]
        assert len(errors) <= 1, errors
        self.error = errors[0] if errors else None
        for x in lines:
            if x["type"] in ("stdout", "stderr"):
                assert len(x["text"]) <= 65536

    @property
    def text(self):
        return self.main[0]["text"] if self.main else None

    def __repr__(self):
        return "Result(%r)" % (self.lines,)


class Supervisor:
    def __init__(self, tmp, preload=False, prefix=()):
        self.tmp = Path(tmp)
        self.sock_path = str(self.tmp / "kernel.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock_path)
        self.listener.listen(16)
        home = self.tmp / "home"
        home.mkdir(exist_ok=True)
        self.home = str(home)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.home,
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.tmp / "matplotlib"),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "IRIS_KERNEL_SOCK": self.sock_path,
        }
        self.log = open(self.tmp / "supervisor.log", "ab")
        args = list(prefix) + [PYTHON, str(SANDBOX / "supervisor.py")] + \
            (["--preload"] if preload else [])
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, cwd=self.home)
        self.buf = b""
        self.pending = []
        ready = self.read(timeout=60)
        self.ready_after = time.monotonic() - self.t_start
        assert ready == {"op": "ready"}, ready
        self.kernels = []

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, timeout=20):
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from supervisor")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def read_until(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            msg = self.read(timeout=max(0.1, deadline - time.monotonic()))
            if msg is None:
                raise EOFError("supervisor stdout closed")
            if pred(msg):
                self.pending[:0] = skipped
                return msg
            skipped.append(msg)

    def spawn(self, context, language="python", cwd=None):
        t0 = time.monotonic()
        self.send({"op": "spawn", "context": context, "language": language,
                   "cwd": cwd or self.home})
        msg = self.read_until(lambda m: m.get("context") == context and m["op"] in ("spawned", "error"))
        assert msg["op"] == "spawned", msg
        self.listener.settimeout(20)
        conn, _ = self.listener.accept()
        conn.settimeout(None)
        k = Kernel(conn, msg["pid"])
        k.startup = time.monotonic() - t0
        assert k.hello["type"] == "hello", k.hello
        assert k.hello["context"] == context
        assert k.hello["language"] == language
        assert k.pid == msg["pid"]
        self.kernels.append(k)
        return k

    def stop(self):
        for k in self.kernels:
            k.close()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.listener.close()
        self.log.close()


def supervisor_fixture(tag, preload, before=None):
    """A module-scoped fixture: a Supervisor in a directory of its own
    (named after tag), preloading the data stack or not; before() runs
    first (an install step, say)."""

    @pytest.fixture(scope="module")
    def _sup(tmp_path_factory):
        if before is not None:
            before()
        s = Supervisor(tmp_path_factory.mktemp(tag), preload=preload)
        yield s
        s.stop()
    return _sup


def kernel_fixture(prefix, language="python", supervisor="sup"):
    """A fixture: a fresh kernel of language (context id prefix + n) in
    the module's supervisor fixture, closed after the test."""

    @pytest.fixture
    def _kernel(request):
        if language in ("javascript", "typescript") and not HAVE_NODE:
            pytest.skip("node missing")
        k = request.getfixturevalue(supervisor).spawn(new_ctx(prefix), language)
        yield k
        k.close()
    return _kernel


_ctx_counter = [0]


def new_ctx(prefix="c"):
    _ctx_counter[0] += 1
    return "%s%d" % (prefix, _ctx_counter[0])


sup = supervisor_fixture("sup", preload=HAVE_PYLIBS)
sup_plain = supervisor_fixture("plain", preload=False)
py = kernel_fixture("py")
js = kernel_fixture("js", "javascript")
sh = kernel_fixture("sh", "bash")


# ---------------------------------------------------------------------------
# Supervisor


def test_supervisor_rejects_bad_spawns(sup):
    sup.send_raw(b"this is not json\n")
    sup.send_raw(b"[1, 2]\n")
    sup.send({"op": "frobnicate"})
    sup.send({"op": "spawn", "context": "bad1", "language": "cobol"})
    msg = sup.read_until(lambda m: m.get("context") == "bad1")
    assert msg["op"] == "error" and "cobol" in msg["message"]
    sup.send({"op": "spawn", "context": "bad2", "language": "python", "cwd": "/nonexistent/dir"})
    msg = sup.read_until(lambda m: m.get("context") == "bad2")
    assert msg["op"] == "error"
    sup.send({"op": "spawn", "context": 7})
    msg = sup.read_until(lambda m: m["op"] == "error" and m.get("context") is None)
    sup.send_raw(b"x" * (3 << 20) + b"\n" + b"\xff\xfe\x00 not utf-8\n")
    # still serving
    k = sup.spawn(new_ctx())
    assert k.run("1 + 1").text == "2"
    k.close()


def test_plain_supervisor_python(sup_plain):
    k = sup_plain.spawn(new_ctx())
    r = k.run("import sys\nprint('hi')\n'numpy' in sys.modules")
    assert r.stdout == "hi\n"
    assert r.text == "False"          # nothing preloaded
    k.close()


@needs_pylibs
def test_plain_supervisor_matplotlib(sup_plain):
    # pyplot imported by the user (not preloaded): plt.show() is still hooked
    k = sup_plain.spawn(new_ctx())
    r = k.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nprint('after')")
    assert r.error is None, r
    assert len(r.results) == 1
    assert base64.b64decode(r.results[0]["png"]).startswith(b"\x89PNG")
    assert "cannot be shown" not in r.stderr
    k.close()


def test_kernel_exit_reported(sup):
    k = sup.spawn(new_ctx())
    k.start("import os\nos._exit(1)")
    lines = []
    while True:
        line = k.read(timeout=10)
        if line is None:
            break
        lines.append(line)
    assert [x["type"] for x in lines] == ["number_of_executions"]
    msg = sup.read_until(lambda m: m["op"] == "exited" and m.get("pid") == k.spawned_pid)
    assert msg["status"] == 1 and msg["signal"] == 0
    k.close()


def test_kernel_killed_by_signal_reported(sup):
    k = sup.spawn(new_ctx())
    os.kill(k.pid, signal.SIGKILL)
    msg = sup.read_until(lambda m: m["op"] == "exited" and m.get("pid") == k.spawned_pid)
    assert msg["signal"] == signal.SIGKILL
    assert k.read(timeout=5) is None
    k.close()


def test_supervisor_eof_kills_kernels(tmp_path):
    s = Supervisor(tmp_path, preload=False)
    ks = [s.spawn(new_ctx()), s.spawn(new_ctx(), "bash")]
    if HAVE_NODE:
        ks.append(s.spawn(new_ctx(), "javascript"))
    # the kernels' children go too: a subprocess, a daemonized one, the shell
    r = ks[0].run("import subprocess\np = subprocess.Popen(['sleep', '60'])\n"
                  "q = subprocess.Popen(['sleep', '61'], start_new_session=True)\n(p.pid, q.pid)")
    others = list(map(int, r.text.strip("()").split(",")))
    shell = int(ks[1].run("echo $$").stdout)
    pids = [k.pid for k in ks] + others + [shell]
    assert all(pid_alive(p) for p in pids)
    started = {p: proc_start(p)[1] for p in pids}
    s.proc.stdin.close()
    assert s.proc.wait(timeout=15) == 0
    deadline = time.monotonic() + 5
    while any(pid_alive(p, started[p]) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p, started[p]) for p in pids)
    for k in ks:
        k.close()
    s.listener.close()
    s.log.close()


def test_user_code_cannot_reach_supervisor_stdio():
    # The supervisor is not dumpable, so a kernel running as the same
    # (unprivileged) uid cannot open /proc/<supervisor>/fd/{0,1}.  As root the
    # test drops to nobody, as the sandbox's processes are unprivileged.
    prefix = ()
    tmp = tempfile.mkdtemp(prefix="iris-kt-")
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  "--inh-caps=-all")
        os.chmod(tmp, 0o777)
    s = Supervisor(tmp, preload=False, prefix=prefix)
    try:
        os.chmod(s.sock_path, 0o777)
        k = s.spawn(new_ctx())
        r = k.run("import os\nfor fd, mode in ((1, 'w'), (0, 'w')):\n"
                  "    try:\n"
                  "        open('/proc/%d/fd/%d' % (os.getppid(), fd), mode).write('garbage\\n')\n"
                  "    except OSError as e:\n"
                  "        print(type(e).__name__)")
        assert r.stdout == "PermissionError\nPermissionError\n", r
        k2 = s.spawn(new_ctx())                     # the supervisor still works
        assert k2.run("1").text == "1"
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Python kernel


def test_python_hello_and_counts(py):
    assert py.hello["pid"] > 0
    r1 = py.run("x = 41")
    assert r1.count == 1 and r1.main == [] and r1.error is None
    r2 = py.run("x + 1")
    assert r2.count == 2 and r2.text == "42"
    assert r2.main[0]["extra"] == {}
    r3 = py.run("def f():\n    return x * 2\nf()")
    assert r3.count == 3 and r3.text == "82"


def test_python_values(py):
    assert py.run("'abc'").text == "abc"
    assert py.run("None").main == []
    assert py.run("y = 3").main == []
    assert py.run("for i in range(2): pass").main == []
    assert py.run("print('x')").main == []
    assert py.run("3;").main == []                     # IPython: ';' hides the value
    assert py.run("[1, 2.5, {'a': None}]").text == "[1, 2.5, {'a': None}]"
    assert py.run("__name__").text == "__main__"
    ns = py.run("sorted(k for k in globals() if not k.startswith('__'))").text
    # IPython's namespace: In/Out, '_' (the last value), '_i' (the last input)
    for name in ("'In'", "'Out'", "'_'", "'_i'", "'i'", "'y'", "'get_ipython'"):
        assert name in ns, ns
    assert py.run("y * 2").text == "6" and py.run("_ + 1").text == "7"


def test_python_stdout_streams_live(py):
    py.start("import time\nprint('first', flush=False)\ntime.sleep(1)\nprint('second')")
    lines = py.collect()
    r = Result(lines)
    assert r.stdout == "first\nsecond\n"
    first = next(x for x in lines if x["type"] == "stdout" and "first" in x["text"])
    end = lines[-1]
    assert first["_t"] < 0.7, lines
    assert end["_t"] >= 1.0
    assert "timestamp" in first


def test_python_stderr_and_fd_level_output(py):
    r = py.run("import sys, os, subprocess\n"
               "sys.stderr.write('err-py\\n')\n"
               "os.system('echo from-c')\n"
               "subprocess.run(['sh', '-c', 'echo sub-out; echo sub-err >&2'])\n"
               "os.write(1, b'raw-fd\\n')\n"
               "print('tail', end='')")
    assert r.error is None, r
    assert "from-c\n" in r.stdout
    assert "sub-out\n" in r.stdout
    assert "raw-fd\n" in r.stdout
    assert r.stdout.endswith("tail")
    assert "err-py\n" in r.stderr and "sub-err\n" in r.stderr
    # order within a stream is kept
    assert r.stdout.index("from-c") < r.stdout.index("sub-out") < r.stdout.index("raw-fd")


def test_python_big_output_chunked(py):
    r = py.run("print('x' * 300000)\nprint('é' * 70000)")
    assert r.stdout == "x" * 300000 + "\n" + "é" * 70000 + "\n"
    assert sum(1 for x in r.lines if x["type"] == "stdout") >= 5


def test_python_unicode_and_bad_surrogates(py):
    r = py.run("print('héllo ☃ 😀')\n'\\ud800'")
    assert r.stdout == "héllo ☃ 😀\n"
    assert r.text == "\\ud800"


@needs_pylibs
def test_python_dataframe_html(py):
    r = py.run("import pandas as pd, numpy as np\n"
               "pd.DataFrame({'a': [1, 2], 'b': [np.nan, 4.0]})")
    assert r.error is None, r
    main = r.main[0]
    assert "<table" in main["html"]
    assert "a" in main["text"]
    assert main["data"] == {"a": [1, 2], "b": [None, 4.0]}


def test_python_rich_reprs(py):
    r = py.run("class R:\n"
               "    def __repr__(self): return 'R()'\n"
               "    def _repr_markdown_(self): return '**b**'\n"
               "    def _repr_svg_(self): return '<svg></svg>'\n"
               "    def _repr_json_(self): return {'v': float('nan'), 'w': [1, float('inf')]}\n"
               "    def _repr_png_(self): return b'\\x89PNG fake'\n"
               "R()")
    m = r.main[0]
    assert m["text"] == "R()"
    assert m["markdown"] == "**b**"
    assert m["svg"] == "<svg></svg>"
    assert m["json"] == {"v": None, "w": [1, None]}
    assert base64.b64decode(m["png"]) == b"\x89PNG fake"
    r = py.run("display('shown', 5)\n6")
    assert [x["text"] for x in r.results] == ["shown", "5", "6"]
    assert [x["is_main_result"] for x in r.results] == [False, False, True]


@needs_pylibs
def test_python_matplotlib(py):
    r = py.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert r.error is None, r
    assert len(r.results) == 1
    res = r.results[0]
    assert res["is_main_result"] is False
    assert base64.b64decode(res["png"]).startswith(b"\x89PNG")
    assert res["text"] == "<Figure size 640x480 with 1 Axes>"
    # a figure left open comes back too
    r = py.run("plt.figure()\nplt.plot([3, 1]);")
    assert len(r.results) == 1 and base64.b64decode(r.results[0]["png"]).startswith(b"\x89PNG")
    # two figures -> two pngs; after that none are open
    r = py.run("plt.figure(); plt.plot([1]); plt.figure(); plt.bar([1], [2])\nprint('p')")
    pngs = [x for x in r.results if "png" in x]
    assert len(pngs) == 2
    assert r.stdout == "p\n"
    assert py.run("len(plt.get_fignums())").text == "0"
    # shown figures are emitted in order with output around them
    r = py.run("print('a')\nplt.plot([1]); plt.show()\nprint('b')")
    kinds = [x["type"] for x in r.lines if x["type"] in ("stdout", "result")]
    assert kinds == ["stdout", "result", "stdout"]


def test_python_errors(py):
    r = py.run("x = 1\n1/0")
    e = r.error
    assert e["name"] == "ZeroDivisionError" and e["value"] == "division by zero"
    assert "<cell-" in e["traceback"] and "1/0" in e["traceback"]
    assert "kernel_python" not in e["traceback"] and "supervisor" not in e["traceback"]
    assert "\x1b[" not in e["traceback"]
    assert r.main == []
    # from a function defined in an earlier cell
    py.run("def boom():\n    raise ValueError('bad value')")
    e = py.run("boom()").error
    assert e["name"] == "ValueError" and e["value"] == "bad value"
    assert "raise ValueError('bad value')" in e["traceback"]
    assert "kernel_python" not in e["traceback"]
    # output before the error is kept, and precedes it
    r = py.run("print('before')\nraise KeyError('k')")
    assert r.stdout == "before\n" and r.error["name"] == "KeyError"
    types_ = [x["type"] for x in r.lines]
    assert types_.index("stdout") < types_.index("error")


def test_python_syntax_error(py):
    r = py.run("x = (1 +")
    assert r.error["name"] == "SyntaxError"
    assert r.error["traceback"].startswith('  File "<cell-'), r.error["traceback"]
    assert "kernel_python" not in r.error["traceback"]
    assert py.run("2 * 3").text == "6"


def test_python_interrupt(py):
    py.run("state = 'kept'")
    py.start("import time\nprint('sleeping')\ntime.sleep(30)")
    line = py.read()
    assert line["type"] == "number_of_executions"
    line = py.read()
    assert line["type"] == "stdout"
    time.sleep(0.2)                   # let it reach the sleep
    t0 = time.monotonic()
    os.kill(py.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + py.collect(timeout=5))
    assert time.monotonic() - t0 < 1.5
    assert r.error["name"] == "KeyboardInterrupt"
    assert "time.sleep(30)" in r.error["traceback"]
    assert py.run("state").text == "kept"
    # SIGINT between executions is ignored
    os.kill(py.pid, signal.SIGINT)
    time.sleep(0.2)
    assert py.run("state + '!'").text == "kept!"


def test_python_interrupt_busy_loop(py):
    py.start("n = 0\nwhile True:\n    n += 1")
    assert py.read()["type"] == "number_of_executions"
    time.sleep(0.3)
    os.kill(py.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + py.collect(timeout=5))
    assert r.error["name"] == "KeyboardInterrupt"
    assert int(py.run("n").text) > 0


def test_python_interrupt_os_system(py):
    # libc's system() ignores SIGINT; the kernel's os.system does not
    py.start("import os\nos.system('sleep 30')")
    assert py.read()["type"] == "number_of_executions"
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(py.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + py.collect(timeout=10))
    assert time.monotonic() - t0 < 1.5
    assert r.error["name"] == "KeyboardInterrupt"
    assert py.run("os.system('exit 3'), os.system('echo hi')").text == "(768, 0)"


def test_python_shell_escape(py):
    r = py.run("x = 2\n!echo bang\nif x:\n    !echo two >&2\nx")
    assert r.error is None, r
    assert r.stdout == "bang\n" and r.stderr == "two\n" and r.text == "2"
    r = py.run('s = """\n!not a command\n"""\ns.strip()')
    assert r.text == "!not a command"
    r = py.run("%matplotlib inline\nimport os\n%cd /tmp\n%pwd")
    assert r.error is None, r
    assert r.stdout == "/tmp\n" and r.text == "/tmp"
    name = "magic-%d.txt" % py.pid
    r = py.run("%%%%writefile %s\nline\n" % name)
    assert r.stdout == "Writing %s\n" % name
    assert py.run("%%%%bash\ncat %s; echo $0" % name).stdout == "line\nbash\n"
    assert py.run("%nosuchmagic x").error["name"] == "UsageError"


def test_python_env_vars(py):
    r = py.run("import os\nos.environ.get('IRIS_T'), os.popen('echo $IRIS_T').read()",
               env_vars={"IRIS_T": "v1"})
    assert r.text == "('v1', 'v1\\n')"
    assert py.run("os.environ.get('IRIS_T')").main == []
    r = py.run("os.environ['HOME'] == HOME0" if False else "os.environ['HOME']",
               env_vars={"HOME": "/elsewhere"})
    assert r.text == "/elsewhere"
    assert py.run("os.environ['HOME']").text != "'/elsewhere'"


def test_python_sys_exit_and_input(py):
    r = py.run("import sys\nsys.exit(3)")
    assert r.error["name"] == "SystemExit" and r.error["value"] == "3"
    r = py.run("input('name? ')")
    assert r.error is not None and "input" in r.error["value"]
    assert py.run("'alive'").text == "alive"


def test_python_top_level_await(py):
    r = py.run("import asyncio\nawait asyncio.sleep(0.01)\nv = await asyncio.sleep(0, result=7)\nv * 2")
    assert r.error is None, r
    assert r.text == "14"


def test_python_bad_requests(py):
    py.conn.sendall(b"garbage\n" + b'{"op": "nope"}\n')
    py.conn.sendall(b'{"op": "execute", "code": 5}\n')
    line = py.read()
    assert line["type"] == "error"
    assert py.read()["type"] == "end_of_execution"
    assert py.run("1").text == "1"


def test_python_background_output_kept(py):
    py.run("import threading, time\n"
           "threading.Thread(target=lambda: (time.sleep(0.3), print('late'))).start()")
    time.sleep(0.6)
    r = py.run("'next'")
    assert r.stdout == "late\n"


def test_python_random_differs_between_forks(sup):
    if not HAVE_PYLIBS:
        pytest.skip("numpy missing")
    a, b = sup.spawn(new_ctx()), sup.spawn(new_ctx())
    code = "import numpy as np, random\n(np.random.randint(1 << 30), random.random())"
    assert a.run(code).text != b.run(code).text
    a.close()
    b.close()


# ---------------------------------------------------------------------------
# JavaScript kernel


@needs_node
def test_js_basics(js):
    assert js.hello["language"] == "javascript"
    r = js.run("console.log('hello', 42, {a: 1}); console.error('oops'); 1 + 2")
    assert r.stdout == "hello 42 { a: 1 }\n"
    assert r.stderr == "oops\n"
    assert r.text == "3"
    assert js.run("'str'").text == "str"
    assert js.run("let x = 1").main == []
    r = js.run("x + 1")
    assert r.text == "2" and r.count == 4
    js.run("function sq(v) { return v * v }\nclass P { constructor() { this.v = 5 } }")
    assert js.run("sq(new P().v)").text == "25"
    assert js.run("undefined").main == []
    assert js.run("({a: [1, 2]})").text == "{ a: [ 1, 2 ] }"


@needs_node
def test_js_streaming(js):
    js.start("console.log('first'); await new Promise(r => setTimeout(r, 1000)); console.log('second')")
    lines = js.collect()
    first = next(x for x in lines if x["type"] == "stdout")
    assert first["text"] == "first\n" and first["_t"] < 0.7
    assert lines[-1]["_t"] >= 1.0


@needs_node
def test_js_top_level_await(js):
    r = js.run("await new Promise(r => setTimeout(r, 100)); 42")
    assert r.error is None, r
    assert r.text == "42"
    r = js.run("const z = await Promise.resolve(5); let w = 2")
    assert r.error is None, r
    assert js.run("z * w").text == "10"


@needs_node
def test_js_errors(js):
    r = js.run("null.foo")
    assert r.error["name"] == "TypeError"
    assert "null" in r.error["value"]
    assert "<cell-" in r.error["traceback"]
    assert "kernel.js" not in r.error["traceback"]
    r = js.run("throw new RangeError('out')")
    assert r.error["name"] == "RangeError" and r.error["value"] == "out"
    r = js.run("let = = 1")
    assert r.error["name"] == "SyntaxError"
    r = js.run("await Promise.reject(new Error('rejected'))")
    assert r.error["name"] == "Error" and r.error["value"] == "rejected"
    r = js.run("Promise.reject(new Error('unhandled')); await new Promise(r => setTimeout(r, 50)); 1")
    assert r.error is not None and r.error["value"] == "unhandled"
    assert js.run("'ok'").text == "ok"


@needs_node
def test_js_interrupt(js):
    js.run("let kept = 'yes'")
    js.start("while (true) {}")
    assert js.read()["type"] == "number_of_executions"
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(js.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + js.collect(timeout=5))
    assert time.monotonic() - t0 < 1.5
    assert r.error is not None and "interrupted" in r.error["value"]
    assert js.run("kept").text == "yes"
    # an execution waiting on a promise is abandoned
    js.start("await new Promise(() => {})")
    assert js.read()["type"] == "number_of_executions"
    time.sleep(0.2)
    os.kill(js.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + js.collect(timeout=5))
    assert r.error is not None
    # between executions: ignored
    os.kill(js.pid, signal.SIGINT)
    time.sleep(0.2)
    assert js.run("kept + '!'").text == "yes!"


@needs_node
def test_js_background_output_kept(js):
    js.run("setTimeout(() => console.log('late'), 200); 'scheduled'")
    time.sleep(0.5)
    r = js.run("'next'")
    assert r.stdout == "late\n" and r.text == "next"


@needs_node
def test_js_object_literal_and_bad_requests(js):
    assert js.run("{ a: 1 }").text == "{ a: 1 }"              # as in node's REPL
    js.conn.sendall(b"garbage\n" + b'{"op": "nope"}\n' + b'{"op": "execute"}\n')
    assert js.read()["type"] == "error"
    assert js.read()["type"] == "end_of_execution"
    assert js.run("1").text == "1"


@needs_node
def test_js_env_and_require(js):
    r = js.run("process.env.IRIS_J", env_vars={"IRIS_J": "jv"})
    assert r.text == "jv"
    assert js.run("process.env.IRIS_J").main == []
    r = js.run("const os = require('os'); typeof os.cpus()")
    assert r.text == "object"
    r = js.run("process.stdout.write('raw\\n'); require('child_process').execSync('echo cp').toString()")
    assert r.stdout == "raw\n" and r.text == "cp\n"


# ---------------------------------------------------------------------------
# Bash kernel


def test_bash_basics(sh):
    assert sh.hello["language"] == "bash"
    r = sh.run("echo hello")
    assert r.stdout == "hello\n" and r.error is None and r.main == []
    sh.run("V=persist; f() { echo \"f:$1\"; }")
    assert sh.run("echo $V; f z").stdout == "persist\nf:z\n"
    r = sh.run("echo to-err >&2; echo -n no-newline")
    assert r.stderr == "to-err\n" and r.stdout == "no-newline"
    r = sh.run("false")
    assert r.error["name"] == "ExitStatus" and r.error["value"] == "exit status 1"
    r = sh.run("(exit 7)")
    assert r.error["value"] == "exit status 7"
    sh.run("cd /tmp")
    assert sh.run("pwd").stdout == "/tmp\n"
    assert sh.run("read x; echo \"[$x]\"").stdout == "[]\n"   # no stdin
    r = sh.run("echo $IRIS_B", env_vars={"IRIS_B": "it's b"})
    assert r.stdout == "it's b\n"
    assert sh.run("echo \"[${IRIS_B-unset}]\"").stdout == "[unset]\n"
    assert sh.run("echo héllo").stdout == "héllo\n"
    assert sh.run("printf 'x%.0s' $(seq 100000)").stdout == "x" * 100000


def test_bash_streams_live(sh):
    sh.start("echo one; sleep 1; echo two")
    lines = sh.collect()
    first = next(x for x in lines if x["type"] == "stdout")
    assert first["text"] == "one\n" and first["_t"] < 0.7
    assert lines[-1]["_t"] >= 1.0


def test_bash_interrupt(sh):
    sh.run("KEEP=yes; cd /tmp")
    sh.start("f() { sleep 30; echo after-in-f; }\necho start\nf\necho after-f")
    assert sh.read()["type"] == "number_of_executions"
    assert sh.read()["text"] == "start\n"
    t0 = time.monotonic()
    os.kill(sh.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + sh.collect(timeout=8))
    assert time.monotonic() - t0 < 1.5
    assert r.error["name"] == "Interrupted"
    assert "after" not in r.stdout
    r = sh.run("echo $KEEP; pwd")
    assert r.stdout == "yes\n/tmp\n" and r.error is None
    # a pure-shell loop is interrupted too
    sh.start("while true; do :; done; echo not-reached")
    assert sh.read()["type"] == "number_of_executions"
    time.sleep(0.3)
    os.kill(sh.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + sh.collect(timeout=8))
    assert r.error["name"] == "Interrupted" and "not-reached" not in r.stdout
    assert sh.run("echo $KEEP").stdout == "yes\n"


def test_bash_exit_restarts_shell(sh):
    sh.run("GONE=1")
    r = sh.run("sleep 5 & echo bye; exit 3")          # the background job keeps the pipes
    assert r.stdout == "bye\n"
    assert r.error["name"] == "ExitStatus"
    assert "exit status 3" in r.error["value"] and "state" in r.error["value"]
    r = sh.run("echo \"[${GONE-}]\"")
    assert r.error is None and r.stdout == "[]\n"


def test_bash_xtrace_and_syntax_error(sh):
    r = sh.run("set -x; echo traced")
    assert r.stdout == "traced\n" and "echo traced" in r.stderr
    r = sh.run("echo two; set +x")
    assert "source" not in r.stderr and "__iris" not in r.stderr
    r = sh.run("if then fi")
    assert r.error["value"] == "exit status 2"
    assert "line 1: `if then fi'" in r.stderr
    assert sh.run("echo fine").stdout == "fine\n"
