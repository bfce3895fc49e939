#!/usr/bin/env node
'use strict'
// gw.chat versus Node's built-in http (keep-alive) and bare fetch, against
// bifrost-mock at 0 ms latency, with 64 and 256 requests in flight.
// Not a test. Run: `npm run bench` (builds release artifacts first if
// BENCH_BUILD=1; otherwise uses target/<triple>/release/*).
//   BENCH_SECONDS=5 BENCH_CONC=64,256 node bench/node/bench.js

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const readline = require('node:readline')

const root = path.resolve(__dirname, '..', '..')
const SECONDS = Number(process.env.BENCH_SECONDS || 4)
const CONC = (process.env.BENCH_CONC || '64,256').split(',').map(Number)
const env = { ...process.env }
env.CARGO_BUILD_TARGET ||= /^host: (.*)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1].trim()
env.CARGO_TARGET_DIR ||= path.join(root, 'target')

function releaseArtifacts () {
  const out = execFileSync('cargo', ['build', '--release', '-p', 'bifrost-mock', '-p', 'bifrost-node', '--message-format=json-render-diagnostics'],
    { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 })
  let mock, lib
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason !== 'compiler-artifact') continue
    if (m.executable && m.target.name === 'bifrost-mock') mock = m.executable
    if (m.target.name === 'bifrost_node') lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f))
  }
  return { mock, lib }
}

async function main () {
  const { mock, lib } = releaseArtifacts()
  // Load the release addon through the package's own loader.
  const os = require('node:os')
  const copy = path.join(os.tmpdir(), `bifrost-bench-${process.pid}.node`)
  fs.copyFileSync(lib, copy)
  process.on('exit', () => fs.rmSync(copy, { force: true }))
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = copy
  const { Gateway } = require(root)

  const child = spawn(mock, ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = Number(await new Promise((resolve) => readline.createInterface({ input: child.stdout }).once('line', resolve)))
  const base = `http://127.0.0.1:${port}`
  const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] })
  const headers = { 'content-type': 'application/json', authorization: 'Bearer mock-key' }

  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const viaHttp = () => new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/chat/completions`, { method: 'POST', headers, agent }, (res) => {
      const parts = []
      res.on('data', (d) => parts.push(d))
      res.on('end', () => { JSON.parse(Buffer.concat(parts).toString()); resolve() })
    })
    req.on('error', reject)
    req.end(body)
  })
  const viaFetch = async () => {
    const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers, body })
    await r.json()
  }
  const results = []
  for (const conc of CONC) {
    const gw = new Gateway({
      providers: {
        openai: {
          kind: 'openai',
          keys: [{ value: 'mock-key' }],
          network_config: { base_url: `${base}/v1` },
          concurrency_and_buffer_size: { concurrency: conc, buffer_size: conc * 4 },
        },
      },
    })
    const request = { model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'hello' }] }
    const viaBifrost = () => gw.chat(request)
    for (const [name, fn] of [['bifrost gw.chat', viaBifrost], ['node http keep-alive', viaHttp], ['fetch', viaFetch]]) {
      await run(fn, conc, 0.5) // warm-up
      results.push({ client: name, inflight: conc, ...(await run(fn, conc, SECONDS)) })
      console.error(JSON.stringify(results.at(-1)))
    }
    await gw.shutdown()
  }
  child.kill()
  agent.destroy()
  console.log('\n| client | in flight | req/s | p50 ms | p99 ms | JS-thread CPU µs/req | process CPU µs/req |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of results) {
    console.log(`| ${r.client} | ${r.inflight} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.jsUs.toFixed(1)} | ${r.cpuUs.toFixed(1)} |`)
  }
}

// CPU time of the main (JS) thread, µs, from /proc (Linux; 10 ms ticks).
function jsThreadCpuUs () {
  try {
    const f = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) * 10000
  } catch { return NaN }
}

// Keeps `conc` calls in flight for `seconds`; latency per call.
async function run (fn, conc, seconds) {
  const lat = []
  const end = performance.now() + seconds * 1000
  const cpu0 = process.cpuUsage()
  const js0 = jsThreadCpuUs()
  const t0 = performance.now()
  let n = 0
  async function lane () {
    while (performance.now() < end) {
      const s = performance.now()
      await fn()
      lat.push(performance.now() - s)
      n++
    }
  }
  await Promise.all(Array.from({ length: conc }, lane))
  const elapsed = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const js = jsThreadCpuUs() - js0
  lat.sort((a, b) => a - b)
  return {
    rps: n / elapsed,
    p50: lat[Math.floor(lat.length * 0.5)],
    p99: lat[Math.floor(lat.length * 0.99)],
    cpuUs: (cpu.user + cpu.system) / n,
    jsUs: js / n,
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
