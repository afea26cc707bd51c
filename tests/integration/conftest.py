"""Black-box integration tests: a real nginx in front of real gateways.

A Stack is one private Iris: a fresh state directory, free loopback ports,
a migrated database with projects and keys made by iris-admin, N gateway
processes (one unix socket each) behind one nginx upstream.  Tests talk
HTTP to it and read its SQLite database; stopping it checks that every
gateway exited 0 and that no process it started is left.

Environment: IRIS_SRCDIR (the source tree), IRIS_BUILDDIR (where the
programs are built), IRIS_KEEP_STATE=1 keeps the state directories.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

SRCDIR = Path(os.environ.get("IRIS_SRCDIR") or Path(__file__).resolve().parents[2])
BUILDDIR = Path(os.environ.get("IRIS_BUILDDIR") or SRCDIR)
GATEWAY = BUILDDIR / "iris-gateway"
ADMIN = BUILDDIR / "iris-admin"
SANDBOXD = BUILDDIR / "iris-sandboxd"
RENDER = SRCDIR / "scripts" / "render-nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

KEY_RE = re.compile(r"^iris_([0-9a-f]{16})_[0-9a-f]{48}$")
REQUEST_ID_RE = re.compile(r"^req_[0-9A-Za-z]+$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JSON_TYPE = "application/json;charset=utf-8"
TIMEOUT = 30  # seconds, for every HTTP call a test makes

# What a gateway writes to stderr may be long; show the end of it.
LOG_TAIL = 40

# nginx's own answers when no gateway takes the request (exact bodies).
NGINX_UNAVAILABLE = {"success": False, "error": {
    "code": "unavailable", "message": "the gateway is not running; try again shortly"}}
NGINX_TOO_LARGE = {"success": False, "error": {
    "code": "payload_too_large", "message": "request body exceeds 1 MiB"}}


def free_port():
    """A loopback TCP port nobody listens on (bind 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key_id(key):
    m = KEY_RE.match(key)
    assert m, "not an Iris key: %r" % key
    return m.group(1)


def tail(path, n=LOG_TAIL):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(%s)" % e


def describe(r):
    """One response, for assertion messages."""
    body = r.content[:600].decode("utf-8", "replace")
    return "%s %s -> %s %s\n%s" % (r.request.method, r.request.url[:200],
                                    r.status_code, dict(r.headers), body)


def assert_json_type(r):
    ct = r.headers.get("Content-Type", "")
    assert ct.replace(" ", "").lower() == JSON_TYPE, describe(r)


def assert_error(r, status, code, field=..., gateway=True):
    """r is an error in our envelope: status, code and (if given) field.

    field=None asserts there is no field; the default leaves it unchecked.
    gateway=True also asserts the requestId body field and X-Request-Id
    header agree (nginx's own errors carry neither).  Returns the body.
    """
    assert r.status_code == status, describe(r)
    assert_json_type(r)
    body = r.json()
    assert body.get("success") is False, describe(r)
    err = body.get("error")
    assert isinstance(err, dict), describe(r)
    assert err.get("code") == code, describe(r)
    assert isinstance(err.get("message"), str) and err["message"], describe(r)
    if field is not ...:
        assert err.get("field") == field, describe(r)
    if gateway:
        rid = body.get("requestId")
        assert isinstance(rid, str) and REQUEST_ID_RE.match(rid), describe(r)
        assert r.headers.get("X-Request-Id") == rid, describe(r)
    return body


def assert_ran(r):
    """r is a 200 of /api/iris/execute: the code was run."""
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["success"] is True and isinstance(body["result"], dict), describe(r)
    return body


def assert_ok(r, status=200):
    """r is a gateway success: status, JSON type, X-Request-Id.  Returns the body."""
    assert r.status_code == status, describe(r)
    assert_json_type(r)
    assert REQUEST_ID_RE.match(r.headers.get("X-Request-Id", "")), describe(r)
    return r.json()


def raw_http(port, data, timeout=10):
    """Sends raw bytes to 127.0.0.1:port; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def sessions_alive(sids):
    """Pids of live (not zombie) processes in any of the sessions sids."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) in sids:
            found.append(int(entry))
    return found


class Stack:
    """One private Iris: nginx + N gateways + a database, on free ports.

    gateways: how many gateway processes (each its own socket).
    env: extra environment for the gateways (IRIS_MAX_BODY, ...).
    sandboxd: start an iris-sandboxd (on a free port) for the gateways to
    run code in; sandboxd_env: its extra environment (IRIS_SANDBOX_POOL
    is 0 unless given).
    Made by start(): projects "alpha" and "beta", self.key (alpha, a high
    rate so tests do not trip over the limit), self.key_beta (beta).
    """

    def __init__(self, name="iris", gateways=1, env=None, sandboxd=True,
                 sandboxd_env=None):
        self.name = name
        self.ngateways = gateways
        self.env = dict(env or {})
        self.with_sandboxd = sandboxd
        self.sandboxd_env = {"IRIS_SANDBOX_POOL": "0"}
        self.sandboxd_env.update(sandboxd_env or {})
        self.sandboxd = None
        self.dir = None
        self.gateways = []
        self.nginx = None
        self.exit_codes = {}
        self.started = []
        self.session = requests.Session()

    # --- life cycle ---

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        for prog in (GATEWAY, ADMIN):
            if not os.access(prog, os.X_OK):
                pytest.fail("%s is not built (IRIS_BUILDDIR=%s)" % (prog, BUILDDIR))
        # Short paths: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="iris-it-"))
        self.db = self.dir / "iris.db"
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.sockets = [self.dir / ("gw%d.sock" % i) for i in range(self.ngateways)]
        try:
            self.admin("migrate")
            self.admin("project", "create", "alpha")
            self.admin("project", "create", "beta")
            self.key = self.create_key("alpha", rate=100000, window=60)
            self.key_beta = self.create_key("beta", rate=100000, window=60)
            if self.with_sandboxd:
                self.start_sandboxd()
            self.conf = self.dir / "nginx.conf"
            subprocess.run([str(RENDER), str(self.conf), str(self.dir), str(self.port)]
                           + [str(s) for s in self.sockets], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            for i in range(self.ngateways):
                self.start_gateway(i)
            self.start_nginx()
            self.wait_healthy()
        except BaseException:
            self.stop(check=False)
            raise

    def gateway_env(self, i):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IRIS_", "E2B_"))}
        env.update(IRIS_DB=str(self.db), IRIS_SOCKET=str(self.sockets[i]))
        if self.sandboxd is not None:
            env.update(E2B_API_URL=self.sandboxd_url, E2B_SANDBOX_URL=self.sandboxd_url,
                       E2B_API_KEY=self.sandboxd_key)
        env.update(self.env)
        return env

    def start_sandboxd(self):
        """Starts iris-sandboxd on a free port with a key of its own."""
        if not os.access(SANDBOXD, os.X_OK):
            pytest.fail("%s is not built (IRIS_BUILDDIR=%s)" % (SANDBOXD, BUILDDIR))
        self.sandboxd_port = free_port()
        self.sandboxd_url = "http://127.0.0.1:%d" % self.sandboxd_port
        self.sandboxd_key = "e2b_" + os.urandom(20).hex()
        keyfile = self.dir / "sandboxd-api-key"
        keyfile.write_text(self.sandboxd_key + "\n")
        keyfile.chmod(0o600)
        self.spawn_sandboxd()

    def restart_sandboxd(self):
        """Starts iris-sandboxd again on the same port with the same key
        file (after a test stopped or killed it); the gateways keep their
        settings, so they find it where it was."""
        if self.sandboxd is not None and self.sandboxd.poll() is None:
            raise RuntimeError("iris-sandboxd is still running")
        self.spawn_sandboxd()

    def spawn_sandboxd(self):
        keyfile = self.dir / "sandboxd-api-key"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IRIS_", "E2B_"))}
        env.update(IRIS_SANDBOXD_PORT=str(self.sandboxd_port),
                   IRIS_SANDBOXD_API_KEY_FILE=str(keyfile))
        env.update(self.sandboxd_env)
        log = open(self.logs / "sandboxd.log", "ab")
        self.sandboxd = subprocess.Popen([str(SANDBOXD)], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        log.close()
        self.started.append(self.sandboxd)
        deadline = time.monotonic() + 20
        while True:
            if self.sandboxd.poll() is not None:
                raise RuntimeError("iris-sandboxd exited with %s at start:\n%s"
                                   % (self.sandboxd.returncode, tail(self.logs / "sandboxd.log")))
            try:
                if requests.get(self.sandboxd_url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("iris-sandboxd did not answer in 20 s:\n%s"
                                   % tail(self.logs / "sandboxd.log"))
            time.sleep(0.05)

    def start_gateway(self, i):
        log = open(self.logs / ("gateway%d.log" % i), "ab")
        p = subprocess.Popen([str(GATEWAY)], env=self.gateway_env(i), stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.gateways.append(p)
        self.started.append(p)
        deadline = time.monotonic() + 20
        while not self.sockets[i].is_socket():
            if p.poll() is not None:
                raise RuntimeError("gateway %d exited with %s at start:\n%s"
                                   % (i, p.returncode, tail(self.logs / ("gateway%d.log" % i))))
            if time.monotonic() > deadline:
                raise RuntimeError("gateway %d made no socket in 20 s:\n%s"
                                   % (i, tail(self.logs / ("gateway%d.log" % i))))
            time.sleep(0.02)

    def start_nginx(self):
        log = open(self.logs / "nginx-stderr.log", "ab")
        self.nginx = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(self.conf),
             "-e", str(self.logs / "nginx-error.log")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.started.append(self.nginx)

    def wait_healthy(self, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in self.started:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %s at start\n%s"
                                       % (p.args[0], p.returncode, self.log_tails()))
            try:
                r = requests.get(self.url("/api/iris/health"), timeout=2)
                if r.status_code == 200:
                    return
                last = "%d %s" % (r.status_code, r.text[:200])
            except requests.RequestException as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError("no healthy answer in %d s (last: %s)\n%s"
                           % (timeout, last, self.log_tails()))

    def stop_gateway(self, i, sig=signal.SIGTERM, timeout=15):
        """Signals gateway i and waits; returns its exit status."""
        p = self.gateways[i]
        if p.poll() is None:
            p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.exit_codes[i] = "still running %d s after %s; killed" % (timeout, sig.name)
            return None
        self.exit_codes.setdefault(i, p.returncode)
        return p.returncode

    def stop(self, check=True):
        """Stops everything; with check, fails unless each gateway exited 0
        and no process of the stack is left."""
        self.session.close()
        problems = []
        for i in range(len(self.gateways)):
            self.stop_gateway(i)
            code = self.exit_codes.get(i)
            if code != 0:
                problems.append("gateway %d: exit status %s" % (i, code))
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
                problems.append("nginx did not stop in 15 s")
        if self.sandboxd is not None and self.sandboxd.poll() is None:
            self.sandboxd.terminate()
            try:
                if self.sandboxd.wait(timeout=30) != 0:
                    problems.append("iris-sandboxd: exit status %s" % self.sandboxd.returncode)
            except subprocess.TimeoutExpired:
                self.sandboxd.kill()
                self.sandboxd.wait()
                problems.append("iris-sandboxd did not stop in 30 s")
        left = sessions_alive({p.pid for p in self.started})
        if left:
            problems.append("processes left behind: %s" % left)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        keep = os.environ.get("IRIS_KEEP_STATE") == "1"
        if problems or keep:
            sys.stderr.write("[%s] state kept in %s\n" % (self.name, self.dir))
        if problems:
            sys.stderr.write(self.log_tails())
        if self.dir is not None and not problems and not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if check and problems:
            pytest.fail("stack %s: %s\n%s" % (self.name, "; ".join(problems), self.log_tails()),
                        pytrace=False)

    def log_tails(self):
        out = []
        for f in sorted(self.logs.glob("*.log")) if self.dir else []:
            out.append("--- %s\n%s" % (f.name, tail(f)))
        return "\n".join(out)

    # --- the operator's side ---

    def admin(self, *args, check=True):
        """Runs iris-admin on this stack's database; returns its stdout."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IRIS_")}
        env["IRIS_DB"] = str(self.db)
        r = subprocess.run([str(ADMIN)] + [str(a) for a in args], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("iris-admin %s: status %d\n%s%s" % (
                " ".join(map(str, args)), r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace")))
        return r.stdout.decode()

    def create_key(self, project="alpha", rate=None, window=None, name=None):
        args = ["key", "create", "--project", project]
        if rate is not None:
            args += ["--rate", rate]
        if window is not None:
            args += ["--window", window]
        if name is not None:
            args += ["--name", name]
        key = self.admin(*args).strip()
        key_id(key)  # asserts the shape
        return key

    def sql(self, query, params=()):
        """Rows (sqlite3.Row) of one query on the stack's database."""
        con = sqlite3.connect(str(self.db), timeout=10)
        try:
            con.row_factory = sqlite3.Row
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def audit_rows(self, request_id):
        return self.sql("SELECT * FROM audit_log WHERE request_id = ?", (request_id,))

    def audit_row(self, r):
        """The one audit row of response r (found by its X-Request-Id)."""
        rid = r.headers.get("X-Request-Id")
        assert rid, describe(r)
        rows = self.audit_rows(rid)
        assert len(rows) == 1, "%d audit rows for %s" % (len(rows), rid)
        return rows[0]

    def execution_rows(self, request_id):
        return self.sql("SELECT * FROM executions WHERE request_id = ?", (request_id,))

    def execution_row(self, r):
        """The one executions row of response r (found by its X-Request-Id)."""
        rid = r.headers.get("X-Request-Id")
        assert rid, describe(r)
        rows = self.execution_rows(rid)
        assert len(rows) == 1, "%d executions rows for %s" % (len(rows), rid)
        return rows[0]

    # --- the provider's side ---

    def provider_env(self):
        """The E2B_ settings of this stack's gateways: another Stack (made
        with sandboxd=False, env=stack.provider_env()) shares its
        iris-sandboxd."""
        return {"E2B_API_URL": self.sandboxd_url, "E2B_SANDBOX_URL": self.sandboxd_url,
                "E2B_API_KEY": self.sandboxd_key}

    def provider_status(self, sandbox_id):
        """HTTP status of GET /sandboxes/ID at this stack's iris-sandboxd
        (200: it has the sandbox, 404: it does not)."""
        return requests.get("%s/sandboxes/%s" % (self.sandboxd_url, sandbox_id),
                            headers={"X-API-Key": self.sandboxd_key},
                            timeout=TIMEOUT).status_code

    # --- the client's side ---

    def url(self, path):
        return self.base + path

    def request(self, method, path, key=..., header="Authorization", session=None, **kw):
        """One HTTP request.  key=... uses self.key, None sends none;
        header is Authorization (as Bearer) or X-API-Key."""
        if key is ...:
            key = self.key
        headers = dict(kw.pop("headers", None) or {})
        if key is not None:
            if header == "Authorization":
                headers["Authorization"] = "Bearer " + key
            else:
                headers[header] = key
        kw.setdefault("timeout", TIMEOUT)
        s = session if session is not None else self.session
        return s.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def execute(self, body, key=..., content_type="application/json", **kw):
        """POST /api/iris/execute; body is a dict (sent as JSON), str or bytes."""
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        headers = dict(kw.pop("headers", None) or {})
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.request("POST", "/api/iris/execute", key=key, data=data,
                            headers=headers, **kw)

    def healthy(self):
        r = requests.get(self.url("/api/iris/health"), timeout=TIMEOUT)
        return r.status_code == 200 and r.json().get("status") == "ok"


def key_hash(key):
    return hashlib.sha256(key.encode()).digest()


@pytest.fixture(scope="module")
def stack(request):
    """A one-gateway stack shared by the tests of one module."""
    s = Stack(name=request.module.__name__.rsplit(".", 1)[-1])
    s.start()
    yield s
    s.stop()
