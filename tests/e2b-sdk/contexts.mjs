// E2B's own JavaScript SDK (@e2b/code-interpreter) against iris-sandboxd:
// the contexts a sandbox starts with, JavaScript import declarations,
// TypeScript, and a context whose cwd is /root.
//
// Run by tests/integration/test_kernel_js.py with E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY set (as compat.mjs).  Prints one JSON line
// per check: {"check", "ok", "ms", "detail"|"error"}, then
// {"done": true, "passed": N, "failed": M} (checks.mjs).
import { Sandbox } from '@e2b/code-interpreter'

import { assert, checks } from './checks.mjs'

const { check, done } = checks(Number(process.env.CONTEXTS_CHECK_TIMEOUT_MS || 90000))

const sbx = await Sandbox.create({ timeoutMs: 180_000 })
let listed = []

await check('default contexts listed at start', async () => {
  listed = await sbx.listCodeContexts()
  const langs = listed.map((c) => c.language)
  assert(langs[0] === 'python' && langs[1] === 'javascript', `languages ${langs}`)
  assert(listed.every((c) => c.cwd === '/home/user'), `cwds ${listed.map((c) => c.cwd)}`)
  return listed
})

await check('default javascript context runs imports', async () => {
  const ex = await sbx.runCode("\n  import { readFileSync } from 'fs'\n  console.log(typeof readFileSync)\n  ",
    { language: 'js' })
  assert(ex.error === undefined, JSON.stringify(ex.error))
  assert(JSON.stringify(ex.logs.stdout) === '["function\\n"]', JSON.stringify(ex.logs))
  const again = await sbx.runCode('typeof readFileSync', { context: listed[1] })
  assert(again.text === 'function', `in the listed context: ${again.text}`)
})

await check('typescript', async () => {
  const ex = await sbx.runCode('const message: string = "Hello World!"; console.log(message)',
    { language: 'ts' })
  assert(JSON.stringify(ex.logs.stdout) === '["Hello World!\\n"]', JSON.stringify(ex.logs))
  const ctx = await sbx.createCodeContext({ language: 'typescript' })
  assert(ctx.language === 'typescript', `language ${ctx.language}`)
  const cwd = await sbx.runCode('const d: string = process.cwd(); d', { context: ctx })
  assert(cwd.text === '/home/user', `cwd ${cwd.text}`)
})

await check('context with cwd /root', async () => {
  const ctx = await sbx.createCodeContext({ language: 'python', cwd: '/root' })
  const now = await sbx.listCodeContexts()
  const last = now[now.length - 1]
  assert(last.id === ctx.id && last.cwd === '/root' && last.language === 'python',
    JSON.stringify(last))
  const ex = await sbx.runCode("open('made-in-root', 'w').write('x'); import os; os.path.exists('/root/made-in-root')",
    { context: ctx })
  assert(ex.text === 'True', `${ex.text} ${JSON.stringify(ex.error)}`)
})

await check('restart and remove the default javascript context', async () => {
  const js = listed[1]
  await sbx.runCode('let kept = 1', { context: js })
  await sbx.restartCodeContext(js.id)
  const ex = await sbx.runCode('typeof kept', { context: js })
  assert(ex.text === 'undefined', `after restart: ${ex.text}`)
  await sbx.removeCodeContext(js.id)
  const now = await sbx.listCodeContexts()
  assert(!now.some((c) => c.id === js.id), 'still listed')
})

await sbx.kill()
done()
