"""Completeness under concurrent load: requests sent against rows kept.

Two gateways behind one nginx, 16 client threads sending a shuffled mix
of answers (200, 404, 401, 400, 429, and real runs in sessions).  Every
answer the gateway made (it carries an X-Request-Id) must have exactly one
audit_log row with the same status, no audit row may exist that no sent
request explains, and every execute call that reached the handler exactly
one executions row whose status matches the answer.
"""

import json
import queue
import random
import threading
import time

import requests

from conftest import REQUEST_ID_RE, TIMEOUT, Stack, describe

THREADS = 16
BAD_KEYS = ["iris_" + "0" * 16 + "_" + "0" * 48,  # well-formed, unknown
            "not-a-key"]


def jobs(stack, limited):
    """The mix: (kind, method, path, key, body) in a fixed shuffled order."""
    out = []
    out += [("sandbox", "GET", "/api/iris/sandbox", stack.key, None)] * 200
    out += [("nope", "GET", "/api/iris/nope", stack.key, None)] * 100
    for i in range(80):
        bad = BAD_KEYS[i % 2]
        if i % 4 < 2:
            out.append(("badkey", "GET", "/api/iris/sandbox", bad, None))
        else:
            out.append(("badkey-exec", "POST", "/api/iris/execute", bad, {"code": "print(1)"}))
    invalid = [{"code": 1}, "not json", {"code": "x", "bogus": 1}, {},
               {"code": "x", "timeout": -1}, {"code": "x", "language": "cobol"}]
    for i in range(120):
        out.append(("invalid", "POST", "/api/iris/execute", stack.key, invalid[i % len(invalid)]))
    for i in range(40):
        out.append(("run", "POST", "/api/iris/execute", stack.key,
                    {"code": "print(1)", "sessionId": "load%d" % (i % 4)}))
    # rate 20: the first 20 admitted (and refused as bodies: 400), 40 x 429.
    out += [("limited", "POST", "/api/iris/execute", limited, {"code": 1})] * 60
    random.Random(7).shuffle(out)
    return out


def send(stack, session, job):
    kind, method, path, key, body = job
    headers = {"Authorization": "Bearer " + key}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    r = session.request(method, stack.url(path), headers=headers, data=data, timeout=TIMEOUT)
    return r


def expected_execution_status(r):
    """The executions.status an execute answer implies."""
    if r.status_code == 200:
        res = r.json()["result"]
        if res["success"]:
            return "ok"
        err = res.get("error") or {}
        return "timeout" if err.get("name") == "TimeoutError" else "error"
    if r.status_code < 500:
        return "rejected"
    return "upstream_error"


def before_handler(r):
    """1 if this execute call leaves no executions row: only a refused key
    (401), which has no project; every other refusal is a rejected row."""
    return r.status_code == 401


def test_every_answer_has_its_rows():
    with Stack(name="complete", gateways=2,
               sandboxd_env={"IRIS_SANDBOX_POOL": "2"}) as stack:
        limited = stack.create_key("alpha", rate=20, window=3600, name="limited")
        todo = queue.Queue()
        for j in jobs(stack, limited):
            todo.put(j)
        answers, errors = [], []
        lock = threading.Lock()
        first_id = stack.sql("SELECT coalesce(max(id), 0) AS m FROM audit_log")[0]["m"]
        first_ex = stack.sql("SELECT count(*) AS n FROM executions")[0]["n"]
        deadline = time.monotonic() + 45

        def worker():
            s = requests.Session()
            try:
                while time.monotonic() < deadline:
                    try:
                        j = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        r = send(stack, s, j)
                    except requests.RequestException as e:
                        with lock:
                            errors.append("%s %s: %s" % (j[1], j[2], e))
                        continue
                    with lock:
                        answers.append((j, r))
            finally:
                s.close()

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        assert todo.empty(), "not all requests sent in 45 s (%d left)" % todo.qsize()
        assert len(answers) == 600

        # Every answer is the gateway's own (nginx's errors carry no id).
        by_kind = {}
        for j, r in answers:
            rid = r.headers.get("X-Request-Id", "")
            assert REQUEST_ID_RE.match(rid), describe(r)
            by_kind.setdefault(j[0], []).append(r.status_code)
        assert set(by_kind["sandbox"]) == {200}, by_kind["sandbox"]
        assert set(by_kind["nope"]) == {404}
        assert set(by_kind["badkey"]) == {401} and set(by_kind["badkey-exec"]) == {401}
        assert set(by_kind["invalid"]) == {400}, by_kind["invalid"]
        assert set(by_kind["run"]) == {200}, by_kind["run"]
        assert sorted(by_kind["limited"]) == [400] * 20 + [429] * 40, by_kind["limited"]
        rids = [r.headers["X-Request-Id"] for _, r in answers]
        assert len(set(rids)) == len(rids), "request ids repeat"

        # Audit: one row per answer, same status and method; nothing else.
        rows = stack.sql("SELECT request_id, status, method FROM audit_log WHERE id > ?",
                         (first_id,))
        assert len(rows) == len(answers), "%d audit rows for %d answers" % (
            len(rows), len(answers))
        audit = {}
        for row in rows:
            audit.setdefault(row["request_id"], []).append(row)
        for j, r in answers:
            got = audit.get(r.headers["X-Request-Id"], [])
            assert len(got) == 1, "%d audit rows for %s" % (len(got), describe(r))
            assert got[0]["status"] == r.status_code, describe(r)
            assert got[0]["method"] == j[1], describe(r)

        # Executions: one row per execute call the handler saw; the router
        # answers 401, 429 and a body that is not JSON (invalid_json) before
        # it, with no row.  None for anything else.
        ex = {}
        for row in stack.sql("SELECT request_id, status, session_id, project_id "
                             "FROM executions"):
            ex.setdefault(row["request_id"], []).append(row)
        want = 0
        for j, r in answers:
            got = ex.get(r.headers["X-Request-Id"], [])
            if j[2] != "/api/iris/execute" or before_handler(r):
                assert got == [], describe(r)
                continue
            want += 1
            assert len(got) == 1, "%d executions rows for %s" % (len(got), describe(r))
            assert got[0]["status"] == expected_execution_status(r), describe(r)
            assert got[0]["project_id"] == "alpha"
            if j[0] == "run":
                assert got[0]["session_id"] == j[4]["sessionId"], describe(r)
        total = stack.sql("SELECT count(*) AS n FROM executions")[0]["n"]
        # 40 runs, 120 invalid bodies, 60 calls of the limited key (20 400s,
        # 40 429s): every keyed execute call has its row; 401s have none.
        assert total - first_ex == want == 40 + 120 + 60, (total - first_ex, want)
