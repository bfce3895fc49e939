#!/usr/bin/env node
'use strict'
// Node clients side by side against bifrost-mock (issue 8's benchmark).
// Not a test. `npm run bench` at the root, or `make bench` (bench/run.sh).
// Uses target/<triple>/release/* (built here with cargo first, unless
// BENCH_NO_BUILD=1).
//
// Closed loop (default): N lanes sending back to back, at each mock latency
// and N, for
//   bifrost          gw.chat (openai provider -> the mock)
//   http             Node's built-in http, keep-alive Agent (maxSockets = N)
//   fetch            bare global fetch (undici)
//   openai           the `openai` npm SDK (bench/node/package.json) with
//                    p-limit(N) around each call, as an application would
// One bifrost-mock per latency is started here (2 worker threads).
//   BENCH_SECONDS=3 BENCH_CONC=64,256,1024 BENCH_LATENCIES=0,50 \
//   BENCH_CLIENTS=bifrost,http,fetch,openai node bench/node/bench.js
//
// Open loop (BENCH_MODE=open) against a running mock: a worker thread
// sleeps (Atomics.wait, sub-millisecond; setTimeout has 1 ms granularity)
// until each send time t0 + i/rate and posts i to the main thread, which
// starts request i at once, whatever the completions do. Latency runs from
// the *scheduled* send time, minus the mock's configured latency: "added"
// µs; "lag" = scheduled -> the call started on the main thread.
//   BENCH_MODE=open BENCH_BASE=http://127.0.0.1:PORT BENCH_LATENCY_MS=50 \
//   BENCH_RATES=1000,3000 BENCH_SECONDS=5 BENCH_WARMUP=1 node bench/node/bench.js
//
// One JSON object per cell on stdout (the fields of
// core/examples/bench_openloop.rs); a summary table on stderr.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')
const { Worker } = require('node:worker_threads')

const root = path.resolve(__dirname, '..', '..')
const MODE = process.env.BENCH_MODE || 'closed'
const SECONDS = Number(process.env.BENCH_SECONDS || 4)
const WARMUP = Number(process.env.BENCH_WARMUP || (MODE === 'open' ? 1 : 0.5))
const CONC = (process.env.BENCH_CONC || '64,256,1024').split(',').map(Number)
const LATENCIES = (process.env.BENCH_LATENCIES || '0,50').split(',').map(Number)
const RATES = (process.env.BENCH_RATES || '1000,3000').split(',').map(Number)
const CLIENTS = (process.env.BENCH_CLIENTS || (MODE === 'open' ? 'bifrost' : 'bifrost,http,fetch,openai')).split(',')
const LABELS = {
  bifrost: 'node: bifrost gw.chat',
  http: 'node: node http keep-alive',
  fetch: 'node: fetch',
  openai: 'node: openai + p-limit',
}
const env = { ...process.env }
env.CARGO_BUILD_TARGET ||= /^host: (.*)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1].trim()
env.CARGO_TARGET_DIR ||= path.join(root, 'target')

function releaseArtifacts () {
  if (process.env.BENCH_NO_BUILD) { // bench/run.sh built them already
    const rel = path.join(env.CARGO_TARGET_DIR, env.CARGO_BUILD_TARGET, 'release')
    return { mock: path.join(rel, 'bifrost-mock'), lib: path.join(rel, 'libbifrost_node.so') }
  }
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

const MODEL = 'gpt-4o-mini'
const MESSAGES = [{ role: 'user', content: 'hello' }]
const BODY = JSON.stringify({ model: MODEL, messages: MESSAGES })
const HEADERS = { 'content-type': 'application/json', authorization: 'Bearer mock-key' }

// The peers from bench/node/package.json (npm install --prefix bench/node);
// null when they are not installed.
async function loadOpenAI () {
  try {
    const req = createRequire(path.join(__dirname, 'package.json'))
    const OpenAI = req('openai').default || req('openai')
    const pLimit = (await import(pathToFileURL(req.resolve('p-limit')).href)).default
    const version = (p) => JSON.parse(fs.readFileSync(path.join(path.dirname(req.resolve(p)), 'package.json'), 'utf8')).version
    return { OpenAI, pLimit, versions: { openai: version('openai'), 'p-limit': version('p-limit') } }
  } catch (e) {
    console.error(`# openai + p-limit not available (${e.message.split('\n')[0]}): run npm install --prefix bench/node`)
    return null
  }
}

// Builds one client for one cell: { call() -> Promise<string>, close() }.
function makeClient (name, base, conc, Gateway, peers) {
  const url = `${base}/v1/chat/completions`
  if (name === 'bifrost') {
    const gw = new Gateway({
      providers: {
        openai: {
          kind: 'openai',
          keys: [{ value: 'mock-key', models: ['*'] }],
          network_config: { base_url: `${base}/v1`, max_retries: 0 },
          concurrency_and_buffer_size: { concurrency: conc, buffer_size: Math.max(conc * 16, 16384) },
        },
      },
    })
    const request = { model: `openai/${MODEL}`, messages: MESSAGES }
    return { call: async () => (await gw.chat(request)).choices[0].message.content, close: () => gw.shutdown() }
  }
  if (name === 'http') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: conc })
    const call = () => new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: HEADERS, agent }, (res) => {
        const parts = []
        res.on('data', (d) => parts.push(d))
        res.on('end', () => {
          try {
            if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`)
            resolve(JSON.parse(Buffer.concat(parts).toString()).choices[0].message.content)
          } catch (e) { reject(e) }
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(BODY)
    })
    return { call, close: async () => agent.destroy() }
  }
  if (name === 'fetch') {
    const call = async () => {
      const r = await fetch(url, { method: 'POST', headers: HEADERS, body: BODY })
      if (!r.ok) throw new Error(`HTTP ${r.status}`)
      return (await r.json()).choices[0].message.content
    }
    return { call, close: async () => {} }
  }
  if (name === 'openai') {
    const client = new peers.OpenAI({ baseURL: `${base}/v1`, apiKey: 'mock-key', maxRetries: 0 })
    const limit = peers.pLimit(conc)
    const call = () => limit(async () => (await client.chat.completions.create({ model: MODEL, messages: MESSAGES })).choices[0].message.content)
    return { call, close: async () => {} }
  }
  throw new Error(`unknown client ${name}`)
}

function procCpuUs (pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) * 1e6 / 100
  } catch { return NaN }
}

// CPU time of the main (JS) thread, µs, from /proc (Linux; 10 ms ticks).
function jsThreadCpuUs () {
  return procCpuUs(`self/task/${process.pid}`)
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.floor((sorted.length - 1) * p)] : 0)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Keeps `conc` calls in flight: `warmup` seconds, then `seconds` measured;
// counts the calls that ended inside the window (latency per call, µs), like
// core/examples/bench_openloop.rs. Lane i starts i/conc of a mock latency
// late, so completions are spread evenly rather than coming back in one wave
// per round trip (whose position in the window would decide the count).
async function closedLoop (fn, conc, warmup, seconds, latencyMs, mockPid) {
  const lat = []
  let errors = 0
  let firstError = null
  const t0 = performance.now()
  const measureFrom = t0 + warmup * 1000
  const stop = measureFrom + seconds * 1000
  let before = null
  const snapshot = () => ({ cpu: process.cpuUsage(), js: jsThreadCpuUs(), mock: mockPid ? procCpuUs(mockPid) : NaN })
  const cpuTimer = setTimeout(() => { before = snapshot() }, warmup * 1000)
  // Resident memory near the end of the window, every request still in flight.
  let rssKib = null
  const rssTimer = setTimeout(() => { rssKib = Math.round(process.memoryUsage().rss / 1024) },
    warmup * 1000 + Math.max(0, seconds * 1000 - Math.min(200, seconds * 100)))
  async function lane (i) {
    if (latencyMs > 0) await sleep(latencyMs * i / conc)
    for (let s = performance.now(); s < stop; s = performance.now()) {
      try {
        if (!(await fn())) throw new Error('empty reply')
        const e = performance.now()
        if (e >= measureFrom && e < stop) lat.push((e - s) * 1000)
      } catch (e) {
        errors++
        firstError ||= String(e.message || e).slice(0, 300)
        await sleep(10)
      }
    }
  }
  await Promise.all(Array.from({ length: conc }, (_, i) => lane(i)))
  clearTimeout(cpuTimer)
  clearTimeout(rssTimer)
  before ||= snapshot()
  // CPU from the start of the window to the end of the drain, over the calls
  // that ended in the window (as the Rust driver).
  const cpu = process.cpuUsage(before.cpu)
  const js = jsThreadCpuUs() - before.js
  const mock = mockPid ? procCpuUs(mockPid) - before.mock : NaN
  lat.sort((a, b) => a - b)
  const n = lat.length
  return {
    seconds,
    requests: n,
    errors,
    first_error: firstError,
    req_s: n / seconds,
    p50_us: pct(lat, 0.5),
    p99_us: pct(lat, 0.99),
    max_us: pct(lat, 1),
    cpu_us_per_req: n ? (cpu.user + cpu.system) / n : null,
    js_cpu_us_per_req: n ? js / n : null,
    mock_cpu_us_per_req: n && !Number.isNaN(mock) ? mock / n : null,
    rss_kib: rssKib,
  }
}

// The sender: a worker thread that sleeps until each scheduled time and
// posts the request's index (see the header).
const SENDER = `
const { parentPort, workerData } = require('node:worker_threads')
const cell = new Int32Array(new SharedArrayBuffer(4))
const { t0, interval, total } = workerData
for (let i = 0; i < total; i++) {
  const d = t0 + i * interval - Number(process.hrtime.bigint())
  if (d > 0) Atomics.wait(cell, 0, 0, d / 1e6)
  parentPort.postMessage(i)
}
parentPort.postMessage(-1)
`

async function openLoop (fn, rate, latencyMs, seconds, warmup) {
  const total = Math.round((warmup + seconds) * rate)
  const first = Math.round(warmup * rate)
  const interval = 1e9 / rate
  const start = new Float64Array(total).fill(-1)
  const done = new Float64Array(total).fill(-1)
  const failed = new Uint8Array(total)
  let firstError = null
  let cpu0 = null
  const hr = () => Number(process.hrtime.bigint())
  const t0 = hr() + 50e6 // 50 ms ahead: the worker starts first
  await new Promise((resolve, reject) => {
    const w = new Worker(SENDER, { eval: true, workerData: { t0, interval, total } })
    w.on('message', (i) => {
      if (i < 0) return resolve()
      if (i === first) cpu0 = process.cpuUsage()
      start[i] = hr() - t0
      fn().then((text) => {
        if (!text) throw new Error('empty reply')
        done[i] = hr() - t0
      }).catch((e) => {
        failed[i] = 1
        firstError ||= String(e.message || e).slice(0, 300)
        done[i] = hr() - t0
      })
    })
    w.on('error', reject)
  })
  const deadline = performance.now() + 2000 + 2 * latencyMs
  while (performance.now() < deadline && done.subarray(first).some((d) => d < 0)) await sleep(2)
  const cpu = process.cpuUsage(cpu0 || undefined)
  const winLo = first * interval
  let lastDone = winLo
  const added = []
  const lag = []
  let errors = 0
  let unfinished = 0
  for (let i = first; i < total; i++) {
    const sched = i * interval
    if (done[i] < 0) unfinished++
    else if (failed[i]) errors++
    else {
      lastDone = Math.max(lastDone, done[i])
      added.push(Math.max(0, Math.floor((done[i] - sched) / 1000) - latencyMs * 1000))
      lag.push(Math.max(0, Math.floor((start[i] - sched) / 1000)))
    }
  }
  added.sort((a, b) => a - b)
  lag.sort((a, b) => a - b)
  // Rate achieved: measured requests completed, over the time from the window's start to
  // the last completion less the mock's latency (at least `seconds`: a client that keeps
  // up shows the target rate).
  const achieved = added.length / Math.max((lastDone - winLo) / 1e9 - latencyMs / 1e3, seconds)
  return {
    rate,
    latency_ms: latencyMs,
    seconds,
    warmup_s: warmup,
    scheduled: total - first,
    completed: added.length,
    errors,
    unfinished,
    achieved_rps: achieved,
    kept_up: unfinished === 0 && errors === 0 && achieved >= 0.95 * rate,
    added_p50_us: pct(added, 0.5),
    added_p99_us: pct(added, 0.99),
    added_max_us: pct(added, 1),
    lag_p50_us: pct(lag, 0.5),
    lag_p99_us: pct(lag, 0.99),
    lag_max_us: pct(lag, 1),
    cpu_us_per_req: added.length ? (cpu.user + cpu.system) / added.length : null,
    first_error: firstError,
  }
}

async function startMock (mock, latencyMs) {
  const args = ['--port', '0', '--workers', '2']
  if (latencyMs) args.push('--latency-ms', String(latencyMs))
  const child = spawn(mock, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = Number(await new Promise((resolve) => readline.createInterface({ input: child.stdout }).once('line', resolve)))
  return { child, base: `http://127.0.0.1:${port}` }
}

function emit (results, r) {
  results.push(r)
  console.log(JSON.stringify(r))
}

async function main () {
  const { mock, lib } = releaseArtifacts()
  // Load the release addon through the package's own loader.
  const copy = path.join(os.tmpdir(), `bifrost-bench-${process.pid}.node`)
  fs.copyFileSync(lib, copy)
  process.on('exit', () => fs.rmSync(copy, { force: true }))
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = copy
  const { Gateway } = require(root)
  const peers = CLIENTS.includes('openai') ? await loadOpenAI() : null
  const versions = { node: process.version, ...(peers ? peers.versions : {}) }
  const results = []

  if (MODE === 'open') {
    const base = process.env.BENCH_BASE
    if (!base) throw new Error('BENCH_MODE=open needs BENCH_BASE=http://127.0.0.1:PORT (a running bifrost-mock)')
    const latencyMs = Number(process.env.BENCH_LATENCY_MS || 0)
    for (const name of CLIENTS) {
      for (const rate of RATES) {
        // Enough workers / sockets for every request the mock holds at this rate.
        const client = makeClient(name, base, 1024, Gateway, peers)
        const r = await openLoop(client.call, rate, latencyMs, SECONDS, WARMUP)
        await client.close()
        emit(results, { mode: 'open', client: LABELS[name], lang: 'Node', ...r, versions })
        console.error(`# ${LABELS[name]} ${rate}/s @${latencyMs} ms: added p50 ${r.added_p50_us} p99 ${r.added_p99_us} max ${r.added_max_us} µs, lag p50 ${r.lag_p50_us} µs, achieved ${Math.round(r.achieved_rps)}/s${r.kept_up ? '' : ' (did NOT keep up)'}`)
      }
    }
    return
  }

  for (const latencyMs of LATENCIES) {
    const { child, base } = await startMock(mock, latencyMs)
    try {
      for (const conc of CONC) {
        for (const name of CLIENTS) {
          if (name === 'openai' && !peers) continue
          const client = makeClient(name, base, conc, Gateway, peers)
          const r = await closedLoop(client.call, conc, WARMUP, SECONDS, latencyMs, child.pid)
          await client.close()
          emit(results, { mode: 'closed', client: LABELS[name], lang: 'Node', latency_ms: latencyMs, inflight: conc, ...r, versions })
          console.error(`# ${LABELS[name]} @${latencyMs} ms, ${conc} in flight: ${Math.round(r.req_s)} req/s, p50 ${(r.p50_us / 1000).toFixed(2)} ms, ` +
            `p99 ${(r.p99_us / 1000).toFixed(2)} ms, CPU ${r.cpu_us_per_req?.toFixed(1)} µs/req (JS thread ${r.js_cpu_us_per_req?.toFixed(1)}), ` +
            `mock ${r.mock_cpu_us_per_req?.toFixed(1)} µs/req, errors ${r.errors}`)
        }
      }
    } finally {
      child.kill()
    }
  }
}

// Exit at once: idle keep-alive sockets of fetch / the openai SDK would hold the process for seconds.
// (stdout is synchronous for files and pipes on Linux, so nothing is lost.)
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
