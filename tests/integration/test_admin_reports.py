"""Black-box tests of iris-admin's reports and maintenance commands:
stats, audit, executions, prune, backup and export.

Runs the built binary ($IRIS_BUILDDIR/iris-admin, default the repository
root) against a fresh database in each test's tmp_path, filled with known
rows through Python's sqlite3.
"""

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("IRIS_BUILDDIR", REPO))
ADMIN = BUILDDIR / "iris-admin"

OK, FAIL, USAGE = 0, 1, 2


def run(db, *args):
    e = {k: v for k, v in os.environ.items() if k != "IRIS_DB"}
    e["IRIS_DB"] = str(db)
    # Bytes, decoded by hand: text=True would turn CSV's CRLF into LF.
    r = subprocess.run([str(ADMIN), *args], env=e, capture_output=True,
                       timeout=60)
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def ok(db, *args):
    r = run(db, *args)
    assert r.returncode == OK, (args, r.stdout, r.stderr)
    return r


def bad(db, code, msg, *args):
    r = run(db, *args)
    assert r.returncode == code, (args, r.stdout, r.stderr)
    assert msg in r.stderr, (args, r.stderr)
    return r


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


NOW = datetime.now(timezone.utc)


def ago(**kw):
    return iso(NOW - timedelta(**kw))


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not os.access(ADMIN, os.X_OK):
        pytest.skip(f"{ADMIN} is not built")


@pytest.fixture
def dbx(tmp_path):
    path = tmp_path / "iris.db"
    ok(path, "migrate")
    ok(path, "project", "create", "p1")
    ok(path, "project", "create", "p2")
    return path


def connect(db):
    c = sqlite3.connect(str(db), timeout=30)
    c.execute("PRAGMA busy_timeout = 30000")
    return c


def add_exec(c, eid, project, status, ms, created, error=None, lang="python",
             session=None, code="print(1)"):
    c.execute(
        "INSERT INTO executions (execution_id, request_id, created_at,"
        " project_id, session_id, language, code_bytes, code_sha256, code,"
        " status, error_name, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (eid, "req-" + eid, created, project, session, lang, len(code), "x",
         code, status, error, ms))


def add_audit(c, created, rid, status=200, project="p1", route="/api/iris/execute",
              error=None, dur=3):
    c.execute(
        "INSERT INTO audit_log (created_at, request_id, method, route, status,"
        " error_code, key_id, project_id, client_addr, duration_ms)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (created, rid, "POST", route, status, error, None, project,
         "10.0.0.1", dur))


def add_sandbox(c, sid, project, status, created, closed=None, expires=None):
    c.execute(
        "INSERT INTO sandboxes (sandbox_id, project_id, provider, status,"
        " idle_timeout_s, created_at, last_used_at, expires_at, closed_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (sid, project, "local", status, 300, created, created,
         expires or iso(NOW + timedelta(hours=1)), closed))


def add_event(c, created, sid, project, event="created"):
    c.execute(
        "INSERT INTO sandbox_events (created_at, sandbox_id, project_id,"
        " event) VALUES (?,?,?,?)", (created, sid, project, event))


def stats_block(out, project):
    """Parses the block of project into {label: value}."""
    m = re.search(rf"^project {re.escape(project)} since \S+\n((?:  .*\n)+)",
                  out, re.M)
    assert m, out
    res = {}
    for line in m.group(1).splitlines():
        label, value = re.match(r"  (.+?)\s{2,}(.*)$", line).groups()
        res[label] = value
    return res


def nearest_rank(values, p):
    v = sorted(values)
    k = (p * len(v) + 99) // 100
    return v[k - 1]


# --- stats ---

def fill_stats(db):
    c = connect(db)
    durs = [5, 17, 3, 99, 42, 8, 61, 23, 11, 250, 7, 30, 18, 140, 2, 77, 9]
    statuses = ["ok", "ok", "error", "ok", "timeout", "upstream_error", "ok",
                "error", "ok", "timeout", "ok", "error", "ok", "ok",
                "upstream_error", "ok", "error"]
    errors = {"error": "ValueError", "timeout": "TimeoutError",
              "upstream_error": "UpstreamError"}
    for i, (d, s) in enumerate(zip(durs, statuses)):
        add_exec(c, f"e{i:03d}", "p1", s, d, ago(minutes=i + 1),
                 errors.get(s))
    # Ignored: rejected, too old, other project.
    add_exec(c, "rej", "p1", "rejected", 1, ago(minutes=1), "quota")
    add_exec(c, "old", "p1", "ok", 100000, ago(days=3))
    add_exec(c, "oth", "p2", "ok", 555, ago(minutes=2))
    add_sandbox(c, "sb-live", "p1", "running", ago(minutes=5))
    add_sandbox(c, "sb-live2", "p1", "running", ago(days=2))
    add_sandbox(c, "sb-over", "p1", "running", ago(minutes=5),
                expires=ago(minutes=1))
    add_sandbox(c, "pending-x", "p1", "running", ago(minutes=5))
    add_sandbox(c, "sb-done", "p1", "closed", ago(minutes=50), ago(minutes=40))
    add_event(c, ago(minutes=5), "sb-live", "p1")
    add_event(c, ago(minutes=50), "sb-done", "p1")
    add_event(c, ago(minutes=40), "sb-done", "p1", "closed")
    add_event(c, ago(days=2), "sb-live2", "p1")
    c.commit()
    c.close()
    ran = [(d, s) for d, s in zip(durs, statuses)]
    return ran


def test_stats_numbers(dbx):
    ran = fill_stats(dbx)
    out = ok(dbx, "stats").stdout
    b = stats_block(out, "p1")
    # The rules of sql/002_views.sql: rate and latency of the runs of code.
    code_ran = [(d, s) for d, s in ran if s in ("ok", "error", "timeout")]
    durs = [d for d, _ in code_ran]
    n_ok = sum(s == "ok" for _, s in ran)
    assert b["executions"] == str(len(ran)) == "17"
    assert b["succeeded"] == str(n_ok) == "9"
    assert b["failed"] == "6"          # 4 error + 2 upstream_error
    assert b["timed out"] == "2"
    assert b["success rate"] == f"{100 * n_ok / len(code_ran):.1f}%" == "60.0%"
    for p in (50, 95, 99):
        assert b[f"p{p} ms"] == str(nearest_rank(durs, p))
    assert b["live sandboxes"] == "2"
    assert b["sandboxes created"] == "2"
    assert b["top error types"] == ("ValueError: 4, TimeoutError: 2, "
                                    "UpstreamError: 2")
    b2 = stats_block(out, "p2")
    assert b2["executions"] == "1" and b2["p99 ms"] == "555"
    assert b2["success rate"] == "100.0%"
    assert b2["top error types"] == "-"


def test_stats_equal_direct_sql(dbx):
    fill_stats(dbx)
    since = ago(hours=24)
    c = connect(dbx)
    rows = [r[0] for r in c.execute(
        "SELECT duration_ms FROM executions WHERE project_id='p1' AND "
        "created_at >= ? AND status IN ('ok', 'error', 'timeout') "
        "ORDER BY duration_ms",
        (since,))]
    sql = {}
    for p in (50, 95, 99):
        sql[p] = c.execute(
            "WITH r AS (SELECT duration_ms, row_number() OVER (ORDER BY "
            "duration_ms) rn, count(*) OVER () n FROM executions WHERE "
            "project_id='p1' AND created_at >= ? AND "
            "status IN ('ok', 'error', 'timeout')) "
            "SELECT min(duration_ms) FROM r WHERE rn >= (? * n + 99) / 100",
            (since, p)).fetchone()[0]
        assert sql[p] == nearest_rank(rows, p)
    c.close()
    b = stats_block(ok(dbx, "stats", "--project", "p1", "--since",
                       since).stdout, "p1")
    for p in (50, 95, 99):
        assert b[f"p{p} ms"] == str(sql[p])


def test_stats_since_and_project(dbx):
    fill_stats(dbx)
    out = ok(dbx, "stats", "--project", "p1", "--since",
             iso(NOW - timedelta(days=10))[:10]).stdout
    assert "project p2" not in out
    b = stats_block(out, "p1")
    assert b["executions"] == "18"
    assert b["p99 ms"] == "100000"
    assert b["sandboxes created"] == "3"
    # Nothing ran: rate and percentiles are "-".
    out = ok(dbx, "stats", "--since", iso(NOW + timedelta(days=1))).stdout
    b = stats_block(out, "p1")
    assert b["executions"] == "0"
    assert b["success rate"] == "-"
    assert b["p50 ms"] == b["p95 ms"] == b["p99 ms"] == "-"
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out)


def test_stats_single_row(dbx):
    c = connect(dbx)
    add_exec(c, "one", "p2", "error", 12, ago(minutes=1), "Boom\x1b[2J")
    c.commit()
    c.close()
    b = stats_block(ok(dbx, "stats", "--project", "p2").stdout, "p2")
    assert b["p50 ms"] == b["p95 ms"] == b["p99 ms"] == "12"
    assert b["success rate"] == "0.0%"
    assert b["top error types"] == "Boom?[2J: 1"


# --- audit ---

def fill_audit(db):
    c = connect(db)
    for i in range(30):
        add_audit(c, ago(minutes=100 - i), f"r{i:02d}",
                  status=[200, 401, 429][i % 3],
                  project="p1" if i % 2 == 0 else "p2",
                  error=None if i % 3 == 0 else "E")
    c.commit()
    c.close()


def table_rows(out):
    lines = out.splitlines()
    return [ln.split() for ln in lines[1:]]


def test_audit_order_filters_limit(dbx):
    fill_audit(dbx)
    out = ok(dbx, "audit").stdout
    head = out.splitlines()[0].split()
    assert head[:3] == ["TIME", "REQUEST", "METHOD"]
    rows = table_rows(out)
    assert [r[1] for r in rows] == [f"r{i:02d}" for i in range(29, -1, -1)]
    assert rows[0][4] == "429" and rows[0][7] == "p2"
    assert rows[0][8] == "10.0.0.1"
    rows = table_rows(ok(dbx, "audit", "--limit", "5").stdout)
    assert [r[1] for r in rows] == ["r29", "r28", "r27", "r26", "r25"]
    rows = table_rows(ok(dbx, "audit", "--project", "p1",
                         "--status", "429").stdout)
    assert [r[1] for r in rows] == ["r26", "r20", "r14", "r08", "r02"]
    rows = table_rows(ok(dbx, "audit", "--since", ago(minutes=75)).stdout)
    assert [r[1] for r in rows][-1] == "r25" and len(rows) == 5
    assert len(table_rows(ok(dbx, "audit", "--project", "nope").stdout)) == 0


def test_audit_default_limit(dbx):
    c = connect(dbx)
    for i in range(60):
        add_audit(c, ago(seconds=600 - i), f"q{i}")
    c.commit()
    c.close()
    rows = table_rows(ok(dbx, "audit").stdout)
    assert len(rows) == 50 and rows[0][1] == "q59"


# --- executions ---

def test_executions_order_filter_limit(dbx):
    c = connect(dbx)
    for i in range(12):
        add_exec(c, f"x{i:02d}", "p1" if i % 3 else "p2", "ok", i,
                 ago(minutes=60 - i), session="s1",
                 code="SECRET_CODE_" + "y" * i)
    c.commit()
    c.close()
    out = ok(dbx, "executions").stdout
    assert "SECRET_CODE" not in out
    assert out.splitlines()[0].split()[:2] == ["TIME", "EXECUTION"]
    rows = table_rows(out)
    assert [r[1] for r in rows] == [f"x{i:02d}" for i in range(11, -1, -1)]
    # CODE BYTES is the last column.
    assert rows[0][-1] == str(len("SECRET_CODE_") + 11)
    rows = table_rows(ok(dbx, "executions", "--project", "p2",
                         "--limit", "2").stdout)
    assert [r[1] for r in rows] == ["x09", "x06"]
    assert all(r[2] == "p2" for r in rows)


# --- prune ---

def test_prune_counts_and_keeps_newer(dbx):
    cut = NOW - timedelta(days=7)
    c = connect(dbx)
    for i in range(2500):
        add_audit(c, iso(cut - timedelta(seconds=i + 1)), f"old{i}")
    for i in range(3):
        add_audit(c, iso(cut + timedelta(seconds=i + 1)), f"new{i}")
    for i in range(1001):
        add_exec(c, f"o{i}", "p1", "ok", 1, iso(cut - timedelta(seconds=i + 1)))
    add_exec(c, "n0", "p1", "ok", 1, iso(cut + timedelta(seconds=1)))
    add_event(c, iso(cut - timedelta(days=1)), "a", "p1")
    add_event(c, iso(cut + timedelta(days=1)), "b", "p1")
    add_sandbox(c, "gone", "p1", "closed", iso(cut - timedelta(days=2)),
                iso(cut - timedelta(days=1)))
    add_sandbox(c, "kept-closed-late", "p1", "expired",
                iso(cut - timedelta(days=2)), iso(cut + timedelta(days=1)))
    add_sandbox(c, "kept-running", "p1", "running",
                iso(cut - timedelta(days=20)))
    c.commit()
    c.close()
    out = ok(dbx, "prune", "--before", iso(cut)).stdout
    assert "audit_log: 2500 rows deleted" in out
    assert "executions: 1001 rows deleted" in out
    assert "sandbox_events: 1 rows deleted" in out
    assert "sandboxes: 1 rows deleted" in out
    c = connect(dbx)
    assert [r[0] for r in c.execute(
        "SELECT request_id FROM audit_log ORDER BY id")] == \
        ["new0", "new1", "new2"]
    assert [r[0] for r in c.execute("SELECT execution_id FROM executions")] \
        == ["n0"]
    assert sorted(r[0] for r in c.execute("SELECT sandbox_id FROM sandboxes")) \
        == ["kept-closed-late", "kept-running"]
    assert c.execute("SELECT count(*) FROM sandbox_events").fetchone()[0] == 1
    c.close()
    # Again: nothing left to delete.
    out = ok(dbx, "prune", "--before", iso(cut)).stdout
    assert "audit_log: 0 rows deleted" in out


def test_prune_future_needs_force(dbx):
    c = connect(dbx)
    add_audit(c, ago(minutes=1), "r")
    c.commit()
    c.close()
    future = iso(NOW + timedelta(days=1))
    bad(dbx, USAGE, "in the future", "prune", "--before", future)
    assert connect(dbx).execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1
    out = ok(dbx, "prune", "--before", future, "--force").stdout
    assert "audit_log: 1 rows deleted" in out


def test_prune_busy_reader(dbx):
    """A reader that stays in its transaction keeps the checkpoint from
    emptying the WAL: the deletes are done, prune says so and fails."""
    c = connect(dbx)
    add_audit(c, ago(days=30), "old")
    add_audit(c, ago(minutes=1), "new")
    c.commit()
    c.isolation_level = None
    c.execute("BEGIN")
    c.execute("SELECT count(*) FROM audit_log").fetchone()
    r = run(dbx, "prune", "--before", ago(days=1))
    c.execute("COMMIT")
    assert r.returncode == FAIL, (r.stdout, r.stderr)
    assert "audit_log: 1 rows deleted" in r.stdout
    assert "busy" in r.stderr and "rows are deleted" in r.stderr
    assert [x[0] for x in c.execute("SELECT request_id FROM audit_log")] \
        == ["new"]
    c.close()


def test_prune_locked_writer(dbx):
    """A writer that holds the lock past the busy timeout: a clean failure."""
    c = connect(dbx)
    add_audit(c, ago(days=30), "old")
    c.commit()
    c.execute("BEGIN IMMEDIATE")
    r = run(dbx, "prune", "--before", ago(days=1))
    c.rollback()
    c.close()
    assert r.returncode == FAIL
    assert "locked" in r.stderr or "busy" in r.stderr


def test_prune_bad_args(dbx):
    bad(dbx, USAGE, "--before is required", "prune")
    bad(dbx, USAGE, "--before must be an ISO 8601", "prune", "--before", "yesterday")
    bad(dbx, USAGE, "--before must be an ISO 8601", "prune", "--before", "2026-13-01")
    bad(dbx, USAGE, "--force takes no value", "prune", "--before",
        "2020-01-01", "--force=yes")
    bad(dbx, USAGE, "unexpected argument", "prune", "--before", "2020-01-01", "x")


# --- backup ---

def counts(path):
    c = sqlite3.connect(str(path))
    res = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
           for t in ("projects", "api_keys", "audit_log", "sandboxes",
                     "sandbox_events", "executions")}
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()
    return res


def test_backup_copy(dbx, tmp_path):
    ok(dbx, "key", "create", "--project", "p1")
    fill_stats(dbx)
    fill_audit(dbx)
    dst = tmp_path / "copy.db"
    ok(dbx, "backup", str(dst))
    assert (dst.stat().st_mode & 0o777) == 0o600
    assert counts(dst) == counts(dbx)
    r = bad(dbx, FAIL, "already exists", "backup", str(dst))
    assert counts(dst) == counts(dbx)


def test_backup_while_writing(dbx, tmp_path):
    c = connect(dbx)
    for i in range(3000):
        add_audit(c, ago(seconds=i), f"pre{i}", route="/x" * 50)
    c.commit()
    c.close()
    stop = threading.Event()
    wrote = [0]

    def writer():
        w = connect(dbx)
        i = 0
        while not stop.is_set():
            add_audit(w, ago(seconds=0), f"live{i}")
            w.commit()
            i += 1
        wrote[0] = i
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.2)
        for k in range(3):
            dst = tmp_path / f"live{k}.db"
            ok(dbx, "backup", str(dst))
            n = counts(dst)["audit_log"]
            assert n >= 3000
    finally:
        stop.set()
        t.join()
    assert wrote[0] > 0


def test_backup_bad_args(dbx, tmp_path):
    bad(dbx, USAGE, "missing argument", "backup")
    bad(dbx, USAGE, "unexpected argument", "backup", "a", "b")
    bad(dbx, FAIL, "No such file", "backup", str(tmp_path / "no" / "x.db"))
    bad(tmp_path / "missing.db", FAIL, "does not exist", "backup",
        str(tmp_path / "x.db"))
    assert not (tmp_path / "x.db").exists()


# --- export ---

def test_export_csv_quoting(dbx):
    c = connect(dbx)
    add_exec(c, "q1", "p1", "error", 5, ago(minutes=3),
             'Val,ue "x"\nline2', code="a,b")
    add_exec(c, "q2", "p1", "ok", 6, ago(minutes=2), code=" lead")
    c.commit()
    c.close()
    out = ok(dbx, "export", "--format", "csv", "executions").stdout
    assert out.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["execution_id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["error_name"] == 'Val,ue "x"\nline2'
    assert rows[0]["code"] == "a,b"
    assert rows[1]["code"] == " lead"
    assert rows[1]["error_name"] == ""
    assert '"Val,ue ""x""\nline2"' in out


def test_export_json(dbx):
    c = connect(dbx)
    add_exec(c, "j1", "p1", "error", 5, ago(minutes=3),
             'q"\\\t\x01é😀', code="x")
    c.execute("UPDATE executions SET error_message = CAST(X'41FF42' AS TEXT)")
    c.commit()
    c.close()
    out = ok(dbx, "export", "--format", "json", "executions").stdout
    data = json.loads(out)
    assert len(data) == 1
    assert data[0]["error_name"] == 'q"\\\t\x01é😀'
    assert data[0]["error_message"] == "A\ufffdB"
    assert data[0]["duration_ms"] == 5 and data[0]["session_id"] is None
    assert json.loads(ok(dbx, "export", "--format", "json", "audit_log").stdout) == []
    # A view with a float column.
    data = json.loads(ok(dbx, "export", "--format=json", "v_project_daily").stdout)
    assert data[0]["success_rate"] == 0.0 and data[0]["volume"] == 1


def test_export_since_limit(dbx):
    fill_audit(dbx)
    rows = json.loads(ok(dbx, "export", "--format", "json", "audit_log",
                         "--since", ago(minutes=75)).stdout)
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(25, 30)]
    rows = json.loads(ok(dbx, "export", "--format", "json", "audit_log",
                         "--limit", "2").stdout)
    assert [r["request_id"] for r in rows] == ["r00", "r01"]
    out = ok(dbx, "export", "--format", "csv", "v_refused_requests",
             "--since", ago(minutes=75), "--limit", "100").stdout
    assert len(list(csv.DictReader(io.StringIO(out, newline="")))) == 4


def test_export_never_key_hash(dbx):
    ok(dbx, "key", "create", "--project", "p1")
    for fmt in ("csv", "json"):
        out = ok(dbx, "export", "--format", fmt, "api_keys").stdout
        assert "key_hash" not in out
        assert "key_prefix" in out
    data = json.loads(ok(dbx, "export", "--format", "json", "api_keys").stdout)
    assert set(data[0]) == {"key_id", "project_id", "name", "key_prefix",
                            "rate_limit", "rate_window_ms", "rate_tat_us",
                            "created_at", "revoked_at"}
    for view in ("v_key_usage",):
        assert "key_hash" not in ok(dbx, "export", "--format", "csv", view).stdout


@pytest.mark.parametrize("name", [
    "projects", "api_keys", "audit_log", "sandboxes", "sandbox_events",
    "executions", "v_project_daily", "v_latency", "v_latency_daily",
    "v_error_types", "v_live_sandboxes", "v_key_usage",
    "v_refused_by_client", "v_refused_requests"])
def test_export_every_allowed(dbx, name):
    fill_stats(dbx)
    fill_audit(dbx)
    out = ok(dbx, "export", "--format", "csv", name).stdout
    assert out.count("\r\n") >= 1
    json.loads(ok(dbx, "export", "--format", "json", name).stdout)


@pytest.mark.parametrize("name", [
    "sqlite_master", "api_keys; DROP TABLE projects", "key_hash",
    "API_KEYS", "", "schema_migrations", "audit_log--"])
def test_export_refuses_unknown(dbx, name):
    bad(dbx, USAGE, "may be exported", "export", "--format", "csv", "--", name)
    assert counts(dbx)["projects"] == 2


def test_export_bad_args(dbx):
    bad(dbx, USAGE, "--format is required", "export", "audit_log")
    bad(dbx, USAGE, "--format must be csv or json", "export", "--format",
        "xml", "audit_log")
    bad(dbx, USAGE, "missing argument", "export", "--format", "csv")
    bad(dbx, USAGE, "has no created_at", "export", "--format", "csv",
        "v_latency", "--since", "2026-01-01")
    bad(dbx, USAGE, "--since must be an ISO 8601", "export", "--format", "csv",
        "audit_log", "--since", "2026-01-01 00:00")
    bad(dbx, USAGE, "--limit must be an integer", "export", "--format", "csv",
        "audit_log", "--limit", "0")
    bad(dbx, USAGE, "--format given twice", "export", "--format", "csv",
        "--format", "json", "audit_log")


# --- bad arguments of the reports ---

@pytest.mark.parametrize("args,msg", [
    (["stats", "--since", "2026-11-22T03:04:05"], "--since must be an ISO 8601"),
    (["stats", "--since", "x"], "--since must be an ISO 8601"),
    (["stats", "--project", "bad name"], "--project must be"),
    (["stats", "--limit", "3"], "--limit does not apply"),
    (["stats", "extra"], "unexpected argument"),
    (["stats", "--since"], "--since needs a value"),
    (["audit", "--limit", "0"], "--limit must be an integer from 1 to 10000"),
    (["audit", "--limit", "10001"], "--limit must be an integer from 1 to 10000"),
    (["audit", "--limit", "-1"], "--limit must be an integer"),
    (["audit", "--status", "99"], "--status must be an integer from 100 to 599"),
    (["audit", "--status", "abc"], "--status must be"),
    (["audit", "--since", "nope"], "--since must be an ISO 8601"),
    (["audit", "--project", ""], "--project must be"),
    (["audit", "--bogus", "1"], "unknown option --bogus"),
    (["executions", "--limit", "x"], "--limit must be an integer"),
    (["executions", "--since", "2026-01-01"], "--since does not apply"),
    (["executions", "--project", "a/b"], "--project must be"),
])
def test_report_bad_args(dbx, args, msg):
    bad(dbx, USAGE, msg, *args)


def test_stats_unknown_project(dbx):
    bad(dbx, FAIL, "no project nope", "stats", "--project", "nope")


def test_missing_db(tmp_path):
    for args in (["stats"], ["audit"], ["executions"],
                 ["prune", "--before", "2020-01-01"],
                 ["export", "--format", "csv", "projects"]):
        bad(tmp_path / "none.db", FAIL, "does not exist", *args)
