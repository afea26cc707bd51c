'use strict';
// Iris JavaScript and TypeScript kernel: one persistent `vm` context per
// kernel process.
//
// Contract: docs/sandbox-internals.md.  Started by supervisor.py as
//   node --expose-internals --experimental-vm-modules /opt/iris/kernel.js \
//        <context-id> [javascript|typescript] [<stdout-fd> <stderr-fd>]
// (--expose-internals gives us node's own REPL rewriter for top-level await,
// `internal/repl/await`; --experimental-vm-modules lets a cell's dynamic
// `import()` load modules).  The two fds are the read ends of the pipes the
// supervisor put at fds 1 and 2: what the kernel's children and any other
// fd-level writer put there is read back and sent as stdout/stderr.
//
// Protocol: connect to the kernel socket (IRIS_KERNEL_SOCK, default
// /run/iris/kernel.sock), send `hello`, then run `execute` requests strictly
// one at a time, streaming event lines and ending each with end_of_execution.
//
// What user code sees (the context's globals):
//   console (console.log/info/debug/dir/table -> stdout lines,
//            console.error/warn/trace -> stderr lines, formatted by node's
//            own Console, i.e. util.format), process (the real one, whose
//            process.stdout / process.stderr are the kernel's streams),
//   require (node's require, resolving from the kernel's cwd, so builtins
//            and anything in ./node_modules), module, exports,
//   Buffer, timers (setTimeout & co., setImmediate, queueMicrotask),
//   URL, URLSearchParams, TextEncoder/Decoder, AbortController, EventTarget,
//   structuredClone, atob/btoa, performance, fetch & friends, crypto,
//   global (the context's own globalThis).
//
// Output: JavaScript-level writes (console, process.stdout/stderr.write,
// fs.writeSync on fd 1 or 2) go straight to the socket, in order.  Bytes
// written to fds 1/2 by anything else (children with stdio 'inherit', native
// code, fs.write) come through the pipes, read by a worker thread (the main
// thread may be busy, or blocked in execSync while the child fills the
// pipe); before every result, error and end_of_execution, and after every
// synchronous child_process call, the pipes are drained, so what was written
// before comes first.
//
// Semantics:
//   * TypeScript cells are transpiled first (the `typescript` package of
//     /opt/iris/node, transpile only: type errors do not stop the code,
//     syntax errors are the execution's SyntaxError).
//   * Top-level `import` declarations (default, named, namespace, side
//     effect) are loaded before the cell runs, in order, and become `var`
//     bindings of the context (so they persist, and re-running the cell is
//     no redeclaration): CommonJS modules through require (default = the
//     module's `default` if it is marked __esModule, else module.exports),
//     ES modules through import().  Found by parsing the cell (acorn);
//     `export` in front of a declaration is dropped.
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
//   * Output produced between executions (timers, background children) is
//     kept (64 KiB at most per thread) and sent at the start of the next
//     execution.

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');
const vm = require('vm');
const childProcess = require('child_process');
const { EventEmitter } = require('events');
const { StringDecoder } = require('string_decoder');
const { pathToFileURL } = require('url');
const { Worker } = require('worker_threads');
const Module = require('module');

const CONTEXT_ID = process.argv[2] || 'default';
const LANGUAGE = process.argv[3] === 'typescript' ? 'typescript' : 'javascript';
const PIPE_FDS = [Number(process.argv[4]), Number(process.argv[5])];
const LOG_FD = Number.isInteger(Number(process.argv[6])) && process.argv[6] ? Number(process.argv[6]) : 2;
const SOCK_PATH = process.env.IRIS_KERNEL_SOCK || '/run/iris/kernel.sock';
const KERNEL_FILE = __filename;
const DEPS_DIR = path.join(__dirname, 'node');
const MAX_TEXT = 65536;
const MAX_IDLE = 65536;
const MAX_REQUEST = 64 * 1024 * 1024;
const DRAIN_WAIT_MS = 2000;

let processTopLevelAwait = null;
try {
  processTopLevelAwait = require('internal/repl/await').processTopLevelAwait;
} catch (_) {
  processTopLevelAwait = null;
}

const realWriteSync = fs.writeSync;

function log(msg) {
  try { realWriteSync(LOG_FD, `iris-kernel-js: ${msg}\n`); } catch (_) { /* ignore */ }
}

// The kernel's own npm packages (sandbox/node, installed from its lockfile).
const depsRequire = Module.createRequire(path.join(DEPS_DIR, 'package.json'));
const deps = {};
function dep(name) {
  if (!deps[name]) {
    try {
      deps[name] = depsRequire(name);
    } catch (e) {
      throw new Error(`the kernel's ${name} package is missing from ${DEPS_DIR} ` +
                      '(sandbox/node/install puts it there)');
    }
  }
  return deps[name];
}

// ---------------------------------------------------------------------------
// Writing to the socket: synchronous, whole lines, bounded memory, shared
// with the pipe reader (a worker thread) under one lock.
//
// Lines are written with fs.writeSync on the socket's fd (retrying on EAGAIN),
// so output from a synchronous loop goes out live and back-pressure blocks
// the writer instead of growing a queue.  If a SIGINT terminates user code in
// the middle of a write, the lock is still ours: the next line starts with a
// newline (the torn line stays a separate, invalid, skipped line) and the
// lock is given back after the execution (recoverLock).

// Shared words: the socket lock, "an execution is running", the last drain
// the reader finished.
const SHARED_LOCK = 0;
const SHARED_ACTIVE = 1;
const SHARED_DRAINED = 2;
const shared = new Int32Array(new SharedArrayBuffer(16));
let sockFd = -1;
let lockHeld = false;
let torn = false;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const NL = Buffer.from('\n');

function lock() {
  while (Atomics.compareExchange(shared, SHARED_LOCK, 0, 1) !== 0) {
    Atomics.wait(shared, SHARED_LOCK, 1, 50);
  }
  lockHeld = true;
}

function unlock() {
  lockHeld = false;
  Atomics.store(shared, SHARED_LOCK, 0);
  Atomics.notify(shared, SHARED_LOCK, 1);
}

// After user code was cut short (SIGINT) inside send(): end the torn line
// and give the lock back.
function recoverLock() {
  if (!lockHeld) return;
  torn = true;
  unlock();
}

function writeRaw(buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += realWriteSync(sockFd, buf, off, buf.length - off);
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
  lock();
  if (torn) writeRaw(NL);
  torn = false;
  writeRaw(line);
  unlock();
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

// Bytes written by JavaScript (Buffers): decoded per stream, so a character
// split across writes stays whole; what is left at the end of an execution
// is flushed (as U+FFFD), never carried into the next one.
const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

function emitBytes(name, bytes) {
  emitStream(name, decoders[name].write(bytes));
}

function flushDecoders() {
  for (const name of ['stdout', 'stderr']) emitStream(name, decoders[name].end());
}

function makeStream(name, fd) {
  const s = new EventEmitter();
  s.write = function write(chunk, encoding, cb) {
    if (typeof chunk === 'string') {
      emitBytes(name, Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8'));
    } else if (chunk instanceof Uint8Array) {
      emitBytes(name, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } else {
      emitStream(name, String(chunk));
    }
    if (typeof encoding === 'function') encoding();
    else if (typeof cb === 'function') cb();
    return true;
  };
  s.end = function end(chunk, encoding, cb) {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') s.write(chunk, encoding);
    const done = [chunk, encoding, cb].find((f) => typeof f === 'function');
    if (done) done();
    return s;
  };
  s.fd = fd;
  s.isTTY = false;
  s.writable = true;
  return s;
}

const outStream = makeStream('stdout', 1);
const errStream = makeStream('stderr', 2);
const userConsole = new console.Console({ stdout: outStream, stderr: errStream, colorMode: false });
// Replaced, not patched: node's own stream for fd 1/2 would make the pipe
// non-blocking for every child that inherits it.
Object.defineProperty(process, 'stdout', { configurable: true, enumerable: true, get: () => outStream });
Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get: () => errStream });

// fs.writeSync(1 | 2, ...) from JavaScript: straight to the socket, in order
// with console output.
function writeSyncBytes(buffer, a, b, c) {
  if (typeof buffer === 'string') {
    const encoding = typeof b === 'string' ? b : (typeof a === 'string' ? a : 'utf8');
    return Buffer.from(buffer, encoding);
  }
  if (!ArrayBuffer.isView(buffer)) return null;
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let offset = 0;
  let length;
  if (a !== null && typeof a === 'object') {
    offset = a.offset || 0;
    length = a.length;
  } else {
    offset = a || 0;
    length = b;
  }
  if (typeof length !== 'number') length = bytes.length - offset;
  return bytes.subarray(offset, offset + length);
}

fs.writeSync = function writeSync(fd, buffer, a, b, c) {
  if (fd === 1 || fd === 2) {
    const bytes = writeSyncBytes(buffer, a, b, c);
    if (bytes !== null) {
      emitBytes(fd === 1 ? 'stdout' : 'stderr', bytes);
      return bytes.length;
    }
  }
  return realWriteSync.apply(fs, arguments);
};

// ---------------------------------------------------------------------------
// The pipes at fds 1/2: read by a worker thread, which sends what it reads as
// stdout/stderr lines (between executions: keeps up to 64 KiB for the next
// one).  drain() returns once everything written to the pipes before the
// call has been sent.

const READER = `
'use strict';
const fs = require('fs');
const net = require('net');
const { StringDecoder } = require('string_decoder');
const { parentPort, workerData } = require('worker_threads');
const shared = new Int32Array(workerData.shared);
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const names = ['stdout', 'stderr'];
const decoders = [new StringDecoder('utf8'), new StringDecoder('utf8')];
const idle = [];
let idleSize = 0;
let sockFd = -1;

function lock() {
  while (Atomics.compareExchange(shared, 0, 0, 1) !== 0) Atomics.wait(shared, 0, 1, 50);
}
function unlock() {
  Atomics.store(shared, 0, 0);
  Atomics.notify(shared, 0, 1);
}
function writeRaw(buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(sockFd, buf, off, buf.length - off);
    } catch (e) {
      if (e && (e.code === 'EAGAIN' || e.code === 'EWOULDBLOCK' || e.code === 'EINTR')) {
        Atomics.wait(sleepCell, 0, 0, 2);
        continue;
      }
      return;
    }
  }
}
function line(name, text) {
  return Buffer.from(JSON.stringify({ type: name, text: text.toWellFormed ? text.toWellFormed() : text,
                                      timestamp: new Date().toISOString() }) + '\\n', 'utf8');
}
// With the lock held.
function sendText(name, text) {
  for (let i = 0; i < text.length;) {
    let j = Math.min(i + ${MAX_TEXT}, text.length);
    const c = text.charCodeAt(j - 1);
    if (j < text.length && j - i > 1 && c >= 0xd800 && c <= 0xdbff) j--;
    writeRaw(line(name, text.slice(i, j)));
    i = j;
  }
}
function emit(i, text) {
  if (!text) return;
  lock();
  try {
    if (Atomics.load(shared, 1) && sockFd >= 0) {
      for (const [n, t] of idle.splice(0, idle.length)) sendText(n, t);
      idleSize = 0;
      sendText(names[i], text);
    } else if (idleSize < ${MAX_IDLE}) {
      const t = text.slice(0, ${MAX_IDLE} - idleSize);
      idle.push([names[i], t]);
      idleSize += t.length;
    }
  } finally {
    unlock();
  }
}
const fds = workerData.fds;
for (let i = 0; i < 2; i++) {
  const s = new net.Socket({ fd: fds[i], readable: true, writable: false });
  s.on('data', (d) => emit(i, decoders[i].write(d)));
  s.on('error', () => {});
}
const chunk = Buffer.alloc(65536);
function drain(final) {
  for (let i = 0; i < 2; i++) {
    for (;;) {
      let n = 0;
      try {
        n = fs.readSync(fds[i], chunk, 0, chunk.length, null);
      } catch (e) {
        break;                          // EAGAIN: empty
      }
      if (n <= 0) break;
      emit(i, decoders[i].write(chunk.subarray(0, n)));
    }
    if (final) emit(i, decoders[i].end());
  }
  lock();
  try {
    if (Atomics.load(shared, 1) && sockFd >= 0) {
      for (const [n, t] of idle.splice(0, idle.length)) sendText(n, t);
      idleSize = 0;
    }
  } finally {
    unlock();
  }
}
parentPort.postMessage({ ready: true });
parentPort.on('message', (m) => {
  if (m.sockFd !== undefined) sockFd = m.sockFd;
  if (m.drain !== undefined) {
    try { drain(m.final); } finally {
      Atomics.store(shared, 2, m.drain);
      Atomics.notify(shared, 2);
    }
  }
});
`;

let reader = null;
let drainSeq = 0;

// Resolves once the reader runs (or there is none): the kernel says hello
// only then, so the first execution does not wait for the thread to start.
function startReader() {
  if (!PIPE_FDS.every((fd) => Number.isInteger(fd) && fd > 2)) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      reader = new Worker(READER, { eval: true, workerData: { shared: shared.buffer, fds: PIPE_FDS } });
      reader.once('message', resolve);
      reader.on('error', (e) => { log(`output reader: ${e && e.stack}`); reader = null; resolve(); });
      reader.unref();
    } catch (e) {
      log(`no output reader: ${e && e.message}`);
      reader = null;
      resolve();
    }
  });
}

function drain(final) {
  if (final) flushDecoders();
  if (!reader) return;
  const seq = ++drainSeq;
  reader.postMessage({ drain: seq, final: !!final });
  const deadline = Date.now() + DRAIN_WAIT_MS;
  for (;;) {
    const got = Atomics.load(shared, SHARED_DRAINED);
    if (got >= seq) return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    Atomics.wait(shared, SHARED_DRAINED, got, left);
  }
}

function setActive(on) {
  lock();
  Atomics.store(shared, SHARED_ACTIVE, on ? 1 : 0);
  unlock();
}

// A synchronous child's inherited output is in the pipes when the call
// returns: drained then, so it comes before whatever the cell prints next.
for (const name of ['execSync', 'execFileSync', 'spawnSync']) {
  const orig = childProcess[name];
  childProcess[name] = function syncChild(...args) {
    try {
      return orig.apply(this, args);
    } finally {
      drain(false);
    }
  };
}

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
// Modules: static import declarations and dynamic import().

// Where import() finds a specifier: builtins by name, paths from the cwd,
// packages as require would find them (from the cwd's node_modules).
function importTarget(spec) {
  if (Module.isBuiltin(spec) || /^[a-z][a-z0-9+.-]*:/i.test(spec)) return spec;
  if (spec.startsWith('.') || spec.startsWith('/')) return pathToFileURL(path.resolve(process.cwd(), spec)).href;
  try {
    return pathToFileURL(userRequire.resolve(spec)).href;
  } catch (_) {
    return spec;
  }
}

function importDynamically(spec) {
  return import(importTarget(String(spec)));
}

// One module of an import declaration: CommonJS through require (the same
// instance require gives), ES modules through import().
async function loadModule(spec) {
  try {
    return { esm: false, mod: userRequire(spec) };
  } catch (e) {
    if (!e || e.code !== 'ERR_REQUIRE_ESM') throw e;
  }
  return { esm: true, mod: await importDynamically(spec) };
}

function importedValue(m, name) {
  const mod = m.mod;
  if (m.esm) return name === '*' ? mod : mod[name];
  const marked = mod !== null && (typeof mod === 'object' || typeof mod === 'function') && mod.__esModule;
  if (name === 'default') return marked ? mod.default : mod;
  if (name === '*') return marked ? mod : Object.assign({}, mod, { default: mod });
  return mod === null || mod === undefined ? undefined : mod[name];
}

let cellImports = [];
Object.defineProperty(sandbox.global, '__irisImport', {
  value: (i, name) => importedValue(cellImports[i], name),
  enumerable: false, writable: false, configurable: false,
});

function sameLines(original, replacement) {
  const n = (original.match(/\n/g) || []).length;
  return replacement + '\n'.repeat(n);
}

// Rewrites a cell's top-level import declarations into `var` bindings of
// the modules, loaded here, in order.  Code that does not parse is left as
// it is (running it gives node's own SyntaxError).
async function rewriteImports(code) {
  cellImports = [];
  if (!/\b(import|export)\b/.test(code)) return code;
  let ast;
  try {
    ast = dep('acorn').parse(code, {
      ecmaVersion: 'latest', sourceType: 'script', allowImportExportEverywhere: true,
      allowAwaitOutsideFunction: true, allowHashBang: true,
    });
  } catch (e) {
    if (e && /is missing from/.test(e.message)) throw e;
    return code;
  }
  const edits = [];
  for (const node of ast.body) {
    if (node.type === 'ImportDeclaration') {
      const i = cellImports.length;
      cellImports.push(await loadModule(node.source.value));
      const parts = node.specifiers.map((sp) => {
        const name = sp.type === 'ImportDefaultSpecifier' ? 'default' :
          sp.type === 'ImportNamespaceSpecifier' ? '*' :
            (sp.imported.type === 'Identifier' ? sp.imported.name : sp.imported.value);
        return `${sp.local.name} = __irisImport(${i}, ${JSON.stringify(name)})`;
      });
      edits.push([node.start, node.end, parts.length ? `var ${parts.join(', ')};` : ';']);
    } else if (node.type === 'ExportNamedDeclaration' && node.declaration) {
      edits.push([node.start, node.declaration.start, '']);
    } else if (node.type === 'ExportNamedDeclaration' && !node.source && node.specifiers.length === 0) {
      edits.push([node.start, node.end, ';']);        // `export {}`
    }
  }
  for (let k = edits.length - 1; k >= 0; k--) {
    const [a, b, text] = edits[k];
    code = code.slice(0, a) + sameLines(code.slice(a, b), text) + code.slice(b);
  }
  return code;
}

// ---------------------------------------------------------------------------
// TypeScript: transpiled only (no type check).  Each cell's source and line
// map are kept (16 MiB of sources at most, the oldest dropped first), so an
// error's traceback names lines and columns of the TypeScript, even for a
// function of an earlier cell.

const MAX_TS_SOURCES = 16 << 20;
const tsCells = new Map();      // n -> { lines, map: [[genCol, line, col], ...] per line }
let tsSourceSize = 0;

function remember(n, code, sourceMapText, shift) {
  const ts = dep('typescript');
  const map = [];
  const it = ts.decodeMappings(JSON.parse(sourceMapText).mappings);
  for (let r = it.next(); !r.done; r = it.next()) {
    const m = r.value;
    const line = m.generatedLine - shift;
    if (line < 0 || m.sourceLine === undefined) continue;
    (map[line] = map[line] || []).push([m.generatedCharacter, m.sourceLine, m.sourceCharacter]);
  }
  tsCells.set(n, { lines: code.split('\n'), map, size: code.length });
  tsSourceSize += code.length;
  for (const [k, cell] of tsCells) {
    if (tsSourceSize <= MAX_TS_SOURCES || k === n) break;
    tsCells.delete(k);
    tsSourceSize -= cell.size;
  }
}

// Line and column (1-based) of the TypeScript of cell n for those of the
// JavaScript that ran; null if unknown.
function sourcePosition(n, line, col) {
  const cell = tsCells.get(n);
  const row = cell && cell.map[line - 1];
  if (!row || row.length === 0) return null;
  let best = row[0];
  for (const m of row) if (m[0] <= col - 1) best = m;
  return [best[1] + 1, best[2] + 1];
}

function tsTraceback(tb) {
  const header = /^<cell-(\d+)>:(\d+)\n[^\n]*\n[^\n]*\n\n/.exec(tb);
  if (header) {
    const pos = sourcePosition(Number(header[1]), Number(header[2]), 1);
    const cell = tsCells.get(Number(header[1]));
    if (pos && cell) {
      tb = `<cell-${header[1]}>:${pos[0]}\n${cell.lines[pos[0] - 1]}\n\n${tb.slice(header[0].length)}`;
    }
  }
  return tb.replace(/<cell-(\d+)>:(\d+):(\d+)/g, (all, n, line, col) => {
    const pos = sourcePosition(Number(n), Number(line), Number(col));
    return pos ? `<cell-${n}>:${pos[0]}:${pos[1]}` : all;
  });
}

function transpile(code, n) {
  const ts = dep('typescript');
  const out = ts.transpileModule(code, {
    fileName: `cell-${n}.ts`,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      verbatimModuleSyntax: true,    // keep imports a later cell may use
      sourceMap: true,
    },
  });
  const errors = (out.diagnostics || []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const d = errors[0];
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    let where = '';
    if (d.file && typeof d.start === 'number') {
      const lc = d.file.getLineAndCharacterOfPosition(d.start);
      where = ` (${lc.line + 1}:${lc.character + 1})`;
    }
    const err = new SyntaxError(`${text}${where}`);
    err.stack = `SyntaxError: TS${d.code}: ${text}\n    at <cell-${n}>${where}`;
    throw err;
  }
  let js = out.outputText.replace(/\n\/\/# sourceMappingURL=[^\n]*\s*$/, '\n');
  let shift = 0;
  // ES modules are strict, and TypeScript says so; a cell is a script.
  if (js.startsWith('"use strict";\n') && !/^\s*(['"])use strict\1/.test(code)) {
    js = js.slice('"use strict";\n'.length);
    shift = 1;
  }
  if (n > 0 && out.sourceMapText) {
    try { remember(n, code, out.sourceMapText, shift); } catch (e) { log(`no line map: ${e && e.message}`); }
  }
  return js;
}

// As node's REPL (and runCode for JavaScript): `{ a: 1 }` is an object
// literal, not a block.
function transpileCell(code, n) {
  if (/^\s*\{/.test(code) && !/;\s*$/.test(code)) {
    try { return transpile(`(${code}\n)`, n); } catch (_) { /* a block after all */ }
  }
  return transpile(code, n);
}

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
    .filter((l) => !(l.includes(KERNEL_FILE) || l.includes(DEPS_DIR) ||
                     /\((node:|internal\/)/.test(l) || /^\s+at (node:|internal\/)/.test(l)))
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
      if (LANGUAGE === 'typescript') tb = tsTraceback(tb);
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
  drain(false);
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

function compile(code, filename) {
  return new vm.Script(code, { filename, importModuleDynamically: importDynamically });
}

function runCode(code, n) {
  const filename = `<cell-${n}>`;
  const opts = { breakOnSigint: true, displayErrors: true };
  let rewritten = null;
  if (/\bawait\b/.test(code)) {
    if (processTopLevelAwait) {
      try { rewritten = processTopLevelAwait(code); } catch (_) { rewritten = null; }
    } else {
      try {
        compile(code, filename);
      } catch (e) {
        if (e && e.name === 'SyntaxError') rewritten = `(async () => {\n${code}\n})()`;
      }
    }
  }
  if (rewritten === null) {
    let script = null;
    // Like node's REPL: `{ a: 1 }` is an object literal, not a block.
    if (/^\s*\{/.test(code) && !/;\s*$/.test(code)) {
      try { script = compile(`(${code}\n)`, filename); } catch (_) { script = null; }
    }
    if (script === null) script = compile(code, filename);
    return { async: false, value: script.runInContext(context, opts) };
  }
  const script = compile(rewritten, filename);
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
  // Jupyter's store_history: false for a caller's own helper run, which
  // the execution count leaves out.
  if (req.store_history !== false) count += 1;
  const state = { n: count, errorSent: false, abort: null };
  send({ type: 'number_of_executions', execution_count: state.n });
  current = state;
  setActive(true);
  const pending = idle.splice(0, idle.length);
  idleSize = 0;
  for (const [name, text] of pending) emitStream(name, text);
  flushDecoders();                // what was left between executions
  drain(false);
  const saved = applyEnv(req.env_vars);
  try {
    let hasValue = false;
    let value;
    let code = req.code;
    if (LANGUAGE === 'typescript') code = transpileCell(code, state.n);
    code = await rewriteImports(code);
    const r = runCode(code, state.n);
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
      drain(true);
      send({ type: 'result', text: formatValue(value), is_main_result: true, extra: {} });
    }
  } catch (e) {
    recoverLock();
    sendError(e);
  } finally {
    recoverLock();
    state.abort = null;
    restoreEnv(saved);
    drain(true);
    current = null;
    lock();
    Atomics.store(shared, SHARED_ACTIVE, 0);
    if (torn) writeRaw(NL);
    torn = false;
    writeRaw(Buffer.from('{"type":"end_of_execution"}\n'));
    unlock();
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

// TypeScript is loaded (and its transpiler warmed) before hello, so the
// first cell does not wait for it.
// Its version is process.versions.typescript, as node's own are there
// (what GET /api/iris/runtimes reports).
if (LANGUAGE === 'typescript') {
  try { transpile('const warm: number = 1\n', 0); } catch (e) { log(e.message); }
  try {
    Object.defineProperty(process.versions, 'typescript',
                          { value: dep('typescript').version, enumerable: true });
  } catch (e) { log(e.message); }
}
const readerUp = startReader();

const sock = net.createConnection(SOCK_PATH);
sock.on('connect', () => {
  sockFd = sock._handle && sock._handle.fd;
  if (typeof sockFd !== 'number' || sockFd < 0) {
    log('cannot get the socket fd');
    process.exit(1);
  }
  readerUp.then(() => {
    if (reader) reader.postMessage({ sockFd });
    send({ type: 'hello', context: CONTEXT_ID, language: LANGUAGE, pid: process.pid });
  });
});
sock.on('data', onData);
sock.on('end', () => process.exit(0));
sock.on('close', () => process.exit(0));
sock.on('error', (e) => { log(`socket: ${e.message}`); process.exit(1); });
