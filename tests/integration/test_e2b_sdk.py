"""E2B's own JavaScript SDK (npm @e2b/code-interpreter, pinned in
tests/e2b-sdk/package.json and package-lock.json) against iris-sandboxd:
the compatibility check that the daemon speaks E2B's protocol, and that
its kernels answer as E2B's code interpreter does.

tests/e2b-sdk/compat.mjs (the protocol: sandboxes, runs, contexts,
streaming, timeouts) and tests/e2b-sdk/kernels.mjs (what kernels give back:
charts, display(), DataFrames, figures, PIL, plotly, seaborn, IPython
syntax, JavaScript imports, TypeScript, default contexts, per-run UTF-8,
partial lines streamed) and tests/e2b-sdk/files.mjs (envd's files, metrics,
list pages) do the
SDK calls and print one JSON line per check; this test installs the SDK with `npm ci` (only when node_modules is
missing or older than the lock), runs each script against a daemon through
a transparent logging proxy (so that a failure shows exactly which requests
the SDK made and what they got), and asserts every check passed.

A missing npm or an unreachable registry FAILS this test (it is required).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from sandboxd import SRCDIR, LoggingProxy, daemon_fixture

SDK_DIR = SRCDIR / "tests" / "e2b-sdk"
NPM_TIMEOUT = 300
NODE_TIMEOUT = 240

daemon = daemon_fixture(name="daemon", POOL=1)


def lock_digest():
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((SDK_DIR / name).read_bytes())
    return h.hexdigest()


def clean_env():
    """The environment for npm and node: ours, without E2B_/IRIS_ settings
    and proxies that would send 127.0.0.1 elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("E2B_", "IRIS_")) and "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@pytest.fixture(scope="module")
def sdk():
    """tests/e2b-sdk/node_modules, installed by `npm ci` when stale."""
    if os.geteuid() != 0:
        pytest.skip("iris-sandboxd's isolation needs root; this test runs as root in CI")
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.fail("npm and node are required for the E2B SDK compatibility check "
                    "(found npm=%r node=%r); install Node.js >= 18" % (npm, node))
    stamp = SDK_DIR / "node_modules" / ".iris-lock-sha256"
    with open("/tmp/iris-e2b-sdk-npm.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        want = lock_digest()
        ok = (SDK_DIR / "node_modules" / "@e2b" / "code-interpreter" / "package.json").exists()
        if not ok or not stamp.exists() or stamp.read_text().strip() != want:
            t0 = time.monotonic()
            try:
                r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR,
                                   env=clean_env(), capture_output=True, text=True,
                                   timeout=NPM_TIMEOUT)
            except subprocess.TimeoutExpired as e:
                pytest.fail("`npm ci` in %s took over %d s (is the npm registry reachable?)\n%s"
                            % (SDK_DIR, NPM_TIMEOUT, (e.stderr or b"")[-3000:]))
            if r.returncode != 0:
                pytest.fail("`npm ci` in %s failed (exit %d): the E2B SDK could not be "
                            "installed; is the npm registry reachable?\n%s\n%s"
                            % (SDK_DIR, r.returncode, r.stdout[-2000:], r.stderr[-4000:]))
            stamp.write_text(want + "\n")
            print("npm ci took %.1f s" % (time.monotonic() - t0))
    version = json.loads((SDK_DIR / "node_modules" / "@e2b" / "code-interpreter" /
                          "package.json").read_text())["version"]
    pinned = json.loads((SDK_DIR / "package.json").read_text())["dependencies"][
        "@e2b/code-interpreter"]
    assert version == pinned, (version, pinned)
    return node


# What compat.mjs checks, in its order (one pytest test each).
CHECKS = ["create", "runCode keeps state", "stdout", "stderr", "error", "matplotlib png",
          "dataframe html", "javascript", "bash", "createCodeContext", "listCodeContexts",
          "restartCodeContext", "removeCodeContext", "callbacks stream output", "envs per run",
          "execution timeout then usable", "getInfo", "isRunning", "setTimeout", "Sandbox.list",
          "Sandbox.connect", "kill", "killed sandbox refuses runs"]


def wait_pool_ready(daemon):
    """The pool's first sandbox up (see test_pool_hands_out_only_started_sandboxes)."""
    deadline = time.monotonic() + 20
    while "data stack preloaded" not in daemon.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)
    time.sleep(0.3)


def run_script(daemon, node, script, work, timeout=NODE_TIMEOUT):
    """Runs tests/e2b-sdk/<script> once against the daemon, through a
    logging proxy; returns its checks (by name, in order), its closing
    line, exit status, a readable report and the SDK's requests."""
    proxy = LoggingProxy(daemon.port)
    env = clean_env()
    env.update({
        "E2B_API_URL": "http://127.0.0.1:%d" % proxy.port,
        "E2B_SANDBOX_URL": "http://127.0.0.1:%d" % proxy.port,
        "E2B_API_KEY": daemon.key,
        "E2B_DOMAIN": "iris.invalid",        # never a real E2B host, whatever happens
    })
    t0 = time.monotonic()
    try:
        r = subprocess.run([node, script], cwd=SDK_DIR, env=env, capture_output=True,
                           text=True, timeout=timeout)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = "node %s: timed out after %d s" % (script, timeout)
        rc = None
    took = time.monotonic() - t0
    proxy.close()
    (work / "sdk-requests.json").write_text(json.dumps(proxy.entries, indent=1))
    (work / "sdk-output.txt").write_text(out + "\n--- stderr ---\n" + err)

    checks, done = {}, None
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "check" in obj:
            checks[obj["check"]] = obj
        elif obj.get("done"):
            done = obj
    report = "\n".join(
        ["node %s: exit %s in %.1f s (requests: %s)" % (script, rc, took, work / "sdk-requests.json")] +
        ["  %-4s %-45s %6d ms  %s" % ("ok" if c["ok"] else "FAIL", c["check"], c["ms"],
                                       c.get("error", "")) for c in checks.values()] +
        ["--- the SDK's requests (through the logging proxy) ---"] + proxy.summary() +
        ["--- stderr ---", err[-3000:]])
    print(report)
    return {"checks": checks, "done": done, "rc": rc, "report": report,
            "requests": proxy.entries, "script": script}


def assert_check(run, name):
    """The check called name ran in that script and passed (else a failure
    naming it, its error, and the requests that got an error answer)."""
    c = run["checks"].get(name)
    assert c is not None, "%s: check %r did not run\n%s" % (run["script"], name, run["report"])
    if not c["ok"]:
        bad = ["%s %s (%s) -> %s" % (e.get("method"), e.get("path"),
                                    e.get("headers", {}).get("e2b-sandbox-port", "api"),
                                    e.get("status"))
               for e in run["requests"] if (e.get("status") or 999) >= 400]
        pytest.fail("%s: %s: %s\n%s\nrequests answered with an error:\n  %s"
                    % (run["script"], name, c.get("error"), c.get("stack", ""),
                       "\n  ".join(bad)))


def test_sdk_requests_all_routed(script_runs):
    """Every request the SDK made reached a route the daemon has (a 404
    from "no such route" or "Not Found" means the SDK asked for something
    the daemon does not implement)."""
    unrouted = ["%s %s (%s) -> %s" % (e.get("method"), e.get("path"),
                                     e.get("headers", {}).get("e2b-sandbox-port", "api"),
                                     e.get("status"))
                for e in script_runs("compat.mjs")["requests"]
                if e.get("status") in (None, 404, 405, 501)
                and not (e.get("method") == "DELETE" and e.get("path", "").startswith("/sandboxes/"))
                and not (e.get("method") == "GET" and e.get("path", "").startswith("/sandboxes/"))]
    assert not unrouted, "\n".join(unrouted)


# What kernels.mjs checks, in its order: kernels that behave like Jupyter and
# E2B's code interpreter, as the SDK's own result types read them.
KERNEL_CHECKS = [
    "default contexts right after create", "line chart", "scatter chart", "bar chart",
    "pie chart", "box_and_whisker chart", "superchart", "unknown chart",
    "chart scales: dates and log",
    "display of each rich format", "_repr_mimebundle_ and _ipython_display_",
    "dataframe data keeps its index", "cell starting with a newline and indentation",
    "top-level await", "IPython cell magics and shell escapes", "PIL Image.show() and .save()",
    "plotly figure: html and the figure JSON",
    "seaborn plot", "blank figures not returned", "plt.show() then savefig gives one PNG",
    "kernel writes to fd 1 and 2 keep their order",
    "javascript fd writes and inherited child output",
    "javascript import statements", "typescript cell and context",
    "each run decodes its own UTF-8", "non-ASCII output arrives whole in each language",
    "output past the cap is a clean prefix",
    "partial line streamed while the run goes on"]
KERNELS_TIMEOUT = 480


# What files.mjs checks (stage 7 so far: envd's files, metrics, list pages).
FILE_CHECKS = ["create", "files.read of what the code wrote", "files.read as bytes",
               "files.read of a missing file: the SDK's not-found error",
               "files.read of a directory: invalid argument",
               "files.write then pandas reads it", "files.write of bytes and of several files",
               "files.list, exists and getInfo", "files.makeDir, rename and remove",
               "getMetrics", "Sandbox.list pages"]


# Each script, what it checks (in order) and how long it may take.
SCRIPTS = {"compat.mjs": (CHECKS, NODE_TIMEOUT), "kernels.mjs": (KERNEL_CHECKS, KERNELS_TIMEOUT),
           "files.mjs": (FILE_CHECKS, NODE_TIMEOUT)}


@pytest.fixture(scope="module")
def script_runs(daemon, sdk, tmp_path_factory):
    """script -> its run against the daemon through a logging proxy, made
    once, on first use."""
    runs = {}

    def get(script):
        if script not in runs:
            wait_pool_ready(daemon)
            runs[script] = run_script(daemon, sdk, script,
                                      tmp_path_factory.mktemp("e2b-sdk-" + script.split(".")[0]),
                                      timeout=SCRIPTS[script][1])
        return runs[script]
    return get


@pytest.mark.parametrize("script", SCRIPTS)
def test_sdk_script_ran_every_check(script_runs, script):
    run = script_runs(script)
    assert run["done"] is not None, "%s did not finish\n%s" % (script, run["report"])
    assert list(run["checks"]) == SCRIPTS[script][0], run["report"]


@pytest.mark.parametrize("script,name", [(script, name) for script, (names, _) in SCRIPTS.items()
                                         for name in names])
def test_sdk(script_runs, script, name):
    assert_check(script_runs(script), name)
