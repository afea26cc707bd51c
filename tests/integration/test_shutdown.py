"""SIGTERM: the gateway stops taking requests, finishes the ones in flight
and exits 0; nginx then answers 503 in our envelope."""

import signal
import sqlite3
import threading
import time

import requests

from conftest import NGINX_UNAVAILABLE, Stack, assert_error, assert_ok, describe


def test_in_flight_request_finishes_after_sigterm():
    with Stack(name="drain", env={"IRIS_DB_BUSY_MS": "10000"}) as s:
        lock = sqlite3.connect(str(s.db), isolation_level=None, timeout=10)
        lock.execute("BEGIN IMMEDIATE")  # the write lock: rate limiting waits
        done = {}

        def call():
            try:
                done["r"] = s.get("/api/iris/sandbox", session=requests, timeout=60)
            except Exception as e:  # reported below
                done["e"] = e
        client = threading.Thread(target=call)
        try:
            client.start()
            time.sleep(0.5)
            assert client.is_alive(), "the request did not wait for the lock: %r" % done
            s.gateways[0].send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert client.is_alive(), "SIGTERM cut the request short: %r" % done
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        client.join(15)
        assert not client.is_alive(), "the request never finished"
        assert "e" not in done, done
        r = done["r"]
        assert assert_ok(r) == {"success": True, "sandboxes": []}, describe(r)
        t0 = time.monotonic()
        assert s.stop_gateway(0, timeout=10) == 0, s.log_tails()
        assert time.monotonic() - t0 < 10
        # Its audit row was written before the answer left.
        assert s.audit_row(r)["status"] == 200
        # Gone: nginx says so, in JSON.
        after = s.get("/api/iris/sandbox")
        assert_error(after, 503, "unavailable", gateway=False)
        assert after.json() == NGINX_UNAVAILABLE, describe(after)


def test_idle_gateway_exits_promptly():
    with Stack(name="idle-stop") as s:
        assert s.healthy()
        t0 = time.monotonic()
        assert s.stop_gateway(0, timeout=10) == 0, s.log_tails()
        assert time.monotonic() - t0 < 5
        r = s.get("/api/iris/health", key=None)
        assert_error(r, 503, "unavailable", gateway=False)
        assert r.json() == NGINX_UNAVAILABLE, describe(r)


def test_one_of_two_gateways_stopping_goes_unnoticed():
    with Stack(name="two-gateways", gateways=2) as s:
        assert s.stop_gateway(0, timeout=10) == 0, s.log_tails()
        for _ in range(6):
            assert_ok(s.get("/api/iris/sandbox"))
