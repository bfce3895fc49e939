'use strict'
// Streams read ahead of their consumer and cross into JS in batches: the
// addon sends every chunk that was ready as one event, at most a window of
// chunks before the consumer took them (it gives credit back as it reads).
// Batching must never lose, repeat or reorder a chunk, must keep reading
// once the consumer catches up, and an error read behind chunks comes after
// them. Against bifrost-mock over loopback HTTP.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { Gateway, BifrostError } = require('../..')
const { startMock, user } = require('./helpers')

let mock, gw, strict
test.before(async () => {
  mock = await startMock()
  const keys = [{ value: 'mock-key', models: ['*'] }]
  gw = new Gateway({ providers: { openai: { kind: 'openai', keys, network_config: { base_url: mock.openaiUrl } } } })
  strict = new Gateway({
    providers: { openai: { kind: 'openai', keys, network_config: { base_url: mock.openaiUrl }, failover: { stream_recovery: 'off' } } },
  })
})
test.after(async () => {
  await gw.shutdown(5000)
  await strict.shutdown(5000)
  mock.stop()
})

const words = (n, p = 'w') => Array.from({ length: n }, (_, i) => `${p}${i}`).join(' ')
const text = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
const turns = (n) => new Promise((resolve) => {
  let left = n
  const step = () => (--left <= 0 ? resolve() : setImmediate(step))
  setImmediate(step)
})

async function all (stream) {
  const out = []
  for await (const c of stream) out.push(c)
  return out
}

test('streams at full speed arrive whole and in order, several at once', { timeout: 120000 }, async () => {
  const prompt = words(2000, 't')
  const got = await Promise.all(Array.from({ length: 8 }, () =>
    all(gw.stream({ model: 'openai/m~chunks=2000', messages: user(prompt) }))))
  for (const chunks of got) assert.equal(text(chunks), `echo: ${prompt}`)
})

test('a consumer that pauses gets the rest once it reads again (credit comes back)', { timeout: 120000 }, async () => {
  // 1000 chunks: several windows; the reader must be given credit to go on.
  const prompt = words(1000)
  const s = gw.stream({ model: 'openai/m~chunks=1000', messages: user(prompt) })
  const first = await s.next()
  await new Promise((resolve) => setTimeout(resolve, 200)) // the addon reads ahead meanwhile
  await turns(50)
  const rest = await all(s)
  assert.equal(text([first.value, ...rest]), `echo: ${prompt}`)
})

test('an error behind ready chunks comes after them, once', async () => {
  const s = strict.stream({ model: 'openai/m~chunks=8&invalid_event_at=5', messages: user('a b c d e f g h') })
  const got = []
  await assert.rejects(async () => { for await (const c of s) got.push(c) },
    (e) => e instanceof BifrostError && e.code === 'PROTOCOL')
  assert.equal(got.length, 5)
  assert.deepEqual(await s.next(), { value: undefined, done: true })
})

test('break after the first chunk closes the stream; the next stream works', async () => {
  const s = gw.stream({ model: 'openai/m~chunks=500', messages: user(words(500)) })
  for await (const c of s) { assert.ok(c); break }
  assert.deepEqual(await s.next(), { value: undefined, done: true })
  const again = await all(gw.stream({ model: 'openai/m', messages: user('x y') }))
  assert.equal(text(again), 'echo: x y')
})

test('concurrent next() calls get every chunk once, in order', async () => {
  const prompt = words(40)
  const s = gw.stream({ model: 'openai/m~chunks=40', messages: user(prompt) })
  const results = await Promise.all(Array.from({ length: 60 }, () => s.next()))
  const chunks = results.filter((r) => !r.done).map((r) => r.value)
  assert.equal(text(chunks), `echo: ${prompt}`)
  assert.ok(results.slice(chunks.length).every((r) => r.done))
})

test('a stream read partway and abandoned does not keep the process alive', () => {
  const pkg = path.resolve(__dirname, '..', '..')
  const code = `
    const { Gateway } = require(process.env.BIFROST_PKG)
    const gw = new Gateway({ providers: { openai: { kind: 'openai', keys: [{ value: 'mock-key', models: ['*'] }],
      network_config: { base_url: process.env.MOCK_URL } } } })
    ;(async () => {
      const s = gw.stream({ model: 'openai/m~chunks=1000', messages: [{ role: 'user', content: '${words(1000)}' }] })
      console.log((await s.next()).done)
    })()
  `
  const t0 = Date.now()
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60000, env: { ...process.env, BIFROST_PKG: pkg, MOCK_URL: mock.openaiUrl } })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'false')
  assert.ok(Date.now() - t0 < 30000)
})
