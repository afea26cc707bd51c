// E2B's own JavaScript SDK (@e2b/code-interpreter) against iris-sandboxd:
// envd's files (sbx.files: read, write, list, exists, getInfo, makeDir,
// rename, remove) with the SDK's own errors, and the rest of the sandbox
// API that stage 7 adds (getMetrics, Sandbox.list's pages).
//
// Run by tests/integration/test_e2b_sdk.py (as compat.mjs).  Prints one
// JSON line per check, then {"done": true, "passed": N, "failed": M}.
import { Sandbox } from '@e2b/code-interpreter'

import { assert, checks } from './checks.mjs'

const { check, done } = checks(Number(process.env.FILES_CHECK_TIMEOUT_MS || 40000))

let sbx = null
const need = () => {
  if (!sbx) throw new Error('no sandbox (create failed)')
  return sbx
}

async function fails(promise, what) {
  try {
    await promise
  } catch (e) {
    return e
  }
  throw new Error(`${what}: no error`)
}

await check('create', async () => {
  sbx = await Sandbox.create({ timeoutMs: 120_000 })
  return { sandboxId: sbx.sandboxId }
})

await check('files.read of what the code wrote', async () => {
  const s = need()
  const e = await s.runCode('open("/home/user/report.txt", "w").write("total: 42\\n€ ok\\n")')
  assert(!e.error, `write: ${JSON.stringify(e.error)}`)
  const abs = await s.files.read('/home/user/report.txt')
  const rel = await s.files.read('report.txt')
  assert(abs === 'total: 42\n€ ok\n', `text ${JSON.stringify(abs)}`)
  assert(rel === abs, `relative path: ${JSON.stringify(rel)}`)
  return { abs }
})

await check('files.read as bytes', async () => {
  const s = need()
  await s.runCode('open("/tmp/all.bin", "wb").write(bytes(range(256)))')
  const b = await s.files.read('/tmp/all.bin', { format: 'bytes' })
  assert(b.length === 256 && b.every((v, i) => v === i), `bytes ${b.length}`)
  return { length: b.length }
})

await check('files.read of a missing file: the SDK\'s not-found error', async () => {
  const e = await fails(need().files.read('/home/user/missing.csv'), 'missing file')
  assert(/NotFound/.test(e.name), `${e.name}: ${e.message}`)
  return { name: e.name, message: e.message }
})

await check('files.read of a directory: invalid argument', async () => {
  const e = await fails(need().files.read('/home/user'), 'directory')
  assert(/InvalidArgument/.test(e.name), `${e.name}: ${e.message}`)
  return { name: e.name, message: e.message }
})

await check('files.write then pandas reads it', async () => {
  const s = need()
  const info = await s.files.write('/home/user/data/input.csv', 'region,sales\nnorth,10\nsouth,32\n')
  assert(info.path === '/home/user/data/input.csv' && info.name === 'input.csv', JSON.stringify(info))
  const e = await s.runCode('import pandas as pd\npd.read_csv("data/input.csv")["sales"].sum()')
  assert(e.text === '42', `sum ${JSON.stringify(e.text)} ${JSON.stringify(e.error)}`)
  return info
})

await check('files.write of bytes and of several files', async () => {
  const s = need()
  const bytes = new Uint8Array(70000).map((_, i) => (i * 7) % 256)
  await s.files.write('blob.bin', bytes.buffer)
  const back = await s.files.read('blob.bin', { format: 'bytes' })
  assert(back.length === bytes.length && back.every((v, i) => v === bytes[i]), `bytes ${back.length}`)
  const infos = await s.files.write([
    { path: '/tmp/one.txt', data: 'one' },
    { path: 'two/two.txt', data: 'two' },
  ])
  assert(infos.map((i) => i.path).join() === '/tmp/one.txt,/home/user/two/two.txt', JSON.stringify(infos))
  assert(await s.files.read('two/two.txt') === 'two', 'two')
  return infos
})

await check('files.list, exists and getInfo', async () => {
  const s = need()
  await s.files.write('tree/a.txt', 'aaaa')
  await s.files.write('tree/sub/b.txt', 'b')
  const top = await s.files.list('tree')
  const names = top.map((e) => `${e.name}:${e.type}`).sort().join()
  assert(names === 'a.txt:file,sub:dir', `list ${names}`)
  const deep = await s.files.list('/home/user/tree', { depth: 2 })
  assert(deep.some((e) => e.path === '/home/user/tree/sub/b.txt'), JSON.stringify(deep.map((e) => e.path)))
  assert(await s.files.exists('tree/a.txt') === true, 'exists a.txt')
  assert(await s.files.exists('tree/nope.txt') === false, 'exists nope.txt')
  const info = await s.files.getInfo('tree/a.txt')
  assert(info.size === 4 && info.type === 'file' && info.owner === 'user', JSON.stringify(info))
  assert(info.permissions === '-rw-r--r--', `permissions ${info.permissions}`)
  return { names, info }
})

await check('files.makeDir, rename and remove', async () => {
  const s = need()
  assert(await s.files.makeDir('made/deeper') === true, 'makeDir new')
  assert(await s.files.makeDir('made/deeper') === false, 'makeDir again')
  await s.files.write('made/deeper/f.txt', 'f')
  const moved = await s.files.rename('made/deeper/f.txt', 'made/g.txt')
  assert(moved.path === '/home/user/made/g.txt', JSON.stringify(moved))
  assert(await s.files.read('made/g.txt') === 'f', 'moved content')
  await s.files.remove('made')
  assert(await s.files.exists('made') === false, 'removed')
  return moved
})

await check('getMetrics', async () => {
  const [m] = await need().getMetrics()
  assert(m && m.cpuCount === 2 && m.memUsed > 0 && m.memTotal >= m.memUsed, JSON.stringify(m))
  assert(m.diskTotal > 0 && m.timestamp instanceof Date, JSON.stringify(m))
  return m
})

await check('Sandbox.list pages', async () => {
  const tag = `pages-${Date.now()}`
  const made = [await Sandbox.create({ metadata: { tag } }), await Sandbox.create({ metadata: { tag } })]
  try {
    const pager = Sandbox.list({ query: { metadata: { tag } }, limit: 1 })
    const first = await pager.nextItems()
    assert(first.length === 1 && pager.hasNext === true, `first page ${first.length} ${pager.hasNext}`)
    const second = await pager.nextItems()
    assert(second.length === 1 && pager.hasNext === false, `second page ${second.length} ${pager.hasNext}`)
    const ids = [first[0].sandboxId, second[0].sandboxId].sort().join()
    assert(ids === made.map((s) => s.sandboxId).sort().join(), ids)
    return { ids }
  } finally {
    for (const s of made) await s.kill()
  }
})

if (sbx) await sbx.kill()
done()
