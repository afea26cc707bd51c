"""Black-box tests of iris-admin, the operator's command line.

Runs the built binary ($IRIS_BUILDDIR/iris-admin, default the repository
root) against a fresh database in each test's tmp_path.  Only stdout,
stderr, exit statuses and the database file (read with Python's sqlite3,
as an operator would) are observed.
"""

import hashlib
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("IRIS_BUILDDIR", REPO))
ADMIN = BUILDDIR / "iris-admin"

# The schema version is the number of the last migration in sql/.
SCHEMA_VERSION = max(int(p.name[:3]) for p in (REPO / "sql").glob("[0-9][0-9][0-9]_*.sql"))

KEY_RE = re.compile(r"^iris_[0-9a-f]{16}_[0-9a-f]{48}$")

# Exit statuses (see iris-admin help).
OK, FAIL, USAGE = 0, 1, 2


def run(db, *args, env=None, cwd=None):
    """Runs iris-admin with IRIS_DB=db; returns the CompletedProcess."""
    e = {k: v for k, v in os.environ.items() if k != "IRIS_DB"}
    if db is not None:
        e["IRIS_DB"] = str(db)
    e.update(env or {})
    return subprocess.run(
        [str(ADMIN), *args],
        env=e,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def ok(db, *args):
    r = run(db, *args)
    assert r.returncode == OK, (args, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not os.access(ADMIN, os.X_OK):
        pytest.skip(f"{ADMIN} is not built")


@pytest.fixture
def db(tmp_path):
    """A migrated, empty database."""
    path = tmp_path / "iris.db"
    ok(path, "migrate")
    return path


@pytest.fixture
def project(db):
    ok(db, "project", "create", "demo")
    return "demo"


def create_key(db, *extra, project="demo"):
    r = ok(db, "key", "create", "--project", project, *extra)
    return r.stdout.strip()


def key_id(key):
    return key[5:21]


def key_rows(db):
    con = sqlite3.connect(db)
    try:
        con.row_factory = sqlite3.Row
        return {r["key_id"]: dict(r) for r in con.execute("SELECT * FROM api_keys")}
    finally:
        con.close()


# --- migrate -------------------------------------------------------------


def test_migrate_creates_database_and_prints_version(tmp_path):
    path = tmp_path / "new.db"
    r = run(path, "migrate")
    assert r.returncode == OK, r.stderr
    assert path.exists()
    assert re.search(rf"schema version {SCHEMA_VERSION}\b", r.stdout)
    con = sqlite3.connect(path)
    try:
        (version,) = con.execute("PRAGMA user_version").fetchone()
        tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()
    assert version == SCHEMA_VERSION
    assert {"projects", "api_keys", "audit_log", "executions"} <= tables


def test_migrate_is_idempotent(db):
    r = ok(db, "migrate")
    assert f"schema version {SCHEMA_VERSION}\n" in r.stdout


def test_migrate_default_path_and_db_option(tmp_path):
    (tmp_path / "var").mkdir()
    r = run(None, "migrate", cwd=tmp_path)
    assert r.returncode == OK, r.stderr
    assert (tmp_path / "var" / "iris.db").exists()
    other = tmp_path / "other.db"
    r = run(tmp_path / "ignored.db", "--db", str(other), "migrate")
    assert r.returncode == OK, r.stderr
    assert other.exists() and not (tmp_path / "ignored.db").exists()


def test_migrate_missing_directory(tmp_path):
    r = run(tmp_path / "no" / "such" / "x.db", "migrate")
    assert r.returncode == FAIL
    assert "does not exist" in r.stderr


def test_newer_schema_is_refused(db):
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    r = run(db, "project", "list")
    assert r.returncode == FAIL
    assert "newer" in r.stderr


# --- missing database ----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["project", "list"],
        ["project", "create", "demo"],
        ["key", "list"],
        ["key", "create", "--project", "demo"],
        ["key", "revoke", "0123456789abcdef"],
        ["key", "set-rate", "0123456789abcdef", "5"],
    ],
)
def test_missing_database(tmp_path, args):
    path = tmp_path / "absent.db"
    r = run(path, *args)
    assert r.returncode == FAIL
    assert r.stdout == ""
    assert f"database {path} does not exist; run 'iris-admin migrate' first" in r.stderr
    assert not path.exists()


def test_missing_default_database(tmp_path):
    r = run(None, "project", "list", cwd=tmp_path)
    assert r.returncode == FAIL
    assert "database ./var/iris.db does not exist; run 'iris-admin migrate' first" in r.stderr


# --- projects ------------------------------------------------------------


def test_project_create_and_list(db):
    r = ok(db, "project", "create", "demo")
    assert "demo" in r.stdout
    ok(db, "project", "create", "a.b_c:d-E9")
    create_key(db, project="demo")
    revoked = create_key(db, project="demo")
    ok(db, "key", "revoke", key_id(revoked))
    lines = ok(db, "project", "list").stdout.splitlines()
    assert lines[0].split() == ["PROJECT", "CREATED", "ACTIVE", "KEYS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"demo", "a.b_c:d-E9"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rows["demo"][1])
    assert rows["demo"][2] == "1"
    assert rows["a.b_c:d-E9"][2] == "0"


def test_project_duplicate(db, project):
    r = run(db, "project", "create", project)
    assert r.returncode == FAIL
    assert "project demo already exists" in r.stderr


@pytest.mark.parametrize("name", ["", "has space", "slash/no", "x" * 129, "é", "a\x1b[31m"])
def test_project_invalid_name(db, name):
    r = run(db, "project", "create", name)
    assert r.returncode == USAGE
    assert "NAME must be 1 to 128 characters" in r.stderr
    assert ok(db, "project", "list").stdout.count("\n") == 1


def test_project_name_of_128_chars(db):
    ok(db, "project", "create", "p" * 128)
    assert "p" * 128 in ok(db, "project", "list").stdout


def test_project_create_argument_count(db):
    r = run(db, "project", "create")
    assert r.returncode == USAGE
    assert "missing argument" in r.stderr
    r = run(db, "project", "create", "a", "b")
    assert r.returncode == USAGE
    assert "unexpected argument 'b'" in r.stderr


# --- key create ----------------------------------------------------------


def test_key_create_prints_only_the_key(db, project):
    r = ok(db, "key", "create", "--project", project)
    assert r.stdout.count("\n") == 1
    key = r.stdout.rstrip("\n")
    assert KEY_RE.match(key)
    assert key_id(key) in r.stderr
    assert key[22:] not in r.stderr
    rows = key_rows(db)
    row = rows[key_id(key)]
    assert row["project_id"] == "demo"
    assert row["key_prefix"] == key[:21]
    assert row["rate_limit"] == 100 and row["rate_window_ms"] == 60000
    assert row["revoked_at"] is None
    assert len(row["key_hash"]) == 32
    assert key[22:].encode() not in open(db, "rb").read()


def test_key_create_stores_sha256_of_the_key(db, project):
    key = create_key(db)
    assert key_rows(db)[key_id(key)]["key_hash"] == hashlib.sha256(key.encode()).digest()


def test_key_create_options(db, project):
    key = create_key(db, "--rate", "1000000", "--window=86400", "--name", "ci runner")
    row = key_rows(db)[key_id(key)]
    assert row["rate_limit"] == 1000000
    assert row["rate_window_ms"] == 86400 * 1000
    assert row["name"] == "ci runner"
    key = create_key(db, "--rate=1", "--window", "1")
    row = key_rows(db)[key_id(key)]
    assert (row["rate_limit"], row["rate_window_ms"]) == (1, 1000)


def test_key_create_keys_differ(db, project):
    keys = {create_key(db) for _ in range(5)}
    assert len(keys) == 5


def test_key_create_unknown_project(db, project):
    r = run(db, "key", "create", "--project", "nope")
    assert r.returncode == FAIL
    assert r.stdout == ""
    assert "no project nope" in r.stderr
    assert key_rows(db) == {}


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--project is required"),
        (["--project", "demo", "--rate", "0"], "--rate must be an integer from 1 to 1000000"),
        (["--project", "demo", "--rate", "1000001"], "--rate must be an integer from 1 to 1000000"),
        (["--project", "demo", "--rate", "-5"], "--rate must be an integer"),
        (["--project", "demo", "--rate", "5x"], "--rate must be an integer"),
        (["--project", "demo", "--rate", " 5"], "--rate must be an integer"),
        (["--project", "demo", "--rate", "+5"], "--rate must be an integer"),
        (["--project", "demo", "--rate", ""], "--rate must be an integer"),
        (["--project", "demo", "--rate", "99999999999999999999"], "--rate must be an integer"),
        (["--project", "demo", "--window", "0"], "--window must be an integer from 1 to 86400"),
        (["--project", "demo", "--window", "86401"], "--window must be an integer from 1 to 86400"),
        (["--project", "demo", "--name", ""], "--name must be"),
        (["--project", "demo", "--name", "tab\there"], "--name must be"),
        (["--project", "demo", "--name", "n" * 65], "--name must be"),
        (["--project", "bad name"], "--project must be"),
        (["--project", "demo", "--rate"], "option --rate needs a value"),
        (["--project", "demo", "--project", "demo"], "option --project given twice"),
        (["--project", "demo", "--frob", "1"], "unknown option --frob"),
        (["--project", "demo", "extra"], "unexpected argument 'extra'"),
    ],
)
def test_key_create_bad_arguments(db, project, args, message):
    r = run(db, "key", "create", *args)
    assert r.returncode == USAGE, r.stderr
    assert r.stdout == ""
    assert message in r.stderr
    assert key_rows(db) == {}


def test_key_create_unwritable_stdout_keeps_no_key(db, project):
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [str(ADMIN), "key", "create", "--project", project],
            env={**os.environ, "IRIS_DB": str(db)},
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    assert r.returncode == FAIL
    assert "could not print the new key" in r.stderr
    assert key_rows(db) == {}


# --- key list ------------------------------------------------------------


def test_key_list_never_shows_secrets(db, project):
    ok(db, "project", "create", "other")
    k1 = create_key(db, "--name", "first")
    k2 = create_key(db, "--rate", "5", "--window", "10", project="other")
    out = ok(db, "key", "list").stdout
    for key in (k1, k2):
        assert key_id(key) in out
        assert key[22:] not in out
        assert key not in out
    for row in key_rows(db).values():
        assert row["key_hash"].hex() not in out
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PREFIX", "PROJECT", "NAME", "RATE", "CREATED", "REVOKED"]
    assert len(lines) == 3
    # Aligned: every column starts at the same offset on every line.
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    for line in lines[1:]:
        for s in starts:
            assert line[s] != " " and (s == 0 or line[s - 1] == " "), (line, s)
    by_id = {line.split()[0]: line.split() for line in lines[1:]}
    assert by_id[key_id(k1)] == [
        key_id(k1),
        k1[:21],
        "demo",
        "first",
        "100/60s",
        by_id[key_id(k1)][5],
        "-",
    ]
    assert by_id[key_id(k2)][2:5] == ["other", "-", "5/10s"]


def test_key_list_by_project(db, project):
    ok(db, "project", "create", "other")
    k1 = create_key(db)
    k2 = create_key(db, project="other")
    out = ok(db, "key", "list", "--project", "other").stdout
    assert key_id(k2) in out and key_id(k1) not in out
    r = run(db, "key", "list", "--project", "nope")
    assert r.returncode == FAIL
    assert "no project nope" in r.stderr


def test_key_list_empty(db):
    out = ok(db, "key", "list").stdout
    assert out.splitlines() == ["ID  PREFIX  PROJECT  NAME  RATE  CREATED  REVOKED"]


def test_key_list_shows_revoked(db, project):
    key = create_key(db)
    ok(db, "key", "revoke", key_id(key))
    line = ok(db, "key", "list").stdout.splitlines()[1]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line)


def test_key_list_sanitises_stored_names(db, project):
    key = create_key(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE api_keys SET name = ? WHERE key_id = ?", ("a\x1b[2Jb\nc", key_id(key)))
    con.commit()
    con.close()
    out = ok(db, "key", "list").stdout
    assert "\x1b" not in out
    assert "a?[2Jb?c" in out
    assert len(out.splitlines()) == 2


# --- key revoke ----------------------------------------------------------


def revoked_at(db, key):
    return key_rows(db)[key_id(key)]["revoked_at"]


def test_revoke_by_id(db, project):
    key = create_key(db)
    other = create_key(db)
    r = ok(db, "key", "revoke", key_id(key))
    assert key_id(key) in r.stdout
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", revoked_at(db, key))
    assert revoked_at(db, other) is None


def test_revoke_by_prefix_and_uppercase_id(db, project):
    k1, k2 = create_key(db), create_key(db)
    ok(db, "key", "revoke", k1[:21])
    ok(db, "key", "revoke", key_id(k2).upper())
    assert revoked_at(db, k1) and revoked_at(db, k2)


def test_revoke_by_whole_key(db, project):
    key = create_key(db)
    r = ok(db, "key", "revoke", key)
    assert key[22:] not in r.stdout + r.stderr
    assert revoked_at(db, key) is not None


def test_revoke_whole_key_with_wrong_secret(db, project):
    key = create_key(db)
    wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
    r = run(db, "key", "revoke", wrong)
    assert r.returncode == FAIL
    assert wrong[22:] not in r.stdout + r.stderr
    assert revoked_at(db, key) is None


def test_revoke_twice(db, project):
    key = create_key(db)
    ok(db, "key", "revoke", key_id(key))
    first = revoked_at(db, key)
    r = run(db, "key", "revoke", key)
    assert r.returncode == OK
    assert "already revoked" in r.stdout
    assert revoked_at(db, key) == first


def test_revoke_unknown(db, project):
    r = run(db, "key", "revoke", "0123456789abcdef")
    assert r.returncode == FAIL
    assert "no key 0123456789abcdef" in r.stderr


@pytest.mark.parametrize(
    "arg",
    [
        "xyz",
        "0123456789abcde",
        "0123456789abcdef0",
        "iris_0123456789abcdef_short",
        "iris_" + "a" * 16 + "_" + "G" * 48,
    ],
)
def test_revoke_malformed(db, project, arg):
    r = run(db, "key", "revoke", arg)
    assert r.returncode == USAGE
    assert "expected a key id (16 hex digits) or a whole key" in r.stderr
    assert arg not in r.stderr


def test_revoke_argument_count(db):
    assert run(db, "key", "revoke").returncode == USAGE
    assert run(db, "key", "revoke", "0123456789abcdef", "x").returncode == USAGE


# --- key set-rate --------------------------------------------------------


def test_set_rate(db, project):
    key = create_key(db, "--window", "30")
    r = ok(db, "key", "set-rate", key_id(key), "250")
    assert "250/30s" in r.stdout
    row = key_rows(db)[key_id(key)]
    assert (row["rate_limit"], row["rate_window_ms"]) == (250, 30000)
    r = ok(db, "key", "set-rate", key_id(key), "7", "--window", "3600")
    assert "7/3600s" in r.stdout
    row = key_rows(db)[key_id(key)]
    assert (row["rate_limit"], row["rate_window_ms"]) == (7, 3600000)
    assert "7/3600s" in ok(db, "key", "list").stdout


def test_set_rate_unknown_key(db):
    r = run(db, "key", "set-rate", "0123456789abcdef", "5")
    assert r.returncode == FAIL
    assert "no key 0123456789abcdef" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["zz", "5"], "ID must be a key id"),
        (["{id}", "0"], "rate N must be an integer from 1 to 1000000"),
        (["{id}", "1000001"], "rate N must be an integer from 1 to 1000000"),
        (["{id}", "five"], "rate N must be an integer"),
        (["{id}", "5", "--window", "0"], "--window must be an integer from 1 to 86400"),
        (["{id}", "5", "--rate", "3"], "option --rate does not apply here"),
        (["{id}"], "missing argument"),
    ],
)
def test_set_rate_bad_arguments(db, project, args, message):
    key = create_key(db)
    r = run(db, "key", "set-rate", *[a.format(id=key_id(key)) for a in args])
    assert r.returncode == USAGE
    assert message in r.stderr
    row = key_rows(db)[key_id(key)]
    assert (row["rate_limit"], row["rate_window_ms"]) == (100, 60000)


# --- help and the command line -------------------------------------------


@pytest.mark.parametrize("args", [["help"], ["--help"], ["-h"]])
def test_help(tmp_path, args):
    r = run(tmp_path / "none.db", *args)
    assert r.returncode == OK
    assert r.stdout.startswith("usage: iris-admin")
    for cmd in ("migrate", "project create", "project list", "key create",
                "key list", "key revoke", "key set-rate"):
        assert cmd in r.stdout
    assert r.stderr == ""
    assert not (tmp_path / "none.db").exists()


def test_command_help(tmp_path):
    r = run(tmp_path / "none.db", "key", "create", "--help")
    assert r.returncode == OK
    assert r.stdout.startswith("usage: iris-admin key create --project NAME")


def test_no_arguments(tmp_path):
    r = run(tmp_path / "none.db")
    assert r.returncode == USAGE
    assert r.stdout == ""
    assert "usage: iris-admin" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["frob"], "unknown command 'frob'"),
        (["key"], "missing command after 'key'"),
        (["key", "frob"], "unknown command 'key frob'"),
        (["project", "delete", "x"], "unknown command 'project delete'"),
        (["--db"], "option --db needs a value"),
        (["--db=", "migrate"], "the database path is empty"),
        (["migrate", "extra"], "unexpected argument 'extra'"),
        (["project", "list", "--project", "x"], "option --project does not apply here"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    r = run(tmp_path / "none.db", *args)
    assert r.returncode == USAGE
    assert r.stdout == ""
    assert message in r.stderr
    assert not (tmp_path / "none.db").exists()


def test_usage_error_before_missing_database(tmp_path):
    """A bad command line is reported as such even without a database."""
    r = run(tmp_path / "none.db", "key", "create", "--project", "demo", "--rate", "0")
    assert r.returncode == USAGE
    assert "--rate must be" in r.stderr


def test_db_option_overrides_env(db, tmp_path):
    ok(db, "project", "create", "in-env-db")
    other = tmp_path / "other.db"
    ok(other, "migrate")
    ok(db, "--db", str(other), "project", "create", "in-other-db")
    ok(db, "project", "list", f"--db={other}")
    assert "in-other-db" in ok(None, "--db", str(other), "project", "list").stdout
    assert "in-other-db" not in ok(db, "project", "list").stdout


def test_double_dash_ends_options(db, project):
    key = create_key(db)
    ok(db, "key", "set-rate", "--", key_id(key), "9")
    assert key_rows(db)[key_id(key)]["rate_limit"] == 9
