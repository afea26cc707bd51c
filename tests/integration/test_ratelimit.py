"""Rate limiting: GCRA per key, exact across gateway processes, with the
RateLimit-* headers on every authenticated answer."""

import collections
import concurrent.futures
import re
import time

import requests

from conftest import TIMEOUT, Stack, assert_error, describe, key_id


def limits(r):
    """(limit, remaining, reset) from r's RateLimit-* headers, as ints."""
    try:
        return tuple(int(r.headers[h]) for h in
                     ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))
    except (KeyError, ValueError):
        raise AssertionError("no RateLimit headers: " + describe(r))


def refused(r, limit):
    assert_error(r, 429, "rate_limited")
    retry = r.headers.get("Retry-After", "")
    assert re.fullmatch(r"[0-9]+", retry) and int(retry) >= 1, describe(r)
    lim, remaining, reset = limits(r)
    assert (lim, remaining) == (limit, 0), describe(r)
    assert reset >= 1, describe(r)
    return int(retry), reset


def test_default_limit_headers(stack):
    k = stack.create_key("alpha")
    r = stack.get("/api/iris/sandbox", key=k)
    assert r.status_code == 200, describe(r)
    assert limits(r) == (100, 99, 0), describe(r)
    r = stack.get("/api/iris/sandbox", key=k)
    lim, remaining, reset = limits(r)
    assert lim == 100 and remaining in (98, 99) and reset == 0, describe(r)


def test_headers_on_errors_too(stack):
    k = stack.create_key("alpha")
    for r in (stack.get("/api/iris/nope", key=k),
              stack.execute(b"nope", key=k),
              stack.request("DELETE", "/api/iris/sandbox", key=k)):
        assert r.status_code in (400, 404, 405), describe(r)
        lim, remaining, reset = limits(r)
        assert lim == 100 and 0 < remaining < 100 and reset == 0, describe(r)


def test_no_headers_without_a_key(stack):
    r = stack.get("/api/iris/sandbox", key=None)
    assert r.status_code == 401
    assert "RateLimit-Remaining" not in r.headers, describe(r)


def test_burst_on_the_default_limit(stack):
    """100 per 60 s: one token every 0.6 s.  A fast burst must be refused
    after 100 plus what refilled meanwhile, and never before 100."""
    k = stack.create_key("alpha")
    statuses = []
    first_refusal = None
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        def one(_):
            return requests.get(stack.url("/api/iris/sandbox"), timeout=TIMEOUT,
                                headers={"Authorization": "Bearer " + k})
        sent = 0
        while sent < 400:
            batch = list(pool.map(one, range(50 if sent < 100 else 10)))
            sent += len(batch)
            statuses += [r.status_code for r in batch]
            for r in batch:
                if r.status_code == 429 and first_refusal is None:
                    first_refusal = r
            if first_refusal is not None:
                break
    elapsed = time.monotonic() - t0
    assert first_refusal is not None, "no 429 in %d requests" % len(statuses)
    refused(first_refusal, 100)
    counts = collections.Counter(statuses)
    assert set(counts) <= {200, 429}, counts
    assert counts[200] >= 100, counts
    assert counts[200] <= 100 + elapsed / 0.6 + 1, (counts, elapsed)


def test_exactly_the_limit_then_refused(stack):
    k = stack.create_key("alpha", rate=100, window=3600)
    for i in range(100):
        r = stack.get("/api/iris/sandbox", key=k)
        assert r.status_code == 200, "request %d: %s" % (i + 1, describe(r))
        lim, remaining, reset = limits(r)
        assert (lim, remaining) == (100, 99 - i), "request %d: %s" % (i + 1, describe(r))
        if remaining:
            assert reset == 0, "request %d: %s" % (i + 1, describe(r))
        else:
            assert 35 <= reset <= 36, "request %d: %s" % (i + 1, describe(r))
    retry, reset = refused(stack.get("/api/iris/sandbox", key=k), 100)
    # One request is admitted again after window/limit = 36 s.
    assert 35 <= retry <= 36 and 35 <= reset <= 36, (retry, reset)
    # Refusals do not push the time further out.
    retry2, _ = refused(stack.get("/api/iris/sandbox", key=k), 100)
    assert retry2 <= retry


def test_every_authenticated_request_counts(stack):
    k = stack.create_key("alpha", rate=6, window=3600)
    wrong_secret = "iris_%s_%s" % (key_id(k), "0" * 48)
    steps = [
        (lambda: stack.get("/api/iris/sandbox", key=k), 200, 5),
        (lambda: stack.get("/api/iris/nope", key=k), 404, 4),
        (lambda: stack.execute(b"{", key=k), 400, 3),
        (lambda: stack.execute({"code": "1"}, key=k, content_type="text/plain"), 415, 2),
        (lambda: stack.request("PUT", "/api/iris/sandbox", key=k), 405, 1),
    ]
    for send, status, remaining in steps:
        r = send()
        assert r.status_code == status, describe(r)
        assert limits(r)[:2] == (6, remaining), describe(r)
    # 401s do not count: not a stranger's, nor one knowing the key id.
    for _ in range(3):
        assert stack.get("/api/iris/sandbox", key=wrong_secret).status_code == 401
        assert stack.get("/api/iris/sandbox", key=None).status_code == 401
    r = stack.get("/api/iris/sandbox", key=k)
    assert r.status_code == 200 and limits(r)[:2] == (6, 0), describe(r)
    refused(stack.get("/api/iris/sandbox", key=k), 6)
    refused(stack.get("/api/iris/nope", key=k), 6)


def test_keys_are_limited_separately(stack):
    a = stack.create_key("alpha", rate=1, window=3600)
    b = stack.create_key("alpha", rate=1, window=3600)
    assert stack.get("/api/iris/sandbox", key=a).status_code == 200
    refused(stack.get("/api/iris/sandbox", key=a), 1)
    r = stack.get("/api/iris/sandbox", key=b)
    assert r.status_code == 200, describe(r)


def test_retry_after_is_honest(stack):
    k = stack.create_key("alpha", rate=1, window=2)
    assert stack.get("/api/iris/sandbox", key=k).status_code == 200
    retry, _ = refused(stack.get("/api/iris/sandbox", key=k), 1)
    assert retry <= 2, retry
    time.sleep(retry + 0.05)
    r = stack.get("/api/iris/sandbox", key=k)
    assert r.status_code == 200, describe(r)


def test_set_rate_takes_effect(stack):
    k = stack.create_key("alpha")
    assert limits(stack.get("/api/iris/sandbox", key=k))[0] == 100
    stack.admin("key", "set-rate", key_id(k), 3, "--window", 3600)
    r = stack.get("/api/iris/sandbox", key=k)
    assert r.status_code == 200 and limits(r)[0] == 3, describe(r)
    statuses = [stack.get("/api/iris/sandbox", key=k).status_code for _ in range(4)]
    assert 429 in statuses and statuses.count(200) <= 2, statuses


def test_exact_across_processes():
    """Three gateways behind one upstream, one key of 50 per hour, 200
    requests from 16 threads: exactly 50 admitted."""
    with Stack(name="three-gateways", gateways=3) as s:
        k = s.create_key("alpha", rate=50, window=3600)
        paths = ["/api/iris/sandbox", "/api/iris/sandbox?sandboxId=nope"]

        def one(i):
            return requests.get(s.url(paths[i % 2]), timeout=TIMEOUT,
                                headers={"Authorization": "Bearer " + k})
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(one, range(200)))
        counts = collections.Counter(r.status_code for r in responses)
        assert counts[200] + counts[404] == 50 and counts[429] == 150, counts
        for r in responses:
            if r.status_code == 429:
                refused(r, 50)
        # Every one of them is in the audit log, under the key.
        rows = s.sql("SELECT status, count(*) FROM audit_log WHERE key_id = ? GROUP BY status",
                     (key_id(k),))
        assert dict((row[0], row[1]) for row in rows) == dict(counts), rows
        # And all three gateways took a share.
        with open(s.dir / "logs" / "nginx-access.log") as f:
            log = f.read()
        used = {sock.name for sock in s.sockets if "unix:%s" % sock in log}
        assert len(used) == 3, used
