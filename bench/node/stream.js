#!/usr/bin/env node
'use strict'
// Streams from Node side by side against one bifrost-mock (issue 20):
// N concurrent streams of 200 chunks each, back to back for BENCH_SECONDS,
// for
//   bifrost   gw.stream (for await), the release addon
//   http      node:http keep-alive Agent + its own SSE line parsing + JSON.parse
//   openai    the `openai` npm SDK, stream: true (bench/node/package.json);
//             its default fetch has no per-host connection cap
// Reports chunks/s, this process's CPU µs per chunk (all threads: bifrost's
// Rust runtime included), time to first chunk p50 and inter-chunk gap p99.
//   BENCH_STREAMS=256,1024 BENCH_CHUNK_DELAYS=0,10 BENCH_SECONDS=3 \
//   BENCH_CLIENTS=bifrost,http,openai node bench/node/stream.js
// Uses target/<triple>/release/{bifrost-mock,libbifrost_node.so}; bench/run.sh builds them.
// One JSON object per cell on stdout; a summary line per cell on stderr. Not a test.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { createRequire } = require('node:module')

const root = path.resolve(__dirname, '..', '..')
const SECONDS = Number(process.env.BENCH_SECONDS || 3)
const STREAMS = (process.env.BENCH_STREAMS || '256,1024').split(',').map(Number)
const DELAYS = (process.env.BENCH_CHUNK_DELAYS || '0,10').split(',').map(Number)
const CLIENTS = (process.env.BENCH_CLIENTS || 'bifrost,http,openai').split(',')
const CHUNKS = Number(process.env.BENCH_CHUNKS || 200)
const LABELS = { bifrost: 'node: bifrost gw.stream', http: 'node: node:http + SSE parsing', openai: 'node: openai stream' }
const PROMPT = Array.from({ length: CHUNKS }, (_, i) => `w${String(i).padStart(3, '0')}`).join(' ')
const model = (delay) => `gpt~chunks=${CHUNKS}&chunk_delay_ms=${delay}`

const triple = process.env.CARGO_BUILD_TARGET || /^host: (.*)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1].trim()
const rel = path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), triple, 'release')

// Each client: one(marks) streams once and pushes a timestamp per content chunk.
function makeClient (name, base, streams, Gateway, OpenAI) {
  if (name === 'bifrost') {
    const gw = new Gateway({
      providers: {
        openai: {
          kind: 'openai',
          keys: [{ value: 'mock-key', models: ['*'] }],
          network_config: { base_url: `${base}/v1`, max_retries: 0, max_conns_per_host: 4096 },
          concurrency_and_buffer_size: { concurrency: 4096, buffer_size: 65536 },
        },
      },
    })
    return {
      one: (delay) => async (marks) => {
        for await (const c of gw.stream({ model: `openai/${model(delay)}`, messages: [{ role: 'user', content: PROMPT }] })) {
          if (c.choices.length && c.choices[0].delta.content) marks.push(performance.now())
        }
      },
      close: () => gw.shutdown(5000),
    }
  }
  if (name === 'http') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: streams })
    const headers = { 'content-type': 'application/json', authorization: 'Bearer mock-key' }
    return {
      one: (delay) => {
        const body = JSON.stringify({ model: model(delay), stream: true, messages: [{ role: 'user', content: PROMPT }] })
        return (marks) => new Promise((resolve, reject) => {
          const req = http.request(`${base}/v1/chat/completions`, { method: 'POST', headers, agent }, (res) => {
            if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`))
            res.setEncoding('utf8')
            let buf = ''
            res.on('data', (d) => {
              buf += d
              let nl
              while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl)
                buf = buf.slice(nl + 1)
                if (!line.startsWith('data: ')) continue
                const data = line.slice(6).trim()
                if (data === '[DONE]') continue
                const c = JSON.parse(data)
                if (c.choices.length && c.choices[0].delta.content) marks.push(performance.now())
              }
            })
            res.on('end', resolve)
            res.on('error', reject)
          })
          req.on('error', reject)
          req.end(body)
        })
      },
      close: async () => agent.destroy(),
    }
  }
  if (name === 'openai') {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'mock-key', maxRetries: 0 })
    return {
      one: (delay) => async (marks) => {
        const s = await client.chat.completions.create({ model: model(delay), stream: true, messages: [{ role: 'user', content: PROMPT }] })
        for await (const c of s) {
          if (c.choices.length && c.choices[0].delta.content) marks.push(performance.now())
        }
      },
      close: async () => {},
    }
  }
  throw new Error(`unknown client ${name}`)
}

async function cell (one, streams, seconds) {
  const ttfc = []
  const gaps = []
  const counts = []
  await Promise.all(Array.from({ length: Math.min(streams, 64) }, () => one([]))) // warm-up, unmeasured
  const stop = performance.now() + seconds * 1000
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  async function lane () {
    while (performance.now() < stop) {
      const marks = []
      const started = performance.now()
      await one(marks)
      if (marks.length) ttfc.push(marks[0] - started)
      for (let k = 1; k < marks.length; k++) gaps.push(marks[k] - marks[k - 1])
      counts.push(marks.length)
    }
  }
  await Promise.all(Array.from({ length: streams }, lane))
  const wall = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const n = counts.reduce((a, b) => a + b, 0)
  ttfc.sort((a, b) => a - b)
  gaps.sort((a, b) => a - b)
  return {
    streams,
    chunks: n,
    chunks_per_s: n / wall,
    cpu_us_per_chunk: n ? (cpu.user + cpu.system) / n : null,
    ttfc_p50_ms: ttfc.length ? ttfc[Math.floor(ttfc.length / 2)] : null,
    gap_p99_ms: gaps.length ? gaps[Math.floor(gaps.length * 0.99)] : null,
    complete: counts.every((c) => c === counts[0]),
  }
}

async function main () {
  const copy = path.join(os.tmpdir(), `bifrost-stream-bench-${process.pid}.node`)
  fs.copyFileSync(path.join(rel, 'libbifrost_node.so'), copy)
  process.on('exit', () => fs.rmSync(copy, { force: true }))
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = copy
  const { Gateway } = require(root)
  let OpenAI = null
  let openaiVersion = null
  if (CLIENTS.includes('openai')) {
    try {
      const req = createRequire(path.join(__dirname, 'package.json'))
      OpenAI = req('openai').default || req('openai')
      openaiVersion = JSON.parse(fs.readFileSync(path.join(path.dirname(req.resolve('openai')), 'package.json'), 'utf8')).version
    } catch (e) {
      console.error(`# openai not available (${e.message.split('\n')[0]}): run npm install --prefix bench/node`)
    }
  }
  const child = spawn(path.join(rel, 'bifrost-mock'), ['--port', '0', '--workers', '1'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = Number(await new Promise((resolve) => readline.createInterface({ input: child.stdout }).once('line', resolve)))
  const base = `http://127.0.0.1:${port}`
  try {
    for (const delay of DELAYS) {
      for (const streams of STREAMS) {
        for (const name of CLIENTS) {
          if (name === 'openai' && !OpenAI) continue
          const client = makeClient(name, base, streams, Gateway, OpenAI)
          const r = await cell(client.one(delay), streams, SECONDS)
          await client.close()
          const out = { mode: 'stream', client: LABELS[name], lang: 'Node', chunk_delay_ms: delay, ...r, versions: { node: process.version, openai: openaiVersion } }
          console.log(JSON.stringify(out))
          console.error(`# ${LABELS[name].padEnd(30)} streams=${String(streams).padStart(5)} delay=${String(delay).padStart(3)}ms ${Math.round(r.chunks_per_s).toString().padStart(8)} chunks/s ` +
            `${r.cpu_us_per_chunk?.toFixed(1).padStart(6)} µs CPU/chunk  ttfc p50 ${r.ttfc_p50_ms?.toFixed(1)} ms  gap p99 ${r.gap_p99_ms?.toFixed(1)} ms  complete=${r.complete}`)
        }
      }
    }
  } finally {
    child.kill()
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
