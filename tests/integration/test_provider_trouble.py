"""The gateway when its sandbox provider misbehaves: unreachable (the
stack's iris-sandboxd killed), back again (restarted on the same port),
killed in the middle of a run, answering garbage, never answering; and
the Host-routed way of reaching sandboxes (49999-<id>.<domain>, as on
E2B cloud) against the local daemon through curl's CONNECT_TO.

Fake providers are a small threaded HTTP server of this module that
creates "sandboxes" properly and misbehaves on /execute as a test asks.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import Stack, assert_error, assert_ran, describe

STREAM = "/api/iris/execute/stream"


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="provider-trouble", sandboxd_env={"IRIS_SANDBOX_POOL": "2"})
    s.start()
    yield s
    s.stop()


def ensure_sandboxd(stack):
    """The module's daemon is running (a test before may have killed it)."""
    if stack.sandboxd.poll() is not None:
        stack.restart_sandboxd()


def kill_sandboxd(stack):
    stack.sandboxd.kill()
    stack.sandboxd.wait(timeout=10)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("%s: not within %s s" % (what, timeout))


def slot_procs(port):
    """Processes running with a uid of the daemon's sandbox slots."""
    base = 1000000 + 1000 * port
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if any(base <= int(u) < base + 1000 for u in line.split()[1:]):
                            found.append(int(pid))
                        break
        except OSError:
            pass
    return found


# --- the local daemon: down, back, killed mid-run ------------------------------------


def test_host_routed_sandbox_urls(stack):
    """E2B_SANDBOX_URL unset: the gateway reaches a sandbox at
    http://49999-<id>.sandbox.test, which CONNECT_TO sends to the daemon
    (it routes by Host)."""
    ensure_sandboxd(stack)
    env = dict(stack.provider_env(), E2B_SANDBOX_URL="", E2B_DOMAIN="sandbox.test",
               IRIS_E2B_SANDBOX_SCHEME="http", IRIS_PROVIDER="local",
               IRIS_E2B_CONNECT_TO="::127.0.0.1:%d" % stack.sandboxd_port)
    with Stack(name="host-routed", sandboxd=False, env=env) as routed:
        r = routed.execute({"code": "print('routed')\n6 * 7"})
        res = assert_ran(r)["result"]
        assert res["success"] is True and res["output"] == "routed\n", describe(r)
        assert [x["text"] for x in res["results"]] == ["42"]
        a = assert_ran(routed.execute({"code": "k = 5", "sessionId": "hr"}))
        b = assert_ran(routed.execute({"code": "print(k)", "sessionId": "hr"}))
        assert a["sandboxId"] == b["sandboxId"] and b["result"]["output"] == "5\n"
        assert routed.get("/api/iris/health").json()["checks"]["sandboxProvider"] == "ok"
        assert routed.request("DELETE", "/api/iris/sandbox?all=true").json()["closed"] == [
            a["sandboxId"]]
        assert stack.provider_status(a["sandboxId"]) == 404


def test_provider_down_then_back(stack):
    ensure_sandboxd(stack)
    lost = assert_ran(stack.execute({"code": "x = 1", "sessionId": "pt-lost"}))["sandboxId"]
    port = stack.sandboxd_port
    kill_sandboxd(stack)

    # Down: execute answers 503 unavailable, promptly.
    for body in ({"code": "print(1)"}, {"code": "print(x)", "sessionId": "pt-lost"},
                 {"code": "print(1)", "sessionId": "pt-new"}):
        t0 = time.monotonic()
        r = stack.execute(body)
        assert time.monotonic() - t0 < 10
        assert_error(r, 503, "unavailable")
        row = stack.execution_row(r)
        assert row["status"] == "upstream_error", dict(row)
        assert row["code_sha256"] and row["code"] == body["code"]
    t0 = time.monotonic()
    r = stack.post(STREAM, json={"code": "print(1)"})
    assert time.monotonic() - t0 < 10
    assert_error(r, 503, "unavailable")
    assert stack.execution_row(r)["status"] == "upstream_error"
    assert_error(stack.post("/api/iris/sandbox", json={}), 503, "unavailable")
    r = stack.get("/api/iris/health")
    assert r.status_code == 503, describe(r)
    h = r.json()
    assert h["status"] == "degraded"
    assert h["checks"] == {"database": "ok", "sandboxProvider": "failed"}
    # Listing needs no provider.
    assert lost in [s["sandboxId"] for s in stack.get("/api/iris/sandbox").json()["sandboxes"]]
    # The daemon's sandboxes died with it.
    wait_for(lambda: not slot_procs(port), 10, "sandbox processes of the killed daemon gone")

    # Back, on the same port with the same key: no gateway restart needed.
    stack.restart_sandboxd()
    wait_for(lambda: stack.get("/api/iris/health").status_code == 200, 10, "health 200")
    r = stack.execute({"code": "print('back')"})
    assert assert_ran(r)["result"]["output"] == "back\n"
    # The session whose sandbox was lost: one 404 saying its state is gone...
    r = stack.execute({"code": "print(x)", "sessionId": "pt-lost"})
    body = assert_error(r, 404, "sandbox_not_found")
    assert "state" in body["error"]["message"], body
    row = stack.sql("SELECT status FROM sandboxes WHERE sandbox_id = ?", (lost,))[0]
    assert row["status"] == "failed"
    assert [e["event"] for e in stack.sql(
        "SELECT event FROM sandbox_events WHERE sandbox_id = ? ORDER BY id", (lost,))] == [
        "created", "failed"]
    # ... then a new sandbox for it, fresh.
    r = stack.execute({"code": "print(globals().get('x'))", "sessionId": "pt-lost"})
    res = assert_ran(r)
    assert res["sandboxId"] != lost and res["result"]["output"] == "None\n"
    r = stack.execute({"code": "print(1)", "sessionId": "pt-lost"})
    assert assert_ran(r)["sandboxId"] == res["sandboxId"]


def test_provider_killed_mid_run(stack):
    ensure_sandboxd(stack)
    for sess in ("pt-mid", "pt-mid-stream"):
        assert_ran(stack.execute({"code": "x = 1", "sessionId": sess}))
    code = "import time\nprint('started', flush=True)\ntime.sleep(30)"
    out = {}

    def plain():
        out["plain"] = stack.execute({"code": code, "sessionId": "pt-mid", "timeout": 60},
                                     session=requests.Session(), timeout=60)
        out["plain_t"] = time.monotonic()

    def streamed():
        r = requests.post(stack.url(STREAM), json={"code": code, "sessionId": "pt-mid-stream",
                                                   "timeout": 60},
                          headers={"Authorization": "Bearer " + stack.key},
                          stream=True, timeout=60)
        lines = []
        for line in r.iter_lines():
            lines.append(line.decode())
            if line == b"data: {\"text\":\"started\\n\"}":
                out["stream_started"] = True
        out["stream"] = (r, lines)
        out["stream_t"] = time.monotonic()

    threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
    for t in threads:
        t.start()
    wait_for(lambda: out.get("stream_started"), 20, "the streamed run started")
    time.sleep(1)  # the plain one started alongside
    killed = time.monotonic()
    kill_sandboxd(stack)
    for t in threads:
        t.join(45)
    try:
        assert "plain" in out and "stream" in out, "a request did not come back"
        r = out["plain"]
        assert r.status_code in (502, 503), describe(r)
        assert_error(r, r.status_code, "upstream_error" if r.status_code == 502 else "unavailable")
        assert out["plain_t"] - killed < 10
        assert stack.execution_row(r)["status"] == "upstream_error"
        # The stream had begun: the error travels as events, done last.
        r, lines = out["stream"]
        assert r.status_code == 200
        assert out["stream_t"] - killed < 10
        events = [ln[7:] for ln in lines if ln.startswith("event: ")]
        assert events[0] == "stdout" and events[-1] == "done", lines
        assert "error" in events
        done = json.loads([ln for ln in lines if ln.startswith("data: ")][-1][6:])
        assert done["success"] is False
        assert done["error"]["code"] in ("upstream_error", "unavailable"), done
        assert stack.execution_row(r)["status"] == "upstream_error"
    finally:
        stack.restart_sandboxd()
    wait_for(lambda: stack.get("/api/iris/health").status_code == 200, 10, "health 200")
    assert_ran(stack.execute({"code": "print(1)"}))


# --- a fake provider ---------------------------------------------------------------------


class FakeProvider:
    """A provider that misbehaves as a test says.

    create: "ok" (201 with a proper sandboxID), "no_id" (201 without one),
    "http500", "busy" (429 with Retry-After: 1), "hang" (no answer).
    execute: "ok" (a tiny proper answer), "garbage" (200, lines that are
    not JSON), "http500", "hang" (no answer at all), "hang_after_start"
    (200 and one stdout line, then nothing).
    health: "ok" or "hang".
    A hang lasts until release is set (a test's finally does that).
    """

    def __init__(self):
        self.create = "ok"
        self.execute = "ok"
        self.health = "ok"
        self.requests = []
        self.release = threading.Event()
        self.n = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def send(self, status, data=b"", ctype="application/json", close=False,
                     headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            def hang(self):
                fake.release.wait(60)
                self.close_connection = True

            def do_GET(self):
                fake.requests.append(("GET", self.path, None))
                if self.path == "/health":
                    if fake.health == "hang":
                        return self.hang()
                    self.send(200, b'{"status":"ok"}')
                else:
                    self.send(404, b'{"code":404,"message":"no"}')

            def do_DELETE(self):
                fake.requests.append(("DELETE", self.path, None))
                self.send(204)

            def do_POST(self):
                data = self.body()
                fake.requests.append(("POST", self.path, self.headers.get("E2b-Sandbox-Id")))
                if self.path == "/sandboxes":
                    self.do_create()
                elif self.path.endswith("/timeout"):
                    self.send(204)
                elif self.path == "/execute":
                    json.loads(data)
                    self.do_execute()
                else:
                    self.send(404, b"{}")

            def do_create(self):
                mode = fake.create
                if mode == "hang":
                    return self.hang()
                if mode == "http500":
                    return self.send(500, b"<html>oops</html>", "text/html")
                if mode == "busy":
                    return self.send(429, b'{"code":429,"message":"busy"}',
                                     headers=[("Retry-After", "1")])
                fake.n += 1
                answer = {"templateID": "code-interpreter-v1", "clientID": "fake",
                          "envdVersion": "0.2.0"}
                if mode != "no_id":
                    answer["sandboxID"] = "ifake%016d" % fake.n
                self.send(201, json.dumps(answer).encode())

            def do_execute(self):
                mode = fake.execute
                if mode == "http500":
                    self.send(500, b"Internal Server Error: <html>oops</html>", "text/html",
                              close=True)
                elif mode == "garbage":
                    self.send(200, b"this is not json\n<html>\x00\xff</html>\n{\"half\": ",
                              "application/x-ndjson", close=True)
                elif mode == "hang":
                    self.hang()
                elif mode == "hang_after_start":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b'{"type":"number_of_executions","execution_count":1}\n'
                                     b'{"type":"stdout","text":"partial\\n"}\n')
                    self.wfile.flush()
                    self.hang()
                else:
                    lines = [{"type": "number_of_executions", "execution_count": 1},
                             {"type": "stdout", "text": "fake ok\n"},
                             {"type": "end_of_execution"}]
                    self.send(200, "".join(json.dumps(x) + "\n" for x in lines).encode(),
                              "application/x-ndjson", close=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        """Well-behaved again; hangs of a test before are released."""
        self.release.set()
        self.release = threading.Event()
        self.create = self.execute = self.health = "ok"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake():
    f = FakeProvider()
    s = Stack(name="fake-provider", sandboxd=False,
              env={"E2B_API_URL": f.url, "E2B_SANDBOX_URL": f.url,
                   "E2B_API_KEY": "e2b_" + "0" * 40})
    try:
        s.start()
        yield f, s
    finally:
        f.close()
        s.stop()


@pytest.fixture
def fake_provider(fake):
    f, s = fake
    f.reset()
    yield f, s
    f.reset()


def killed_at_fake(f, sid):
    return ("DELETE", "/sandboxes/" + sid, None) in f.requests


def test_fake_provider_works(fake_provider):
    f, s = fake_provider
    f.execute = "ok"
    r = s.execute({"code": "print('x')"})
    res = assert_ran(r)
    assert res["result"]["output"] == "fake ok\n"
    wait_for(lambda: killed_at_fake(f, res["sandboxId"]), 5, "fresh sandbox killed")


@pytest.mark.parametrize("mode", ["garbage", "http500"])
def test_unusable_execute_answer(fake_provider, mode):
    f, s = fake_provider
    f.execute = mode
    t0 = time.monotonic()
    r = s.execute({"code": "print('x')"})
    assert time.monotonic() - t0 < 10
    body = assert_error(r, 502, "upstream_error")
    assert "<html>" not in body["error"]["message"] and "Traceback" not in r.text
    row = s.execution_row(r)
    assert row["status"] == "upstream_error"
    # The fresh sandbox is not left running at the provider.
    sid = row["sandbox_id"]
    assert sid and sid.startswith("ifake"), dict(row)
    wait_for(lambda: killed_at_fake(f, sid), 5, "fresh sandbox killed")
    # Streamed: the stream had begun, so the error comes as events.
    r = s.post(STREAM, json={"code": "print('x')"})
    assert r.status_code == 200, describe(r)
    events = [ln[7:] for ln in r.text.splitlines() if ln.startswith("event: ")]
    assert events == ["error", "done"], r.text
    done = json.loads([ln for ln in r.text.splitlines() if ln.startswith("data: ")][-1][6:])
    assert done["success"] is False and done["error"]["code"] == "upstream_error", done
    assert done["requestId"] == r.headers["X-Request-Id"]
    assert s.execution_row(r)["status"] == "upstream_error"


def test_execute_never_answered(fake_provider):
    f, s = fake_provider
    f.execute = "hang"
    t0 = time.monotonic()
    r = s.execute({"code": "print('x')", "timeout": 2}, timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 8, elapsed
    assert_error(r, 504, "upstream_timeout")
    row = s.execution_row(r)
    assert row["status"] == "upstream_error"
    assert killed_at_fake(f, row["sandbox_id"])


def test_execute_stalls_after_it_started(fake_provider):
    f, s = fake_provider
    f.execute = "hang_after_start"
    t0 = time.monotonic()
    r = s.execute({"code": "print('x')", "timeout": 2}, timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 8, elapsed
    res = assert_ran(r)["result"]
    assert res["success"] is False
    assert res["error"]["name"] == "TimeoutError"
    assert res["output"] == "partial\n"
    assert s.execution_row(r)["status"] == "timeout"


def test_garbage_in_a_session_keeps_the_session(fake_provider):
    """An unusable answer is not a lost sandbox: the session's sandbox
    stays, and works once the provider does."""
    f, s = fake_provider
    f.execute = "ok"
    first = assert_ran(s.execute({"code": "1", "sessionId": "fk"}))["sandboxId"]
    f.execute = "garbage"
    assert_error(s.execute({"code": "1", "sessionId": "fk"}), 502, "upstream_error")
    f.execute = "ok"
    assert assert_ran(s.execute({"code": "1", "sessionId": "fk"}))["sandboxId"] == first
    assert s.request("DELETE", "/api/iris/sandbox?all=true").status_code == 200


@pytest.mark.parametrize("mode", ["no_id", "http500"])
def test_unusable_create_answer(fake_provider, mode):
    f, s = fake_provider
    f.create = mode
    for body in ({"code": "1"}, {"code": "1", "sessionId": "fk-create"}):
        r = s.execute(body)
        assert_error(r, 502, "upstream_error")
        assert "<html>" not in r.text
        row = s.execution_row(r)
        assert row["status"] == "upstream_error" and row["sandbox_id"] is None
    assert_error(s.post("/api/iris/sandbox", json={}), 502, "upstream_error")
    # No row claims a sandbox that does not exist.
    assert s.sql("SELECT count(*) AS n FROM sandboxes WHERE status = 'running'")[0]["n"] == 0


def test_provider_at_capacity(fake_provider):
    """429 from create: retried as Retry-After says, then 503 with
    Retry-After for the caller."""
    f, s = fake_provider
    f.create = "busy"
    t0 = time.monotonic()
    r = s.execute({"code": "1"})
    assert time.monotonic() - t0 < 15
    assert_error(r, 503, "unavailable")
    assert int(r.headers.get("Retry-After", "0")) >= 1, describe(r)
    assert len([x for x in f.requests if x[:2] == ("POST", "/sandboxes")]) >= 2
    assert s.execution_row(r)["status"] == "upstream_error"


def test_health_does_not_hang_on_a_stuck_provider(fake_provider):
    """A provider that accepts and never answers: health (what load
    balancers poll) still answers promptly, 503 degraded."""
    f, s = fake_provider
    f.health = "hang"
    t0 = time.monotonic()
    try:
        r = s.get("/api/iris/health", key=None, timeout=12)
    except requests.Timeout:
        raise AssertionError("GET /api/iris/health: no answer in 12 s") from None
    assert time.monotonic() - t0 < 10
    assert r.status_code == 503 and r.json()["checks"]["sandboxProvider"] == "failed"
