'use strict'
// A provider's `limits` from Node: the same cases as
// tests/python/test_limits.py and tests/c/test_api.c (test_limits).

const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { invariantHolds, user } = require('./helpers')

const req = (extra = {}) => ({ model: 'p/m', messages: user('hello'), ...extra })

test('a limited provider works and RATE_LIMITED is typed', async () => {
  const gw = new Gateway({ providers: { p: { kind: 'mock', limits: { requests_per_minute: 2 } } } })
  assert.equal((await gw.chat(req())).object, 'chat.completion')
  assert.equal((await gw.chat(req())).object, 'chat.completion')
  await assert.rejects(gw.chat(req({ timeout_ms: 5000 })), (e) => {
    assert.ok(e instanceof BifrostError)
    assert.equal(e.code, 'RATE_LIMITED')
    assert.equal(e.provider, 'p')
    assert.ok(e.retryAfterMs > 20000 && e.retryAfterMs <= 30000, String(e.retryAfterMs))
    return true
  })
  const stats = gw.stats()
  const s = stats.providers.p
  assert.deepEqual([s.jobs.completed, s.jobs.rate_limited], [2, 1])
  const b = s.limits.requests
  assert.deepEqual([b.limit, b.period_ms, b.burst, b.remaining, b.rate_limited], [2, 60000, 2, 0, 1])
  assert.equal(invariantHolds(stats), true)
  assert.ok(gw.prometheus().includes('bifrost_ratelimit_rate_limited_total{provider="p",bucket="requests"} 1'))
  await gw.shutdown(5000)
})

test('limits are validated like every other key', () => {
  assert.throws(() => new Gateway({ providers: { p: { kind: 'mock', limits: { requests_per_minute: 0 } } } }),
    (e) => e instanceof BifrostError && e.code === 'CONFIG' && e.path === 'providers.p.limits.requests_per_minute')
})

test('limits_store is validated and its URL is never shown', async () => {
  // The same cases as tests/python/test_limits.py.
  const secret = 'redis://:hunter2@127.0.0.1:1/0'
  const provider = { p: { kind: 'mock', limits: { requests_per_minute: 5 } } }
  for (const [store, path] of [
    [{ kind: 'redis', url: secret }, 'limits_store.fleet_size'],
    [{ kind: 'redis', url: 'http://:hunter2@h', fleet_size: 2 }, 'limits_store.url'],
    [{ kind: 'memory', url: secret }, 'limits_store.url'],
  ]) {
    assert.throws(() => new Gateway({ limits_store: store, providers: provider }), (e) => {
      assert.equal(e.code, 'CONFIG')
      assert.equal(e.path, path)
      assert.ok(!String(e.message).includes('hunter2'))
      return true
    })
  }
  const gw = new Gateway({ limits_store: { kind: 'redis', url: secret, on_unavailable: 'fail_closed' }, providers: provider })
  await assert.rejects(gw.chat(req()), (e) => e.code === 'RATE_LIMITED' && e.message.includes('limits_store') && !e.message.includes('hunter2'))
  const store = gw.stats().providers.p.limits_store
  assert.deepEqual([store.kind, store.up], ['redis', false])
  assert.ok(!JSON.stringify(gw.stats()).includes('hunter2') && !gw.prometheus().includes('hunter2'))
  await gw.shutdown(1000)
})
