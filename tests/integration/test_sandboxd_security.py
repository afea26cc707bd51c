"""iris-sandboxd's containment, attacked from inside a sandbox: the network,
the host's files and processes, other sandboxes, the system's files, the
environment, the uid and capabilities, and resource bombs (processes,
memory, disk, output, CPU).  Each attack must fail or hurt only its own
sandbox, and nothing may be left on the host afterwards.

The only non-loopback address ever used is 192.0.2.1 (TEST-NET-1, RFC 5737,
documentation only); nothing can leave a sandbox anyway (it has only lo).
"""

import errno
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time

import pytest

from sandboxd import SRCDIR, daemon_fixture, describe

MEMORY_MB = 512
PROCS = 64
HOME_MB = 64
SECRET = "s3cr3t"
SECRET_DIR = "/var/lib/iris-test-secret"
SECRET_DB = SECRET_DIR + "/gateway.db"
FAKE_E2B_KEY = "e2b_" + "f" * 40

daemon = daemon_fixture(
    name="daemon", POOL=0, MEMORY_MB=MEMORY_MB, PROCS=PROCS, HOME_MB=HOME_MB,
    IRIS_TEST_SECRET=SECRET, E2B_API_KEY=FAKE_E2B_KEY, IRIS_TEST_TOKEN=SECRET + "-token",
    IRIS_DB=SECRET_DB)


@pytest.fixture(scope="module", autouse=True)
def secret_db():
    """A root-only database where the gateway's would be."""
    if os.geteuid() != 0:
        pytest.skip("needs root (as in CI)")
    os.makedirs(SECRET_DIR, mode=0o700, exist_ok=True)
    os.chmod(SECRET_DIR, 0o700)
    db = sqlite3.connect(SECRET_DB)
    db.execute("CREATE TABLE IF NOT EXISTS keys (k TEXT)")
    db.execute("INSERT INTO keys VALUES (?)", (SECRET,))
    db.commit()
    db.close()
    os.chmod(SECRET_DB, 0o600)
    yield SECRET_DB
    shutil.rmtree(SECRET_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def a(daemon):
    sid = daemon.create(timeout=600)
    yield sid
    daemon.delete(sid)


@pytest.fixture(scope="module")
def b(daemon):
    sid = daemon.create(timeout=600)
    yield sid
    daemon.delete(sid)


@pytest.fixture
def throwaway(daemon):
    """A sandbox for one attack that may wreck it; deleted, and checked gone."""
    sid = daemon.create(timeout=300)
    yield sid
    r = daemon.delete(sid)
    assert r.status_code in (204, 404), describe(r)
    left = daemon.wait_clean(sid)
    assert not any(left.values()), left


def probe(daemon, sid, code, timeout=60, **fields):
    """Runs Python code that prints one JSON value last; returns it."""
    ex = daemon.run(sid, code, timeout=timeout, **fields)
    lines = ex.stdout.strip().splitlines()
    assert lines, ex
    return json.loads(lines[-1])


def assert_alive(daemon, *sids):
    assert daemon.proc.poll() is None, daemon.log()
    assert daemon.api("GET", "/health", key=None).status_code == 200
    for sid in sids:
        t0 = time.monotonic()
        assert daemon.run(sid, "6 * 7", timeout=30).text == "42"
        assert time.monotonic() - t0 < 5, "%s answered in %.1f s" % (sid, time.monotonic() - t0)


# --- the network ------------------------------------------------------------------

NET_PROBE = r"""
import errno, json, socket, time
out = {}
def attempt(name, fn):
    t0 = time.monotonic()
    try:
        fn()
        out[name] = ["connected", 0]
    except OSError as e:
        out[name] = [errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__,
                     round(time.monotonic() - t0, 2)]
attempt("daemon", lambda: socket.create_connection(("127.0.0.1", %(daemon_port)d), timeout=2))
attempt("listener", lambda: socket.create_connection(("127.0.0.1", %(listener_port)d), timeout=2))
attempt("testnet", lambda: socket.create_connection(("192.0.2.1", 80), timeout=2))
def abstract():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(%(abstract)r)
attempt("abstract_unix", abstract)
with open("/proc/net/route") as f:
    out["routes"] = [l for l in f.read().splitlines()[1:] if l.strip()]
with open("/proc/net/dev") as f:
    out["netdev"] = sorted(l.split(":")[0].strip() for l in f.read().splitlines()[2:])
out["ifaces"] = sorted(n for _, n in socket.if_nameindex())
print(json.dumps(out))
"""


def test_no_network(daemon, a):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    abstract = "\0iris-test-%d" % os.getpid()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(abstract)
    unix.listen(8)
    unix.setblocking(False)
    try:
        out = probe(daemon, a, NET_PROBE % {
            "daemon_port": daemon.port, "listener_port": listener.getsockname()[1],
            "abstract": abstract})
        # Nothing ever reached the host's sockets.
        for s in (listener, unix):
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        listener.close()
        unix.close()
    assert out["daemon"][0] == "ECONNREFUSED", out
    assert out["listener"][0] == "ECONNREFUSED", out
    assert out["testnet"][0] == "ENETUNREACH" and out["testnet"][1] < 1, out
    assert out["abstract_unix"][0] == "ECONNREFUSED", out
    assert out["routes"] == [], out
    assert out["ifaces"] == ["lo"] and out["netdev"] == ["lo"], out


# --- the host's files ------------------------------------------------------------

FILES_PROBE = r"""
import json, os
out = {}
for p in %(paths)r:
    r = {"exists": os.path.lexists(p)}
    try:
        if os.path.isdir(p):
            r["listed"] = os.listdir(p)[:5]
        else:
            with open(p, "rb") as f:
                r["read"] = f.read(64).decode("latin-1")
    except OSError as e:
        r["error"] = e.errno
    out[p] = r
# Anything on the whole filesystem (but /proc and /usr) holding a secret.
found = []
for top in ("/etc", "/opt", "/run", "/home", "/tmp", "/dev/shm", "/"):
    for root, dirs, files in os.walk(top):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "usr", "sys", "dev")]
        for name in files:
            path = os.path.join(root, name)
            try:
                if not os.path.isfile(path) or os.path.getsize(path) > 4 << 20:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for s in %(secrets)r:
                if s.encode() in data:
                    found.append([path, s])
out["found"] = found
out["etc"] = sorted(os.listdir("/etc"))
out["passwd"] = open("/etc/passwd").read()
print(json.dumps(out))
"""


def test_host_files_invisible(daemon, a, secret_db):
    paths = [str(daemon.key_file), str(daemon.key_file.parent), secret_db, SECRET_DIR,
             "/var/lib", "/etc/shadow", "/etc/gshadow", "/root/.ssh",
             str(daemon.state_dir), str(daemon.state_dir / "sandboxes"),
             str(daemon.state_dir / "sandboxes" / a), str(SRCDIR), str(SRCDIR / ".git"),
             "/etc/hostname", "/etc/hosts", "/etc/ssh", "/sys/fs/cgroup", "/var/run"]
    out = probe(daemon, a, FILES_PROBE % {
        "paths": paths, "secrets": [SECRET, daemon.key, FAKE_E2B_KEY]})
    for p in paths:
        r = out[p]
        assert not r["exists"] or "error" in r, (p, r)
    assert out["found"] == [], out["found"]
    # /etc is a handful of read-only files; passwd is the sandbox's own.
    assert "shadow" not in out["etc"] and "hostname" not in out["etc"], out["etc"]
    with open("/etc/passwd") as f:
        assert out["passwd"] != f.read()
    assert out["passwd"].count("\n") <= 4, out["passwd"]
    # /root is not the host's: it is the sandbox's own home, under another name.
    assert probe(daemon, a, "import json, os\nprint(json.dumps([os.path.realpath('/root'), "
                            "os.listdir('/root') == os.listdir('/home/user')]))") == \
        ["/home/user", True]


def test_other_sandboxes_invisible(daemon, a, b):
    marker = "iris-marker-%d" % time.monotonic_ns()
    sh = daemon.new_context(a, "bash")
    daemon.run(a, "echo %s > /home/user/%s; echo x > /tmp/%s; "
                  "(exec -a %s sleep 120 &)" % (marker, marker, marker, marker),
               context_id=sh)
    # The marker is there in A (and its process runs, on the host too).
    assert probe(daemon, a, "import os, json\nprint(json.dumps(os.path.exists("
                            "'/home/user/%s')))" % marker) is True
    assert any(marker in i[4] for i in daemon.sandbox_procs(a).values())
    out = probe(daemon, b, r"""
import json, os
marker = %r
out = {"home": os.path.exists("/home/user/" + marker),
       "tmp": os.path.exists("/tmp/" + marker), "in_proc": [], "pids": []}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    out["pids"].append(int(p))
    try:
        if marker.encode() in open("/proc/%%s/cmdline" %% p, "rb").read():
            out["in_proc"].append(p)
    except OSError:
        pass
    for sub in ("root/home/user/", "root/tmp/", "cwd/"):
        try:
            if os.path.exists("/proc/%%s/%%s%%s" %% (p, sub, marker)):
                out["in_proc"].append(p + "/" + sub)
        except OSError:
            pass
print(json.dumps(out))
""" % marker)
    assert out["home"] is False and out["tmp"] is False and out["in_proc"] == [], out
    assert len(out["pids"]) <= 8, out


PROC_PROBE = r"""
import json, os, signal
out = {"pids": {}, "kill": {}}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            out["pids"][p] = open("/proc/%%s/cmdline" %% p, "rb").read().split(b"\0")[0].decode()
        except OSError as e:
            out["pids"][p] = "?%%s" %% e.errno
for pid in %(guesses)r:
    if str(pid) in out["pids"]:
        continue
    try:
        os.kill(pid, signal.SIGKILL)
        out["kill"][pid] = "sent"
    except OSError as e:
        out["kill"][pid] = e.errno
try:
    os.kill(1, signal.SIGKILL)
    out["kill1"] = "sent"
except OSError as e:
    out["kill1"] = e.errno
print(json.dumps(out))
"""


def test_processes_invisible_and_unkillable(daemon, a, b):
    host_pids = [daemon.proc.pid, os.getpid(), os.getppid()]
    host_pids += list(daemon.sandbox_procs(b))       # a neighbour's, by host pid
    seen_before = len(daemon.sandbox_procs(a))
    out = probe(daemon, a, PROC_PROBE % {"guesses": host_pids})
    seen_after = len(daemon.sandbox_procs(a))
    # Only the sandbox's own few processes: what the host sees of its tree
    # but the outer bwrap (which is outside its pid namespace).
    assert len(out["pids"]) in (seen_before - 1, seen_after - 1), (seen_before, out["pids"])
    assert len(out["pids"]) <= 10, out["pids"]
    # pid 1 is the supervisor itself (bwrap --as-pid-1): user code can
    # neither signal nor stop a namespace's init.
    assert out["pids"]["1"] == "/usr/bin/python3", out["pids"]
    for pid, cmd in out["pids"].items():
        assert "iris-sandboxd" not in cmd and "pytest" not in cmd, out["pids"]
    for pid, res in out["kill"].items():
        assert res == errno.ESRCH, out["kill"]
    # The host and the neighbour are fine; so is A (its pid 1 ignores it).
    assert daemon.proc.poll() is None
    assert_alive(daemon, a, b)


def test_proc_environ_holds_no_daemon_secrets(daemon, a):
    """The processes a sandbox can see (bwrap is its pid 1) must not carry
    the daemon's own environment: whatever secrets the daemon was started
    with would be readable from /proc/1/environ."""
    out = probe(daemon, a, r"""
import json, os
found = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        for what in ("environ", "cmdline"):
            try:
                data = open("/proc/%%s/%%s" %% (p, what), "rb").read()
            except OSError:
                continue
            names = [kv.split(b"=")[0].decode() for kv in data.split(b"\0") if b"=" in kv]
            hits = [s for s in %r if s.encode() in data]
            if hits or any(n.startswith("IRIS_") for n in names):
                found["%%s/%%s" %% (p, what)] = {"secrets": hits,
                    "iris_names": [n for n in names if n.startswith("IRIS_")]}
print(json.dumps(found))
""" % ([SECRET, FAKE_E2B_KEY, daemon.key, str(daemon.key_file)],))
    assert out == {}, "the daemon's environment is readable inside: %r" % out


def test_environment_has_no_secrets(daemon, a):
    env = probe(daemon, a, "import os, json\nprint(json.dumps(dict(os.environ)))")
    for k, v in env.items():
        assert not k.startswith("IRIS_"), env
        assert not any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET", "PASSWORD")), env
        assert SECRET not in v and daemon.key not in v and FAKE_E2B_KEY not in v, env
    assert "E2B_API_KEY" not in env
    assert env["HOME"] == "/home/user" and env.get("E2B_SANDBOX") == "true", env


# --- the system's files ----------------------------------------------------------------

WRITE_PROBE = r"""
import json, os
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
attempt("/usr/bin/x", lambda: open("/usr/bin/x", "w").write("x"))
attempt("/usr/lib/x", lambda: open("/usr/lib/x", "w").write("x"))
attempt("/etc/passwd", lambda: open("/etc/passwd", "a").write("evil::0:0::/:/bin/sh\n"))
attempt("/etc/ssl/x", lambda: open("/etc/ssl/x", "w").write("x"))
attempt("/opt/iris/supervisor.py", lambda: open("/opt/iris/supervisor.py", "a").write("#"))
attempt("unlink /opt/iris/kernel_python.py", lambda: os.unlink("/opt/iris/kernel_python.py"))
attempt("chmod /usr/bin/python3", lambda: os.chmod("/usr/bin/python3", 0o777))
attempt("rename /opt/iris", lambda: os.rename("/opt/iris/kernel.js", "/opt/iris/k.js"))
print(json.dumps(out))
"""


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_system_is_read_only(daemon, a):
    watched = ["/etc/passwd", str(daemon.state_dir / "programs" / "supervisor.py"),
               str(daemon.state_dir / "etc" / "passwd"), str(SRCDIR / "sandbox" / "supervisor.py")]
    before = {p: sha(p) for p in watched}
    out = probe(daemon, a, WRITE_PROBE)
    for name, res in out.items():
        assert res in (errno.EROFS, errno.EACCES, errno.EPERM), out
    assert not os.path.exists("/usr/bin/x") and not os.path.exists("/usr/lib/x")
    assert {p: sha(p) for p in watched} == before
    assert_alive(daemon, a)


MOUNTS_PROBE = r"""
import json
rw = []
for line in open("/proc/self/mountinfo"):
    pre, post = line.split(" - ")
    f = pre.split()
    fstype = post.split()[0]
    if "rw" in f[5].split(","):
        rw.append([f[4], fstype, f[3]])
print(json.dumps(rw))
"""


def test_no_writable_host_filesystem(daemon, a):
    """Everything writable inside is the sandbox's own (a tmpfs, proc, the
    pty fs, device nodes): no directory of the host's disk, which would let
    a sandbox fill it (past its home's cap) and leave files behind."""
    rw = probe(daemon, a, MOUNTS_PROBE)
    bad = [m for m in rw if m[1] not in ("tmpfs", "proc", "devpts", "mqueue")
           and not (m[1] == "devtmpfs" and m[0].startswith("/dev/"))]
    assert bad == [], "writable mounts of a host filesystem: %r" % bad


def test_files_written_inside_leave_nothing(daemon):
    """Whatever a sandbox writes wherever it can write is gone with it."""
    sid = daemon.create(timeout=300)
    try:
        wrote = probe(daemon, sid, r"""
import json, os
wrote = []
for d in ("/home/user", "/tmp", "/dev/shm", "/run/iris", "/", "/etc", "/dev"):
    try:
        os.makedirs(d + "/left/behind", exist_ok=True)
        with open(d + "/left/behind/f", "w") as f:
            f.write("x" * 4096)
        wrote.append(d)
    except OSError:
        pass
print(json.dumps(wrote))
""")
        assert "/home/user" in wrote, wrote
        r = daemon.delete(sid)
        assert r.status_code == 204, describe(r)
        left = daemon.wait_clean(sid)
        assert not any(left.values()), "after writing to %r: %r" % (wrote, left)
    finally:
        daemon.delete(sid)
        # What the daemon could not remove must not fail the later checks.
        shutil.rmtree(daemon.state_dir / "sandboxes" / sid, ignore_errors=True)


# --- who the code runs as ------------------------------------------------------------

def test_uid_inside_and_on_the_host(daemon, a, b):
    ids = probe(daemon, a, "import os, json\nprint(json.dumps([os.getuid(), os.geteuid(), "
                           "os.getgid(), os.getegid(), os.getgroups()]))")
    assert ids == [1000, 1000, 1000, 1000, []], ids
    s = daemon.stream(a, "print('sleeping', flush=True)\nimport time\ntime.sleep(3)")
    try:
        s.until(lambda e: e.get("type") == "stdout")
        hi = daemon.uid_base + 1000
        uids = {}
        for sid in (a, b):
            procs = daemon.sandbox_procs(sid)
            assert len(procs) >= 3, procs          # bwrap, supervisor, kernel
            for pid, info in procs.items():
                assert all(daemon.uid_base <= u < hi for u in info[0]), (pid, info)
                assert 0 not in info[0]
            uids[sid] = {info[0][0] for info in procs.values()}
            assert len(uids[sid]) == 1, uids
        assert uids[a] != uids[b], uids            # one uid per slot
        ex = s.rest()
        assert ex.ended and ex.error is None, ex
    finally:
        s.close()


def test_no_capabilities(daemon, a):
    out = probe(daemon, a, r"""
import json, os, socket
st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
out = {k: st[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
attempt("setuid0", lambda: os.setuid(0))
attempt("chroot", lambda: os.chroot("/tmp"))
attempt("raw_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet_socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("mknod", lambda: os.mknod("/tmp/dev", 0o600 | 0o020000, os.makedev(1, 3)))
attempt("sethostname", lambda: socket.sethostname("x"))
print(json.dumps(out))
""")
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(out[k], 16) == 0, out
    assert out["NoNewPrivs"] == "1", out
    # (setuid(0): uid 0 is not even mapped in the sandbox's user namespace)
    assert out["setuid0"] in (errno.EPERM, errno.EINVAL), out
    for k in ("chroot", "raw_socket", "packet_socket", "mknod", "sethostname"):
        assert out[k] in (errno.EPERM, errno.EACCES), out


# --- resource bombs -----------------------------------------------------------------------

FORK_STORM = r"""
import errno, os, signal, time
pids, err = [], None
try:
    for _ in range(10000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    err = errno.errorcode.get(e.errno)
print(len(pids), err, flush=True)
time.sleep(2)          # hold them while the neighbour works
for p in pids:
    os.kill(p, signal.SIGKILL)
for p in pids:
    os.waitpid(p, 0)
print("released")
"""


def test_fork_storm(daemon, a, b):
    ctx = daemon.new_context(a)
    s = daemon.stream(a, FORK_STORM, context_id=ctx)
    try:
        first = s.until(lambda e: e.get("type") == "stdout", timeout=30)["text"]
        while not first.endswith("\n"):  # a partial line is sent after 0.2 s
            first += s.until(lambda e: e.get("type") == "stdout", timeout=30)["text"]
        n, err = first.split()
        assert err == "EAGAIN" and 0 < int(n) < PROCS, first
        # Meanwhile the neighbour runs code, and starts processes of its own.
        t0 = time.monotonic()
        ex = daemon.run(b, "import subprocess\nsubprocess.run(['true']).returncode", timeout=20)
        assert ex.text == "0" and time.monotonic() - t0 < 5, ex
        rest = s.rest(timeout=30)
        assert "released" in rest.stdout and rest.error is None, rest
    finally:
        s.close()
    assert_alive(daemon, a, b)
    assert daemon.run(a, "import subprocess\nsubprocess.run(['true']).returncode",
                      context_id=ctx).text == "0"


def test_bash_fork_bomb_is_contained(daemon, b, throwaway):
    """The classic bomb keeps its sandbox full of processes (its processes
    are in the background: an interrupt does not reach them), but nothing
    else is hurt, and deleting the sandbox removes all of it."""
    sh = daemon.new_context(throwaway, "bash")
    s = daemon.stream(throwaway, "echo go\n:(){ :|:& };:", context_id=sh)
    s.until(lambda e: e.get("type") == "stdout")
    time.sleep(2)
    assert len(daemon.sandbox_procs(throwaway)) <= PROCS
    t0 = time.monotonic()
    assert daemon.run(b, "import subprocess\nsubprocess.run(['true']).returncode",
                      timeout=20).text == "0"
    assert time.monotonic() - t0 < 5
    s.abandon()
    assert_alive(daemon, b)


def test_memory_bomb(daemon, b, throwaway):
    assert daemon.run(throwaway, "keep = bytearray(b'\\x01') * (200 << 20)\n1").text == "1"
    t0 = time.monotonic()
    ex = daemon.execute(throwaway, "x = bytearray(b'\\x01') * (2 << 30)\n'survived'", timeout=60)
    assert ex.status == 200 and ex.ended, ex
    assert ex.error and ex.error["name"] == "KernelDied", ex
    assert "memory" in ex.error["value"], ex
    assert time.monotonic() - t0 < 30
    assert_alive(daemon, b)
    # The sandbox itself survives, with a fresh kernel.
    ex = daemon.execute(throwaway, "'keep' in globals()", timeout=30)
    assert ex.text == "False", ex
    assert_alive(daemon, throwaway)


FILLER = r"""
import errno, json, os
d = %(dir)r + "/fill"
os.makedirs(d, exist_ok=True)
n, err = 0, None
chunk = b"x" * (1 << 20)
try:
    while n < %(limit_mb)d:
        with open("%%s/f%%d" %% (d, n // 8), "ab") as f:
            f.write(chunk)
        n += 1
except OSError as e:
    err = errno.errorcode.get(e.errno)
print(json.dumps([n, err]), flush=True)
for name in os.listdir(d):
    os.unlink(os.path.join(d, name))
"""


def disk_used():
    return {p: shutil.disk_usage(p).used for p in ("/", "/run", "/tmp", "/var")}


def test_root_and_etc_are_read_only(daemon, throwaway):
    """Nothing but the capped tmpfs mounts can be written at all."""
    for where in ("/", "/etc", "/usr", "/opt/iris", "/run/iris"):
        ex = daemon.execute(throwaway, "import errno, os\n"
                            "try:\n    open(%r + '/iris-probe', 'w')\n"
                            "except OSError as e:\n    print(errno.errorcode[e.errno])"
                            % where.rstrip("/"), timeout=30)
        assert ex.status == 200 and ex.ended and ex.error is None, ex
        assert ex.stdout.strip() in ("EROFS", "EACCES"), (where, ex.stdout)


@pytest.mark.parametrize("where", ["/home/user", "/tmp", "/dev/shm"])
def test_disk_filler(daemon, b, throwaway, where):
    """Filling any writable place stops with ENOSPC near the home's cap,
    the sandbox stays usable, and the host's disks do not fill."""
    before = disk_used()
    ex = daemon.execute(throwaway, FILLER % {"dir": where, "limit_mb": 4 * MEMORY_MB},
                        timeout=60)
    assert ex.status == 200 and ex.ended, ex
    assert ex.error is None, "filling %s: %r" % (where, ex)
    n, err = json.loads(ex.stdout.strip().splitlines()[0])
    assert err in ("ENOSPC", "EFBIG"), (where, n, err)
    assert HOME_MB - 8 <= n <= HOME_MB, (where, n, err)
    after = disk_used()
    for p in before:
        assert after[p] - before[p] < 32 << 20, (p, before[p], after[p])
    assert_alive(daemon, throwaway, b)


def test_output_flood(daemon, b, throwaway):
    t0 = time.monotonic()
    ex = daemon.execute(throwaway, "print('y' * (10 << 20))\nimport sys\n"
                                   "sys.stdout.write('z' * (10 << 20))\n'end'", timeout=60)
    took = time.monotonic() - t0
    assert ex.status == 200 and ex.ended and ex.text == "end", repr(ex)[:2000]
    assert ex.stdout == "y" * (1 << 20), len(ex.stdout)
    assert ex.of("output_truncated")[0]["stdout"]["dropped_bytes"] == (20 << 20) + 1 - (1 << 20)
    assert took < 30, took
    assert_alive(daemon, throwaway, b)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])     # utime, stime
        except (OSError, IndexError):
            pass
    return total


def test_runaway_loop(daemon, a):
    ctx = daemon.new_context(a)
    daemon.run(a, "state = 'kept'", context_id=ctx)
    s = daemon.stream(a, "print('spin', flush=True)\nwhile True:\n    pass", context_id=ctx)
    s.until(lambda e: e.get("type") == "stdout")
    time.sleep(2)
    s.abandon()
    t0 = time.monotonic()
    ex = daemon.run(a, "state", context_id=ctx, timeout=30)
    assert ex.text == "kept", ex
    assert time.monotonic() - t0 < 5, time.monotonic() - t0
    # And nothing of it still burns CPU.
    pids = list(daemon.sandbox_procs(a))
    c0 = cpu_ticks(pids)
    time.sleep(1)
    used = (cpu_ticks(pids) - c0) / os.sysconf("SC_CLK_TCK")
    assert used < 0.3, "the sandbox used %.2f s of CPU in 1 s while idle" % used


# --- afterwards ----------------------------------------------------------------------------

def test_deleted_sandboxes_leave_nothing(daemon):
    """Every sandbox deleted so far is gone from the host (the module's
    daemon is also stopped and checked at the end: no slot-uid process, no
    sandbox directory, no cgroup)."""
    live = {s["sandboxID"] for s in daemon.api("GET", "/sandboxes").json()}
    deadline = time.monotonic() + 5
    while True:
        dirs = set(daemon.sandbox_dirs()) - live
        cgroups = [c for c in daemon.cgroups() if c.rsplit("/", 1)[1] not in live]
        if not dirs and not cgroups or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not dirs and not cgroups, (dirs, cgroups)
