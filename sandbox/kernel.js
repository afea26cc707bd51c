'use strict';
// Iris JavaScript kernel: one persistent `vm` context per kernel process.
//
// Contract: docs/sandbox-internals.md.  Started by supervisor.py as
//   node --expose-internals /opt/iris/kernel.js <context-id>
// (--expose-internals gives us node's own REPL rewriter for top-level await,
// `internal/repl/await`; without it top-level await still runs, see below).
//
// Protocol: connect to the kernel socket (IRIS_KERNEL_SOCK, default
// /run/iris/kernel.sock), send `hello`, then run `execute` requests strictly
// one at a time, streaming event lines and ending each with end_of_execution.
//
// What user code sees (the context's globals):
//   console (console.log/info/debug/dir/table -> stdout lines,
//            console.error/warn/trace -> stderr lines, formatted by node's
//            own Console, i.e. util.format), process (the real one;
//            process.stdout.write / process.stderr.write are captured too),
//   require (node's require, resolving from the kernel's cwd, so builtins
//            and anything in ./node_modules), module, exports,
//   Buffer, timers (setTimeout & co., setImmediate, queueMicrotask),
//   URL, URLSearchParams, TextEncoder/Decoder, AbortController, EventTarget,
//   structuredClone, atob/btoa, performance, fetch & friends, crypto,
//   global (the context's own globalThis).
// Output of child processes spawned with stdio 'inherit' is not captured
// (the kernel's fd 1 is /dev/null; fd 2 is the sandbox log).
//
// Semantics:
//   * Code without top-level `await` runs as a vm.Script: the result is the
//     script's completion value (the value of the last expression statement),
//     top-level let/const/class/function persist natively in the context
//     (and, as in node's REPL, re-declaring a let/const is a SyntaxError).
//   * Code with top-level `await` is rewritten by node's REPL rewriter: the
//     code runs in an async IIFE; top-level declarations are hoisted out of it
//     (var/function -> var, let/const/class -> let at script level, assigned
//     inside), so they persist like in the synchronous case; the value of a
//     final expression statement is returned.  Limits: the hoisted `let` of
//     an already declared name is a redeclaration error, as in the REPL; if
//     the rewriter is unavailable the code runs in a plain async IIFE (no
//     value, declarations local to that execution).
//   * SIGINT: synchronous code is interrupted (vm breakOnSigint); an
//     execution waiting on a promise is abandoned (its continuation may still
//     run later, in the background).  A continuation that busy-loops after an
//     `await` cannot be interrupted (node has no way to).
//   * An uncaught exception or unhandled rejection during an execution is the
//     execution's error (the first one only); between executions it is shown
//     on stderr at the next execution.
//   * Output produced between executions (timers) is kept (64 KiB at most)
//     and sent at the start of the next execution.

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');
const vm = require('vm');
const { EventEmitter } = require('events');
const Module = require('module');

const CONTEXT_ID = process.argv[2] || 'default';
const SOCK_PATH = process.env.IRIS_KERNEL_SOCK || '/run/iris/kernel.sock';
const KERNEL_FILE = __filename;
const MAX_TEXT = 65536;
const MAX_IDLE = 65536;
const MAX_REQUEST = 64 * 1024 * 1024;

let processTopLevelAwait = null;
try {
  processTopLevelAwait = require('internal/repl/await').processTopLevelAwait;
} catch (_) {
  processTopLevelAwait = null;
}

function log(msg) {
  try { fs.writeSync(2, `iris-kernel-js: ${msg}\n`); } catch (_) { /* ignore */ }
}

// ---------------------------------------------------------------------------
// Writing to the socket: synchronous, whole lines, bounded memory.
//
// Lines are written with fs.writeSync on the socket's fd (retrying on EAGAIN),
// so output from a synchronous loop goes out live and back-pressure blocks
// the writer instead of growing a queue.  If a SIGINT terminates user code in
// the middle of a write, the next line starts with a newline so the torn line
// stays a separate (invalid, skipped) line.

let sockFd = -1;
let midLine = false;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const NL = Buffer.from('\n');

function writeRaw(buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(sockFd, buf, off, buf.length - off);
    } catch (e) {
      if (e && (e.code === 'EAGAIN' || e.code === 'EWOULDBLOCK')) {
        Atomics.wait(sleepCell, 0, 0, 2);
        continue;
      }
      if (e && e.code === 'EINTR') continue;
      process.exit(0);          // the daemon is gone
    }
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
function wellFormed(s) {
  if (typeof s.toWellFormed === 'function') return s.toWellFormed();
  return s.replace(LONE_SURROGATE, '\uFFFD');
}

function replacer(_key, value) {
  if (typeof value === 'string') return wellFormed(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function send(obj) {
  const line = Buffer.from(JSON.stringify(obj, replacer) + '\n', 'utf8');
  if (midLine) writeRaw(NL);
  midLine = true;
  writeRaw(line);
  midLine = false;
}

// ---------------------------------------------------------------------------
// Output streams.

let current = null;             // the running execution, or null
const idle = [];                // [name, text] produced between executions
let idleSize = 0;

function isHighSurrogate(c) { return c >= 0xd800 && c <= 0xdbff; }

function emitStream(name, text) {
  if (typeof text !== 'string') text = String(text);
  if (text.length === 0) return;
  if (current) {
    for (let i = 0; i < text.length;) {
      let j = Math.min(i + MAX_TEXT, text.length);
      if (j < text.length && j - i > 1 && isHighSurrogate(text.charCodeAt(j - 1))) j--;
      send({ type: name, text: text.slice(i, j), timestamp: new Date().toISOString() });
      i = j;
    }
  } else if (idleSize < MAX_IDLE) {
    const t = text.slice(0, MAX_IDLE - idleSize);
    idle.push([name, t]);
    idleSize += t.length;
  }
}

function makeStream(name) {
  const s = new EventEmitter();
  s.write = function write(chunk, encoding, cb) {
    let text;
    if (typeof chunk === 'string') text = chunk;
    else if (chunk instanceof Uint8Array) text = Buffer.from(chunk).toString('utf8');
    else text = String(chunk);
    emitStream(name, text);
    if (typeof encoding === 'function') encoding();
    else if (typeof cb === 'function') cb();
    return true;
  };
  s.isTTY = false;
  s.writable = true;
  return s;
}

const outStream = makeStream('stdout');
const errStream = makeStream('stderr');
const userConsole = new console.Console({ stdout: outStream, stderr: errStream, colorMode: false });
process.stdout.write = outStream.write;
process.stderr.write = errStream.write;

// ---------------------------------------------------------------------------
// The context.

const userRequire = Module.createRequire(path.join(process.cwd(), '[iris-repl].js'));
const userModule = { exports: {}, require: userRequire, id: '.', filename: null, loaded: false };
const sandbox = {
  console: userConsole,
  process,
  require: userRequire,
  module: userModule,
  exports: userModule.exports,
};
for (const name of [
  'Buffer', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
  'setImmediate', 'clearImmediate', 'queueMicrotask', 'structuredClone',
  'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'AbortController',
  'AbortSignal', 'EventTarget', 'Event', 'MessageChannel', 'MessagePort',
  'MessageEvent', 'BroadcastChannel', 'Blob', 'atob', 'btoa', 'performance',
  'fetch', 'Headers', 'Request', 'Response', 'FormData', 'crypto',
]) {
  try {
    if (typeof globalThis[name] !== 'undefined') sandbox[name] = globalThis[name];
  } catch (_) { /* some getters throw on old nodes */ }
}
const context = vm.createContext(sandbox, { name: `iris:${CONTEXT_ID}` });
sandbox.global = vm.runInContext('globalThis', context);

// ---------------------------------------------------------------------------
// Results and errors.

function formatValue(value) {
  if (typeof value === 'string') return value;
  try {
    return util.inspect(value, { colors: false });
  } catch (e) {
    return `[uninspectable value: ${e && e.message}]`;
  }
}

function cleanStack(stack) {
  // Drop node's "file:line / source / caret" decoration when it points into
  // node or the kernel rather than at the user's cell.
  const header = /^([^\n]*):\d+\n[^\n]*\n[^\n]*\n\n/.exec(stack);
  if (header && !header[1].startsWith('<cell-')) stack = stack.slice(header[0].length);
  return stack
    .split('\n')
    .filter((l) => !(l.includes(KERNEL_FILE) || /\((node:|internal\/)/.test(l) ||
                     /^\s+at (node:|internal\/)/.test(l)))
    .join('\n');
}

function errorLine(e) {
  let name = 'Error';
  let value = '';
  let tb = '';
  try {
    if (e !== null && (typeof e === 'object' || typeof e === 'function') &&
        typeof e.message === 'string') {
      name = String(e.name || (e.constructor && e.constructor.name) || 'Error');
      value = e.message;
      tb = cleanStack(typeof e.stack === 'string' ? e.stack : `${name}: ${value}`);
    } else {
      name = 'Uncaught';
      value = formatValue(e);
      tb = `Uncaught ${value}`;
    }
  } catch (err) {
    name = 'Error';
    value = '[error could not be formatted]';
  }
  return { type: 'error', name, value, traceback: tb };
}

function sendError(e) {
  if (!current || current.errorSent) return;
  current.errorSent = true;
  send(errorLine(e));
}

function backgroundError(kind, e) {
  if (current) {
    sendError(e);
  } else {
    const line = errorLine(e);
    emitStream('stderr', `${kind} between executions: ${line.traceback || line.value}\n`);
  }
}

process.on('uncaughtException', (e) => backgroundError('Uncaught exception', e));
process.on('unhandledRejection', (e) => backgroundError('Unhandled rejection', e));

function interruptedError() {
  const err = new Error('Script execution was interrupted by `SIGINT`');
  err.code = 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
  err.stack = 'Error [ERR_SCRIPT_EXECUTION_INTERRUPTED]: Script execution was interrupted by `SIGINT`';
  return err;
}

// SIGINT outside synchronous user code: abandon a waiting execution;
// between executions: ignored.  (During vm runs breakOnSigint takes over.)
process.on('SIGINT', () => {
  if (current && current.abort) current.abort(interruptedError());
});

// ---------------------------------------------------------------------------
// Running code.

function runCode(code, n) {
  const filename = `<cell-${n}>`;
  const opts = { breakOnSigint: true, displayErrors: true };
  let rewritten = null;
  if (/\bawait\b/.test(code)) {
    if (processTopLevelAwait) {
      try { rewritten = processTopLevelAwait(code); } catch (_) { rewritten = null; }
    } else {
      try {
        new vm.Script(code, { filename });        // eslint-disable-line no-new
      } catch (e) {
        if (e && e.name === 'SyntaxError') rewritten = `(async () => {\n${code}\n})()`;
      }
    }
  }
  if (rewritten === null) {
    let script = null;
    // Like node's REPL: `{ a: 1 }` is an object literal, not a block.
    if (/^\s*\{/.test(code) && !/;\s*$/.test(code)) {
      try { script = new vm.Script(`(${code}\n)`, { filename }); } catch (_) { script = null; }
    }
    if (script === null) script = new vm.Script(code, { filename });
    return { async: false, value: script.runInContext(context, opts) };
  }
  const script = new vm.Script(rewritten, { filename });
  return { async: true, promise: script.runInContext(context, opts) };
}

function applyEnv(env) {
  const saved = [];
  if (!env || typeof env !== 'object' || Array.isArray(env)) return saved;
  for (const [k, v] of Object.entries(env)) {
    if (!k || k.includes('=') || k.includes('\0')) continue;
    if (typeof v !== 'string' && typeof v !== 'number') continue;
    const s = String(v);
    if (s.includes('\0')) continue;
    saved.push([k, Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : undefined]);
    process.env[k] = s;
  }
  return saved;
}

function restoreEnv(saved) {
  for (let i = saved.length - 1; i >= 0; i--) {
    const [k, old] = saved[i];
    if (old === undefined) delete process.env[k];
    else process.env[k] = old;
  }
}

let count = 0;

async function execute(req) {
  count += 1;
  const state = { n: count, errorSent: false, abort: null };
  send({ type: 'number_of_executions', execution_count: state.n });
  current = state;
  const pending = idle.splice(0, idle.length);
  idleSize = 0;
  for (const [name, text] of pending) emitStream(name, text);
  const saved = applyEnv(req.env_vars);
  try {
    let hasValue = false;
    let value;
    const r = runCode(req.code, state.n);
    if (r.async) {
      const aborted = new Promise((_, reject) => { state.abort = reject; });
      const wrapped = await Promise.race([r.promise, aborted]);
      if (wrapped !== null && typeof wrapped === 'object' && 'value' in wrapped) {
        hasValue = true;
        value = wrapped.value;
      }
    } else {
      hasValue = true;
      value = r.value;
    }
    if (hasValue && value !== undefined) {
      send({ type: 'result', text: formatValue(value), is_main_result: true, extra: {} });
    }
  } catch (e) {
    sendError(e);
  } finally {
    state.abort = null;
    restoreEnv(saved);
    current = null;
    send({ type: 'end_of_execution' });
  }
}

// ---------------------------------------------------------------------------
// Requests.

const queue = [];
let running = false;

function pump() {
  if (running || queue.length === 0) return;
  running = true;
  const req = queue.shift();
  let p;
  try {
    // Invalid requests still answer in order, like executions.
    if (req.invalid) { badRequest(req.invalid); p = Promise.resolve(); } else p = execute(req);
  } catch (e) {
    p = Promise.resolve();
  }
  p.catch((e) => log(`execute failed: ${e && e.stack}`)).finally(() => {
    running = false;
    setImmediate(pump);
  });
}

function handleLine(line) {
  if (line.length === 0) return;
  let req;
  try {
    req = JSON.parse(line.toString('utf8'));
  } catch (_) {
    log('malformed request line skipped');
    return;
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) return;
  if (req.op === 'execute') {
    if (typeof req.code !== 'string') {
      queue.push({ invalid: '"code" must be a string' });
    } else {
      queue.push(req);
    }
  } else {
    log(`unknown op skipped: ${String(req.op)}`);
    return;
  }
  pump();
}

function badRequest(message) {
  send({ type: 'error', name: 'InvalidRequest', value: message, traceback: '' });
  send({ type: 'end_of_execution' });
}

let rbuf = Buffer.alloc(0);
let skipping = false;

function onData(chunk) {
  rbuf = rbuf.length ? Buffer.concat([rbuf, chunk]) : chunk;
  let start = 0;
  for (;;) {
    const nl = rbuf.indexOf(10, start);
    if (nl < 0) break;
    if (skipping) {
      skipping = false;
      queue.push({ invalid: 'request line too long' });
      pump();
    } else {
      handleLine(rbuf.subarray(start, nl));
    }
    start = nl + 1;
  }
  rbuf = start ? Buffer.from(rbuf.subarray(start)) : rbuf;
  if (rbuf.length > MAX_REQUEST) {
    rbuf = Buffer.alloc(0);
    skipping = true;
  }
}

const sock = net.createConnection(SOCK_PATH);
sock.on('connect', () => {
  sockFd = sock._handle && sock._handle.fd;
  if (typeof sockFd !== 'number' || sockFd < 0) {
    log('cannot get the socket fd');
    process.exit(1);
  }
  send({ type: 'hello', context: CONTEXT_ID, language: 'javascript', pid: process.pid });
});
sock.on('data', onData);
sock.on('end', () => process.exit(0));
sock.on('close', () => process.exit(0));
sock.on('error', (e) => { log(`socket: ${e.message}`); process.exit(1); });
