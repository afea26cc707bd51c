"""iris-admin backup and prune on a live database: the gateway keeps
answering while they run, the backup is a consistent copy, and prune
leaves every row newer than its cut-off."""

import sqlite3
import subprocess
import threading
import time

from conftest import ADMIN, Stack


def load(stack, stop, answers):
    """Keeps authenticated requests (each one audited) going until stop."""
    s = stack.session.__class__()
    while not stop.is_set():
        r = stack.request("GET", "/api/iris/sandbox", session=s)
        answers.append(r.status_code)


def admin(stack, *args):
    return subprocess.run([str(ADMIN), "--db", str(stack.db)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=120)


def test_backup_and_prune_while_serving(tmp_path):
    with Stack(name="live-maint") as stack:
        # History to prune: rows a day old, written as the gateway would.
        c = sqlite3.connect(str(stack.db), timeout=10)
        c.executemany(
            "INSERT INTO audit_log (created_at, request_id, method, route, status, "
            "duration_ms) VALUES ('2026-01-01T00:00:00.000Z', ?, 'GET', '/x', 200, 1)",
            [("req_OLD%05d" % i,) for i in range(3000)])
        c.commit()
        c.close()

        stop, answers = threading.Event(), []
        threads = [threading.Thread(target=load, args=(stack, stop, answers))
                   for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            copy = tmp_path / "copy.db"
            b = admin(stack, "backup", str(copy))
            assert b.returncode == 0, b.stderr
            p = admin(stack, "prune", "--before", "2026-06-01")
            # Deleting is done; reclaiming may find the database busy.
            assert p.returncode in (0, 1), p.stderr
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)

        # The gateway answered every request, before, during and after.
        assert answers and set(answers) == {200}, set(answers)
        # The backup is a whole, consistent database with the history in it.
        cc = sqlite3.connect(str(copy))
        assert cc.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert cc.execute("SELECT count(*) FROM audit_log WHERE request_id "
                          "LIKE 'req_OLD%'").fetchone()[0] == 3000
        cc.close()
        # Prune took the old rows and only them: one row per answered request
        # is still there.
        assert stack.sql("SELECT count(*) AS n FROM audit_log WHERE request_id "
                         "LIKE 'req_OLD%'")[0]["n"] == 0
        kept = stack.sql("SELECT count(*) AS n FROM audit_log WHERE route = "
                         "'/api/iris/sandbox'")[0]["n"]
        assert kept >= len(answers), (kept, len(answers))
