'use strict'
// The same cancel and fallback scenarios as tests/python/test_agreement.py
// and tests/c/test_api.c (test_agreement_*), with the same expected answers:
// the three bindings wrap one core job handle, so they must agree on cancel
// results, on fallback timing and on how every job is counted.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { until, user } = require('./helpers')

const config = {
  providers: {
    // Ten minutes: a job here is still running whenever the test looks.
    slow: { kind: 'mock', mock: { latency_ms: 600000 }, concurrency_and_buffer_size: { concurrency: 1, buffer_size: 8 } },
    fast: { kind: 'mock' },
    bad: { kind: 'mock', mock: { failure_rate: 1.0 } }
  }
}

const req = (model, extra = {}) => ({ model, messages: user('hi'), ...extra })
const jobs = (gw, p) => gw.stats().providers[p].jobs
const cancelledError = (e) => e instanceof BifrostError && e.code === 'CANCELLED'

test('cancel answers and counts agree', async () => {
  const gw = new Gateway(config)
  const running = await gw.submit(req('slow/m'))
  const queued = await gw.submit(req('slow/m'))
  assert.equal(queued.cancel(), true)
  assert.equal(queued.cancel(), false, 'a second cancel finds the job over')
  await assert.rejects(queued.result(), cancelledError)
  assert.equal(running.cancel(), true)
  await assert.rejects(running.result(), cancelledError)
  const done = await gw.submit(req('fast/m'))
  assert.equal((await done.result()).object, 'chat.completion')
  assert.equal(done.cancel(), false, 'a finished job cannot be cancelled')
  const slow = jobs(gw, 'slow')
  assert.deepEqual([slow.submitted, slow.cancelled, slow.queued, slow.running], [2, 2, 0, 0], JSON.stringify(slow))
  assert.equal(jobs(gw, 'fast').completed, 1)
  await gw.shutdown(5000)
})

test('fallbacks advance while nobody waits', async () => {
  const gw = new Gateway(config)
  const job = await gw.submit(req('bad/m', { fallbacks: ['fast/m'] }))
  // A liveness bound, not a timing assumption.
  assert.ok(await until(() => jobs(gw, 'fast').fallbacks_served >= 1, 60000), 'the fallback never ran')
  assert.ok(await until(() => job.done, 60000), 'finished without anyone waiting')
  const r = await job.result()
  assert.deepEqual([r.extra_fields.provider, r.extra_fields.fallback_index], ['fast', 1])
  assert.equal(jobs(gw, 'bad').failed, 1)
  assert.equal(job.cancel(), false)
  await gw.shutdown(5000)
})

// Same input, same error kind (and the same `path`) in every binding: the
// Python and C files check these inputs too.
test('bad config text is CONFIG with a path', () => {
  for (const [text, path] of [
    ['{"providers": {"a\ud800": {"kind": "mock"}}}', ''], // not Unicode
    ['{not json', ''],
    ['{"providers": {"a": {"kind": "mock", "bogus": 1}}}', 'providers.a.bogus']
  ]) {
    assert.throws(() => new Gateway(text), (e) => e instanceof BifrostError && e.code === 'CONFIG' && e.path === path,
      `${JSON.stringify(text)} → CONFIG at ${JSON.stringify(path)}`)
  }
})
