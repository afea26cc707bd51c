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


# --- uploads: POST /files ----------------------------------------------------------

def post(daemon, box, params=None, token=..., **kw):
    sid, tok = box
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["X-Access-Token"] = tok if token is ... else token
    return daemon.sbx("POST", sid, "/files", port=ENVD_PORT, headers=headers,
                      params=params or {}, **kw)


def leftovers(daemon, box, where):
    """Names under where that an upload could have left (hidden temporaries)."""
    return run(daemon, box, "import os\nprint(sorted(n for r, d, f in os.walk(%r) "
               "for n in d + f if n.startswith('.iris-upload')))" % where).stdout.strip()


def test_multipart_upload_is_the_users_file(daemon, box):
    data = bytes(range(256)) * 300 + b"\r\n--not-a-boundary\r\n"
    r = post(daemon, box, {"path": "/home/user/up/data.bin"}, files={"file": ("data.bin", data)})
    assert r.status_code == 200, describe(r)
    assert r.json() == [{"path": "/home/user/up/data.bin", "name": "data.bin", "type": "file"}]
    assert get(daemon, box, "up/data.bin").content == data
    got = run(daemon, box, "import os\ns = os.stat('/home/user/up/data.bin')\n"
              "print(s.st_uid, s.st_gid, oct(s.st_mode & 0o777), os.stat('/home/user/up').st_uid, "
              "len(open('/home/user/up/data.bin', 'rb').read()))").stdout.split()
    assert got == ["1000", "1000", "0o644", "1000", str(len(data))], got


def test_upload_makes_parents_and_overwrites(daemon, box):
    for body in (b"first version, longer than the second", b"second"):
        r = post(daemon, box, {"path": "deep/er/still/notes.txt"}, files={"file": ("x", body)})
        assert r.status_code == 200, describe(r)
        assert r.json()[0]["path"] == "/home/user/deep/er/still/notes.txt"
    assert get(daemon, box, "deep/er/still/notes.txt").content == b"second"
    assert leftovers(daemon, box, "/home/user/deep") == "[]"


def test_multipart_filenames_are_paths(daemon, box):
    # No path parameter: each part's filename is its path, as the SDK's
    # files.write([...]) sends them.
    r = post(daemon, box, files=[("file", ("multi/a.csv", b"a,b\n1,2\n")),
                                 ("file", ("/tmp/multi-b.txt", b"bee")),
                                 ("other", ("ignored.txt", b"not a file field"))])
    assert r.status_code == 200, describe(r)
    assert [e["path"] for e in r.json()] == ["/home/user/multi/a.csv", "/tmp/multi-b.txt"]
    assert run(daemon, box, "import pandas as pd\nprint(pd.read_csv('multi/a.csv')['b'][0])"
               ).stdout == "2\n"
    assert get(daemon, box, "/tmp/multi-b.txt").content == b"bee"
    assert_envd_error(get(daemon, box, "ignored.txt"), 404)


def test_octet_stream_upload(daemon, box):
    r = post(daemon, box, {"path": "raw.bin"}, data=b"\x00raw\xff",
             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, describe(r)
    assert get(daemon, box, "raw.bin").content == b"\x00raw\xff"
    assert_envd_error(post(daemon, box, data=b"x",
                           headers={"Content-Type": "application/octet-stream"}), 400, "path")


def test_upload_refusals_leave_nothing(daemon, box):
    run(daemon, box, "import os\nos.makedirs('/home/user/adir', exist_ok=True)\n"
        "os.symlink('/proc/1/root', '/home/user/escape')")
    cases = [
        ({"path": "adir"}, 400, "is a directory"),
        ({"path": "/home/user/"}, 400, "is a directory"),
        ({"path": "escape/etc/x"}, 400, "leads out"),
        ({"path": "x", "username": "root"}, 401, "root"),
    ]
    for params, status, words in cases:
        assert_envd_error(post(daemon, box, params, files={"file": ("f", b"data")}), status, words)
    assert_envd_error(post(daemon, box, {"path": "t"}, token="wrong",
                           files={"file": ("f", b"data")}), 401)
    assert_envd_error(post(daemon, box, {"path": "t"}, data=b"x",
                           headers={"Content-Type": "text/plain"}), 400, "unsupported content type")
    assert_envd_error(post(daemon, box, files=[("file", ("same", b"1")), ("file", ("same", b"2"))]),
                      400, "same path")
    assert leftovers(daemon, box, "/home/user") == "[]"


def test_dotdot_upload_stays_inside(daemon, box):
    r = post(daemon, box, {"path": "../../../../tmp/dotdot.txt"}, files={"file": ("f", b"in")})
    assert r.status_code == 200, describe(r)
    assert r.json()[0]["path"] == "/tmp/dotdot.txt"
    assert run(daemon, box, "print(open('/tmp/dotdot.txt').read())").stdout == "in\n"


small = daemon_fixture(name="small", POOL=0, HOME_MB=4)


def test_upload_past_the_quota_is_507_and_leaves_nothing(small):
    r = small.api("POST", "/sandboxes", json={"templateID": "code-interpreter-v1",
                                               "timeout": 120, "secure": True}, timeout=60)
    assert r.status_code == 201, describe(r)
    b = (r.json()["sandboxID"], r.json()["envdAccessToken"])
    try:
        r = post(small, b, {"path": "big.bin"}, files={"file": ("big.bin", b"z" * (6 << 20))})
        assert_envd_error(r, 507, "disk space")
        assert_envd_error(get(small, b, "big.bin"), 404)
        assert leftovers(small, b, "/home/user") == "[]"
        # The sandbox is fine afterwards: a small file still fits.
        assert post(small, b, {"path": "ok.txt"}, files={"file": ("f", b"ok")}).status_code == 200
    finally:
        small.delete(b[0])


# --- the filesystem service: Connect, unary, JSON ------------------------------------

def rpc(daemon, box, method, body, token=..., **headers):
    sid, tok = box
    h = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
    if token is not None:
        h["X-Access-Token"] = tok if token is ... else token
    h.update(headers)
    return daemon.sbx("POST", sid, "/filesystem.Filesystem/" + method, port=ENVD_PORT,
                      headers=h, json=body)


def assert_rpc_error(r, status, code, *words):
    assert r.status_code == status, describe(r)
    body = r.json()
    assert body.get("code") == code, describe(r)
    for w in words:
        assert w in body.get("message", ""), describe(r)


def test_stat_entry_fields(daemon, box):
    run(daemon, box, "import os\nos.makedirs('/home/user/st', exist_ok=True)\n"
        "open('/home/user/st/f.txt', 'w').write('12345')\nos.chmod('/home/user/st/f.txt', 0o640)\n"
        "os.symlink('f.txt', '/home/user/st/link')\nos.utime('/home/user/st/f.txt', (0, 1700000000.5))")
    r = rpc(daemon, box, "Stat", {"path": "st/f.txt"})
    assert r.status_code == 200, describe(r)
    e = r.json()["entry"]
    assert {k: e[k] for k in ("name", "type", "path", "size", "mode", "permissions", "owner",
                               "group")} == {
        "name": "f.txt", "type": "FILE_TYPE_FILE", "path": "/home/user/st/f.txt", "size": "5",
        "mode": 0o640, "permissions": "-rw-r-----", "owner": "user", "group": "user"}, e
    assert e["modifiedTime"] == "2023-11-14T22:13:20.500000000Z", e
    link = rpc(daemon, box, "Stat", {"path": "st/link"}).json()["entry"]
    assert link["type"] == "FILE_TYPE_FILE" and link["symlinkTarget"] == "/home/user/st/f.txt", link
    assert link["permissions"].startswith("L"), link
    d = rpc(daemon, box, "Stat", {"path": "/home/user/st"}).json()["entry"]
    assert d["type"] == "FILE_TYPE_DIRECTORY" and d["permissions"].startswith("d"), d
    assert_rpc_error(rpc(daemon, box, "Stat", {"path": "st/none"}), 404, "not_found")


def test_list_depth_and_refusals(daemon, box):
    run(daemon, box, "import os\nos.makedirs('/home/user/ls/a/b/c', exist_ok=True)\n"
        "open('/home/user/ls/top.txt', 'w').close()\nos.symlink('/', '/home/user/ls/root-link')")
    # In envd's order: lexical, each directory's entries right after it.
    names = lambda r: [e["path"][len("/home/user/ls/"):] for e in r.json()["entries"]]
    assert names(rpc(daemon, box, "ListDir", {"path": "ls"})) == ["a", "root-link", "top.txt"]
    assert names(rpc(daemon, box, "ListDir", {"path": "ls", "depth": 3})) == [
        "a", "a/b", "a/b/c", "root-link", "top.txt"]           # links are not followed
    assert_rpc_error(rpc(daemon, box, "ListDir", {"path": "ls/top.txt"}), 400, "invalid_argument",
                     "not a directory")
    assert_rpc_error(rpc(daemon, box, "ListDir", {"path": "ls/none"}), 404, "not_found")
    assert_rpc_error(rpc(daemon, box, "ListDir", {"path": "ls", "depth": "x"}), 400,
                     "invalid_argument", "depth")


def test_mkdir_move_remove(daemon, box):
    r = rpc(daemon, box, "MakeDir", {"path": "mk/one/two"})
    assert r.status_code == 200 and r.json()["entry"] == {
        "name": "two", "type": "FILE_TYPE_DIRECTORY", "path": "/home/user/mk/one/two"}, describe(r)
    assert_rpc_error(rpc(daemon, box, "MakeDir", {"path": "mk/one/two"}), 409, "already_exists")
    run(daemon, box, "open('/home/user/mk/file', 'w').write('x')")
    assert_rpc_error(rpc(daemon, box, "MakeDir", {"path": "mk/file"}), 400, "invalid_argument")
    r = rpc(daemon, box, "Move", {"source": "mk/file", "destination": "mk/new/place"})
    assert r.status_code == 200 and r.json()["entry"]["path"] == "/home/user/mk/new/place", describe(r)
    assert_rpc_error(rpc(daemon, box, "Move", {"source": "mk/file", "destination": "mk/x"}),
                     404, "not_found")
    assert rpc(daemon, box, "Remove", {"path": "mk"}).status_code == 200
    assert rpc(daemon, box, "Remove", {"path": "mk"}).status_code == 200     # gone already: fine
    assert run(daemon, box, "import os\nprint(os.path.exists('/home/user/mk'))").stdout == "False\n"


def test_rpc_cannot_reach_past_the_sandbox(daemon, box):
    run(daemon, box, "import os\nos.symlink('/proc/1/root', '/home/user/rpc-escape')")
    assert_rpc_error(rpc(daemon, box, "Stat", {"path": "rpc-escape/etc/passwd"}), 400,
                     "invalid_argument", "leads out")
    assert_rpc_error(rpc(daemon, box, "ListDir", {"path": "rpc-escape"}), 400, "invalid_argument")
    assert_rpc_error(rpc(daemon, box, "Remove", {"path": "/"}), 400, "invalid_argument")
    # ".." stays inside: this is the sandbox's /usr, read-only to its user.
    assert_rpc_error(rpc(daemon, box, "Remove", {"path": "../../usr/bin"}), 403,
                     "permission_denied")
    assert_rpc_error(rpc(daemon, box, "MakeDir", {"path": "/usr/evil"}), 403, "permission_denied")


def test_rpc_checks_token_user_and_encoding(daemon, box):
    assert_rpc_error(rpc(daemon, box, "Stat", {"path": "/"}, token="bad"), 401, "unauthenticated")
    assert_rpc_error(rpc(daemon, box, "Stat", {"path": "/"}, Authorization="Basic cm9vdDo="),
                     401, "unauthenticated")
    assert rpc(daemon, box, "Stat", {"path": "/"}, Authorization="Basic dXNlcjo=").status_code == 200
    r = rpc(daemon, box, "Stat", {"path": "/"}, **{"Content-Type": "application/proto"})
    assert_rpc_error(r, 415, "invalid_argument", "JSON")
    assert_rpc_error(rpc(daemon, box, "Stat", {}), 400, "invalid_argument", "path")
    assert_rpc_error(rpc(daemon, box, "WatchDir", {"path": "/"}), 501, "unimplemented")


def test_upload_cut_off_midway_leaves_nothing(daemon, box):
    # The client goes away with most of the body unsent: the temporary
    # file is removed when the request ends, the target never appears.
    import socket
    import time
    sid, tok = box
    boundary = "cutoffboundary"
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode()
    request = ("POST /files?path=/home/user/cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "E2b-Sandbox-Id: %s\r\nE2b-Sandbox-Port: %d\r\nX-Access-Token: %s\r\n"
               "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
               % (sid, ENVD_PORT, tok, boundary, len(head) + (10 << 20))).encode()
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    s.sendall(request + head + b"x" * (1 << 20))
    deadline = time.monotonic() + 20
    while leftovers(daemon, box, "/home/user") == "[]":      # the upload has begun
        assert time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.05)
    s.close()
    while leftovers(daemon, box, "/home/user") != "[]":
        assert time.monotonic() < deadline, "the temporary file stayed"
        time.sleep(0.05)
    assert_envd_error(get(daemon, box, "cut.bin"), 404)


# --- what a hostile caller tried (each once broke something) ----------------------

def test_a_very_deep_path_is_refused_not_a_crash(daemon, box):
    deep = "/tmp/" + "a/" * 2044 + "z"
    assert_rpc_error(rpc(daemon, box, "MakeDir", {"path": deep}), 400, "invalid_argument")
    assert_envd_error(post(daemon, box, {"path": deep}, data=b"x",
                           headers={"Content-Type": "application/octet-stream"}), 400)
    assert daemon.api("GET", "/health").status_code == 200
    assert rpc(daemon, box, "MakeDir", {"path": "/tmp/" + "b/" * 100}).status_code == 200


def test_only_home_and_tmp_are_written(daemon, box):
    # /dev is an uncapped tmpfs with the sandbox's mount points in it.
    raw = {"Content-Type": "application/octet-stream"}
    for path in ("/dev/big", "/dev/null", "/dev/shm/x", "/usr/x", "/x"):
        assert_envd_error(post(daemon, box, {"path": path}, data=b"x", headers=raw), 403,
                          "where files may be written")
    for method, body in (("Remove", {"path": "/dev/shm"}), ("Remove", {"path": "/home/user"}),
                         ("Move", {"source": "/dev/mqueue", "destination": "/dev/mq9"}),
                         ("Move", {"source": "/tmp", "destination": "/home/user/t"}),
                         ("MakeDir", {"path": "/dev/d"})):
        assert_rpc_error(rpc(daemon, box, method, body), 403, "permission_denied")
    got = run(daemon, box, "import os\nprint(os.path.ismount('/dev/shm'), "
              "os.path.exists('/dev/big'), open('/dev/null', 'w').write('x'))").stdout
    assert got == "True False 1\n", got


def test_a_cut_or_failing_multipart_upload_writes_nothing(daemon, box):
    boundary = "b0undary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t\"\r\n\r\n"
            "only part of it" % boundary).encode()
    r = post(daemon, box, {"path": "/tmp/mp-cut.txt"}, data=body,
             headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert_envd_error(r, 400, "cut short")
    # A later part fails: the earlier ones are not kept either.
    assert_envd_error(post(daemon, box, files=[("file", ("/tmp/mp-ok1.txt", b"1")),
                                               ("file", ("/usr/mp-no.txt", b"2"))]), 403)
    assert_envd_error(post(daemon, box, {"path": "/tmp/mp-same.txt"},
                           files=[("file", ("a", b"1")), ("file", ("b", b"2"))]), 400, "same path")
    for path in ("/tmp/mp-cut.txt", "/tmp/mp-ok1.txt", "/tmp/mp-same.txt"):
        assert_envd_error(get(daemon, box, path), 404)
    assert leftovers(daemon, box, "/tmp") == "[]"
    assert_envd_error(post(daemon, box, {"path": "x"}, data=b"x",
                           headers={"Content-Type": "application/octet-streamXYZ"}), 400,
                      "unsupported content type")


def test_a_failed_move_makes_nothing_and_says_why(daemon, box):
    assert_rpc_error(rpc(daemon, box, "Move", {"source": "/tmp/nope", "destination": "/tmp/mv/y/z"}),
                     404, "not_found")
    assert run(daemon, box, "import os\nprint(os.path.exists('/tmp/mv'))").stdout == "False\n"
    run(daemon, box, "open('/tmp/cross', 'w').write('x')")
    assert_rpc_error(rpc(daemon, box, "Move", {"source": "/tmp/cross", "destination": "cross"}),
                     400, "invalid_argument", "another file system")



def test_a_nul_byte_never_shortens_a_path(daemon, box):
    run(daemon, box, "open('/home/user/nul.txt', 'w').write('n')")
    assert_envd_error(get(daemon, box, "nul.txt\x00.jpg"), 400, "path")
    assert_envd_error(post(daemon, box, {"path": "nul.txt\x00.sh"}, data=b"x",
                           headers={"Content-Type": "application/octet-stream"}), 400, "path")
    assert_rpc_error(rpc(daemon, box, "Stat", {"path": "nul.txt\u0000junk"}), 400,
                     "invalid_argument")
    assert get(daemon, box, "nul.txt").content == b"n"


def test_proc_files_and_trailing_slashes(daemon, box):
    # A /proc file says it has 0 bytes: it is read to its end all the same.
    r = get(daemon, box, "/proc/self/../1/status")
    assert r.status_code == 200 and b"Name:" in r.content, describe(r)
    assert b"processor" in get(daemon, box, "/proc/cpuinfo").content
    # "dir/" names a directory, never a file to make.
    assert_envd_error(post(daemon, box, {"path": "/tmp/slashed/"}, data=b"x",
                           headers={"Content-Type": "application/octet-stream"}), 400,
                      "is a directory")
    assert run(daemon, box, "import os\nprint(os.path.exists('/tmp/slashed'))").stdout == "False\n"
