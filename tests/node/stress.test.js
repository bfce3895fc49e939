'use strict'
// 10k concurrent calls with injected failures, panics, aborts and a shutdown
// in the middle: every promise settles exactly once and the accounting
// invariant holds for every provider.

// Injected panics print one line each, not a backtrace.
process.env.RUST_BACKTRACE = '0'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { until, invariantHolds, idle, user } = require('./helpers')

test('10k concurrent chats, faults, aborts and a shutdown midway', async () => {
  const gw = new Gateway({
    providers: {
      a: { kind: 'mock', mock: { latency_ms: 20, jitter_ms: 10, failure_rate: 0.1, panic_rate: 0.002 }, concurrency_and_buffer_size: { concurrency: 64, buffer_size: 2000 } },
      b: { kind: 'mock', mock: { latency_ms: 10, jitter_ms: 10, failure_rate: 0.2 }, concurrency_and_buffer_size: { concurrency: 32, buffer_size: 500 }, queue: { policy: 'drop_oldest' } },
      c: { kind: 'mock', mock: { latency_ms: 1 }, concurrency_and_buffer_size: { concurrency: 8, buffer_size: 100 }, queue: { policy: 'error' } },
      // Held for ten minutes: whatever the machine's speed, these jobs are
      // still running when the shutdown's deadline passes (SHUTDOWN, aborted).
      h: { kind: 'mock', mock: { latency_ms: 600000 }, concurrency_and_buffer_size: { concurrency: 4, buffer_size: 100 } },
    },
  })
  const N = 10000
  const settled = new Array(N).fill(0)
  const outcomes = new Map()
  const count = (k) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1)
  const promises = []
  for (let i = 0; i < N; i++) {
    const provider = i % 100 === 1 ? 'h' : 'abc'[i % 3]
    let signal
    if (i % 50 === 0) {
      const ac = new AbortController()
      setTimeout(() => ac.abort(), i % 7)
      signal = ac.signal
    }
    promises.push(gw.chat({ model: `${provider}/m`, messages: user(`n${i}`) }, { signal }).then(
      (r) => { settled[i]++; assert.equal(r.choices[0].message.content, `echo: n${i}`); count('ok') },
      (e) => { settled[i]++; assert.ok(e instanceof BifrostError, String(e)); count(e.code) },
    ))
  }
  // The shutdown comes once some calls have succeeded (not after a fixed
  // time, which a busy machine stretches arbitrarily).
  assert.ok(await until(() => (outcomes.get('ok') ?? 0) >= 100, 60000), 'some calls succeeded')
  const report = await gw.shutdown(200)
  await Promise.all(promises)
  assert.equal(settled.filter((n) => n === 1).length, N, 'every promise settled exactly once')
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0)
  assert.equal(total, N)
  for (const code of outcomes.keys()) {
    assert.ok(['ok', 'PROVIDER', 'INTERNAL', 'CANCELLED', 'SHUTDOWN', 'QUEUE_FULL', 'DROPPED', 'QUEUE_TIMEOUT'].includes(code), code)
  }
  assert.ok(outcomes.get('ok') > 0 && outcomes.get('PROVIDER') > 0)
  assert.ok(outcomes.get('SHUTDOWN') > 0, 'the shutdown cut jobs off')
  assert.ok(report.aborted > 0)
  assert.ok(await until(idle(gw)))
  const stats = gw.stats()
  assert.equal(invariantHolds(stats), true)
  const submitted = Object.values(stats.providers).reduce((a, p) => a + p.jobs.submitted, 0)
  assert.ok(submitted > 0 && submitted <= N)
  assert.equal(typeof report.aborted, 'number')
  console.log(`# outcomes ${JSON.stringify(Object.fromEntries(outcomes))} shutdown ${JSON.stringify(report)}`)
})

test('10k concurrent submits and results, cancelling some', async () => {
  // Every tenth job goes to `h`, which holds its jobs for ten minutes: those
  // are certainly unfinished when cancelled, however busy the machine.
  const gw = new Gateway({
    providers: {
      a: { kind: 'mock', mock: { latency_ms: 1, failure_rate: 0.05 }, concurrency_and_buffer_size: { concurrency: 100, buffer_size: 10000 } },
      h: { kind: 'mock', mock: { latency_ms: 600000 }, concurrency_and_buffer_size: { concurrency: 10, buffer_size: 1000 } },
    },
  })
  const N = 10000
  const jobs = await Promise.all(Array.from({ length: N }, (_, i) => gw.submit({ model: `${i % 10 === 0 ? 'h' : 'a'}/m`, messages: user(`j${i}`) })))
  let cancelled = 0
  for (let i = 0; i < N; i += 5) if (jobs[i].cancel()) cancelled++
  const results = await Promise.allSettled(jobs.map((j) => j.result()))
  assert.equal(results.length, N)
  assert.ok(jobs.every((j) => j.done))
  assert.ok(await until(idle(gw)))
  const st = gw.stats()
  assert.equal(invariantHolds(st), true)
  assert.equal(st.providers.a.jobs.submitted + st.providers.h.jobs.submitted, N)
  assert.equal(st.providers.a.jobs.cancelled + st.providers.h.jobs.cancelled, results.filter((r) => r.status === 'rejected' && r.reason.code === 'CANCELLED').length)
  // Every held job was cancelled (cancel() said so and it ended CANCELLED);
  // the fast ones may or may not have finished first.
  assert.equal(st.providers.h.jobs.cancelled, N / 10)
  assert.ok(cancelled >= N / 10)
  for (let i = 0; i < N; i += 10) assert.equal(results[i].reason?.code, 'CANCELLED')
  await gw.shutdown()
})
