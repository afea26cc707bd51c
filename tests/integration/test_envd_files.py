"""iris-sandboxd's envd file download (GET /files on port 49983, as E2B's
spec/envd/envd.yaml has it), black box: bytes exactly, relative paths under
/home/user, and every way a path could reach past the sandbox -- "..",
absolute symlinks, links through /proc, FIFOs and devices -- answered
inside it or refused with envd's error shape.
"""

import pytest

from sandboxd import ENVD_PORT, daemon_fixture, describe

daemon = daemon_fixture(name="daemon", POOL=0)


@pytest.fixture(scope="module")
def box(daemon):
    """(sandbox id, envd access token) of one secure sandbox."""
    r = daemon.api("POST", "/sandboxes", json={
        "templateID": "code-interpreter-v1", "timeout": 600, "secure": True}, timeout=60)
    assert r.status_code == 201, describe(r)
    body = r.json()
    yield body["sandboxID"], body["envdAccessToken"]
    daemon.delete(body["sandboxID"])


def get(daemon, box, path=None, token=..., **params):
    sid, tok = box
    headers = {} if token is None else {"X-Access-Token": tok if token is ... else token}
    if path is not None:
        params["path"] = path
    return daemon.sbx("GET", sid, "/files", port=ENVD_PORT, headers=headers, params=params)


def run(daemon, box, code):
    ex = daemon.run(box[0], code)
    assert ex.error is None, ex
    return ex


def assert_envd_error(r, status, *words):
    assert r.status_code == status, describe(r)
    body = r.json()
    assert body.get("code") == status and isinstance(body.get("message"), str), describe(r)
    for w in words:
        assert w in body["message"], describe(r)


def test_bytes_of_a_file_the_code_wrote(daemon, box):
    run(daemon, box, "open('/home/user/all.bin', 'wb').write(bytes(range(256)) * 1000)")
    for path in ("/home/user/all.bin", "all.bin", "./all.bin"):
        r = get(daemon, box, path)
        assert r.status_code == 200, describe(r)
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.content == bytes(range(256)) * 1000


def test_empty_file_and_username(daemon, box):
    run(daemon, box, "open('/tmp/empty', 'w').close()")
    r = get(daemon, box, "/tmp/empty", username="user")
    assert r.status_code == 200 and r.content == b"", describe(r)
    assert_envd_error(get(daemon, box, "/tmp/empty", username="root"), 401, "root")
    assert_envd_error(get(daemon, box, "/tmp/empty", username="nobody"), 401, "nobody")


def test_needs_the_access_token(daemon, box):
    run(daemon, box, "open('/tmp/secret', 'w').write('x')")
    assert_envd_error(get(daemon, box, "/tmp/secret", token=None), 401)
    assert_envd_error(get(daemon, box, "/tmp/secret", token="wrong"), 401)


def test_without_secure_no_token_is_needed(daemon):
    # As envd: a sandbox created without "secure" has no access token to ask for.
    sid = daemon.create(timeout=60)
    try:
        assert daemon.run(sid, "open('/tmp/t', 'w').write('open')").error is None
        r = daemon.sbx("GET", sid, "/files", port=ENVD_PORT, params={"path": "/tmp/t"})
        assert r.status_code == 200 and r.text == "open", describe(r)
    finally:
        daemon.delete(sid)


def test_missing_directory_and_no_path(daemon, box):
    assert_envd_error(get(daemon, box, "/home/user/nope.txt"), 404, "does not exist")
    assert_envd_error(get(daemon, box, "/home/user/nope/deeper"), 404, "does not exist")
    assert_envd_error(get(daemon, box, "/home/user"), 400, "is a directory")
    assert_envd_error(get(daemon, box), 400, "path")
    assert_envd_error(get(daemon, box, ""), 400, "path")


def test_dotdot_and_absolute_links_stay_inside(daemon, box):
    # The sandbox's own /etc/passwd (it has a "user"), never the host's.
    inside = run(daemon, box, "print(open('/etc/passwd').read(), end='')").stdout
    assert "user:x:1000" in inside
    run(daemon, box, "import os\n"
        "os.symlink('/etc/passwd', '/home/user/abs-link')\n"
        "os.symlink('../../../../../../etc/passwd', '/home/user/rel-link')\n")
    for path in ("../../../../../../../etc/passwd", "/home/user/../../etc/passwd",
                 "abs-link", "rel-link"):
        r = get(daemon, box, path)
        assert r.status_code == 200, describe(r)
        assert r.text == inside, path


def test_links_through_proc_are_refused(daemon, box):
    run(daemon, box, "import os\n"
        "os.symlink('/proc/1/root/etc/passwd', '/home/user/proc-root')\n"
        "os.symlink('/proc/1/cwd', '/home/user/proc-cwd')\n"
        "os.symlink('loop-b', '/home/user/loop-a')\n"
        "os.symlink('loop-a', '/home/user/loop-b')\n")
    for path in ("proc-root", "proc-cwd/proc-root", "/proc/1/root/etc/passwd", "loop-a"):
        assert_envd_error(get(daemon, box, path), 400, "leads out")
    # /proc/self is the daemon's own pid, which the sandbox's /proc lacks.
    assert_envd_error(get(daemon, box, "/proc/self/root/etc/passwd"), 404)


def test_fifos_and_devices_are_not_files(daemon, box):
    # A FIFO with no writer must not hang the daemon; a device is no file.
    run(daemon, box, "import os\nos.mkfifo('/home/user/fifo')")
    assert_envd_error(get(daemon, box, "fifo"), 400, "not a regular file")
    assert_envd_error(get(daemon, box, "/dev/zero"), 400, "not a regular file")


def test_what_the_user_cannot_read_is_not_read(daemon, box):
    run(daemon, box, "import os\nopen('/home/user/locked', 'w').write('no')\n"
        "os.chmod('/home/user/locked', 0)")
    assert_envd_error(get(daemon, box, "locked"), 500, "permission denied")


def test_gone_sandbox_answers_like_the_proxy(daemon):
    r = daemon.api("POST", "/sandboxes", json={
        "templateID": "code-interpreter-v1", "timeout": 60, "secure": True}, timeout=60)
    body = r.json()
    assert daemon.delete(body["sandboxID"]).status_code == 204
    r = get(daemon, (body["sandboxID"], body["envdAccessToken"]), "/etc/passwd")
    assert r.status_code == 502, describe(r)
