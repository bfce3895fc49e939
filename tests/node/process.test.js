'use strict'
// Process life: exiting by itself, worker_threads.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { Gateway } = require('../..')
const { user } = require('./helpers')

const pkg = path.resolve(__dirname, '..', '..')

function runNode (code, timeout = 10000) {
  const t0 = Date.now()
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout, env: { ...process.env, BIFROST_PKG: pkg } })
  return { ...r, ms: Date.now() - t0 }
}

test('a script that never calls shutdown exits by itself', () => {
  const r = runNode(`
    const { Gateway } = require(process.env.BIFROST_PKG)
    const gw = new Gateway({ providers: { local: { kind: 'mock', mock: { latency_ms: 20 } } } })
    gw.chat({ model: 'local/m', messages: [{ role: 'user', content: 'bye' }] }).then((r) => console.log(r.choices[0].message.content))
  `)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'echo: bye')
  assert.ok(r.ms < 5000, `took ${r.ms} ms`)
})

test('a pending job keeps the process alive until it settles', () => {
  const r = runNode(`
    const { Gateway } = require(process.env.BIFROST_PKG)
    const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
    gw.submit({ model: 'local/m', messages: [{ role: 'user', content: 'late' }], mock: { latency_ms: 300 } })
      .then((job) => job.result()).then((r) => console.log(r.choices[0].message.content))
  `)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'echo: late')
})

test('exits promptly after shutdown with a stream left open', () => {
  const r = runNode(`
    const { Gateway } = require(process.env.BIFROST_PKG)
    const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
    ;(async () => {
      const s = gw.stream({ model: 'local/m', messages: [{ role: 'user', content: 'a b c d' }] })
      console.log((await s.next()).done)
      console.log(JSON.stringify(await gw.shutdown(500)))
    })()
  `)
  assert.equal(r.status, 0, r.stderr)
  assert.ok(r.ms < 5000)
})

function inWorker (code) {
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: pkg })
    let msg
    w.on('message', (m) => { msg = m })
    w.on('error', reject)
    w.on('exit', (c) => (c === 0 ? resolve(msg) : reject(new Error(`worker exited ${c}`))))
  })
}

const workerCode = `
  const { parentPort, workerData } = require('node:worker_threads')
  const { Gateway } = require(workerData)
  const gw = new Gateway({ providers: { local: { kind: 'mock', mock: { latency_ms: 2 } } } })
  Promise.all(Array.from({ length: 200 }, (_, i) => gw.chat({ model: 'local/m', messages: [{ role: 'user', content: 'w' + i }] })))
    .then(async (rs) => {
      const st = gw.stats()
      parentPort.postMessage({ n: rs.length, last: rs[199].choices[0].message.content, threads: st.runtime.worker_threads })
      await gw.shutdown()
    })
`

test('worker_threads: one Gateway per thread, concurrently with the main thread', async () => {
  const gw = new Gateway({ providers: { local: { kind: 'mock', mock: { latency_ms: 2 } } } })
  const main = Promise.all(Array.from({ length: 200 }, (_, i) => gw.chat({ model: 'local/m', messages: user(`m${i}`) })))
  const results = await Promise.all([inWorker(workerCode), inWorker(workerCode), inWorker(workerCode)])
  for (const r of results) {
    assert.equal(r.n, 200)
    assert.equal(r.last, 'echo: w199')
  }
  assert.equal((await main).length, 200)
  assert.equal(results[0].threads, gw.stats().runtime.worker_threads, 'one shared runtime')
  await gw.shutdown()
})

test('worker_threads: workers that load bifrost one after another (main never does)', () => {
  const r = runNode(`
    const { Worker } = require('node:worker_threads')
    const code = ${JSON.stringify(workerCode)}
    const run = () => new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: process.env.BIFROST_PKG })
      w.on('message', (m) => console.log(m.last))
      w.on('error', reject)
      w.on('exit', resolve)
    })
    run().then(run).then(run)
  `, 20000)
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split('\n'), ['echo: w199', 'echo: w199', 'echo: w199'])
})
