// The checks' harness of the SDK scripts (compat.mjs, kernels.mjs,
// contexts.mjs): each check runs once, within its time, and prints one JSON
// line {"check", "ok", "ms", "detail"|"error"}; done() prints
// {"done": true, "passed": N, "failed": M} and exits 0 if every check passed.

export function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`)
}

function withTimeout(promise, ms, name) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: no answer in ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

// A harness whose checks each get timeoutMs: { check(name, fn), done() }.
export function checks(timeoutMs) {
  let passed = 0
  let failed = 0
  return {
    async check(name, fn) {
      const t0 = Date.now()
      try {
        const detail = await withTimeout(Promise.resolve().then(fn), timeoutMs, name)
        passed++
        console.log(JSON.stringify({ check: name, ok: true, ms: Date.now() - t0, detail: detail ?? null }))
      } catch (e) {
        failed++
        console.log(JSON.stringify({
          check: name, ok: false, ms: Date.now() - t0,
          error: `${e?.name ?? 'Error'}: ${e?.message ?? e}`,
          stack: String(e?.stack ?? '').split('\n').slice(0, 6).join('\n'),
        }))
      }
    },
    done() {
      console.log(JSON.stringify({ done: true, passed, failed }))
      process.exit(failed === 0 ? 0 : 1)
    },
  }
}
