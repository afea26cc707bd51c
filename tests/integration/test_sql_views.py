"""The operator views of sql/002_views.sql, checked number by number.

Makes a fresh database with the built iris-admin ($IRIS_BUILDDIR/iris-admin,
default the repository root), inserts a known set of rows with Python's
sqlite3, as an operator's script would, and compares every view with
hand-computed expectations.  Percentiles are nearest-rank: for n sorted
values, pP is the k-th with k = ceil(P * n / 100).
"""

import math
import os
import random
import re
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRCDIR = Path(os.environ.get("IRIS_SRCDIR") or REPO)
BUILDDIR = Path(os.environ.get("IRIS_BUILDDIR") or REPO)
ADMIN = BUILDDIR / "iris-admin"

VIEWS = [
    "v_project_daily",
    "v_latency",
    "v_latency_daily",
    "v_error_types",
    "v_live_sandboxes",
    "v_key_usage",
    "v_refused_by_client",
    "v_refused_requests",
]
INDEXES = [
    "executions_project_status_created",
    "executions_project_error",
    "executions_project_language_duration",
    "audit_log_status_created",
    "sandboxes_status_created",
]


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not os.access(ADMIN, os.X_OK):
        pytest.skip(f"{ADMIN} is not built")


def migrate(path):
    env = {k: v for k, v in os.environ.items() if k != "IRIS_DB"}
    env["IRIS_DB"] = str(path)
    r = subprocess.run([str(ADMIN), "migrate"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def iso(t):
    """ISO 8601 UTC with milliseconds, as the gateway writes times."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{t.microsecond // 1000:03d}Z"


def rows(con, sql, *args):
    return [tuple(r) for r in con.execute(sql, args).fetchall()]


@pytest.fixture
def con(tmp_path):
    path = tmp_path / "iris.db"
    migrate(path)
    c = sqlite3.connect(path)
    yield c
    c.close()


# --- loading ------------------------------------------------------------

_seq = [0]


def project(con, pid, created="2026-01-01T00:00:00.000Z"):
    con.execute("INSERT INTO projects VALUES (?, ?)", (pid, created))


def execution(con, pid, created, status, duration_ms, language="python",
              error_name=None):
    _seq[0] += 1
    n = _seq[0]
    con.execute(
        "INSERT INTO executions (execution_id, request_id, created_at,"
        " project_id, language, code_bytes, code_sha256, status, error_name,"
        " duration_ms) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
        (f"ex_{n:026d}", f"req_{n}", created, pid, language, "0" * 64,
         status, error_name, duration_ms))


def key(con, kid, pid, revoked_at=None):
    con.execute(
        "INSERT INTO api_keys (key_id, project_id, key_prefix, key_hash,"
        " created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
        (kid, pid, f"iris_{kid}", bytes(32), "2026-01-01T00:00:00.000Z",
         revoked_at))


def audit(con, created, status, key_id=None, project_id=None,
          client_addr="10.0.0.1", error_code=None, route="/api/iris/execute"):
    _seq[0] += 1
    con.execute(
        "INSERT INTO audit_log (created_at, request_id, method, route, status,"
        " error_code, key_id, project_id, client_addr, duration_ms)"
        " VALUES (?, ?, 'POST', ?, ?, ?, ?, ?, ?, 1)",
        (created, f"req_a{_seq[0]}", route, status, error_code, key_id,
         project_id, client_addr))


def sandbox(con, sid, pid, status, created, last_used, expires):
    con.execute(
        "INSERT INTO sandboxes (sandbox_id, project_id, provider, status,"
        " idle_timeout_s, created_at, last_used_at, expires_at)"
        " VALUES (?, ?, 'local', ?, 300, ?, ?, ?)",
        (sid, pid, status, created, last_used, expires))


def load_executions(con):
    for p in ("alpha", "beta", "gamma", "empty"):
        project(con, p)
    # alpha, python, 2026-03-01: every status once or more.
    d = "2026-03-01T"
    execution(con, "alpha", d + "00:00:00.000Z", "ok", 10)  # first ms of day
    execution(con, "alpha", d + "08:00:00.000Z", "ok", 20)
    execution(con, "alpha", d + "09:00:00.000Z", "ok", 20)  # a tie
    execution(con, "alpha", d + "10:00:00.000Z", "error", 30,
              error_name="ZeroDivisionError")
    execution(con, "alpha", d + "11:00:00.000Z", "timeout", 5000,
              error_name="TimeoutError")
    execution(con, "alpha", d + "12:00:00.000Z", "upstream_error", 99999,
              error_name="provider_unavailable")
    execution(con, "alpha", d + "13:00:00.000Z", "rejected", 0,
              error_name="code_too_large")
    execution(con, "alpha", d + "23:59:59.999Z", "ok", 40)  # last ms of day
    # alpha, python, 2026-03-02: the next day starts at 00:00:00.000.
    execution(con, "alpha", "2026-03-02T00:00:00.000Z", "ok", 7)
    execution(con, "alpha", "2026-03-02T00:00:01.000Z", "error", 8,
              error_name="ZeroDivisionError")
    # alpha, javascript: ties at the median.
    for ms in (5, 9, 5, 5, 5):
        execution(con, "alpha", "2026-03-01T14:00:00.000Z", "ok", ms,
                  language="javascript")
    # beta, 2026-03-05: python 1..100, javascript 1..20 (20 is an error
    # without a name: its kernel died).
    for ms in range(100, 0, -1):
        execution(con, "beta", "2026-03-05T12:00:00.000Z", "ok", ms)
    for ms in range(1, 20):
        execution(con, "beta", "2026-03-05T12:00:00.000Z", "ok", ms,
                  language="javascript")
    execution(con, "beta", "2026-03-05T12:00:00.000Z", "error", 20,
              language="javascript")
    # gamma: only refusals, so no code ran.
    execution(con, "gamma", "2026-03-03T00:00:00.000Z", "rejected", 0,
              error_name="invalid_request")
    execution(con, "gamma", "2026-03-03T00:00:01.000Z", "rejected", 0,
              error_name="invalid_request")
    con.commit()


# --- migration ----------------------------------------------------------


def test_migrate_applies_002_and_003(tmp_path):
    path = tmp_path / "iris.db"
    r = migrate(path)
    assert re.search(r"schema version 3\b", r.stdout)
    c = sqlite3.connect(path)
    try:
        assert c.execute("PRAGMA user_version").fetchone() == (3,)
        names = {n for (n,) in c.execute("SELECT name FROM sqlite_master")}
        assert set(VIEWS) <= names
        assert set(INDEXES) <= names
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        cols = {row[1] for row in c.execute("PRAGMA table_info(sandboxes)")}
        assert "busy_until" in cols
        assert "session_evictions" in names and "sandboxes_project_lru" in names
    finally:
        c.close()
    # Applying again changes nothing.
    assert "schema version 3" in migrate(path).stdout


def test_migrate_upgrades_a_version_1_database(tmp_path):
    path = tmp_path / "old.db"
    c = sqlite3.connect(path)
    c.executescript((SRCDIR / "sql" / "001_init.sql").read_text())
    c.execute("PRAGMA user_version = 1")
    project(c, "alpha")
    execution(c, "alpha", "2026-03-01T00:00:00.000Z", "ok", 3)
    c.commit()
    c.close()
    migrate(path)
    c = sqlite3.connect(path)
    try:
        assert c.execute("PRAGMA user_version").fetchone() == (3,)
        assert rows(c, "SELECT project_id, volume FROM v_project_daily") == \
            [("alpha", 1)]
    finally:
        c.close()


def test_views_on_an_empty_database(con):
    for v in VIEWS:
        assert rows(con, f"SELECT * FROM {v}") == [], v


# --- v_project_daily ----------------------------------------------------


def test_project_daily(con):
    load_executions(con)
    got = rows(con, "SELECT project_id, day, volume, succeeded, failed,"
               " timed_out, upstream_errors, rejected, success_rate"
               " FROM v_project_daily ORDER BY project_id, day")
    assert got == [
        # 8 python + 5 javascript; rate = ok / (ok + error + timeout)
        # = (4 + 5) / (9 + 1 + 1)
        ("alpha", "2026-03-01", 13, 9, 1, 1, 1, 1, round(9 / 11, 4)),
        ("alpha", "2026-03-02", 2, 1, 1, 0, 0, 0, 0.5),
        ("beta", "2026-03-05", 120, 119, 1, 0, 0, 0, 0.9917),
        # only refusals: no rate (NULL), not 0 and not 1
        ("gamma", "2026-03-03", 2, 0, 0, 0, 0, 2, None),
        # 'empty' has no executions, so no rows
    ]
    assert round(9 / 11, 4) == 0.8182


def test_project_daily_one_row(con):
    project(con, "solo")
    execution(con, "solo", "2026-03-01T12:00:00.000Z", "timeout", 30000)
    assert rows(con, "SELECT * FROM v_project_daily") == [
        ("solo", "2026-03-01", 1, 0, 0, 1, 0, 0, 0.0)]


# --- v_latency, v_latency_daily -----------------------------------------


def test_latency(con):
    load_executions(con)
    got = rows(con, "SELECT project_id, language, runs, p50_ms, p95_ms,"
               " p99_ms, max_ms FROM v_latency ORDER BY project_id, language")
    assert got == [
        # [5, 5, 5, 5, 9]: k50 = ceil(2.5) = 3, k95 = ceil(4.75) = 5
        ("alpha", "javascript", 5, 5, 9, 9, 9),
        # ran: [7, 8, 10, 20, 20, 30, 40, 5000] (upstream_error and
        # rejected left out): k50 = 4, k95 = ceil(7.6) = 8, k99 = 8
        ("alpha", "python", 8, 20, 5000, 5000, 5000),
        # 1..20: k50 = 10, k95 = 19 exactly (not 20), k99 = ceil(19.8) = 20
        ("beta", "javascript", 20, 10, 19, 20, 20),
        # 1..100: k = P
        ("beta", "python", 100, 50, 95, 99, 100),
        # gamma (only rejected) and 'empty' have no rows
    ]


def test_latency_daily(con):
    load_executions(con)
    got = rows(con, "SELECT project_id, language, day, runs, p50_ms, p95_ms,"
               " p99_ms, max_ms FROM v_latency_daily"
               " WHERE project_id = 'alpha' ORDER BY language, day")
    assert got == [
        ("alpha", "javascript", "2026-03-01", 5, 5, 9, 9, 9),
        # [10, 20, 20, 30, 40, 5000]: k50 = 3, k95 = ceil(5.7) = 6
        ("alpha", "python", "2026-03-01", 6, 20, 5000, 5000, 5000),
        # [7, 8]: k50 = 1, k95 = k99 = 2
        ("alpha", "python", "2026-03-02", 2, 7, 8, 8, 8),
    ]


def test_latency_one_row(con):
    project(con, "solo")
    execution(con, "solo", "2026-03-01T12:00:00.000Z", "ok", 42)
    assert rows(con, "SELECT * FROM v_latency") == [
        ("solo", "python", 1, 42, 42, 42, 42)]


def test_latency_all_ties(con):
    project(con, "same")
    for _ in range(7):
        execution(con, "same", "2026-03-01T12:00:00.000Z", "ok", 13)
    assert rows(con, "SELECT * FROM v_latency") == [
        ("same", "python", 7, 13, 13, 13, 13)]


def test_latency_matches_nearest_rank_reference(con):
    rnd = random.Random(2026)
    expected = []
    for i, n in enumerate((1, 2, 3, 19, 20, 21, 99, 101, 250)):
        pid = f"p{i:02d}"
        project(con, pid)
        xs = [rnd.choice((1, 2, 3, 50, 51, 400, 9000)) for _ in range(n)]
        for ms in xs:
            execution(con, pid, "2026-03-01T12:00:00.000Z", "ok", ms)
        s = sorted(xs)
        pick = [s[math.ceil(p * n / 100) - 1] for p in (50, 95, 99)]
        expected.append((pid, "python", n, *pick, s[-1]))
    assert rows(con, "SELECT * FROM v_latency ORDER BY project_id") == \
        expected


# --- v_error_types ------------------------------------------------------


def test_error_types(con):
    load_executions(con)
    got = rows(con, "SELECT project_id, error_name, count, first_seen,"
               " last_seen FROM v_error_types")
    assert got == [
        ("alpha", "ZeroDivisionError", 2,
         "2026-03-01T10:00:00.000Z", "2026-03-02T00:00:01.000Z"),
        ("alpha", "TimeoutError", 1,
         "2026-03-01T11:00:00.000Z", "2026-03-01T11:00:00.000Z"),
        ("alpha", "code_too_large", 1,
         "2026-03-01T13:00:00.000Z", "2026-03-01T13:00:00.000Z"),
        ("alpha", "provider_unavailable", 1,
         "2026-03-01T12:00:00.000Z", "2026-03-01T12:00:00.000Z"),
        # beta's one error has no name: not listed
        ("gamma", "invalid_request", 2,
         "2026-03-03T00:00:00.000Z", "2026-03-03T00:00:01.000Z"),
    ]


# --- v_live_sandboxes ---------------------------------------------------


def test_live_sandboxes(con):
    project(con, "alpha")
    project(con, "beta")
    now = datetime.now(timezone.utc)
    s = timedelta(seconds=1)
    a = "i" + "a" * 20
    b = "i" + "b" * 20
    # Offsets end in .5 s so that the time the test takes (< 0.5 s) never
    # moves a whole second.
    sandbox(con, a, "alpha", "running", iso(now - 3600.5 * s),
            iso(now - 60.5 * s), iso(now + 239.5 * s))
    sandbox(con, b, "beta", "running", iso(now - 100.5 * s),
            iso(now - 100.5 * s), iso(now - 10.5 * s))  # overdue
    sandbox(con, "pending-01J00000000000000000000000", "alpha", "running",
            iso(now - 1.5 * s), iso(now - 1.5 * s), iso(now + 298.5 * s))
    sandbox(con, "i" + "c" * 20, "alpha", "closed", iso(now - 9000.5 * s),
            iso(now - 8000.5 * s), iso(now - 7700.5 * s))
    sandbox(con, "i" + "d" * 20, "alpha", "expired", iso(now - 9000.5 * s),
            iso(now - 9000.5 * s), iso(now - 8700.5 * s))
    con.commit()
    got = rows(con, "SELECT sandbox_id, project_id, age_s, idle_s,"
               " expires_in_s FROM v_live_sandboxes")
    assert got == [
        (a, "alpha", 3600, 60, 239),
        (b, "beta", 100, 100, -10),  # truncated toward zero
    ]
    got = rows(con, "SELECT created_at, last_used_at, expires_at"
               " FROM v_live_sandboxes WHERE sandbox_id = ?", a)
    assert got == [(iso(now - 3600.5 * s), iso(now - 60.5 * s),
                    iso(now + 239.5 * s))]


# --- v_key_usage, v_refused_by_client, v_refused_requests ---------------

K1, K2, K3 = "1111111111111111", "2222222222222222", "3333333333333333"


def load_audit(con, now):
    for p in ("alpha", "beta"):
        project(con, p)
    key(con, K1, "alpha")
    key(con, K2, "alpha")  # never used
    key(con, K3, "beta", revoked_at="2026-03-02T00:00:00.000Z")
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    t = {
        "k1_old": iso(now - 48 * h),
        "k1_ok": iso(now - 1 * h),
        "k1_429": iso(now - 30 * m),
        "k1_429_old": iso(now - 25 * h),
        "k1_404": iso(now - 10 * m),
        "anon_a": iso(now - 5 * m),
        "anon_b": iso(now - 4 * m),
        "anon_c": iso(now - 3 * h),
        "health": iso(now - 2 * h),
    }
    audit(con, t["k1_old"], 200, K1, "alpha")
    audit(con, t["k1_ok"], 200, K1, "alpha")
    audit(con, t["k1_429"], 429, K1, "alpha", error_code="rate_limited")
    audit(con, t["k1_429_old"], 429, K1, "alpha", error_code="rate_limited")
    audit(con, t["k1_404"], 404, K1, "alpha", error_code="not_found",
          route="/api/iris/nope")
    audit(con, "2026-03-01T00:00:00.000Z", 200, K3, "beta",
          client_addr="10.0.0.3")
    # 401s: no key, no project.
    audit(con, t["anon_a"], 401, client_addr="10.0.0.9",
          error_code="unauthorized")
    audit(con, t["anon_b"], 401, client_addr="10.0.0.9",
          error_code="unauthorized")
    audit(con, t["anon_c"], 401, client_addr="10.0.0.7",
          error_code="unauthorized")
    audit(con, t["health"], 200, client_addr="10.0.0.7",
          route="/api/iris/health")
    con.commit()
    return t


def test_key_usage(con):
    now = datetime.now(timezone.utc)
    t = load_audit(con, now)
    got = rows(con, "SELECT key_id, project_id, revoked_at, requests, refused,"
               " rate_limited, requests_24h, rate_limited_24h, last_used_at"
               " FROM v_key_usage")
    assert got == [
        # 5 requests, 3 refused (429, 429, 404); in the last 24 h:
        # 200 (-1 h), 429 (-30 min), 404 (-10 min)
        (K1, "alpha", None, 5, 3, 2, 3, 1, t["k1_404"]),
        (K2, "alpha", None, 0, 0, 0, 0, 0, None),
        (K3, "beta", "2026-03-02T00:00:00.000Z", 1, 0, 0, 0, 0,
         "2026-03-01T00:00:00.000Z"),
    ]


def test_refused_by_client(con):
    now = datetime.now(timezone.utc)
    t = load_audit(con, now)
    got = rows(con, "SELECT client_addr, refused, unauthorized, rate_limited,"
               " first_seen, last_seen FROM v_refused_by_client")
    assert got == [
        ("10.0.0.1", 3, 0, 2, t["k1_429_old"], t["k1_404"]),
        ("10.0.0.9", 2, 2, 0, t["anon_a"], t["anon_b"]),
        ("10.0.0.7", 1, 1, 0, t["anon_c"], t["anon_c"]),
        # 10.0.0.3 was never refused
    ]


def test_refused_requests(con):
    now = datetime.now(timezone.utc)
    t = load_audit(con, now)
    got = rows(con, "SELECT created_at, status, error_code, client_addr,"
               " key_id FROM v_refused_requests")
    assert got == [
        (t["anon_b"], 401, "unauthorized", "10.0.0.9", None),
        (t["anon_a"], 401, "unauthorized", "10.0.0.9", None),
        (t["k1_404"], 404, "not_found", "10.0.0.1", K1),
        (t["k1_429"], 429, "rate_limited", "10.0.0.1", K1),
        (t["anon_c"], 401, "unauthorized", "10.0.0.7", None),
        (t["k1_429_old"], 429, "rate_limited", "10.0.0.1", K1),
    ]


# --- indexes ------------------------------------------------------------


@pytest.mark.parametrize("sql, index", [
    ("SELECT count(*) FROM executions WHERE project_id = 'a'"
     " AND status = 'ok' AND created_at >= '2026-03-01'",
     "executions_project_status_created"),
    ("SELECT error_name, count(*) FROM executions WHERE project_id = 'a'"
     " AND error_name IS NOT NULL GROUP BY error_name",
     "executions_project_error"),
    ("SELECT * FROM audit_log WHERE status = 429"
     " AND created_at >= '2026-03-01'", "audit_log_status_created"),
    ("SELECT * FROM sandboxes WHERE status = 'running'"
     " ORDER BY created_at", "sandboxes_status_created"),
])
def test_queries_use_the_indexes(con, sql, index):
    plan = " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + sql))
    assert index in plan, plan
