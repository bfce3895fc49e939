'use strict'
// Error classes and codes (docs/architecture.md §6) and TypeErrors for wrong argument types.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { user } = require('./helpers')

const is = (code, extra = () => true) => (e) => {
  assert.ok(e instanceof BifrostError, `not a BifrostError: ${e}`)
  assert.ok(e instanceof Error)
  assert.equal(e.name, 'BifrostError')
  assert.equal(e.code, code, e.message)
  assert.ok(extra(e), `${code}: ${e.message}`)
  return true
}

test('CONFIG names the key path', () => {
  assert.throws(() => new Gateway({ providers: { openai: { kind: 'openai', concurrency_and_buffer_size: { concurrency: 0 } } } }),
    is('CONFIG', (e) => /providers\.openai\.concurrency_and_buffer_size\.concurrency/.test(e.message) && /1\.\.=10000/.test(e.message)))
  assert.throws(() => new Gateway({ providers: { a: { kind: 'mock', bogus_key: 1 } } }), is('CONFIG', (e) => /bogus_key/.test(e.message)))
  assert.throws(() => new Gateway('{not json'), is('CONFIG'))
  assert.throws(() => new Gateway({ providers: { o: { kind: 'openai', keys: [{ value: 'env.BIFROST_TEST_SURELY_UNSET', models: ['*'] }] } } }),
    is('CONFIG', (e) => /BIFROST_TEST_SURELY_UNSET/.test(e.message)))
  // A key without "models" and no "version": Bifrost's versions disagree.
  assert.throws(() => new Gateway({ providers: { openai: { keys: [{ value: 'sk-x' }] } } }),
    is('CONFIG', (e) => /providers\.openai\.keys\[0\]\.models: missing/.test(e.message)))
})

test('INVALID_REQUEST and UNKNOWN_PROVIDER', async () => {
  const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
  await assert.rejects(gw.chat({ model: 'no-slash', messages: user('x') }), is('INVALID_REQUEST', (e) => /provider/.test(e.message)))
  await assert.rejects(gw.chat({ model: 'local/m', messages: [] }), is('INVALID_REQUEST'))
  await assert.rejects(gw.chat({ model: 'local/m', messages: [{ role: 'robot', content: 'x' }] }), is('INVALID_REQUEST', (e) => /role/.test(e.message)))
  await assert.rejects(gw.chat({ model: 'local/m', messages: user('x'), surprise: 1 }), is('INVALID_REQUEST', (e) => /surprise/.test(e.message)))
  await assert.rejects(gw.chat({ model: 5, messages: user('x') }), is('INVALID_REQUEST', (e) => /model/.test(e.message)))
  await assert.rejects(gw.embed({ model: 'local/e', input: [] }), is('INVALID_REQUEST'))
  await assert.rejects(gw.chat({ model: 'nope/m', messages: user('x') }),
    is('UNKNOWN_PROVIDER', (e) => e.provider === 'nope' && /local/.test(e.message)))
  const s = gw.stream({ model: 'nope/m', messages: user('x') })
  await assert.rejects(s.next(), is('UNKNOWN_PROVIDER'))
  await gw.shutdown()
})

test('PROVIDER carries status and body; INTERNAL on a panic', async () => {
  const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
  await assert.rejects(gw.chat({ model: 'local/m', messages: user('x'), mock: { failure_rate: 1, failure_status: 503 } }),
    is('PROVIDER', (e) => e.status === 503 && typeof e.body === 'string' && e.provider === 'local'))
  await assert.rejects(gw.chat({ model: 'local/m', messages: user('x'), mock: { panic_rate: 1 } }), is('INTERNAL'))
  await gw.shutdown()
})

test('fallbackErrors lists each fallback target', async () => {
  const gw = new Gateway({ providers: { a: { kind: 'mock' }, b: { kind: 'mock' } } })
  const fail = { failure_rate: 1, failure_status: 503 }
  await assert.rejects(gw.chat({ model: 'a/m', messages: user('x'), fallbacks: ['b/m'], mock: fail }),
    is('PROVIDER', (e) => e.status === 503 && Array.isArray(e.fallbackErrors) && e.fallbackErrors.length === 1 &&
      e.fallbackErrors[0] instanceof BifrostError && e.fallbackErrors[0].target === 'b/m' && e.fallbackErrors[0].code === 'PROVIDER'))
  const ok = await gw.chat({ model: 'a/m', messages: user('x'), fallbacks: ['b/m'], mock: { failure_rate: 0 } })
  assert.equal(ok.extra_fields.fallback_index, 0)
  await gw.shutdown()
})

test('QUEUE_FULL under policy error, DROPPED under drop', async () => {
  const gw = new Gateway({
    providers: {
      e: { kind: 'mock', concurrency_and_buffer_size: { concurrency: 1, buffer_size: 1 }, queue: { policy: 'error' } },
      d: { kind: 'mock', concurrency_and_buffer_size: { concurrency: 1, buffer_size: 1 }, queue: { policy: 'drop' } },
    },
  })
  for (const [p, code] of [['e', 'QUEUE_FULL'], ['d', 'DROPPED']]) {
    const slow = { model: `${p}/m`, messages: user('x'), mock: { latency_ms: 300 } }
    const results = await Promise.allSettled([gw.chat(slow), gw.chat(slow), gw.chat(slow), gw.chat(slow)])
    const failed = results.filter((r) => r.status === 'rejected')
    assert.ok(failed.length >= 1, `${p}: some call is refused`)
    for (const f of failed) is(code, (e) => e.provider === p)(f.reason)
    if (code === 'QUEUE_FULL') assert.match(failed[0].reason.message, /buffer_size=1, policy=error/)
  }
  const st = gw.stats().providers
  assert.ok(st.e.jobs.rejected >= 1)
  assert.ok(st.d.jobs.dropped >= 1)
  await gw.shutdown()
})

test('SHUTDOWN after shutdown; TIMEOUT on a request deadline', async () => {
  const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
  await assert.rejects(gw.chat({ model: 'local/m', messages: user('x'), mock: { latency_ms: 2000 }, timeout_ms: 50 }), is('TIMEOUT'))
  await gw.shutdown(1000)
  await assert.rejects(gw.chat({ model: 'local/m', messages: user('x') }), is('SHUTDOWN'))
  await assert.rejects(gw.submit({ model: 'local/m', messages: user('x') }), is('SHUTDOWN'))
  await assert.rejects(gw.embed({ model: 'local/m', input: 'x' }), is('SHUTDOWN'))
  await assert.rejects(gw.stream({ model: 'local/m', messages: user('x') }).next(), is('SHUTDOWN'))
})

test('wrong argument types are TypeErrors naming the argument', async () => {
  for (const bad of [undefined, null, 42, [], true]) {
    assert.throws(() => new Gateway(bad), (e) => e instanceof TypeError && /config must be an object or a JSON string/.test(e.message))
  }
  const gw = new Gateway({ providers: { local: { kind: 'mock' } } })
  for (const bad of [undefined, null, 'text', 7, []]) {
    await assert.rejects(gw.chat(bad), (e) => e instanceof TypeError && /chat\(request\): request must be an object/.test(e.message))
    await assert.rejects(gw.submit(bad), (e) => e instanceof TypeError && /submit\(request\)/.test(e.message))
    await assert.rejects(gw.embed(bad), (e) => e instanceof TypeError && /embed\(request\)/.test(e.message))
    assert.throws(() => gw.stream(bad), (e) => e instanceof TypeError && /stream\(request\)/.test(e.message))
  }
  const req = { model: 'local/m', messages: user('x') }
  await assert.rejects(gw.chat(req, 5), (e) => e instanceof TypeError && /options must be an object/.test(e.message))
  await assert.rejects(gw.chat(req, { signal: 'soon' }), (e) => e instanceof TypeError && /options\.signal must be an AbortSignal/.test(e.message))
  await assert.rejects(gw.shutdown('10s'), (e) => e instanceof TypeError && /timeoutMs must be a number/.test(e.message))
  // A number that is no duration is the same INVALID_REQUEST as in Python and C.
  for (const bad of [-1, NaN, Infinity, -Infinity]) {
    await assert.rejects(gw.shutdown(bad), (e) => e instanceof BifrostError && e.code === 'INVALID_REQUEST' && /timeoutMs/.test(e.message))
  }
  await gw.shutdown()
})
