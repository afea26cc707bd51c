"""POST /api/iris/execute/stream through nginx: Server-Sent Events sent
as the code runs (stdout, stderr, result, error, and last done, whose
data is the body /execute would have answered), the ordinary JSON error
for a request refused before it starts, and a client that goes away
mid-run (the run is interrupted, the session lives on).
"""

import json
import socket
import time

import pytest

from conftest import (JSON_TYPE, REQUEST_ID_RE, TIMEOUT, Stack, assert_error, assert_ran,
                      describe)

STREAM = "/api/iris/execute/stream"


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="stream", sandboxd_env={"IRIS_SANDBOX_POOL": "2"})
    s.start()
    yield s
    s.stop()


def stream(stack, body, **kw):
    """POSTs body to the stream route; returns (response, events) where
    events are (seconds since the request, name, data) as they arrived."""
    t0 = time.monotonic()
    r = stack.post(STREAM, json=body, stream=True, **kw)
    events = []
    if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith(
            "text/event-stream"):
        r.content  # read it all: an ordinary answer
        return r, events
    name, data = None, []
    for line in r.iter_lines(decode_unicode=False):
        line = line.decode("utf-8")
        if line == "":
            if name is not None or data:
                events.append((time.monotonic() - t0, name or "message",
                               json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith(":"):
            continue  # a comment (keepalive)
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        else:
            raise AssertionError("not an SSE line: %r" % line)
    r.close()
    return r, events


def names(events):
    return [e[1] for e in events]


def test_events_and_done(stack):
    code = "import sys\nprint('a', flush=True)\nprint('b', file=sys.stderr, flush=True)\n40 + 2"
    r, events = stream(stack, {"code": code, "sessionId": "st-basic"})
    assert r.status_code == 200, describe(r)
    ct = r.headers["Content-Type"].replace(" ", "").lower()
    assert ct.startswith("text/event-stream"), ct
    assert REQUEST_ID_RE.match(r.headers.get("X-Request-Id", ""))
    assert "RateLimit-Remaining" in r.headers
    ev = names(events)
    assert ev[-1] == "done" and ev.count("done") == 1, ev
    assert [e for e in ev if e != "done"] == ["stdout", "stderr", "result"], ev
    by = {e[1]: e[2] for e in events}
    assert by["stdout"] == {"text": "a\n"}
    assert by["stderr"] == {"text": "b\n"}
    assert by["result"]["isMainResult"] is True and by["result"]["text"] == "42"
    done = by["done"]
    assert done["success"] is True
    res = done["result"]
    assert res["success"] is True and res["error"] is None
    assert res["output"] == "a\n" and res["stderr"] == "b\n"
    assert res["results"] == [by["result"]]
    assert res["metadata"]["sessionId"] == "st-basic"
    assert done["sandboxId"] == res["metadata"]["sandboxId"]

    # done is the body /execute answers: same keys, all the way down.
    plain = assert_ran(stack.execute({"code": code, "sessionId": "st-basic"}))
    assert set(done) == set(plain)
    assert set(res) == set(plain["result"])
    assert set(res["metadata"]) == set(plain["result"]["metadata"])
    for k in ("output", "stderr", "logs", "results", "error", "truncated", "packagesInstalled"):
        assert res[k] == plain["result"][k], k
    assert plain["sandboxId"] == done["sandboxId"]

    # Telemetry: one executions row, one audit row.
    row = stack.execution_row(r)
    assert row["status"] == "ok" and row["execution_id"] == res["metadata"]["executionId"]
    assert row["stdout_bytes"] == 2 and row["stderr_bytes"] == 2 and row["result_count"] == 1
    audit = stack.audit_row(r)
    assert audit["route"] == STREAM and audit["status"] == 200


def test_error_event(stack):
    r, events = stream(stack, {"code": "print('x')\nx=1\n1/0", "sessionId": "st-basic"})
    assert r.status_code == 200, describe(r)
    assert names(events) == ["stdout", "error", "done"], events
    err = events[1][2]
    assert err["name"] == "ZeroDivisionError" and "line 3" in err["traceback"]
    done = events[2][2]
    assert done["success"] is True
    assert done["result"]["success"] is False and done["result"]["error"] == err
    assert stack.execution_row(r)["status"] == "error"


def test_figure_result_event(stack):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
    r, events = stream(stack, {"code": code, "sessionId": "st-basic"})
    results = [e[2] for e in events if e[1] == "result"]
    assert len(results) == 1 and "png" in results[0], names(events)
    assert events[-1][2]["result"]["results"] == results


def test_events_are_sent_as_they_happen(stack):
    code = "import time\nprint(1, flush=True)\ntime.sleep(2)\nprint(2)"
    r, events = stream(stack, {"code": code})
    assert r.status_code == 200, describe(r)
    assert names(events) == ["stdout", "stdout", "done"], events
    first, done = events[0], events[-1]
    assert first[2] == {"text": "1\n"}
    assert done[0] - first[0] >= 1.5, [(round(e[0], 2), e[1]) for e in events]
    assert done[2]["result"]["output"] == "1\n2\n"


def test_timeout_in_a_stream(stack):
    r, events = stream(stack, {"code": "import time\nprint('a', flush=True)\ntime.sleep(10)",
                               "timeout": 2, "sessionId": "st-timeout"})
    assert r.status_code == 200, describe(r)
    assert names(events)[0] == "stdout" and names(events)[-1] == "done", events
    res = events[-1][2]["result"]
    assert res["success"] is False and res["output"] == "a\n"
    assert res["error"]["name"] == "TimeoutError"
    assert res["error"]["value"] == "execution timed out after 2 s"
    assert events[-1][0] < 8
    assert stack.execution_row(r)["status"] == "timeout"


def test_timeout_is_an_error_event(stack):
    """Like an exception, a timeout is announced by an error event before
    done (a client that follows the events learns why the run ended)."""
    r, events = stream(stack, {"code": "import time\ntime.sleep(10)", "timeout": 1,
                               "sessionId": "st-timeout"})
    assert r.status_code == 200, describe(r)
    assert names(events)[-2:] == ["error", "done"], events
    assert events[-2][2]["name"] == "TimeoutError"
    assert events[-2][2] == events[-1][2]["result"]["error"]


@pytest.mark.parametrize("case", ["bad_json", "no_key", "unknown_field", "bad_timeout",
                                  "missing_sandbox", "not_json_type"])
def test_refused_before_it_starts_gets_a_json_error(stack, case):
    headers = {"Content-Type": "application/json"}
    kw = {}
    data = json.dumps({"code": "print(1)"})
    status, code, field = 400, "invalid_request", ...
    if case == "bad_json":
        data, status, code = "{nope", 400, "invalid_json"
    elif case == "no_key":
        kw["key"], status, code = None, 401, "unauthorized"
    elif case == "unknown_field":
        data, field = json.dumps({"code": "1", "stream": True}), "stream"
    elif case == "bad_timeout":
        data, field = json.dumps({"code": "1", "timeout": 301}), "timeout"
    elif case == "missing_sandbox":
        data = json.dumps({"code": "1", "sandboxId": "i" + "0" * 20})
        status, code = 404, "sandbox_not_found"
    elif case == "not_json_type":
        headers["Content-Type"] = "text/plain"
        status, code = 415, "unsupported_media_type"
    r = stack.post(STREAM, data=data, headers=headers, **kw)
    assert r.headers["Content-Type"].replace(" ", "").lower() == JSON_TYPE, describe(r)
    assert_error(r, status, code, field=field)
    if case == "no_key":
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    else:
        # Every keyed execute call has its row, refused ones too.
        rows = stack.execution_rows(r.headers["X-Request-Id"])
        assert [x["status"] for x in rows] == ["rejected"], case


def read_until(sock, marker, deadline):
    got = b""
    while marker not in got:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before %r: %r" % (marker, got[-300:]))
        got += chunk
        if time.monotonic() > deadline:
            raise AssertionError("no %r in time: %r" % (marker, got[-300:]))
    return got


def test_client_gone_interrupts_the_run(stack):
    sess = "st-gone"
    assert_ran(stack.execute({"code": "x = 7", "sessionId": sess}))
    body = json.dumps({"code": "import time\nwhile True:\n    print('.', flush=True)\n"
                               "    time.sleep(0.1)", "sessionId": sess}).encode()
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT)
    try:
        sock.sendall(b"POST " + STREAM.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer " + stack.key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = read_until(sock, b"event: stdout", time.monotonic() + 20)
        rid = [ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
               if ln.lower().startswith(b"x-request-id:")][0]
    finally:
        sock.close()
    # The next request of the session answers promptly: the loop was
    # interrupted, the state set before is kept, and nothing of the loop
    # keeps printing into later runs.
    t0 = time.monotonic()
    r = stack.execute({"code": "import time\ntime.sleep(0.5)\nprint(x)", "sessionId": sess},
                      timeout=15)
    res = assert_ran(r)["result"]
    assert time.monotonic() - t0 < 10
    assert res["success"] is True and res["output"] == "7\n", describe(r)
    # The interrupted call left its one executions row.
    deadline = time.monotonic() + 10
    while not stack.execution_rows(rid) and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = stack.execution_rows(rid)
    assert len(rows) == 1 and rows[0]["status"] in ("error", "ok"), [dict(x) for x in rows]
