"""Recycled sandboxes: what one run leaves must never reach the next.

iris-sandboxd does not kill a deleted (or expired) sandbox whose creator
named a projectId: it retires it, has its supervisor (pid 1 of the
sandbox) kill every other process and put the writable places, System V
IPC and keyrings back as they were at start-up, checks that from outside,
and offers it -- with a new id, a new token and a fresh default Python
kernel -- to the next create of the same projectId only.

Every test here plants something in a run, deletes the sandbox, and looks
for it from the next one.  The next sandbox is proven to be the recycled
one (GET /pool's recycledTaken went up by one, and on the host the same
supervisor process serves it: the container's bwrap command line names
the id it was first started as, for its whole life), and what it shows is
compared with what the same container showed at start-up, before the
plant (STATE_PROBE: files byte for byte, processes, IPC, keys, the
environment, Python's state, scheduling and limits).  A test that allows
the daemon to destroy a sandbox instead proves that it did (scrubFailures,
nothing left on the host).

Each test uses projectIds of its own ("p1-<random>"), so that a sandbox
recycled for one test is never offered to another.
"""

import errno
import json
import os
import secrets
import time

import pytest
import requests

from conftest import Stack, assert_ran
from sandboxd import ENVD_PORT, daemon_fixture, describe

PROCS = 128

daemon = daemon_fixture(name="daemon", POOL=0, PROCS=PROCS)

RECYCLE_TIMEOUT = 30    # seconds for a deleted sandbox's scrub to end
# Longer than the module runs: no sandbox expires (and is scrubbed) while
# a test waits for the scrub of its own.
LIFETIME = 900


def project(name="p1"):
    """A projectId no other test uses."""
    return "%s-%s" % (name, secrets.token_hex(4))


def marker():
    return "iris%s" % secrets.token_hex(6)


# --- the daemon's pool and the host's view -----------------------------------------

def pool(daemon):
    r = daemon.api("GET", "/pool")
    assert r.status_code == 200, describe(r)
    return r.json()


def retire(daemon, sid):
    """Deletes sid and waits for its scrub to end.  Returns "recycled" (it
    is offered again to its project) or "destroyed" (the scrub failed)."""
    before = pool(daemon)
    r = daemon.delete(sid)
    assert r.status_code == 204, describe(r)
    deadline = time.monotonic() + RECYCLE_TIMEOUT
    while True:
        now = pool(daemon)
        if now["scrubFailures"] > before["scrubFailures"]:
            return "destroyed"
        if now["scrubs"] > before["scrubs"] and now["scrubbing"] == 0:
            return "recycled"
        assert time.monotonic() < deadline, \
            "no scrub ended %d s after deleting %s: %r -> %r\n%s" % (
                RECYCLE_TIMEOUT, sid, before, now, daemon.log())
        time.sleep(0.05)


def create_with_token(daemon, group):
    """Creates a sandbox for projectId group (None: no projectId); returns
    (id, envd access token, recycled?)."""
    before = pool(daemon)["recycledTaken"]
    r = daemon.api("POST", "/sandboxes", json={
        "templateID": "code-interpreter-v1", "timeout": LIFETIME, "secure": True,
        "metadata": {"projectId": group} if group else {}}, timeout=60)
    assert r.status_code == 201, describe(r) + "\n" + daemon.log()
    taken = pool(daemon)["recycledTaken"] - before
    assert taken in (0, 1), taken
    return r.json()["sandboxID"], r.json()["envdAccessToken"], taken == 1


def create(daemon, group):
    """Creates a sandbox for projectId group; returns (id, recycled?)."""
    sid, _, recycled = create_with_token(daemon, group)
    return sid, recycled


def create_recycled(daemon, group, old):
    """The next create of group: it must be the recycled sandbox (whose
    previous id was old).  Returns its new id."""
    sid, recycled = create(daemon, group)
    assert recycled, "the create of %s was not served by the recycled sandbox: %r" % (
        group, pool(daemon))
    assert sid != old
    return sid


def supervisor(daemon, name):
    """Host pid of the supervisor of the container first started as
    sandbox name (recycled or not: its bwrap's command line names it)."""
    procs = daemon.sandbox_procs(name)
    bwraps = [pid for pid, info in procs.items() if info[2] == daemon.proc.pid]
    sups = [pid for pid, info in procs.items() if info[2] in bwraps]
    assert len(bwraps) == 1 and len(sups) == 1, procs
    return sups[0]


def recycle(daemon, group, sid, name):
    """Deletes sid, which must be recycled; creates the next sandbox of
    group, which must be that same container (name: the id it was first
    started as).  Returns the new id."""
    sup = supervisor(daemon, name)
    outcome = retire(daemon, sid)
    assert outcome == "recycled", "%s was destroyed by its scrub:\n%s" % (sid, daemon.log())
    new = create_recycled(daemon, group, sid)
    assert supervisor(daemon, name) == sup, "another container serves %s" % new
    return new


def assert_destroyed(daemon, name):
    """Nothing is left on the host of the container first started as name."""
    left = daemon.wait_clean(name, timeout=10)
    assert not any(left.values()), left


def recycle_or_destroy(daemon, group, sid, name):
    """Deletes sid and creates the next sandbox of group, for runs after
    which the daemon may rightly refuse to recycle.  Returns (id,
    recycled): recycled, it is the same container, scrubbed; if not, the
    scrub failed and nothing is left of the old container on the host."""
    outcome = retire(daemon, sid)
    new, recycled = create(daemon, group)
    if outcome == "destroyed":
        assert_destroyed(daemon, name)
        assert not recycled, pool(daemon)
    else:
        assert recycled, pool(daemon)
        assert daemon.sandbox_procs(name), "the recycled container is gone"
    return new, recycled


# --- what a sandbox shows from inside ------------------------------------------------

# Runs in a sandbox's default Python kernel; prints one JSON object.  ARGS
# (prepended) holds "marker": every trace of it anywhere is listed in
# "found" ("<category>: <where>").
STATE_PROBE = r'''
import builtins, ctypes, errno, hashlib, json as json_module, os, platform, resource
import stat, sys, threading
import matplotlib, numpy

M = ARGS["marker"]
MB = M.encode()
found = []
ARCH = platform.machine()
NR = {"x86_64": {"add_key": 248, "keyctl": 250, "ioprio_get": 252},
      "aarch64": {"add_key": 217, "keyctl": 219, "ioprio_get": 31}}.get(ARCH, {})
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long


def errno_name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for n in sorted(names):
        try:
            v = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            v = b""
        if MB in v or M in n:
            found.append("xattr: %s %s" % (path, n))
        out.append([n, v.decode("latin-1")])
    return out


def tree(root):
    """Every entry under root on its file system: [kind, mode, ...]."""
    try:
        top = os.lstat(root)
    except OSError as e:
        return {".": ["missing", e.errno]}
    out = {".": ["d", oct(top.st_mode), xattrs(root)]}
    todo = [""]
    while todo:
        rel = todo.pop()
        path = os.path.join(root, rel) if rel else root
        try:
            entries = list(os.scandir(path))
        except OSError as e:
            out[rel or "."].append("unlistable %s" % errno_name(e))
            continue
        for e in entries:
            r = os.path.join(rel, e.name)
            if M in r:
                found.append("file: %s/%s" % (root, r))
            st = e.stat(follow_symlinks=False)
            if st.st_dev != top.st_dev:
                out[r] = ["mount"]            # a host device node, /dev/shm, ...
            elif stat.S_ISLNK(st.st_mode):
                out[r] = ["l", os.readlink(e.path)]
            elif stat.S_ISDIR(st.st_mode):
                out[r] = ["d", oct(st.st_mode), xattrs(e.path)]
                todo.append(r)
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(e.path, "rb") as f:
                        data = f.read()
                    digest = hashlib.sha256(data).hexdigest()
                    if MB in data:
                        found.append("file content: %s/%s" % (root, r))
                except OSError as err:
                    digest = "unreadable %s" % errno_name(err)
                out[r] = ["f", oct(st.st_mode), st.st_size, digest, xattrs(e.path)]
            else:
                out[r] = ["o", oct(st.st_mode)]
    return out


state = {"files": {root: tree(root) for root in
                   ("/home/user", "/tmp", "/dev", "/dev/shm", "/dev/mqueue")}}

# Processes and threads: a fresh sandbox has pid 1 and this kernel.
me = os.getpid()
others = []
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) not in (1, me):
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError as e:
            cmd = "? %s" % errno_name(e)
        others.append(cmd)
        found.append("process: %s %s" % (p, cmd))
state["other_processes"] = sorted(others)
with open("/proc/1/cmdline", "rb") as f:
    state["pid1"] = f.read().replace(b"\0", b" ").decode().strip()
state["threads"] = len(os.listdir("/proc/self/task"))
for t in threading.enumerate():
    if M in t.name:
        found.append("thread: %s" % t.name)

# System V IPC and POSIX message queues.
state["sysvipc"] = {}
for kind in ("shm", "sem", "msg"):
    with open("/proc/sysvipc/" + kind) as f:
        lines = f.read().splitlines()[1:]
    state["sysvipc"][kind] = len(lines)
    for line in lines:
        found.append("sysv %s: %s" % (kind, " ".join(line.split()[:3])))
libc.mq_open.restype = ctypes.c_int
for name in ARGS.get("mqueues", []):
    fd = libc.mq_open(name.encode(), os.O_RDONLY, 0, None)
    if fd >= 0:
        found.append("mqueue: %s" % name)
        os.close(fd)

# The environment (the sandbox's own id apart).
env = dict(os.environ)
state["sandbox_id"] = env.pop("E2B_SANDBOX_ID", None)
state["env"] = env
for k, v in env.items():
    if M in k or M in v:
        found.append("env: %s" % k)

# Python's state: modules, their attributes, settings.
state["python"] = {
    "modules": sorted(sys.modules),
    "json": sorted(dir(json_module)),
    "builtins": sorted(dir(builtins)),
    "numpy_printoptions": repr(sorted(numpy.get_printoptions().items())),
    "rcparams": hashlib.sha256(repr(sorted(
        (k, repr(v)) for k, v in matplotlib.rcParams.items())).encode()).hexdigest(),
    "recursionlimit": sys.getrecursionlimit(),
    "path": sys.path,
    "cwd": os.getcwd(),
}
for name in sys.modules:
    if M in name:
        found.append("python: module %s" % name)
for where, obj in (("json", json_module), ("builtins", builtins)):
    for attr in dir(obj):
        if M in attr or M in repr(getattr(obj, attr, ""))[:200]:
            found.append("python: %s.%s" % (where, attr))

# Keys: every key this process can see, and what it can read of them.
keys = []
if NR:
    pk = libc.syscall(NR["keyctl"], 22, L(-1), L(-3))    # KEYCTL_GET_PERSISTENT
    state["persistent_keyring"] = pk >= 0
    with open("/proc/keys") as f:
        for line in f:
            fields = line.split(None, 8)
            kind, desc = fields[7], fields[8].rsplit(":", 1)[0]
            if M in desc:
                found.append("key: %s %s" % (kind, desc))
            if kind == "keyring":
                continue
            keys.append([kind, desc])
            buf = ctypes.create_string_buffer(4096)
            n = libc.syscall(NR["keyctl"], 11, L(int(fields[0], 16)), buf, L(4096))
            if n > 0 and MB in buf.raw[:n]:
                found.append("key payload: %s" % desc)
state["keys"] = sorted(keys)

# Scheduling and limits: this kernel's, and its supervisor's (pid 1).
def sched(pid):
    out = {"nice": os.getpriority(os.PRIO_PROCESS, pid),
           "affinity": sorted(os.sched_getaffinity(pid)),
           "policy": os.sched_getscheduler(pid),
           "rlimits": {n: list(resource.prlimit(pid, getattr(resource, n)))
                       for n in sorted(dir(resource)) if n.startswith("RLIMIT_")}}
    if NR:
        out["ioprio"] = libc.syscall(NR["ioprio_get"], 1, pid)   # IOPRIO_WHO_PROCESS
    return out

state["sched"] = sched(0)
state["sched_pid1"] = sched(1)
mask = os.umask(0o022)
os.umask(mask)
state["umask"] = mask
state["found"] = found
print(json_module.dumps(state))
'''


def with_args(code, **args):
    return "ARGS = %r\n" % (args,) + code


def probe(daemon, sid, code, **args):
    """Runs code (with ARGS) in sid's default context; returns the JSON
    object it printed last."""
    ex = daemon.run(sid, with_args(code, **args), timeout=60)
    lines = ex.stdout.strip().splitlines()
    assert lines, ex
    return json.loads(lines[-1])


def state_of(daemon, sid, mark, **args):
    return probe(daemon, sid, STATE_PROBE, marker=mark, **args)


def differences(state, start, keys=None):
    """{what: (now, at start-up)} of what differs (the sandbox's id aside)."""
    out = {}
    for k in keys or start:
        if k in ("found", "sandbox_id"):
            continue
        if k == "files":
            for root in start[k]:
                a, b = state[k].get(root, {}), start[k][root]
                for rel in sorted(set(a) | set(b)):
                    if a.get(rel) != b.get(rel):
                        out["%s/%s" % (root, rel)] = (a.get(rel), b.get(rel))
        elif state.get(k) != start[k]:
            out[k] = (state.get(k), start[k])
    return out


def assert_clean(state, sid, start=None):
    """Sandbox sid shows no trace of any earlier run; and if recycled, it is
    exactly what its container showed at start-up (start: the state its
    first run saw, before anything was planted)."""
    assert state["found"] == [], "traces of the previous run in %s: %r" % (sid, state["found"])
    assert state["sandbox_id"] == sid, state["sandbox_id"]
    if start is not None:
        diff = differences(state, start)
        assert diff == {}, "the recycled sandbox %s differs from its start-up state: %s" % (
            sid, json.dumps(diff, indent=1)[:6000])


def categories(found):
    return {f.split(":", 1)[0] for f in found}


# --- 1. nothing of a run is visible in the next ---------------------------------------

PLANT = r'''
import builtins, ctypes, errno, json, os, subprocess, sys, threading, time, types
import matplotlib, numpy

M = ARGS["marker"]
done, skipped = [], {}
libc = ctypes.CDLL(None, use_errno=True)
libc.mq_open.restype = ctypes.c_int


def step(name, fn):
    try:
        fn()
        done.append(name)
    except OSError as e:
        skipped[name] = errno.errorcode.get(e.errno, str(e.errno))


def write(path, data=M, mode=None):
    with open(path, "w") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def check(rc, what):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))
    return rc


# Files everywhere a run can write.
step("home", lambda: (os.makedirs("/home/user/sub/deeper"),
                      write("/home/user/%s.txt" % M),
                      write("/home/user/sub/deeper/%s" % M)))
step("tmp", lambda: write("/tmp/%s" % M))
step("dev_shm", lambda: write("/dev/shm/%s" % M))
step("dev", lambda: write("/dev/%s" % M))
step("mqueue_file", lambda: os.close(os.open("/dev/mqueue/%s-file" % M,
                                             os.O_CREAT | os.O_RDWR, 0o600)))
step("mq_open", lambda: os.close(check(libc.mq_open(
    ("/%s-mq" % M).encode(), os.O_CREAT | os.O_RDWR, 0o600, None), "mq_open")))


def locked(root):
    d = "%s/locked-%s" % (root, M)
    os.makedirs(d + "/inner")
    write(d + "/inner/" + M)
    write("%s/unreadable-%s" % (root, M), mode=0)
    os.chmod(d + "/inner", 0)
    os.chmod(d, 0)


step("locked_home", lambda: locked("/home/user"))
step("locked_tmp", lambda: locked("/tmp"))
step("fifo", lambda: os.mkfifo("/tmp/fifo-%s" % M))
step("links", lambda: (os.symlink("/tmp/%s" % M, "/home/user/link-%s" % M),
                       os.link("/home/user/%s.txt" % M, "/home/user/hard-%s" % M)))


def set_xattrs():
    for p in ("/home/user", "/home/user/%s.txt" % M, "/tmp"):
        os.setxattr(p, "user.iris", M.encode())


step("xattrs", set_xattrs)


def matplotlib_cache():
    d = "/tmp/matplotlib"
    for name in os.listdir(d):
        if os.path.isfile(os.path.join(d, name)):
            with open(os.path.join(d, name), "a") as f:
                f.write(M)
    write(os.path.join(d, M + ".json"), "{}")


step("matplotlib_cache", matplotlib_cache)

# Processes: nohup'ed in a session of its own, a daemon (double fork),
# and a thread of this kernel.
step("nohup", lambda: subprocess.run(
    "setsid nohup bash -c 'exec -a %s-nohup sleep 600' >/dev/null 2>&1 &" % M,
    shell=True, check=True))


def daemonize():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open(os.devnull, os.O_RDWR)
            for i in (0, 1, 2):
                os.dup2(fd, i)
            os.execv("/usr/bin/sleep", [M + "-daemon", "600"])
        os._exit(0)
    os.waitpid(pid, 0)


step("daemon", daemonize)
step("thread", lambda: threading.Thread(target=time.sleep, args=(600,), name=M + "-thread",
                                        daemon=True).start())

# System V IPC objects, with something in each.
IPC_CREAT = 0o1000
key = ARGS["ipc_key"]


def sysv():
    shm = check(libc.shmget(key, 4096, IPC_CREAT | 0o600), "shmget")
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, M.encode(), len(M))
    check(libc.semget(key, 1, IPC_CREAT | 0o600), "semget")
    q = check(libc.msgget(key, IPC_CREAT | 0o600), "msgget")

    class Msg(ctypes.Structure):
        _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
    check(libc.msgsnd(q, ctypes.byref(Msg(1, M.encode())), 64, 0), "msgsnd")


step("sysv", sysv)

# The environment and Python's own state.
os.environ["IRIS_PLANTED"] = M
json.iris_planted = M
builtins.iris_planted = M
sys.modules["iris_planted_" + M] = types.ModuleType("iris_planted_" + M)
numpy.set_printoptions(precision=2, threshold=5)
matplotlib.rcParams["lines.linewidth"] = 7.5
sys.setrecursionlimit(321)
print(json.dumps({"done": done, "skipped": skipped}))
'''


def test_recycled_sandbox_is_a_new_sandbox(daemon):
    """A recycled sandbox has a new id and token, only a fresh default
    context, and E2B_SANDBOX_ID says its new id; the old id reaches
    nothing any more, and a client still reading an execution of the old
    sandbox is cut off rather than seeing the next user's run."""
    group = project()
    a, old_token, _ = create_with_token(daemon, group)
    daemon.new_context(a, "bash")
    daemon.run(a, "x = 41")
    s = daemon.stream(a, "import time\nwhile True:\n    print('tick', flush=True)\n"
                         "    time.sleep(0.05)")
    s.until(lambda e: e.get("type") == "stdout")
    sup = supervisor(daemon, a)
    assert retire(daemon, a) == "recycled"
    # The old client's execution was cut off by the delete: its answer has
    # ended, so nothing of the next user's runs can reach it.
    ended = s.rest(timeout=30)
    assert {e.get("text") for e in ended.of("stdout")} == {"tick\n"}, ended
    s.close()
    b, token, recycled = create_with_token(daemon, group)
    assert recycled and b != a and supervisor(daemon, a) == sup, pool(daemon)

    assert token != old_token
    envs = {t: daemon.sbx("GET", b, "/envs", port=ENVD_PORT,
                          headers={"X-Access-Token": t}).status_code for t in (old_token, token)}
    assert envs == {old_token: 401, token: 200}, envs
    info = daemon.api("GET", "/sandboxes/" + b)
    assert info.status_code == 200, describe(info)
    assert info.json().get("metadata") == {"projectId": group}, info.json()
    assert daemon.api("GET", "/sandboxes/" + a).status_code == 404
    assert daemon.sbx("GET", a, "/health").status_code == 502
    assert daemon.execute(a, "1").status != 200
    listed = [x["sandboxID"] for x in daemon.api("GET", "/sandboxes").json()]
    assert b in listed and a not in listed, listed

    contexts = daemon.sbx("GET", b, "/contexts")
    assert contexts.status_code == 200, describe(contexts)
    # Only the contexts every sandbox starts with (docs/sandbox-internals.md).
    assert [(c["language"], c["cwd"]) for c in contexts.json()] == \
        [("python", "/home/user"), ("javascript", "/home/user")], contexts.json()
    ex = daemon.run(b, "import os\nprint(os.environ['E2B_SANDBOX_ID'])\n"
                       "'x' in globals()")
    assert ex.count == 1, ex
    assert ex.stdout.strip() == b and ex.text == "False", ex
    sh = daemon.new_context(b, "bash")
    assert daemon.run(b, "echo $E2B_SANDBOX_ID", context_id=sh).stdout.strip() == b


OLD_IDS_PROBE = r'''
import json, os, socket
ids = ARGS["ids"]
hits = []


def look(where, text):
    for i in ids:
        if i in text:
            hits.append("%s: %s" % (where, i))


for path in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/cgroup",
             "/proc/1/cmdline", "/proc/1/environ", "/proc/self/environ"):
    try:
        with open(path, "rb") as f:
            look(path, f.read().decode("latin-1"))
    except OSError:
        pass
look("hostname", socket.gethostname())
for d in ("/etc", "/run/iris"):
    for name in os.listdir(d):
        look(d, name)
        try:
            with open(os.path.join(d, name), "rb") as f:
                look(os.path.join(d, name), f.read(1 << 16).decode("latin-1"))
        except OSError:
            pass
print(json.dumps(hits))
'''


def test_random_streams_are_new_in_each_recycled_sandbox(daemon):
    """Kernels are forks of one preloaded interpreter: each must draw its
    own random numbers (numpy's global RNG and Python's random), not
    repeat the previous run's."""
    group = project()
    a, _ = create(daemon, group)
    code = "import numpy, random\nprint(numpy.random.rand(), random.random())"
    seen = [daemon.run(a, code).stdout]
    sid = a
    for _ in range(2):
        sid = recycle(daemon, group, sid, name=a)
        seen.append(daemon.run(sid, code).stdout)
    assert len(set(seen)) == len(seen), seen


def test_no_earlier_id_is_visible_inside(daemon):
    """Recycled twice (a, then b, then c), the sandbox shows neither of its
    earlier ids anywhere its code can look (mounts, pid 1, the
    environment, the hostname, /etc, /run/iris): they were other users'."""
    group = project()
    a, _ = create(daemon, group)
    b = recycle(daemon, group, a, name=a)
    c = recycle(daemon, group, b, name=a)
    hits = probe(daemon, c, OLD_IDS_PROBE, ids=[a, b])
    assert hits == [], "earlier ids of %s (%s, %s) visible inside: %r" % (c, a, b, hits)


def test_nothing_a_run_planted_survives_recycling(daemon):
    """Files (in /home/user, /tmp, /dev/shm, /dev, /dev/mqueue, unreadable
    directories, xattrs, the matplotlib cache), processes (nohup, a
    daemon, a thread), System V objects, POSIX message queues, the
    environment and Python's module state: none of it is in the next
    sandbox of the same project, which looks exactly as its container did
    at start-up (the matplotlib font cache in /tmp byte for byte)."""
    group, mark = project(), marker()
    ipc_key = secrets.randbelow(1 << 30) + 1
    mqueues = ["/%s-mq" % mark, "/%s-file" % mark]
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark, mqueues=mqueues)
    assert start["files"]["/tmp"].get("matplotlib", [None])[0] == "d", start["files"]["/tmp"]
    planted = probe(daemon, a, PLANT, marker=mark, ipc_key=ipc_key)
    must = {"home", "tmp", "dev_shm", "mqueue_file", "mq_open", "locked_home", "locked_tmp",
            "matplotlib_cache", "nohup", "daemon", "thread", "sysv"}
    assert must <= set(planted["done"]), planted
    # The plant is there, all of it, as the same kernel sees it.
    there = state_of(daemon, a, mark, mqueues=mqueues)
    assert {"file", "file content", "process", "thread", "sysv shm", "sysv sem", "sysv msg",
            "mqueue", "env", "python"} <= categories(there["found"]), there["found"]
    if "xattrs" in planted["done"]:
        assert "xattr" in categories(there["found"]), there["found"]

    b = recycle(daemon, group, a, name=a)
    state = state_of(daemon, b, mark, mqueues=mqueues)
    assert_clean(state, b, start)
    assert state["files"]["/tmp"] == start["files"]["/tmp"], planted
    # Everything still works: a chart, a subprocess.
    ex = daemon.run(b, "import matplotlib.pyplot as plt, subprocess\nplt.plot([1, 2])\n"
                       "plt.show()\nsubprocess.run(['true']).returncode")
    assert ex.text == "0" and ex.results and ex.results[0].get("png"), ex


# The writable places' own roots made unreadable.
LOCK_ROOTS = r'''
import json, os
out = {}
for root in ("/dev/shm", "/dev/mqueue", "/tmp", "/home/user"):
    try:
        os.chmod(root, 0)
        out[root] = "locked"
    except OSError as e:
        out[root] = e.errno
print(json.dumps(out))
'''


def test_writable_roots_made_unreadable(daemon):
    """A run that plants files and then takes every permission off
    /home/user, /tmp, /dev/shm and /dev/mqueue themselves: the next sandbox
    of the project is the recycled one with those places as they were at
    start-up, or a new one (the scrub failed and the old is destroyed)."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    planted = probe(daemon, a, PLANT, marker=mark, ipc_key=secrets.randbelow(1 << 30) + 1)
    assert "home" in planted["done"], planted
    locked = probe(daemon, a, LOCK_ROOTS)
    assert locked["/home/user"] == "locked" and locked["/tmp"] == "locked", locked
    b, recycled = recycle_or_destroy(daemon, group, a, name=a)
    assert_clean(state_of(daemon, b, mark), b, start if recycled else None)


KEYS_PLANT = r'''
import ctypes, json, os, platform
M = ARGS["marker"]
NR = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine())
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
out = {"added": {}, "failed": {}}
if NR is None:
    out["unsupported"] = platform.machine()
else:
    add_key, keyctl = NR
    rings = {"session": -3, "user": -4, "user_session": -5}
    pk = libc.syscall(keyctl, 22, L(-1), L(-3))        # KEYCTL_GET_PERSISTENT
    if pk >= 0:
        rings["persistent"] = pk
    else:
        out["failed"]["persistent"] = os.strerror(ctypes.get_errno())
    for name, ring in rings.items():
        # Added to the session keyring (so possessed), made readable by the
        # uid (SETPERM), then moved to its keyring (LINK, UNLINK).
        desc = ("%s-%s" % (M, name)).encode()
        k = libc.syscall(add_key, b"user", desc, M.encode(), L(len(M)), L(-3))
        if k < 0 or libc.syscall(keyctl, 5, L(k), L(0x3f3f0000)) < 0 or (
                ring != -3 and (libc.syscall(keyctl, 8, L(k), L(ring)) < 0 or
                                libc.syscall(keyctl, 9, L(k), L(-3)) < 0)):
            out["failed"][name] = os.strerror(ctypes.get_errno())
            continue
        out["added"][name] = k
    if ARGS["lock"]:
        # Possessor: view, read, search; no write: KEYCTL_CLEAR needs write.
        out["locked"] = {name: libc.syscall(keyctl, 5, L(ring), L(0x0b000000))
                         for name, ring in rings.items()}
print(json.dumps(out))
'''


@pytest.mark.parametrize("lock", [False, True], ids=["keys", "keys-in-locked-keyrings"])
def test_keys_do_not_survive_recycling(daemon, lock):
    """Keys a run would add to its session, user, user-session and
    persistent keyrings (readable by the uid, which the next sandbox in
    the same slot shares even when it is not recycled: the kernel's
    keyrings are not fully namespaced) cannot be made at all: the
    sandbox's seccomp filter refuses add_key, request_key and keyctl
    (ENOSYS).  Whatever it tried, the next sandbox of the project is
    clean -- also when the run tried to lock those keyrings."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    planted = probe(daemon, a, KEYS_PLANT, marker=mark, lock=lock)
    assert "unsupported" not in planted, planted
    assert planted["added"] == {}, planted
    assert set(planted["failed"].values()) == {os.strerror(errno.ENOSYS)}, planted
    b, recycled = recycle_or_destroy(daemon, group, a, name=a)
    assert_clean(state_of(daemon, b, mark), b, start if recycled else None)


# --- 2. a run trying to influence the next ---------------------------------------------

PID1_ATTACKS = r'''
import ctypes, errno, json, os, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.syscall.restype = ctypes.c_long
out = {}


def attempt(name, fn):
    try:
        r = fn()
        out[name] = "ok" if r is None or r >= 0 else errno.errorcode.get(ctypes.get_errno())
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))


for sig in ("SIGKILL", "SIGSTOP", "SIGTERM", "SIGUSR1", "SIGHUP", "SIGINT", "SIGSEGV"):
    attempt("kill " + sig, lambda: os.kill(1, getattr(signal, sig)))
attempt("ptrace attach", lambda: libc.ptrace(16, 1, None, None))        # PTRACE_ATTACH
attempt("ptrace seize", lambda: libc.ptrace(0x4206, 1, None, None))     # PTRACE_SEIZE
attempt("write /proc/1/mem", lambda: open("/proc/1/mem", "r+b").close())
attempt("write /proc/1/fd/0", lambda: open("/proc/1/fd/0", "wb").close())
attempt("write /proc/1/fd/1", lambda: open("/proc/1/fd/1", "wb").close())
attempt("read /proc/1/environ", lambda: open("/proc/1/environ", "rb").close())
attempt("write /proc/1/oom_score_adj", lambda: open("/proc/1/oom_score_adj", "w").close())
attempt("write /proc/1/comm", lambda: open("/proc/1/comm", "w").write("evil"))


def getfd():
    pidfd = os.pidfd_open(1)
    try:
        return libc.syscall(438, pidfd, 0, 0)                            # pidfd_getfd
    finally:
        os.close(pidfd)


attempt("pidfd_getfd", getfd)
with open("/proc/1/status") as f:
    out["pid1_state"] = [l.split()[1] for l in f if l.startswith("State:")][0]
print(json.dumps(out))
'''


def test_pid1_cannot_be_signalled_traced_or_written(daemon):
    """From inside, pid 1 (the supervisor) ignores every signal, cannot be
    traced, and neither its memory nor its control pipes can be opened;
    the sandbox keeps working, and is still scrubbed and recycled clean."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    sup = supervisor(daemon, a)
    out = probe(daemon, a, PID1_ATTACKS)
    for name, res in out.items():
        # (A signal is sent, or refused: a namespace's init ignores it anyway.)
        if not name.startswith("kill ") and name != "pid1_state":
            assert res in ("EPERM", "EACCES", "ESRCH", "EINVAL"), (name, out)
    assert out["pid1_state"] in ("S", "R"), out
    assert supervisor(daemon, a) == sup
    assert daemon.run(a, "6 * 7").text == "42"
    assert daemon.run(a, "echo ok", context_id=daemon.new_context(a, "bash")).stdout == "ok\n"
    b = recycle(daemon, group, a, name=a)
    assert_clean(state_of(daemon, b, mark), b, start)


SYS_PATH_PLANT = r'''
import json, os, sys
M = ARGS["marker"]
dirs = sorted({os.path.abspath(p or os.getcwd()) for p in sys.path} |
              {"/home/user", "/tmp", "/home/user/.local/lib/python%d.%d/site-packages"
               % sys.version_info[:2]})
planted, writable = [], []
for d in dirs:
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        continue
    if not os.access(d, os.W_OK):
        continue
    writable.append(d)
    for name, text in ((M + ".py", "PLANTED = True\n"),
                       (M + ".pth", "import os; os.environ['IRIS_PTH_%s'] = '1'\n" % M),
                       ("sitecustomize.py", "import os; os.environ['IRIS_SITE_%s'] = '1'\n" % M),
                       ("usercustomize.py", "import os; os.environ['IRIS_USER_%s'] = '1'\n" % M),
                       ("numpy.py", "raise SystemExit('planted numpy %s')\n" % M)):
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
            planted.append(os.path.join(d, name))
        except OSError:
            pass
__import__(M)
print(json.dumps({"writable": writable, "planted": planted, "imported": M in sys.modules}))
'''

SYS_PATH_CHECK = r'''
import importlib, json, os, subprocess, sys
M = ARGS["marker"]
out = {}
try:
    importlib.import_module(M)
    out["import"] = "imported"
except ImportError as e:
    out["import"] = type(e).__name__
out["planted_left"] = [p for p in ARGS["planted"] if os.path.lexists(p)]
site = sys.modules.get("sitecustomize")
out["sitecustomize"] = getattr(site, "__file__", None)
import numpy
out["numpy"] = numpy.__file__
# A new interpreter, as user code would start one, from the home directory.
r = subprocess.run([sys.executable, "-c", "import os, sys, json; "
                    "print(json.dumps([k for k in os.environ if 'IRIS_' in k]))"],
                   cwd="/home/user", capture_output=True, text=True)
out["child_env"] = r.stdout.strip()
print(json.dumps(out))
'''


WIPED = ("/home/user", "/tmp")


def under(path, roots):
    return any(path == r or path.startswith(r + "/") for r in roots)


def test_planted_python_modules_are_gone(daemon):
    """A run drops .py and .pth files (and sitecustomize, and a fake numpy)
    into every writable directory of sys.path, /home/user and /tmp: the only
    writable ones are the wiped places, and in the next sandbox none of the
    files is left and none of the modules can be imported."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    planted = probe(daemon, a, SYS_PATH_PLANT, marker=mark)
    assert planted["imported"] is True, planted
    outside = [d for d in planted["writable"] if not under(d, WIPED)]
    assert outside == [], "writable directories of sys.path outside the wiped places: %r" % outside
    b = recycle(daemon, group, a, name=a)
    assert_clean(state_of(daemon, b, mark), b, start)
    out = probe(daemon, b, SYS_PATH_CHECK, marker=mark, planted=planted["planted"])
    assert out["import"] == "ModuleNotFoundError", out
    assert out["planted_left"] == [], out
    assert out["sitecustomize"] is None or not under(out["sitecustomize"], WIPED), out
    assert out["numpy"].startswith("/usr/"), out
    assert out["child_env"] == "[]", out


OUTLIVER = r'''
import json, os, signal, time
M = ARGS["marker"]
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
            signal.signal(s, signal.SIG_IGN)
        fd = os.open(os.devnull, os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(fd, i)
        n = 0
        while True:
            for path in ("/tmp/heartbeat-" + M, "/home/user/heartbeat-" + M):
                try:
                    with open(path, "a") as f:
                        f.write("%d\n" % n)
                except OSError:
                    pass
            n += 1
            time.sleep(0.01)
    os._exit(0)
os.waitpid(pid, 0)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        if os.path.getsize("/tmp/heartbeat-" + M) > 20:
            break
    except OSError:
        pass
    time.sleep(0.01)
print(json.dumps({"beating": os.path.getsize("/tmp/heartbeat-" + M) > 20}))
'''


def test_a_process_trying_to_outlive_its_run_is_gone(daemon):
    """A detached process that ignores the catchable signals and writes a
    file in /tmp every 10 ms does not outlive its sandbox's recycling: the
    next run sees neither it nor its file, and on the host the container
    holds only its bwrap, its supervisor and the new kernel."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    assert probe(daemon, a, OUTLIVER, marker=mark) == {"beating": True}
    b = recycle(daemon, group, a, name=a)
    assert_clean(state_of(daemon, b, mark), b, start)
    procs = daemon.sandbox_procs(a)
    assert len(procs) == 3, procs
    assert not any(mark in info[4] for info in procs.values()), procs
    # Looked at again, after a run of its own: still nothing writes there.
    assert daemon.run(b, "import os\nsorted(os.listdir('/tmp'))").text == \
        repr(sorted(k for k in start["files"]["/tmp"] if "/" not in k and k != "."))


PID1_SETTINGS = r'''
import ctypes, json, os, platform, resource
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}


def attempt(name, fn):
    try:
        r = fn()
        out[name] = "ok" if r is None or r >= 0 else os.strerror(ctypes.get_errno())
    except OSError as e:
        out[name] = e.strerror


def lower(name, value):
    resource.prlimit(1, getattr(resource, name), value)


# Lowered hard limits can never be raised again without a capability.
for name, value in (("RLIMIT_NOFILE", (200, 200)), ("RLIMIT_CPU", (30, 30)),
                    ("RLIMIT_STACK", (2 << 20, 2 << 20)), ("RLIMIT_MEMLOCK", (0, 0)),
                    ("RLIMIT_MSGQUEUE", (0, 0)), ("RLIMIT_NPROC", (100, 100))):
    attempt(name, lambda: lower(name, value))
attempt("nice", lambda: os.setpriority(os.PRIO_PROCESS, 1, 19))
cpus = sorted(os.sched_getaffinity(1))
if len(cpus) > 1:
    attempt("affinity", lambda: os.sched_setaffinity(1, cpus[:1]))
attempt("policy", lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)))
nr = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
if nr:
    attempt("ioprio", lambda: libc.syscall(nr, 1, 1, 3 << 13))    # IOPRIO_CLASS_IDLE
print(json.dumps(out))
'''


def test_pid1_scheduling_and_limits_do_not_reach_the_next_run(daemon):
    """A run may lower pid 1's resource limits, nice it, pin it to one CPU,
    and give it idle CPU and I/O classes (prlimit, setpriority,
    sched_setaffinity, sched_setscheduler, ioprio_set need only the same
    uid, not ptrace).  Kernels are forked from pid 1: the next sandbox of
    the project must not inherit any of it -- the daemon may instead
    destroy the sandbox, as lowered hard limits cannot be raised again."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    changed = probe(daemon, a, PID1_SETTINGS)
    assert changed.get("nice") == "ok", changed
    b, recycled = recycle_or_destroy(daemon, group, a, name=a)
    state = state_of(daemon, b, mark)
    diff = differences(state, start, ["sched", "sched_pid1"])
    assert diff == {}, "pid 1's settings changed by the previous run (%r) reached %s: %s" % (
        changed, b, json.dumps(diff, indent=1))
    assert_clean(state, b, start if recycled else None)


# --- 3. never across projects -------------------------------------------------------

def test_never_recycled_across_projects(daemon):
    """A p1 sandbox, deleted and waiting recycled for p1, is never given to
    p2 (nor to a create without a projectId): those get other sandboxes,
    showing nothing of p1's run; p1's next create then gets it."""
    p1, p2, mark = project("p1"), project("p2"), marker()
    a, _ = create(daemon, p1)
    start = state_of(daemon, a, mark)
    planted = probe(daemon, a, PLANT, marker=mark, ipc_key=secrets.randbelow(1 << 30) + 1)
    assert "home" in planted["done"], planted
    assert retire(daemon, a) == "recycled"
    assert pool(daemon)["recycledReady"] >= 1

    other, recycled = create(daemon, p2)
    assert not recycled, pool(daemon)
    anonymous, recycled = create(daemon, None)
    assert not recycled, pool(daemon)
    for sid in (other, anonymous):
        assert daemon.sandbox_procs(sid), "%s is not a container of its own" % sid
        assert_clean(state_of(daemon, sid, mark), sid)

    b = create_recycled(daemon, p1, a)
    assert daemon.sandbox_procs(a) and not daemon.sandbox_procs(b)
    assert_clean(state_of(daemon, b, mark), b, start)


def test_sandboxes_without_a_project_are_never_recycled(daemon):
    """Deleted, a sandbox created without a projectId is killed: no scrub,
    nothing left on the host."""
    before = pool(daemon)
    sid, _ = create(daemon, None)
    daemon.run(sid, "open('/home/user/f', 'w').write('x')")
    assert daemon.delete(sid).status_code == 204
    assert_destroyed(daemon, sid)
    after = pool(daemon)
    assert (after["scrubs"], after["scrubFailures"]) == (before["scrubs"], before["scrubFailures"])


# --- 4. scrubs that cannot succeed, and runs that try to make them fail ---------------

def test_scrub_that_cannot_restore_destroys_the_sandbox(daemon):
    """A run that takes pid 1's file size limit down to 0 (hard, so it can
    never be raised again) leaves a supervisor that cannot write the
    start-up files back: the scrub fails, the sandbox is destroyed, and the
    project's next create gets a new, clean one."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    daemon.run(a, "import resource\nopen('/home/user/%s', 'w').write('x')\n"
                  "resource.prlimit(1, resource.RLIMIT_FSIZE, (0, 0))" % mark)
    before = pool(daemon)
    assert retire(daemon, a) == "destroyed"
    assert_destroyed(daemon, a)
    b, recycled = create(daemon, group)
    assert not recycled
    after = pool(daemon)
    assert after["scrubFailures"] == before["scrubFailures"] + 1
    assert after["recycledTaken"] == before["recycledTaken"]
    assert_clean(state_of(daemon, b, mark), b)


DEEP_TREE = r'''
import os
M = ARGS["marker"]
os.mkdir("/tmp/deep-" + M)
os.chdir("/tmp/deep-" + M)
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
os.chdir("/home/user")
print("[]")
'''

FORK_BOMB = ":(){ :|:& };:"


@pytest.mark.parametrize("attack", ["stop-everything", "fork-bomb", "deep-tree"])
def test_runs_that_fight_the_scrub(daemon, attack):
    """Whatever a run leaves for the scrub -- every process SIGSTOPped
    (`kill -STOP -1`), a fork bomb still running, a directory tree 3000
    deep in /tmp -- the next create of the project is either the recycled
    sandbox, clean and working, or (the scrub failed) a new one while the
    old is destroyed."""
    group, mark = project(), marker()
    a, _ = create(daemon, group)
    start = state_of(daemon, a, mark)
    sh = daemon.new_context(a, "bash")
    daemon.run(a, "open('/tmp/%s', 'w').write('x')" % mark)
    if attack == "deep-tree":
        probe(daemon, a, DEEP_TREE, marker=mark)
    else:
        # (Watched from the host: the kernel's own output may be stopped too.)
        if attack == "stop-everything":
            s = daemon.stream(a, "kill -STOP -1", context_id=sh)
            under_way = lambda procs: any(info[1] == "T" for info in procs.values())
        else:
            s = daemon.stream(a, FORK_BOMB, context_id=sh)
            under_way = lambda procs: len(procs) >= PROCS // 2
        deadline = time.monotonic() + 10
        while not under_way(daemon.sandbox_procs(a)):
            assert time.monotonic() < deadline, daemon.sandbox_procs(a)
            time.sleep(0.05)
        s.abandon()
    b, recycled = recycle_or_destroy(daemon, group, a, name=a)
    # The scrub is flat (two descriptors whatever the depth): a deep tree
    # is emptied, not a reason to destroy the sandbox.
    assert recycled or attack != "deep-tree", daemon.log()
    if recycled:
        procs = daemon.sandbox_procs(a)
        assert len(procs) == 3 and all(i[1] in "SR" for i in procs.values()), procs
    assert_clean(state_of(daemon, b, mark), b, start if recycled else None)
    assert daemon.run(b, "echo ok", context_id=daemon.new_context(b, "bash")).stdout == "ok\n"


# --- 5. one-shot calls through the gateway ----------------------------------------------

ONESHOT = r'''
import json, os, subprocess
M, SEEN = ARGS["marker"], ARGS["seen"]
found = []
for m in SEEN:
    for p in ("/home/user/" + m, "/tmp/" + m, "/dev/shm/" + m):
        if os.path.lexists(p):
            found.append(p)
    for k, v in os.environ.items():
        if m in k or m in v:
            found.append("env " + k)
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) not in (1, os.getpid()):
        with open("/proc/%s/cmdline" % p, "rb") as f:
            found.append("process %s: %r" % (p, f.read()))
for p in ("/home/user/" + M, "/tmp/" + M, "/dev/shm/" + M):
    with open(p, "w") as f:
        f.write(M)
os.environ["IRIS_" + M] = M
subprocess.Popen([M, "600"], executable="/usr/bin/sleep", start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
# Which container this is: its pid 1's start time (clock ticks since boot).
with open("/proc/1/stat") as f:
    container = f.read().rsplit(")", 1)[1].split()[19]
print(json.dumps({"found": found, "id": os.environ.get("E2B_SANDBOX_ID"),
                  "container": container}))
'''


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="oneshot")
    s.start()
    yield s
    s.stop()


def provider_pool(stack):
    r = requests.get(stack.sandboxd_url + "/pool", headers={"X-API-Key": stack.sandboxd_key},
                     timeout=30)
    assert r.status_code == 200, describe(r)
    return r.json()


def test_oneshot_calls_through_the_gateway(stack):
    """Six one-shot calls of project alpha, each interleaved with one of
    project beta: each plants a file, an environment variable and a
    process, and finds none of what any earlier call planted, whichever
    project made it.  From the second call on, each project's call runs in
    its own previous call's sandbox, recycled (the provider's
    recycledTaken goes up by one each time, and all of a project's calls
    run in one container, another than the other project's), and beta's
    first call, with alpha's recycled sandbox waiting, does not get it."""
    start = provider_pool(stack)
    seen, ids, containers = [], set(), {}
    calls = 0
    for i in range(6):
        for project_name, key in (("alpha", stack.key), ("beta", stack.key_beta)):
            before = provider_pool(stack)
            if i == 0 and project_name == "beta":
                assert before["recycledReady"] >= 1, before   # alpha's, waiting
            mark = marker()
            r = stack.execute({"code": with_args(ONESHOT, marker=mark, seen=seen)}, key=key)
            body = assert_ran(r)
            assert body["result"]["success"] is True, describe(r)
            out = json.loads(body["result"]["output"].strip().splitlines()[-1])
            assert out["found"] == [], "call %d of %s (%s) found %r" % (
                i + 1, project_name, body["sandboxId"], out["found"])
            assert out["id"] == body["sandboxId"] and out["id"] not in ids, (out, ids)
            assert body["result"]["metadata"]["projectId"] == project_name
            assert containers.setdefault(project_name, out["container"]) == out["container"], \
                "call %d of %s ran in another container" % (i + 1, project_name)
            ids.add(out["id"])
            seen.append(mark)
            calls += 1
            taken = provider_pool(stack)["recycledTaken"] - before["recycledTaken"]
            assert taken == (0 if i == 0 else 1), (
                "call %d of %s: recycledTaken +%d" % (i + 1, project_name, taken))
            # The gateway deletes its one-shot sandbox after answering; wait
            # for the provider to have scrubbed it.
            deadline = time.monotonic() + RECYCLE_TIMEOUT
            while True:
                now = provider_pool(stack)
                if now["scrubs"] + now["scrubFailures"] >= start["scrubs"] + calls and \
                        now["scrubbing"] == 0:
                    break
                assert time.monotonic() < deadline, (start, now, stack.log_tails())
                time.sleep(0.05)
            assert now["scrubFailures"] == start["scrubFailures"], now
    end = provider_pool(stack)
    assert end["recycledTaken"] - start["recycledTaken"] == 10, (start, end)
    assert containers["alpha"] != containers["beta"], containers
