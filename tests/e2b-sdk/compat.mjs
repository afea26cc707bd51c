// E2B's own JavaScript SDK (@e2b/code-interpreter) against iris-sandboxd.
//
// Run by tests/integration/test_e2b_sdk.py with
//   E2B_API_URL=http://127.0.0.1:PORT  E2B_SANDBOX_URL=http://127.0.0.1:PORT
//   E2B_API_KEY=e2b_...
// Prints one JSON line per check: {"check", "ok", "ms", "detail"|"error"}, then
// {"done": true, "passed": N, "failed": M}.  Exit status 0 if every check passed.
import { Sandbox } from '@e2b/code-interpreter'

import { assert, checks } from './checks.mjs'

const CHECK_TIMEOUT_MS = Number(process.env.COMPAT_CHECK_TIMEOUT_MS || 40000)
const { check, done } = checks(CHECK_TIMEOUT_MS)

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
let sbx = null
const need = () => {
  if (!sbx) throw new Error('no sandbox (create failed)')
  return sbx
}

await check('create', async () => {
  sbx = await Sandbox.create({ timeoutMs: 180_000, metadata: { suite: 'iris-compat' } })
  assert(/^i[a-z0-9]{20}$/.test(sbx.sandboxId), `sandboxId ${sbx.sandboxId}`)
  return { sandboxId: sbx.sandboxId }
})

await check('runCode keeps state', async () => {
  const s = need()
  const first = await s.runCode('x = 1')
  assert(first.error === undefined || first.error === null, `x = 1 failed: ${JSON.stringify(first.error)}`)
  const e = await s.runCode('x + 1')
  assert(e.text === '2', `text ${JSON.stringify(e.text)}`)
  return { text: e.text, executionCount: e.executionCount }
})

await check('stdout', async () => {
  const e = await need().runCode('print("hello from iris")')
  assert(e.logs.stdout.join('') === 'hello from iris\n', `stdout ${JSON.stringify(e.logs.stdout)}`)
  return e.logs
})

await check('stderr', async () => {
  const e = await need().runCode('import sys\nprint("oops", file=sys.stderr)')
  assert(e.logs.stderr.join('') === 'oops\n', `stderr ${JSON.stringify(e.logs.stderr)}`)
  return e.logs
})

await check('error', async () => {
  const e = await need().runCode('1 / 0')
  assert(e.error, 'no error')
  assert(e.error.name === 'ZeroDivisionError', `name ${e.error.name}`)
  assert(e.error.value === 'division by zero', `value ${e.error.value}`)
  assert(typeof e.error.traceback === 'string' && e.error.traceback.length > 0, 'traceback')
  return { name: e.error.name, value: e.error.value }
})

await check('matplotlib png', async () => {
  const e = await need().runCode(
    'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("squares")\nplt.show()')
  assert(e.error == null, `error ${JSON.stringify(e.error)}`)
  assert(e.results.length >= 1, 'no result')
  const png = e.results[0].png
  assert(typeof png === 'string' && png.length > 100, 'no png')
  assert(Buffer.from(png, 'base64').subarray(0, 8).equals(PNG), 'not a PNG')
  return { formats: e.results[0].formats(), bytes: Buffer.from(png, 'base64').length }
})

await check('dataframe html', async () => {
  const e = await need().runCode('import pandas as pd\npd.DataFrame({"a": [1, 2], "b": [3, 4]})')
  assert(e.results.length >= 1, 'no result')
  const r = e.results[0]
  assert(typeof r.html === 'string' && r.html.includes('<table'), `html ${String(r.html).slice(0, 80)}`)
  return { formats: r.formats(), isMainResult: r.isMainResult }
})

await check('javascript', async () => {
  const e = await need().runCode('1+1', { language: 'js' })
  assert(e.text === '2', `text ${JSON.stringify(e.text)}`)
  const f = await need().runCode('console.log("from node"); [1, 2].map(x => x * 3)', { language: 'js' })
  assert(f.logs.stdout.join('') === 'from node\n', `stdout ${JSON.stringify(f.logs.stdout)}`)
  return { text: e.text, second: f.text }
})

await check('bash', async () => {
  const e = await need().runCode('echo hi from bash; V=3; echo $((V * 2))', { language: 'bash' })
  assert(e.logs.stdout.join('') === 'hi from bash\n6\n', `stdout ${JSON.stringify(e.logs.stdout)}`)
  return e.logs
})

let ctx = null
await check('createCodeContext', async () => {
  const s = need()
  ctx = await s.createCodeContext({ language: 'python', cwd: '/tmp' })
  assert(ctx && typeof ctx.id === 'string', `context ${JSON.stringify(ctx)}`)
  await s.runCode('y = 5', { context: ctx })
  const e = await s.runCode('import os\n(y, os.getcwd())', { context: ctx })
  assert(e.text === "(5, '/tmp')", `text ${JSON.stringify(e.text)}`)
  const other = await s.runCode('y')
  assert(other.error && other.error.name === 'NameError', 'state leaked into the default context')
  return ctx
})

await check('listCodeContexts', async () => {
  const list = await need().listCodeContexts()
  assert(Array.isArray(list) && ctx && list.some((c) => c.id === ctx.id), JSON.stringify(list))
  return list.map((c) => c.language)
})

await check('restartCodeContext', async () => {
  const s = need()
  assert(ctx, 'no context')
  await s.restartCodeContext(ctx)
  const e = await s.runCode('y', { context: ctx })
  assert(e.error && e.error.name === 'NameError', `state kept after restart: ${JSON.stringify(e.text)}`)
})

await check('removeCodeContext', async () => {
  const s = need()
  assert(ctx, 'no context')
  await s.removeCodeContext(ctx)
  const list = await s.listCodeContexts()
  assert(!list.some((c) => c.id === ctx.id), 'still listed')
})

await check('callbacks stream output', async () => {
  const chunks = []
  const t0 = Date.now()
  let firstAt = null
  await need().runCode('import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)', {
    onStdout: (m) => { chunks.push(m.line); if (firstAt === null) firstAt = Date.now() - t0 },
  })
  const total = Date.now() - t0
  assert(chunks.join('') === '0\n1\n2\n', `chunks ${JSON.stringify(chunks)}`)
  assert(total - firstAt >= 600, `not live: first at ${firstAt} ms, end at ${total} ms`)
  return { firstAt, total }
})

await check('envs per run', async () => {
  const e = await need().runCode('import os\nos.environ.get("IRIS_COMPAT")', { envs: { IRIS_COMPAT: 'yes' } })
  assert(e.text === 'yes', `text ${JSON.stringify(e.text)}`)
})

await check('execution timeout then usable', async () => {
  const s = need()
  let threw = null
  try {
    await s.runCode('import time\ntime.sleep(30)', { timeoutMs: 1500 })
  } catch (e) {
    threw = e
  }
  assert(threw, 'no timeout error')
  const t0 = Date.now()
  const e = await s.runCode('x + 41')
  assert(e.text === '42', `text ${JSON.stringify(e.text)}`)
  assert(Date.now() - t0 < 5000, `next run took ${Date.now() - t0} ms`)
  return { error: `${threw.name}: ${String(threw.message).slice(0, 80)}` }
})

await check('getInfo', async () => {
  const info = await need().getInfo()
  assert(info.sandboxId === sbx.sandboxId, `sandboxId ${info.sandboxId}`)
  assert(info.templateId === 'code-interpreter-v1', `templateId ${info.templateId}`)
  assert(info.startedAt instanceof Date && info.endAt instanceof Date, 'dates')
  assert(info.metadata && info.metadata.suite === 'iris-compat', `metadata ${JSON.stringify(info.metadata)}`)
  return { templateId: info.templateId, state: info.state, name: info.name ?? null }
})

await check('isRunning', async () => {
  assert(await need().isRunning() === true, 'not running')
})

await check('setTimeout', async () => {
  await need().setTimeout(120_000)
  const info = await need().getInfo()
  const left = info.endAt.getTime() - Date.now()
  assert(left > 100_000 && left < 140_000, `endAt in ${left} ms`)
})

await check('Sandbox.list', async () => {
  const paginator = Sandbox.list({ query: { metadata: { suite: 'iris-compat' } } })
  const items = await paginator.nextItems()
  assert(items.some((i) => i.sandboxId === sbx.sandboxId), JSON.stringify(items))
  return items.map((i) => i.sandboxId)
})

await check('Sandbox.connect', async () => {
  const again = await Sandbox.connect(need().sandboxId)
  const e = await again.runCode('x')
  assert(e.text === '1', `text ${JSON.stringify(e.text)}`)
})

await check('kill', async () => {
  const s = need()
  const killed = await s.kill()
  assert(killed === true, `kill returned ${killed}`)
  const again = await Sandbox.kill(s.sandboxId)
  assert(again === false, `second kill returned ${again}`)
})

await check('killed sandbox refuses runs', async () => {
  const s = need()
  let threw = null
  try {
    await s.runCode('1')
  } catch (e) {
    threw = e
  }
  assert(threw, 'runCode on a killed sandbox did not throw')
  assert(await s.isRunning() === false, 'isRunning still true')
  let infoErr = null
  try {
    await Sandbox.getInfo(s.sandboxId)
  } catch (e) {
    infoErr = e
  }
  assert(infoErr, 'getInfo of a killed sandbox did not throw')
  return { runCode: `${threw.name}: ${String(threw.message).slice(0, 100)}`, getInfo: infoErr.name }
})

done()
