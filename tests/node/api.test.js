'use strict'
// Every API call against the embedded mock provider.

const test = require('node:test')
const assert = require('node:assert/strict')
const { inspect } = require('node:util')
const bifrost = require('../..')
const { Gateway, BifrostError, Job, ChunkStream, optimalConcurrency, ERROR_CODES } = bifrost
const { until, invariantHolds, idle, user } = require('./helpers')

const config = { providers: { local: { kind: 'mock', mock: { latency_ms: 2 } }, other: { kind: 'mock' } } }

test('chat returns a chat.completion with extra_fields', async () => {
  const gw = new Gateway(config)
  const r = await gw.chat({ model: 'local/echo-1', messages: user('hello') })
  assert.equal(r.object, 'chat.completion')
  assert.equal(r.choices[0].message.content, 'echo: hello')
  assert.equal(r.choices[0].message.role, 'assistant')
  assert.deepEqual(Object.keys(r.extra_fields).sort(),
    ['attempts', 'fallback_index', 'key_id', 'latency_ms', 'model', 'provider', 'queue_wait_us'])
  assert.equal(r.extra_fields.provider, 'local')
  assert.equal(r.extra_fields.model, 'echo-1')
  assert.equal(r.usage.prompt_tokens, 1)
  await gw.shutdown()
})

test('config as JSON text; providers; inspect shows no key', async () => {
  const gw = new Gateway(JSON.stringify({ providers: { a: { kind: 'mock', keys: [{ value: 'sk-super-secret', models: ['*'] }] } } }))
  assert.deepEqual(gw.providers, ['a'])
  assert.ok(!inspect(gw).includes('sk-super-secret'))
  assert.ok(!JSON.stringify(gw.stats()).includes('sk-super-secret'))
  assert.ok(!gw.prometheus().includes('sk-super-secret'))
  await gw.shutdown()
})

test('submit gives a Job: id, done, result(), cancel()', async () => {
  const gw = new Gateway(config)
  const job = await gw.submit({ model: 'local/m', messages: user('hi'), mock: { latency_ms: 30 } })
  assert.ok(job instanceof Job)
  assert.equal(typeof job.id, 'number')
  assert.ok(job.id > 0)
  assert.equal(job.done, false)
  const r = await job.result()
  assert.equal(r.choices[0].message.content, 'echo: hi')
  assert.equal(job.done, true)
  assert.equal(job.cancel(), false, 'cancel after the outcome')
  assert.equal(await job.result(), r, 'result() is the same outcome again')

  const slow = await gw.submit({ model: 'local/m', messages: user('slow'), mock: { latency_ms: 5000 } })
  assert.equal(slow.cancel(), true)
  await assert.rejects(slow.result(), (e) => e instanceof BifrostError && e.code === 'CANCELLED')
  assert.equal(slow.done, true)
  assert.ok(await until(idle(gw)))
  const jobs = gw.stats().providers.local.jobs
  assert.equal(jobs.cancelled, 1)
  assert.equal(invariantHolds(gw.stats()), true)
  await gw.shutdown()
})

test('a failed job whose result() is never read is no unhandled rejection', async () => {
  const gw = new Gateway(config)
  const job = await gw.submit({ model: 'local/m', messages: user('x'), mock: { failure_rate: 1 } })
  await until(() => job.done)
  assert.equal(job.done, true)
  await gw.shutdown()
})

test('stream yields chat.completion.chunk objects and ends', async () => {
  const gw = new Gateway(config)
  const s = gw.stream({ model: 'local/m', messages: user('one two three four five') })
  assert.ok(s instanceof ChunkStream)
  const chunks = []
  for await (const c of s) chunks.push(c)
  assert.ok(chunks.length >= 3)
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk')
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
  assert.equal(text, 'echo: one two three four five')
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop')
  assert.equal(s.fallbackIndex, 0)
  assert.deepEqual(await s.next(), { value: undefined, done: true })
  await gw.shutdown()
})

test('stream: break early, and a stream never iterated starts nothing', async () => {
  const gw = new Gateway(config)
  for await (const c of gw.stream({ model: 'local/m', messages: user('a b c d e f g h') })) {
    assert.ok(c)
    break
  }
  gw.stream({ model: 'local/m', messages: user('never') })
  assert.ok(await until(idle(gw)))
  assert.equal(gw.stats().providers.local.jobs.submitted, 1)
  await gw.shutdown()
})

test('embed returns the OpenAI embeddings shape', async () => {
  const gw = new Gateway(config)
  const e = await gw.embed({ model: 'local/emb', input: ['a', 'b'] })
  assert.equal(e.object, 'list')
  assert.equal(e.data.length, 2)
  assert.ok(e.data[0].embedding.length > 0)
  assert.equal(typeof e.data[0].embedding[0], 'number')
  assert.equal(e.extra_fields.provider, 'local')
  await gw.shutdown()
})

test('stats, health and prometheus have the core keys', async () => {
  const gw = new Gateway(config)
  await gw.chat({ model: 'local/m', messages: user('x') })
  const st = gw.stats()
  assert.deepEqual(Object.keys(st).sort(), ['object_pools', 'providers', 'runtime'])
  assert.deepEqual(Object.keys(st.providers).sort(), ['local', 'other'])
  const p = st.providers.local
  assert.deepEqual(Object.keys(p).sort(), ['circuit', 'jobs', 'keys', 'latency_us', 'limits', 'queue', 'throughput_per_s', 'workers'])
  assert.deepEqual(p.limits, {}, 'no limits configured')
  for (const k of ['submitted', 'completed', 'failed', 'dropped', 'rejected', 'timed_out', 'cancelled', 'retries', 'panics', 'running', 'queued']) {
    assert.equal(typeof p.jobs[k], 'number', k)
  }
  assert.equal(p.jobs.completed, 1)
  assert.deepEqual(Object.keys(p.latency_us.queue_wait).sort(), ['max', 'p50', 'p90', 'p99'])
  assert.ok(st.runtime.worker_threads >= 1)
  assert.ok(st.object_pools.request_buffer)
  const h = gw.health()
  assert.equal(h.status, 'ok')
  assert.equal(h.providers.local.status, 'ok')
  assert.equal(typeof h.providers.local.queue_utilization, 'number')
  const prom = gw.prometheus()
  assert.match(prom, /bifrost_jobs_submitted_total\{provider="local"\} 1/)
  const report = await gw.shutdown(1000)
  assert.deepEqual(Object.keys(report).sort(), ['aborted', 'cancelled', 'completed', 'elapsed_ms', 'failed'])
  assert.equal(gw.health().status, 'shutdown')
})

test('shutdown drains running jobs and is idempotent', async () => {
  const gw = new Gateway(config)
  // Submitted (queued) before the shutdown starts: a bare chat() call
  // reaches the pool asynchronously and could lose that race.
  const job = await gw.submit({ model: 'local/m', messages: user('x'), mock: { latency_ms: 100 } })
  const [r1, r2] = await Promise.all([gw.shutdown(5000), gw.shutdown()])
  assert.deepEqual(r1, r2)
  assert.equal(r1.completed, 1)
  assert.equal((await job.result()).choices[0].message.content, 'echo: x')
})

test('optimalConcurrency follows Little\'s law', () => {
  assert.deepEqual(optimalConcurrency(50, 2, 0.1), { concurrency: 110, buffer_size: 330, timeout_ms: 4000 })
  assert.deepEqual(optimalConcurrency(0.5, 0.1), { concurrency: 1, buffer_size: 3, timeout_ms: 200 })
  assert.throws(() => optimalConcurrency(0, 1, 0), (e) => e instanceof BifrostError && e.code === 'INVALID_REQUEST' && /rate_limit_rps/.test(e.message))
  assert.throws(() => optimalConcurrency('50', 1, 0), (e) => e instanceof TypeError && /rateLimitRps must be a number/.test(e.message))
})

test('AbortSignal: abort before and during chat, submit and embed', async () => {
  const gw = new Gateway(config)
  const slow = { model: 'local/m', messages: user('x'), mock: { latency_ms: 5000 } }
  await assert.rejects(gw.chat(slow, { signal: AbortSignal.abort() }), (e) => e.code === 'CANCELLED')
  for (const call of [
    (signal) => gw.chat(slow, { signal }),
    async (signal) => (await gw.submit(slow, { signal })).result(),
    (signal) => gw.embed({ model: 'local/e', input: 'x', mock: { latency_ms: 5000 } }, { signal }),
  ]) {
    const ac = new AbortController()
    const t0 = Date.now()
    const p = call(ac.signal)
    setTimeout(() => ac.abort(), 30)
    await assert.rejects(p, (e) => e instanceof BifrostError && e.code === 'CANCELLED')
    assert.ok(Date.now() - t0 < 2000)
  }
  assert.ok(await until(idle(gw)))
  const jobs = gw.stats().providers.local.jobs
  assert.equal(jobs.cancelled, 3)
  assert.equal(invariantHolds(gw.stats()), true)
  await gw.shutdown()
})

test('ESM: default and named imports', async () => {
  const m = await import('bifrost')
  assert.equal(m.default.Gateway, Gateway)
  assert.equal(m.Gateway, Gateway)
  assert.equal(m.BifrostError, BifrostError)
  assert.equal(typeof m.optimalConcurrency, 'function')
  assert.equal(ERROR_CODES.length, 15)
  assert.ok(ERROR_CODES.includes('PROTOCOL'))
})

test('the call protocol: event kinds come from the addon, one code each', () => {
  const { KIND } = require('../../bindings-node/protocol.js')
  assert.deepEqual(Object.keys(KIND).sort(), ['chunk', 'opened', 'response', 'submitted'])
  assert.equal(new Set(Object.values(KIND)).size, 4)
  assert.ok(Object.isFrozen(KIND))
})
