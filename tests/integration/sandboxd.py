"""Helpers for the iris-sandboxd tests (imported by test_sandboxd_*.py and
test_e2b_sdk.py; not a conftest, so the gateway tests do not load it).

A Daemon is one real iris-sandboxd on a free loopback port with its own API
key, started in the foreground as a child of the test, logging to a file.
It knows both planes (control: X-API-Key; sandbox: E2b-Sandbox-Id/-Port
headers or a "49999-<id>.<domain>" Host), reads executions as a live
NDJSON stream (with each line's arrival time), and checks that nothing it
started is left on the host once it has stopped: no process of its slot
uids, no sandbox directory, no per-sandbox cgroup.

    daemon = daemon_fixture(name="daemon", POOL=1)    # in a test module

Settings are the daemon's environment without the IRIS_SANDBOX_ prefix
(POOL, MAX, MEMORY_MB, PROCS, HOME_MB, OUTPUT_BYTES, MAX_TIMEOUT), or full
names for anything else (IRIS_VERBOSE=1, IRIS_TEST_SECRET=...).

Environment: IRIS_SRCDIR (the source tree), IRIS_BUILDDIR (where
iris-sandboxd is built); both default to this repository.
"""

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import describe, tail

SRCDIR = Path(os.environ.get("IRIS_SRCDIR") or Path(__file__).resolve().parents[2])
BUILDDIR = Path(os.environ.get("IRIS_BUILDDIR") or SRCDIR)
DAEMON = BUILDDIR / "iris-sandboxd"
PROGRAMS = SRCDIR / "sandbox"

CODE_PORT = 49999
ENVD_PORT = 49983
ID_RE = re.compile(r"^i[a-z0-9]{20}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TIMEOUT = 30            # seconds, for every plain HTTP call
EXEC_TIMEOUT = 60       # seconds, for a whole execution unless told
LOG_TAIL = 80           # lines of the daemon's log shown on a failure
SLOT_SPAN = 1000        # uids per port: base = 1000000 + 1000 * port

NOT_FOUND_502 = "The sandbox was not found"


def require_root():
    """The sandboxes' uid switch and cgroups need root (as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("iris-sandboxd's isolation (one host uid per sandbox slot, "
                    "cgroups) needs root; these tests run as root in CI")


def free_port():
    """A loopback TCP port nobody listens on, whose slot uid range is free.

    The daemon's slot uids are 1000000 + 1000 * port + slot: a port is
    only taken if no process already runs with a uid in its range.
    """
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = 1000000 + SLOT_SPAN * port
        if not procs_with_uids(base, base + SLOT_SPAN) and \
                not os.path.exists("/run/iris-sandboxd-%d" % port):
            return port
    raise RuntimeError("no free port with a free uid range")


def new_key():
    return "e2b_" + secrets.token_hex(20)


# --- host processes -----------------------------------------------------------

def proc_info(pid):
    """(uids (real, effective, saved, fs), state, ppid, session, cmdline) or None."""
    try:
        with open("/proc/%s/status" % pid) as f:
            status = f.read()
        with open("/proc/%s/stat" % pid, "rb") as f:
            stat = f.read()
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    m = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M)
    if not m:
        return None
    uids = tuple(int(x) for x in m.groups())
    fields = stat[stat.rindex(b")") + 2:].split()
    state = fields[0].decode()
    ppid, session = int(fields[1]), int(fields[3])
    return uids, state, ppid, session, cmd


def all_procs():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = proc_info(name)
            if info:
                out[int(name)] = info
    return out


def procs_with_uids(lo, hi):
    """[(pid, uids, state, cmd)] of processes with any uid in [lo, hi)."""
    return [(pid, i[0], i[1], i[4][:160]) for pid, i in all_procs().items()
            if any(lo <= u < hi for u in i[0])]


def still_running(procs):
    """Of {pid: info} seen earlier, those still alive as the same process."""
    out = {}
    for pid, info in procs.items():
        now = proc_info(pid)
        if now and now[0] == info[0] and now[4] == info[4] and now[1] not in ("Z", "X"):
            out[pid] = now
    return out


def descendants(root):
    """{pid: info} of every process under root (not root itself)."""
    procs = all_procs()
    children = {}
    for pid, info in procs.items():
        children.setdefault(info[2], []).append(pid)
    out, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            out[pid] = procs[pid]
            todo.append(pid)
    return out


# --- executions ---------------------------------------------------------------

class Execution:
    """One /execute answer: its status, and its NDJSON lines as dicts with
    their arrival times (seconds since the request was sent)."""

    def __init__(self, status, events=(), times=(), raw=b"", headers=None):
        self.status = status
        self.events = list(events)
        self.times = list(times)
        self.raw = raw
        self.headers = headers or {}

    def of(self, kind):
        return [e for e in self.events if e.get("type") == kind]

    @property
    def types(self):
        return [e.get("type") for e in self.events]

    @property
    def stdout(self):
        return "".join(e.get("text", "") for e in self.of("stdout"))

    @property
    def stderr(self):
        return "".join(e.get("text", "") for e in self.of("stderr"))

    @property
    def results(self):
        return self.of("result")

    @property
    def text(self):
        """The main result's text, as the SDKs' Execution.text."""
        for r in self.results:
            if r.get("is_main_result"):
                return r.get("text")
        return None

    @property
    def error(self):
        errs = self.of("error")
        return errs[-1] if errs else None

    @property
    def count(self):
        n = self.of("number_of_executions")
        return n[0]["execution_count"] if n else None

    @property
    def ended(self):
        return bool(self.events) and self.events[-1] == {"type": "end_of_execution"}

    def __repr__(self):
        if self.status != 200:
            return "<Execution %s %r>" % (self.status, self.raw[:500])
        ev = []
        for e in self.events[:40]:
            s = json.dumps(e)
            ev.append(s if len(s) < 300 else s[:300] + "...")
        more = "" if len(self.events) <= 40 else "\n... %d more" % (len(self.events) - 40)
        return "<Execution 200:\n%s%s>" % ("\n".join(ev), more)


class Stream:
    """An /execute whose answer the test reads itself (and may abandon)."""

    def __init__(self, conn, resp, t0):
        self.conn, self.resp, self.t0 = conn, resp, t0
        self.events, self.times = [], []

    def next(self):
        """The next event, or None at the end."""
        line = self.resp.readline()
        if not line:
            return None
        self.times.append(time.monotonic() - self.t0)
        ev = json.loads(line)
        self.events.append(ev)
        return ev

    def until(self, pred, timeout=EXEC_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.next()
            if ev is None:
                raise AssertionError("the stream ended first: %r" % self.events)
            if pred(ev):
                return ev
        raise AssertionError("timed out waiting in the stream: %r" % self.events)

    def rest(self, timeout=EXEC_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.next() is not None:
            if time.monotonic() > deadline:
                raise AssertionError("execution went on past %s s: %r" %
                                     (timeout, self.events[-20:]))
        return Execution(200, self.events, self.times)

    def abandon(self):
        """Hangs up mid-answer, as a client that goes away."""
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.resp.close()
        self.conn.close()

    def close(self):
        self.resp.close()
        self.conn.close()


# --- the daemon -------------------------------------------------------------------

_DAEMONS = []       # every Daemon this session started, for failure reports


class Daemon:
    SHORT = {"POOL", "MAX", "MEMORY_MB", "PROCS", "HOME_MB", "OUTPUT_BYTES",
             "MAX_TIMEOUT", "UID_BASE", "PROGRAMS"}

    def __init__(self, workdir, **settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.key = new_key()
        self.key_file = self.workdir / "sandboxd-api-key"
        self.key_file.write_text(self.key + "\n")
        os.chmod(self.key_file, 0o600)
        self.log_path = self.workdir / ("sandboxd-%d.log" % self.port)
        self.uid_base = 1000000 + SLOT_SPAN * self.port
        self.state_dir = Path("/run/iris-sandboxd-%d" % self.port)
        self.cgroup_dirs = [Path("/sys/fs/cgroup/%s/iris-sandboxd-%d" % (c, self.uid_base))
                            for c in ("memory", "pids")]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("IRIS_") and not k.startswith("E2B_")}
        env.update({
            "IRIS_SANDBOXD_PORT": str(self.port),
            "IRIS_SANDBOXD_API_KEY_FILE": str(self.key_file),
            "IRIS_SANDBOX_PROGRAMS": str(PROGRAMS),
            "IRIS_SANDBOX_POOL": "0",
        })
        for k, v in settings.items():
            env[("IRIS_SANDBOX_" + k) if k in self.SHORT else k] = str(v)
        self.env = env
        self.proc = None
        self.returncode = None
        self.started_at = self.stopped_at = None
        self.http = requests.Session()
        self.http.trust_env = False          # no proxies for 127.0.0.1

    # -- life ----------------------------------------------------------------
    def start(self, ready_timeout=20):
        assert DAEMON.exists(), "%s is not built (run make)" % DAEMON
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(DAEMON)], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.started_at = time.monotonic()
        _DAEMONS.append(self)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("iris-sandboxd exited with %s at start:\n%s" %
                                     (self.proc.returncode, self.log()))
            try:
                r = self.http.get(self.url("/health"), timeout=2)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError("iris-sandboxd not ready in %s s:\n%s" % (ready_timeout, self.log()))

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.returncode = None
        self.stopped_at = time.monotonic()
        self._log.close()
        self.http.close()
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stopped_at = time.monotonic()

    def stop_and_check(self):
        """Stops the daemon, asserts it exited 0 and left nothing; tidies up."""
        rc = self.stop()
        try:
            assert rc == 0, "iris-sandboxd exited with %r on SIGTERM:\n%s" % (rc, self.log())
            left = self.wait_clean()
            assert not any(left.values()), "left behind after SIGTERM: %r\n%s" % (left, self.log())
        finally:
            self.tidy()

    def close(self):
        """Stops the daemon if it still runs, then tidy(): for finalizers."""
        try:
            self.stop()
        finally:
            self.tidy()

    def tidy(self):
        """Removes what the daemon keeps by design after it exits (its state
        dir, the empty cgroup parents) and kills anything that escaped.
        Only once the daemon is stopped (else close())."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        for pid, uids, state, cmd in procs_with_uids(self.uid_base, self.uid_base + SLOT_SPAN):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # Sessions the daemon's children might have started (none should).
        if self.proc is not None:
            for pid, info in all_procs().items():
                if info[3] == self.proc.pid and pid != self.proc.pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for d in self.cgroup_dirs:
            if d.is_dir():
                for sub in d.iterdir():
                    if sub.is_dir():
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                try:
                    d.rmdir()
                except OSError:
                    pass

    def log(self, n=LOG_TAIL):
        return "--- %s (last %d lines) ---\n%s" % (self.log_path, n, tail(self.log_path, n))

    # -- what is on the host -----------------------------------------------------------
    def slot_procs(self):
        return procs_with_uids(self.uid_base, self.uid_base + SLOT_SPAN)

    def sandbox_dirs(self):
        try:
            return sorted(os.listdir(self.state_dir / "sandboxes"))
        except FileNotFoundError:
            return []

    def cgroups(self):
        out = []
        for d in self.cgroup_dirs:
            if d.is_dir():
                out += [str(p) for p in d.iterdir() if p.is_dir()]
        return sorted(out)

    def leftovers(self, sandbox_id=None):
        """What is on the host for this daemon (or one of its sandboxes)."""
        if sandbox_id is None:
            procs = self.slot_procs()
            session = []
            if self.proc is not None and self.proc.poll() is not None:
                session = [(pid, i[0], i[1], i[4][:160]) for pid, i in all_procs().items()
                           if i[3] == self.proc.pid]
            return {"processes": procs + session, "sandbox_dirs": self.sandbox_dirs(),
                    "cgroups": self.cgroups()}
        procs = [p for p in self.slot_procs() if sandbox_id in p[3]]
        return {"processes": procs,
                "sandbox_dirs": [d for d in self.sandbox_dirs() if d == sandbox_id],
                "cgroups": [c for c in self.cgroups() if c.endswith("/" + sandbox_id)]}

    def wait_clean(self, sandbox_id=None, timeout=5):
        """Polls until nothing is left (processes may take a moment to be
        reaped); returns what is still there at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers(sandbox_id)
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def sandbox_procs(self, sandbox_id):
        """Host processes of one sandbox: the bwrap whose command line names
        its directory (named by the sandbox's first id, for its whole life)
        and everything under it."""
        out = {}
        for pid, info in all_procs().items():
            if info[2] == self.proc.pid and "/sandboxes/%s/run " % sandbox_id in info[4]:
                out[pid] = info
                out.update(descendants(pid))
        return out

    # -- control plane ----------------------------------------------------------------
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def api(self, method, path, key=..., **kw):
        """A control-plane call; key=None sends no key, ... the right one."""
        headers = dict(kw.pop("headers", {}))
        if key is ...:
            key = self.key
        if key is not None:
            headers["X-API-Key"] = key
        kw.setdefault("timeout", TIMEOUT)
        return self.http.request(method, self.url(path), headers=headers, **kw)

    def create(self, template="code-interpreter-v1", timeout=300, path="/sandboxes", **fields):
        body = {"templateID": template, "timeout": timeout}
        body.update(fields)
        r = self.api("POST", path, json=body, timeout=60)
        assert r.status_code == 201, describe(r) + "\n" + self.log()
        sid = r.json()["sandboxID"]
        assert ID_RE.match(sid), describe(r)
        return sid

    def delete(self, sid):
        return self.api("DELETE", "/sandboxes/" + sid)

    # -- sandbox plane ----------------------------------------------------------------
    def sbx_headers(self, sid, port=CODE_PORT, host_style=False):
        if host_style:
            return {"Host": "%d-%s.sandbox.test" % (port, sid)}
        return {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": str(port)}

    def sbx(self, method, sid, path, port=CODE_PORT, host_style=False, **kw):
        headers = self.sbx_headers(sid, port, host_style)
        headers.update(kw.pop("headers", {}))
        kw.setdefault("timeout", TIMEOUT)
        return self.http.request(method, self.url(path), headers=headers, **kw)

    def new_context(self, sid, language="python", **fields):
        body = dict(fields)
        if language is not None:
            body["language"] = language
        r = self.sbx("POST", sid, "/contexts", json=body, timeout=60)
        assert r.status_code == 200, describe(r) + "\n" + self.log()
        return r.json()["id"]

    def stream(self, sid, code, timeout=EXEC_TIMEOUT, host_style=False, **fields):
        """Starts an execution; returns a Stream (status 200 asserted)."""
        body = {"code": code}
        body.update(fields)
        headers = self.sbx_headers(sid, host_style=host_style)
        headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        conn.request("POST", "/execute", json.dumps(body).encode(), headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raw = resp.read()
            conn.close()
            raise AssertionError("execute -> %s %r\n%s" % (resp.status, raw[:500], self.log()))
        return Stream(conn, resp, t0)

    def execute(self, sid, code, timeout=EXEC_TIMEOUT, host_style=False, **fields):
        """Runs code and reads the whole answer: an Execution."""
        body = {"code": code}
        body.update(fields)
        headers = self.sbx_headers(sid, host_style=host_style)
        headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            conn.request("POST", "/execute", json.dumps(body).encode(), headers)
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if resp.status != 200:
                return Execution(resp.status, raw=resp.read(), headers=hdrs)
            events, times = [], []
            while True:
                line = resp.readline()
                if not line:
                    break
                times.append(time.monotonic() - t0)
                events.append(json.loads(line))
                if time.monotonic() > deadline:
                    raise AssertionError("execution went on past %s s: %r" %
                                         (timeout, events[-20:]))
            return Execution(200, events, times, headers=hdrs)
        finally:
            conn.close()

    def run(self, sid, code, timeout=EXEC_TIMEOUT, **fields):
        """execute() and assert it ran to its end without an error."""
        ex = self.execute(sid, code, timeout=timeout, **fields)
        assert ex.status == 200 and ex.ended and ex.error is None, \
            "%r\n%s" % (ex, self.log())
        return ex


def png_ok(b64):
    return base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n")


def in_thread(fn, *args, **kw):
    """Runs fn in a thread; returns a callable that joins it and gives its
    result (or raises its exception)."""
    box = {}

    def body():
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as e:        # re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()

    def join(timeout=EXEC_TIMEOUT + 10):
        t.join(timeout)
        assert not t.is_alive(), "thread still running after %s s" % timeout
        if "error" in box:
            raise box["error"]
        return box.get("value")
    return join


# --- pytest glue ----------------------------------------------------------------

class _LogReporter:
    """Adds the logs of the daemons a failed test used to its report."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        item._sandboxd_t0 = time.monotonic()
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if not rep.failed:
            return
        t0 = getattr(item, "_sandboxd_t0", 0)
        for d in _DAEMONS:
            if d.stopped_at is None or d.stopped_at >= t0:
                rep.sections.append(("iris-sandboxd log, port %d" % d.port,
                                     tail(d.log_path, LOG_TAIL)))


def _register_reporter(config):
    if not config.pluginmanager.has_plugin("iris-sandboxd-log"):
        config.pluginmanager.register(_LogReporter(), "iris-sandboxd-log")


def start_daemon(request, workdir, **settings):
    """A Daemon started for one test; stopped and checked when it ends."""
    require_root()
    _register_reporter(request.config)
    d = Daemon(workdir, **settings)
    request.addfinalizer(d.close)
    d.start()
    return d


def daemon_fixture(name="daemon", scope="module", **settings):
    """A pytest fixture: a Daemon with these settings, started once per
    scope, stopped with SIGTERM at its end with the checks of stop_and_check()."""

    @pytest.fixture(scope=scope, name=name)
    def _daemon(request, tmp_path_factory):
        require_root()
        _register_reporter(request.config)
        d = Daemon(tmp_path_factory.mktemp("sandboxd"), **settings)
        try:
            d.start()
        except BaseException:
            d.close()
            raise
        try:
            yield d
        finally:
            d.stop_and_check()
    return _daemon


# --- a transparent, logging TCP proxy ------------------------------------------------

class _HttpHeads:
    """Finds the heads of the HTTP/1.1 messages in one direction of a
    connection (bodies skipped by Content-Length or chunked framing) and
    hands each head to on_head(first_line, headers).  Best effort: it only
    watches; the bytes are relayed whatever it makes of them."""

    def __init__(self, on_head, response=False):
        self.on_head, self.response = on_head, response
        self.buf, self.state, self.left = b"", "head", 0
        self.broken = False

    def feed(self, data):
        if self.broken:
            return
        self.buf += data
        try:
            self._parse()
        except Exception:          # a stream we cannot follow: stop watching
            self.broken = True

    def _parse(self):
        while True:
            if self.state == "head":
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                lines = self.buf[:i].decode("latin-1").split("\r\n")
                self.buf = self.buf[i + 4:]
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                self.on_head(lines[0], headers)
                status = int(lines[0].split()[1]) if self.response else 0
                if self.response and (status in (204, 304) or status < 200):
                    continue
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.state = "size"
                elif "content-length" in headers:
                    self.left = int(headers["content-length"])
                    self.state = "body" if self.left else "head"
                elif self.response:
                    self.state = "rest"
            elif self.state in ("body", "chunk"):
                take = min(len(self.buf), self.left)
                self.buf, self.left = self.buf[take:], self.left - take
                if self.left:
                    return
                self.state = "head" if self.state == "body" else "size"
            elif self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                if size:
                    self.state, self.left = "chunk", size + 2
                else:
                    self.state = "trailer"
            elif self.state == "trailer":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if not line:
                    self.state = "head"
            else:                       # "rest": a body that ends with the connection
                self.buf = b""
                return


class LoggingProxy:
    """127.0.0.1:<port> relaying every byte to the daemon's port, and
    logging each request (method, path, routing headers) with the status
    of its answer: what a client such as E2B's SDK really asks for."""

    LOGGED = ("host", "e2b-sandbox-id", "e2b-sandbox-port", "content-type", "user-agent",
              "x-access-token", "e2b-traffic-access-token", "transfer-encoding")

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.entries = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        n = 0
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            n += 1
            threading.Thread(target=self._serve, args=(client, n), daemon=True).start()

    def _serve(self, client, conn_no):
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            server.settimeout(None)
        except OSError as e:
            with self.lock:
                self.entries.append({"conn": conn_no, "error": "upstream: %s" % e})
            client.close()
            return
        pending = []

        def on_request(first, headers):
            parts = first.split(" ")
            entry = {"conn": conn_no, "t": round(time.monotonic(), 3),
                     "method": parts[0], "path": parts[1] if len(parts) > 1 else "",
                     "headers": {k: ("<%d chars>" % len(v) if k == "x-access-token" else v)
                                 for k, v in headers.items() if k in self.LOGGED},
                     "has_api_key": "x-api-key" in headers, "status": None}
            with self.lock:
                self.entries.append(entry)
                pending.append(entry)

        def on_response(first, headers):
            with self.lock:
                if pending:
                    e = pending.pop(0)
                    e["status"] = int(first.split()[1])
                    e["content_type"] = headers.get("content-type")

        up = _HttpHeads(on_request)
        down = _HttpHeads(on_response, response=True)

        def pump(src, dst, watcher, tag):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    watcher.feed(data)
                    dst.sendall(data)
            except OSError:
                pass
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if tag == "down":          # the answer is done or the daemon hung up
                try:
                    src.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(server, client, down, "down"), daemon=True)
        t.start()
        pump(client, server, up, "up")
        t.join(700)
        client.close()
        server.close()

    def close(self):
        self.closed = True
        self.sock.close()

    def summary(self):
        with self.lock:
            return ["%s %s %s -> %s" % (e.get("method"), e.get("path"),
                                       {k: v for k, v in e.get("headers", {}).items()
                                        if k.startswith("e2b-")}, e.get("status"))
                    for e in self.entries]
