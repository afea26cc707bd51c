// E2B's own JavaScript SDK (@e2b/code-interpreter) against iris-sandboxd:
// kernels that behave like Jupyter and E2B's code interpreter -- charts,
// display(), DataFrames, figures, PIL, plotly and seaborn, IPython syntax,
// JavaScript imports and TypeScript, the default contexts, per-run UTF-8
// and partial lines streamed while a run goes on.  Each check reads what
// the SDK's own types make of our answers (result.chart, result.png, ...).
//
// Run by tests/integration/test_e2b_sdk.py with E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY set (as compat.mjs).  Prints one JSON line
// per check: {"check", "ok", "ms", "detail"|"error"}, then
// {"done": true, "passed": N, "failed": M}.  Exit status 0 if every check passed.
import { Sandbox } from '@e2b/code-interpreter'

import { assert, checks } from './checks.mjs'

const CHECK_TIMEOUT_MS = Number(process.env.KERNELS_CHECK_TIMEOUT_MS || 90000)
const { check, done } = checks(CHECK_TIMEOUT_MS)

const show = (v) => JSON.stringify(v)

function same(got, want, what) {
  assert(show(got) === show(want), `${what}: got ${show(got)}, want ${show(want)}`)
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

// A base64 PNG's width and height (from its IHDR chunk).
function pngSize(b64) {
  assert(typeof b64 === 'string', `png ${show(b64)}`)
  const raw = Buffer.from(b64, 'base64')
  assert(raw.subarray(0, 8).equals(PNG_MAGIC), 'not a PNG')
  return [raw.readUInt32BE(16), raw.readUInt32BE(20)]
}

let sbx = null
const need = () => {
  if (!sbx) throw new Error('no sandbox (create failed)')
  return sbx
}

// A Python run that must succeed.
async function py(code, opts = {}) {
  const e = await need().runCode(code, opts)
  assert(e.error === undefined, `error ${show(e.error)}`)
  return e
}

// The one result of a run that carries a chart (and its PNG).
async function chartOf(code) {
  const e = await py(code)
  const withChart = e.results.filter((r) => r.chart)
  assert(withChart.length === 1, `results ${show(e.results.map((r) => r.formats()))}`)
  const r = withChart[0]
  pngSize(r.png)
  return r.chart
}

const PLT = 'import matplotlib.pyplot as plt\n'

let listed = []
await check('default contexts right after create', async () => {
  sbx = await Sandbox.create({ timeoutMs: 300_000, metadata: { suite: 'iris-kernels' } })
  listed = await sbx.listCodeContexts()
  same(listed.map((c) => c.language), ['python', 'javascript'], 'languages')
  assert(listed.every((c) => typeof c.id === 'string' && c.id.length > 0), show(listed))
  await sbx.runCode('const harbour = "Bergen"', { context: listed[1] })
  const e = await sbx.runCode('harbour.toUpperCase()', { language: 'javascript' })
  same(e.text, 'BERGEN', 'the javascript language runs in the listed javascript context')
  await sbx.runCode('lake = "Mjøsa"', { context: listed[0] })
  const p = await sbx.runCode('lake[::-1]')
  // a str value's text without its quotes, as E2B's server gives it
  same(p.text, 'asøjM', 'the python default runs in the listed python context')
  return listed
})

await check('line chart', async () => {
  const c = await chartOf(PLT +
    'days = [1, 2, 3, 4]\n' +
    'plt.plot(days, [12.5, 14.0, 13.25, 15.5], label="Oslo")\n' +
    'plt.plot(days, [20, 21, 19.5, 22], label="Rome")\n' +
    'plt.title("Noon temperature")\nplt.xlabel("Day (d)")\nplt.ylabel("Temperature [°C]")\nplt.show()')
  same(c.type, 'line', 'type')
  same(c.title, 'Noon temperature', 'title')
  same([c.x_label, c.x_unit, c.y_label, c.y_unit], ['Day (d)', 'd', 'Temperature [°C]', '°C'], 'labels')
  same([c.x_scale, c.y_scale], ['linear', 'linear'], 'scales')
  same(c.elements.map((s) => s.label), ['Oslo', 'Rome'], 'series labels')
  same(c.elements[0].points, [[1, 12.5], [2, 14], [3, 13.25], [4, 15.5]], 'Oslo points')
  same(c.elements[1].points, [[1, 20], [2, 21], [3, 19.5], [4, 22]], 'Rome points')
  assert(c.x_ticks.length > 0 && c.x_ticks.length === c.x_tick_labels.length,
    `ticks ${show([c.x_ticks, c.x_tick_labels])}`)
  assert(c.x_ticks.every((t) => typeof t === 'number' && t >= 1 && t <= 4), `x_ticks ${show(c.x_ticks)}`)
  return { x_ticks: c.x_ticks, x_tick_labels: c.x_tick_labels }
})

await check('scatter chart', async () => {
  const c = await chartOf(PLT +
    'plt.scatter([0.5, 1.5, 2.5], [3, 1, 2], label="wells")\n' +
    'plt.scatter([1, 2], [2.5, 0.5], label="springs")\n' +
    'plt.title("Water sources")\nplt.xlabel("East (km)")\nplt.ylabel("North (km)")\nplt.show()')
  same(c.type, 'scatter', 'type')
  same(c.title, 'Water sources', 'title')
  same([c.x_label, c.x_unit, c.y_label, c.y_unit], ['East (km)', 'km', 'North (km)', 'km'], 'labels')
  same(c.elements.map((s) => s.label), ['wells', 'springs'], 'series labels')
  same(c.elements[0].points, [[0.5, 3], [1.5, 1], [2.5, 2]], 'wells points')
  same(c.elements[1].points, [[1, 2.5], [2, 0.5]], 'springs points')
  return { y_ticks: c.y_ticks }
})

await check('bar chart', async () => {
  const c = await chartOf(PLT +
    'plt.bar(["pears", "plums", "figs"], [7, 3, 5], label="crates")\n' +
    'plt.title("Fruit in stock")\nplt.xlabel("Fruit")\nplt.ylabel("Crates")\nplt.show()')
  same(c.type, 'bar', 'type')
  same(c.title, 'Fruit in stock', 'title')
  same([c.x_label, c.y_label, c.x_unit, c.y_unit], ['Fruit', 'Crates', null, null], 'labels')
  same(c.elements, [
    { label: 'pears', value: 7, group: 'crates' },
    { label: 'plums', value: 3, group: 'crates' },
    { label: 'figs', value: 5, group: 'crates' },
  ], 'bars')
})

await check('pie chart', async () => {
  const c = await chartOf(PLT +
    'plt.pie([1, 3], labels=["tea", "coffee"])\nplt.title("Morning drinks")\nplt.show()')
  same(c.type, 'pie', 'type')
  same(c.title, 'Morning drinks', 'title')
  same(c.elements, [
    { label: 'tea', angle: 90, radius: 1 },
    { label: 'coffee', angle: 270, radius: 1 },
  ], 'slices')
})

await check('box_and_whisker chart', async () => {
  // [1..9, 30]: quartiles 3.25 and 7.75, median 5.5; 30 is past
  // 7.75 + 1.5 * 4.5, so the upper whisker ends at 9 and 30 is an outlier.
  const c = await chartOf(PLT +
    'plt.boxplot([[1, 2, 3, 4, 5, 6, 7, 8, 9, 30], [2, 4, 6, 8]], labels=["night", "day"])\n' +
    'plt.title("Shift lengths")\nplt.xlabel("Shift")\nplt.ylabel("Length (h)")\nplt.show()')
  same(c.type, 'box_and_whisker', 'type')
  same(c.title, 'Shift lengths', 'title')
  same([c.x_label, c.y_label, c.y_unit], ['Shift', 'Length (h)', 'h'], 'labels')
  same(c.elements, [
    { label: 'night', min: 1, first_quartile: 3.25, median: 5.5, third_quartile: 7.75, max: 9, outliers: [30] },
    { label: 'day', min: 2, first_quartile: 3.5, median: 5, third_quartile: 6.5, max: 8, outliers: [] },
  ], 'boxes')
})

await check('superchart', async () => {
  const c = await chartOf(PLT +
    'fig, (left, right) = plt.subplots(1, 2)\nfig.suptitle("Harbour report")\n' +
    'left.plot([1, 2, 3], [5, 6, 4], label="ferries")\nleft.set_title("Ferries per hour")\n' +
    'right.bar(["north", "south"], [9, 4], label="berths")\nright.set_title("Free berths")\n' +
    'plt.show()')
  same(c.type, 'superchart', 'type')
  same(c.title, 'Harbour report', 'title')
  same(c.elements.map((e) => [e.type, e.title]), [['line', 'Ferries per hour'], ['bar', 'Free berths']], 'charts')
  same(c.elements[0].elements[0].points, [[1, 5], [2, 6], [3, 4]], 'the line chart\'s points')
  same(c.elements[1].elements.map((b) => [b.label, b.value]), [['north', 9], ['south', 4]], 'the bar chart\'s bars')
})

await check('unknown chart', async () => {
  const c = await chartOf(PLT +
    'plt.imshow([[0, 1], [1, 0]])\nplt.title("Checkerboard")\nplt.show()')
  same(c.type, 'unknown', 'type')
  same(c.title, 'Checkerboard', 'title')
  same(c.elements, [], 'elements')
})

await check('chart scales: dates and log', async () => {
  const c = await chartOf(PLT + 'import datetime\n' +
    'days = [datetime.date(2025, 3, d) for d in (3, 4, 5)]\n' +
    'plt.plot(days, [10, 1000, 100000], label="downloads")\nplt.yscale("log")\n' +
    'plt.title("Growth")\nplt.show()')
  same([c.type, c.x_scale, c.y_scale], ['line', 'datetime', 'log'], 'type and scales')
  same(c.elements[0].points, [['2025-03-03', 10], ['2025-03-04', 1000], ['2025-03-05', 100000]], 'points')
  assert(c.x_ticks.every((t) => typeof t === 'string' && t.startsWith('2025-03-')), `x_ticks ${show(c.x_ticks)}`)
  same(c.x_ticks.length, c.x_tick_labels.length, 'one label per x tick')
  return { x_ticks: c.x_ticks, y_ticks: c.y_ticks }
})

await check('display of each rich format', async () => {
  const e = await py(
    'import io\nfrom IPython.display import display, HTML, Markdown, Latex, JSON, SVG, Image\n' +
    'from PIL import Image as PILImage\n' +
    'buf = io.BytesIO()\nPILImage.new("RGB", (3, 2), "orange").save(buf, "PNG")\n' +
    'display(HTML("<i>fresh bread</i>"))\n' +
    'display(Markdown("# Menu"))\n' +
    'display(Latex(r"$a^2 + b^2 = c^2$"))\n' +
    'display(JSON({"dish": "soup", "price": 4}))\n' +
    'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>\'))\n' +
    'display(Image(data=buf.getvalue()))')
  const rs = e.results
  same(rs.length, 6, `number of results ${show(rs.map((r) => r.formats()))}`)
  assert(rs.every((r) => r.isMainResult === false), 'display() results are not the main result')
  same(rs[0].html, '<i>fresh bread</i>', 'html')
  same(rs[1].markdown, '# Menu', 'markdown')
  same(rs[2].latex, '$a^2 + b^2 = c^2$', 'latex')
  same(rs[3].json, { dish: 'soup', price: 4 }, 'json')
  assert(typeof rs[4].svg === 'string' && rs[4].svg.includes('<rect'), `svg ${show(rs[4].svg)}`)
  same(pngSize(rs[5].png), [3, 2], 'png size')
  same(rs.map((r) => r.formats()), [['html'], ['markdown'], ['latex'], ['json'], ['svg'], ['png']], 'formats')
  return rs.map((r) => r.text)
})

await check('_repr_mimebundle_ and _ipython_display_', async () => {
  const e = await py(
    'class Ticket:\n' +
    '    def _repr_mimebundle_(self, include=None, exclude=None):\n' +
    '        return {"text/plain": "ticket no. 7", "text/markdown": "*ticket* 7"}\n' +
    'Ticket()')
  same(e.results.length, 1, 'one result')
  same([e.results[0].isMainResult, e.results[0].text, e.results[0].markdown],
    [true, 'ticket no. 7', '*ticket* 7'], 'the mimebundle\'s text/plain is the text')
  same(e.text, 'ticket no. 7', 'execution.text')
  const d = await py(
    'from IPython.display import display, HTML\n' +
    'class Banner:\n' +
    '    def _ipython_display_(self):\n' +
    '        print("banner shown")\n' +
    '        display(HTML("<h2>welcome aboard</h2>"))\n' +
    'Banner()')
  same(d.logs.stdout.join(''), 'banner shown\n', 'what _ipython_display_ printed')
  same(d.results.map((r) => r.html), ['<h2>welcome aboard</h2>'], 'what _ipython_display_ displayed')
})

await check('dataframe data keeps its index', async () => {
  const e = await py(
    'import pandas as pd\n' +
    'stock = pd.DataFrame({"shop": ["Vik", "Lund", "Vik", "Os"], "units": [5, 2, 7, 1]})\n' +
    'stock.groupby("shop").agg(units=("units", "sum"))')
  const r = e.results[0]
  same(r.isMainResult, true, 'main result')
  same(r.data, { shop: ['Lund', 'Os', 'Vik'], units: [2, 1, 12] }, 'data')
  assert(typeof r.html === 'string' && r.html.includes('<table'), 'html table')
  assert(r.formats().includes('data'), `formats ${show(r.formats())}`)
  const dup = await py('pd.DataFrame([[1, 2], [3, 4]], columns=["x", "x"])')
  same(dup.results[0].data, { x: [1, 3], 'x.1': [2, 4] }, 'data of duplicate column names')
})

await check('cell starting with a newline and indentation', async () => {
  const e = await py('\n    width = 3\n    height = 4\n    width * height\n  ')
  same(e.text, '12', 'text')
})

await check('top-level await', async () => {
  const e = await py(
    'import asyncio\nasync def later(value):\n    await asyncio.sleep(0.05)\n    return value\n' +
    'await later("ready")')
  same(e.text, 'ready', 'text')
})

await check('IPython cell magics and shell escapes', async () => {
  const w = await py('%%writefile /tmp/note.txt\nkeep calm\nand carry on\n')
  same(w.logs.stdout.join(''), 'Writing /tmp/note.txt\n', '%%writefile')
  const e = await py('!grep -c a /tmp/note.txt\nfound = !grep carry /tmp/note.txt\nfound[0].upper()')
  same(e.logs.stdout.join(''), '2\n', '!grep')
  same(e.text, 'AND CARRY ON', 'a shell escape\'s lines as a value')
})

await check('PIL Image.show() and .save()', async () => {
  await py('from PIL import Image\nswatch = Image.new("RGB", (8, 5), "teal")')
  const shown = await py('swatch.show()')
  same(shown.results.length, 1, 'show(): one result')
  same(pngSize(shown.results[0].png), [8, 5], 'show(): png size')
  const saved = await py('swatch.save("/tmp/swatch.png")\nimport os\nprint(os.path.getsize("/tmp/swatch.png") > 0)')
  same(saved.results.length, 1, 'save(): one result')
  same(pngSize(saved.results[0].png), [8, 5], 'save(): png size')
  same(saved.logs.stdout.join(''), 'True\n', 'the file was written too')
})

await check('plotly figure: html and the figure JSON', async () => {
  const e = await py(
    'import plotly.graph_objects as go\n' +
    'go.Figure(go.Bar(x=["Mon", "Tue"], y=[2, 5]), layout_title_text="Visitors")')
  same(e.results.length, 1, `results ${show(e.results.map((r) => r.formats()))}`)
  const r = e.results[0]
  assert(typeof r.html === 'string' && r.html.includes('<div'), `html ${show(String(r.html).slice(0, 100))}`)
  // The SDK keeps a result's extra MIME types under raw.extra.
  const fig = r.raw.extra && r.raw.extra['application/vnd.plotly.v1+json']
  assert(fig, `no plotly JSON in ${show(Object.keys(r.raw))}`)
  same([fig.data[0].type, fig.data[0].x, fig.data[0].y], ['bar', ['Mon', 'Tue'], [2, 5]], 'the figure\'s data')
  same(fig.layout.title.text, 'Visitors', 'the figure\'s title')
})

await check('seaborn plot', async () => {
  const e = await py(
    'import seaborn as sns\nimport matplotlib.pyplot as plt\n' +
    'sns.barplot(x=["red", "green", "blue"], y=[3, 1, 2])\nplt.title("Votes by colour")\nplt.show()')
  const pngs = e.results.filter((r) => r.png)
  same(pngs.length, 1, 'one png')
  pngSize(pngs[0].png)
  const c = pngs[0].chart
  assert(c, 'no chart')
  same([c.type, c.title], ['bar', 'Votes by colour'], 'chart')
  same(c.elements.map((b) => [b.label, b.value]), [['red', 3], ['green', 1], ['blue', 2]], 'bars')
})

await check('blank figures not returned', async () => {
  const e = await py(PLT + 'plt.figure()')
  same(e.results.filter((r) => r.png).length, 0, 'pngs of plt.figure()')
  same(e.text, '<Figure size 640x480 with 0 Axes>', 'text')
  const f = await py(PLT + 'plt.figure(figsize=(3, 3))\nprint("nothing drawn")')
  same(f.results.length, 0, `results of an open, empty figure ${show(f.results.map((r) => r.formats()))}`)
})

await check('plt.show() then savefig gives one PNG', async () => {
  const e = await py(PLT + 'plt.plot([3, 1, 2])\nplt.show()\nplt.savefig("/tmp/after-show.png")')
  same(e.results.length, 1, `results ${show(e.results.map((r) => r.formats()))}`)
  same(e.results[0].isMainResult, false, 'a shown figure is a display')
  pngSize(e.results[0].png)
  same(e.results[0].chart.elements[0].points, [[0, 3], [1, 1], [2, 2]], 'its chart')
})

await check('kernel writes to fd 1 and 2 keep their order', async () => {
  const seen = []
  const e = await need().runCode(
    'import os, sys\n' +
    'print("north")\nos.write(2, b"east\\n")\nprint("south", file=sys.stderr)\n' +
    'os.write(1, b"west\\n")\nsys.stdout.write("centre\\n")', {
      onStdout: (m) => seen.push(['out', m.line]),
      onStderr: (m) => seen.push(['err', m.line]),
    })
  assert(e.error === undefined, `error ${show(e.error)}`)
  same(seen, [['out', 'north\n'], ['err', 'east\n'], ['err', 'south\n'], ['out', 'west\n'],
    ['out', 'centre\n']], 'callbacks in order')
  same([e.logs.stdout.join(''), e.logs.stderr.join('')], ['north\nwest\ncentre\n', 'east\nsouth\n'], 'logs')
})

await check('javascript fd writes and inherited child output', async () => {
  const e = await need().runCode(
    "import { writeSync } from 'fs'\nimport { spawnSync } from 'child_process'\n" +
    "writeSync(1, 'to fd one\\n')\nwriteSync(2, 'to fd two\\n')\n" +
    "spawnSync('sh', ['-c', 'echo child out; echo child err >&2'], { stdio: 'inherit' })\n" +
    "'spawned'", { language: 'js' })
  assert(e.error === undefined, `error ${show(e.error)}`)
  same(e.logs.stdout.join(''), 'to fd one\nchild out\n', 'stdout')
  same(e.logs.stderr.join(''), 'to fd two\nchild err\n', 'stderr')
  same(e.text, 'spawned', 'text')
})

await check('javascript import statements', async () => {
  const e = await need().runCode(
    "import path from 'node:path'\nimport { createHash } from 'crypto'\n" +
    "import * as os from 'os'\n" +
    "console.log(typeof os.cpus)\n" +
    "path.join('docs', createHash('sha256').update('iris').digest('hex').slice(0, 8))",
    { language: 'js' })
  assert(e.error === undefined, `error ${show(e.error)}`)
  same(e.logs.stdout, ['function\n'], 'stdout')
  const want = 'docs/' + (await import('node:crypto')).createHash('sha256').update('iris').digest('hex').slice(0, 8)
  same(e.text, want, 'text')
  const again = await need().runCode('path.basename("/a/b/c.txt")', { language: 'js' })
  same(again.text, 'c.txt', 'an imported binding kept for the next run')
})

await check('typescript cell and context', async () => {
  const e = await need().runCode(
    'interface Point { x: number; y: number }\n' +
    'const corner: Point = { x: 3, y: 4 }\n' +
    'function length(p: Point): number { return Math.hypot(p.x, p.y) }\n' +
    'length(corner)', { language: 'ts' })
  assert(e.error === undefined, `error ${show(e.error)}`)
  same(e.text, '5', 'language ts')
  const ctx = await need().createCodeContext({ language: 'ts' })
  const a = await need().runCode('type Crew = { name: string; berth: number }\n' +
    'const crew: Crew[] = [{ name: "Ada", berth: 2 }, { name: "Lin", berth: 1 }]', { context: ctx })
  assert(a.error === undefined, `error ${show(a.error)}`)
  const b = await need().runCode('crew.map((c: Crew): string => c.name).join("+")', { context: ctx })
  same(b.text, 'Ada+Lin', 'state kept in the TypeScript context')
  const bad = await need().runCode('const n: number = undefinedThing + 1', { context: ctx })
  assert(bad.error && bad.error.name === 'ReferenceError', `error ${show(bad.error)}`)
  return { language: ctx.language }
})

await check('each run decodes its own UTF-8', async () => {
  const a = await need().runCode("printf 'A\\xe2'", { language: 'bash' })
  same(a.logs.stdout.join(''), 'A\ufffd', 'a run that ends inside a character')
  const b = await need().runCode("printf '\\x82\\xacB\\n'", { language: 'bash' })
  same(b.logs.stdout.join(''), '\ufffd\ufffdB\n', 'the next run')
  const c = await need().runCode("printf '\\xe2\\x82\\xac\\n'", { language: 'bash' })
  same(c.logs.stdout.join(''), '€\n', 'a whole character')
})

await check('non-ASCII output arrives whole in each language', async () => {
  // Large enough to span many network chunks: a character split between
  // two of them must still reach the SDK whole.
  const want = 'ø€😀'.repeat(60000) + '\n'
  const runs = {
    python: 'print("ø€😀" * 60000)',
    js: 'console.log("ø€😀".repeat(60000))',
    bash: 'for i in $(seq 60000); do printf "ø€😀"; done; echo',
  }
  for (const [language, code] of Object.entries(runs)) {
    const e = await need().runCode(code, { language })
    assert(e.error === undefined, `${language}: error ${show(e.error)}`)
    const out = e.logs.stdout.join('')
    const bad = out.indexOf('\ufffd')
    assert(bad === -1, `${language}: U+FFFD at ${bad} of ${out.length}`)
    same(out.length, want.length, `${language}: length`)
    assert(out === want, `${language}: text differs`)
  }
  const r = await need().runCode('"ø€😀".repeat(60000)', { language: 'js' })
  assert(r.text === 'ø€😀'.repeat(60000), `a javascript value: U+FFFD at ${String(r.text).indexOf('\ufffd')}`)
})

await check('output past the cap is a clean prefix', async () => {
  // 400 000 three-byte characters, past the daemon's default cap
  // (IRIS_SANDBOX_OUTPUT_BYTES, 1 MiB per stream):
  // what is kept ends on a character boundary and nothing is added to it.
  const e = await py('print("€" * 400000)')
  const out = e.logs.stdout.join('')
  same(out.length, Math.floor(1048576 / 3), 'characters kept')
  assert(/^€+$/.test(out), `kept text ends in ${show(out.slice(-12))}`)
  const after = await py('print("still here")')
  same(after.logs.stdout.join(''), 'still here\n', 'the next run')
})

await check('partial line streamed while the run goes on', async () => {
  // The cell writes a line without its newline, then waits (30 s at most)
  // for a file that this check writes, from another context, only once
  // onStdout has delivered the partial line.
  const s = need()
  await py('import os\nos.makedirs("/tmp/streamed", exist_ok=True)')
  const seen = []
  let released = null
  const run = s.runCode(
    'import os, sys, time\n' +
    'sys.stdout.write("loading")\n' +
    'deadline = time.monotonic() + 30\n' +
    'while not os.path.exists("/tmp/streamed/go") and time.monotonic() < deadline:\n' +
    '    time.sleep(0.05)\n' +
    'print(" done" if os.path.exists("/tmp/streamed/go") else " timed out")', {
      onStdout: (m) => {
        seen.push(m.line)
        if (released === null && seen.join('') === 'loading') {
          released = s.runCode('touch /tmp/streamed/go', { language: 'bash' })
        }
      },
    })
  const e = await run
  if (released) await released
  same(seen[0], 'loading', 'the first piece onStdout got')
  same(e.logs.stdout.join(''), 'loading done\n', 'the run was released by the streamed partial line')
  return seen
})

if (sbx) await sbx.kill()
done()
