'use strict'
// The HTTP providers against the bifrost-mock server (a child process).

const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { startMock, until, invariantHolds, idle, user } = require('./helpers')

let mock, gw
test.before(async () => {
  mock = await startMock()
  gw = new Gateway({
    providers: {
      openai: {
        kind: 'openai',
        keys: [{ value: 'mock-key', models: ['*'] }],
        network_config: { base_url: mock.openaiUrl },
      },
      anthropic: {
        kind: 'anthropic',
        keys: [{ value: 'mock-key', models: ['*'] }],
        network_config: { base_url: mock.anthropicUrl },
      },
    },
  })
})
test.after(async () => {
  await gw.shutdown(2000)
  mock.stop()
})

test('openai: chat, submit, embed', async () => {
  const r = await gw.chat({ model: 'openai/gpt-4o', messages: user('hello there') })
  assert.equal(r.choices[0].message.content, 'echo: hello there')
  assert.equal(r.extra_fields.key_id, 'openai#0')
  const job = await gw.submit({ model: 'openai/gpt-4o', messages: user('job') })
  assert.equal((await job.result()).choices[0].message.content, 'echo: job')
  const e = await gw.embed({ model: 'openai/text-embedding-3-small', input: ['a', 'b', 'c'] })
  assert.equal(e.data.length, 3)
  const s = await mock.stats()
  assert.ok(s.by_route['openai.chat'] >= 2)
  assert.ok(s.by_route['openai.embeddings'] >= 1)
})

test('anthropic: chat and stream', async () => {
  const r = await gw.chat({ model: 'anthropic/claude-3-5-haiku-latest', messages: user('hi') })
  assert.equal(r.choices[0].message.content, 'echo: hi')
  let text = ''
  for await (const c of gw.stream({ model: 'anthropic/claude-3-5-haiku-latest', messages: user('a b c') })) text += c.choices[0]?.delta.content ?? ''
  assert.equal(text, 'echo: a b c')
})

test('openai: stream to the end', async () => {
  let text = ''
  let last
  for await (const c of gw.stream({ model: 'openai/gpt-4o~chunks=6', messages: user('one two three') })) {
    text += c.choices[0]?.delta.content ?? ''
    last = c
  }
  assert.equal(text, 'echo: one two three')
  assert.ok(last.usage || last.choices[0]?.finish_reason)
})

test('PROVIDER error with status and body from the server', async () => {
  await assert.rejects(gw.chat({ model: 'openai/gpt-4o~fail_status=503', messages: user('x') }), (e) =>
    e instanceof BifrostError && e.code === 'PROVIDER' && e.status === 503 && typeof e.body === 'string' && e.body.length > 0)
  await assert.rejects(gw.chat({ model: 'openai/gpt-4o~fail_status=400', messages: user('x') }), (e) =>
    e.code === 'PROVIDER' && e.status === 400)
})

test('a stream cut off by the server is an error, not a silent end', async () => {
  const s = gw.stream({ model: 'openai/gpt-4o~chunks=10&truncate_after=3', messages: user('a b c d e f g h i j') })
  await assert.rejects((async () => { for await (const c of s) assert.ok(c) })(), (e) => e instanceof BifrostError)
})

test('stream: break closes the upstream request', async () => {
  const before = (await mock.stats()).streams_aborted_by_client
  let n = 0
  for await (const c of gw.stream({ model: 'openai/gpt-4o~chunks=50&chunk_delay_ms=20', messages: user('long') })) {
    assert.ok(c)
    if (++n === 2) break
  }
  assert.ok(await until(async () => (await mock.stats()).streams_aborted_by_client === before + 1), 'server saw the abort')
})

test('stream: AbortSignal closes the upstream request', async () => {
  const before = (await mock.stats()).streams_aborted_by_client
  const ac = new AbortController()
  const chunks = []
  const t0 = Date.now()
  await assert.rejects((async () => {
    for await (const c of gw.stream({ model: 'openai/gpt-4o~chunks=50&chunk_delay_ms=20', messages: user('long') }, { signal: ac.signal })) {
      chunks.push(c)
      if (chunks.length === 2) setTimeout(() => ac.abort(), 10)
    }
  })(), (e) => e instanceof BifrostError && e.code === 'CANCELLED')
  assert.ok(Date.now() - t0 < 800, 'rejected promptly, long before the 50 chunks')
  assert.ok(await until(async () => (await mock.stats()).streams_aborted_by_client === before + 1), 'server saw the abort')
})

test('chat: AbortSignal cancels a request in flight', async () => {
  const ac = new AbortController()
  const t0 = Date.now()
  const p = gw.chat({ model: 'openai/gpt-4o~latency_ms=2000', messages: user('x') }, { signal: ac.signal })
  setTimeout(() => ac.abort(), 50)
  await assert.rejects(p, (e) => e instanceof BifrostError && e.code === 'CANCELLED' && e.provider === 'openai')
  assert.ok(Date.now() - t0 < 1000)
  assert.ok(await until(idle(gw)))
  assert.ok(gw.stats().providers.openai.jobs.cancelled >= 1)
  assert.equal(invariantHolds(gw.stats()), true)
})
