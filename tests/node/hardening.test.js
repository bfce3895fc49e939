'use strict'
// Hostile input at the Node boundary (issue "Hardening", docs/architecture.md §13): every
// case here crashed, hung, lost a job or changed a value before.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Gateway, BifrostError } = require('../..')
const { user, until, invariantHolds, idle } = require('./helpers')

const SECRET = 'sk-live-SECRET-0123456789abcdef'
const is = (code, re) => (e) => e instanceof BifrostError && e.code === code && (re === undefined || re.test(e.message))

test('huge and odd shutdown timeouts settle: clamped, or INVALID_REQUEST', async () => {
  for (const t of [1e22, 1e300, Number.MAX_VALUE, 2 ** 64]) {
    const gw = new Gateway({ providers: { m: { kind: 'mock' } } })
    const report = await gw.shutdown(t)
    assert.equal(report.aborted, 0)
  }
  const gw = new Gateway({ providers: { m: { kind: 'mock' } } })
  await assert.rejects(gw.shutdown(NaN), is('INVALID_REQUEST', /timeoutMs/))
  // Refused timeouts shut nothing down.
  assert.equal((await gw.chat({ model: 'm/x', messages: user('still up') })).choices[0].message.content, 'echo: still up')
  await gw.shutdown(0)
})

test('a chat aborted right after the call is cancelled and counted', async () => {
  const gw = new Gateway({ providers: { m: { kind: 'mock', mock: { latency_ms: 600000 } } } })
  const N = 50
  const calls = []
  for (let i = 0; i < N; i++) {
    const ac = new AbortController()
    calls.push(gw.chat({ model: 'm/x', messages: user(`a${i}`) }, { signal: ac.signal }))
    ac.abort()
  }
  // Every rejection gets its handler now: awaiting them one by one would
  // leave later ones unhandled for a while (an unhandledRejection).
  await Promise.all(calls.map((c) => assert.rejects(c, is('CANCELLED'))))
  assert.ok(await until(idle(gw)))
  const j = gw.stats().providers.m.jobs
  assert.equal(j.submitted, N)
  assert.equal(j.cancelled, N)
  assert.equal(invariantHolds(gw.stats()), true)
  // The same for submit(): the job is submitted, then cancelled. Whether
  // the abort reaches the addon before or after it queued the job, the
  // outcome is CANCELLED: of submit() itself, or of the Job it gave.
  const ac = new AbortController()
  const p = gw.submit({ model: 'm/x', messages: user('s') }, { signal: ac.signal })
  ac.abort()
  await assert.rejects(p.then((job) => job.result()), is('CANCELLED'))
  assert.ok(await until(() => gw.stats().providers.m.jobs.cancelled === N + 1))
  await gw.shutdown(0)
})

test('a signal without removeEventListener is refused; a throwing one loses no other outcome', async () => {
  const gw = new Gateway({ providers: { m: { kind: 'mock', mock: { latency_ms: 1 } } } })
  const req = { model: 'm/x', messages: user('x') }
  const noRemove = { aborted: false, addEventListener () {} }
  await assert.rejects(gw.chat(req, { signal: noRemove }), (e) => e instanceof TypeError && /options\.signal must be an AbortSignal/.test(e.message))

  const warnings = []
  const onWarning = (w) => { if (w.code === 'BIFROST_SETTLE_ERROR') warnings.push(w) }
  process.on('warning', onWarning)
  const boom = new Error('removeEventListener exploded')
  const throwing = { aborted: false, addEventListener () {}, removeEventListener () { throw boom } }
  const N = 200
  const outcomes = await Promise.allSettled(Array.from({ length: N }, (_, i) =>
    gw.chat({ model: 'm/x', messages: user(`t${i}`) }, i % 2 === 0 ? { signal: throwing } : undefined)))
  assert.equal(outcomes.length, N)
  for (let i = 0; i < N; i++) {
    assert.equal(outcomes[i].status, 'fulfilled', String(outcomes[i].reason))
    assert.equal(outcomes[i].value.choices[0].message.content, `echo: t${i}`)
  }
  // Every throw is reported, none swallowed.
  assert.ok(await until(() => warnings.length === N / 2))
  assert.equal(warnings[0].cause, boom)
  process.off('warning', onWarning)

  const badAdd = { aborted: false, addEventListener () { throw boom }, removeEventListener () {} }
  await assert.rejects(gw.chat(req, { signal: badAdd }), (e) => e === boom)
  // Nothing was submitted for it, and nothing is left pending.
  assert.ok(await until(idle(gw)))
  assert.equal(gw.stats().providers.m.jobs.submitted, N)
  await gw.shutdown(0)
})

test('NaN, Infinity, BigInt, cycles and deep nesting are typed errors naming the key', async () => {
  const gw = new Gateway({ providers: { m: { kind: 'mock' } } })
  const base = () => ({ model: 'm/x', messages: user('x') })
  const cyclic = base()
  cyclic.params = { metadata: { self: cyclic } }
  let deep = 'leaf'
  for (let i = 0; i < 20000; i++) deep = [deep]
  const cases = [
    [{ ...base(), timeout_ms: NaN }, /timeout_ms: NaN is not a JSON number/],
    [{ ...base(), params: { temperature: Infinity } }, /params\.temperature: Infinity is not a JSON number/],
    [{ ...base(), params: { max_tokens: 10n } }, /params\.max_tokens: a BigInt/],
    [{ ...base(), messages: [{ role: 'user', content: [{ type: 'text', text: 'x', n: -Infinity }] }] }, /messages\[0\]\.content\[0\]\.n: -Infinity/],
    [cyclic, /params\.metadata\.self: the value contains itself/],
    [{ ...base(), params: { deep } }, /nested deeper than 100 levels/],
  ]
  for (const [req, re] of cases) {
    await assert.rejects(gw.chat(req), is('INVALID_REQUEST', re))
    await assert.rejects(gw.submit(req), is('INVALID_REQUEST', re))
    assert.throws(() => gw.stream(req), is('INVALID_REQUEST', re))
  }
  // Nothing was sent.
  assert.equal(gw.stats().providers.m.jobs.submitted, 0)
  // null itself is still fine where the core accepts it.
  assert.equal((await gw.chat({ ...base(), timeout_ms: null, params: { temperature: null } })).object, 'chat.completion')
  await gw.shutdown(0)

  assert.throws(() => new Gateway({ providers: { m: { kind: 'mock', mock: { failure_rate: NaN } } } }),
    (e) => is('CONFIG', /providers\.m\.mock\.failure_rate: NaN/)(e) && e.path === 'providers.m.mock.failure_rate')
  const cfg = { providers: { m: { kind: 'mock' } } }
  cfg.providers.m.self = cfg
  assert.throws(() => new Gateway(cfg), is('CONFIG', /reference cycle/))
})

test('config text: duplicate keys and trailing text are CONFIG errors', () => {
  assert.throws(() => new Gateway('{"providers":{"m":{"kind":"mock"},"m":{"kind":"mock"}}}'), is('CONFIG', /duplicate/))
  assert.throws(() => new Gateway('{"providers":{"m":{"kind":"mock"}}} trailing'), is('CONFIG'))
  assert.throws(() => new Gateway('['.repeat(5000) + ']'.repeat(5000)), is('CONFIG', /nest/))
})

test('secrets put in the wrong place never appear in CONFIG errors', () => {
  const shapes = [
    { keys: SECRET },
    { keys: [SECRET] },
    { keys: [{ value: SECRET, models: ['*'] }], network_config: { extra_headers: SECRET } },
    { keys: [{ value: SECRET, models: ['*'] }], network_config: { base_url: SECRET } },
    { keys: [{ value: SECRET, models: ['*'] }], network_config: { proxy: { type: SECRET, url: 'http://127.0.0.1:1' } } },
  ]
  for (const shape of shapes) {
    const cfg = { providers: { o: { kind: 'openai', ...shape } } }
    for (const c of [cfg, JSON.stringify(cfg)]) {
      assert.throws(() => new Gateway(c), (e) => {
        assert.ok(e instanceof BifrostError && e.code === 'CONFIG', String(e))
        assert.ok(!e.message.includes('SECRET'), e.message)
        assert.ok(!JSON.stringify(e).includes('SECRET'))
        assert.ok(!String(e.stack).includes('SECRET'))
        return true
      })
    }
  }
})

test('an open circuit says when to come back (retryAfterMs)', async () => {
  const gw = new Gateway({
    providers: {
      f: { kind: 'mock', mock: { failure_rate: 1 }, circuit_breaker: { failure_threshold: 1, open_ms: 600000 } },
    },
  })
  const req = { model: 'f/x', messages: user('x') }
  await assert.rejects(gw.chat(req), is('PROVIDER'))
  await assert.rejects(gw.chat(req), (e) => {
    assert.equal(e.code, 'CIRCUIT_OPEN')
    assert.equal(typeof e.retryAfterMs, 'number')
    assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 600000, String(e.retryAfterMs))
    return true
  })
  await gw.shutdown(0)
})

// A property test of value conversion with a seeded generator (no test
// dependency; the same cases every run): for any value, a request either
// goes out exactly as JSON would carry it, or is refused with
// INVALID_REQUEST when JSON cannot carry it (non-finite, BigInt, cycle,
// too deep). Never a crash, never a value silently sent as null.
test('property: a request is sent as JSON would carry it, or refused', async () => {
  let seed = 0x9e3779b9
  const rnd = () => { // mulberry32
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const scalar = () => pick([
    () => null, () => true, () => Math.floor(rnd() * 1e6), () => rnd() * 1e300, () => -rnd(),
    () => 'é€\u0000'.slice(0, Math.floor(rnd() * 4)), () => Number.MAX_SAFE_INTEGER,
    () => NaN, () => Infinity, () => -Infinity, () => 7n, () => undefined, () => new Date(0),
  ])()
  const value = (depth) => {
    const r = rnd()
    if (depth > 4 || r < 0.4) return scalar()
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1))
    if (r < 0.65) { let v = 1; for (let i = 0; i < 100 + Math.floor(rnd() * 50); i++) v = [v]; return v }
    if (r < 0.7) { const o = { a: 1 }; o.self = o; return o }
    const o = {}
    for (let i = Math.floor(rnd() * 4); i > 0; i--) o[`k${i}`] = value(depth + 1)
    return o
  }
  // What the value means as JSON: undefined if JSON cannot carry it.
  const carried = (v, depth = 0, open = new Set()) => {
    if (typeof v === 'bigint') return false
    if (typeof v === 'number') return Number.isFinite(v)
    if (v === null || typeof v !== 'object' || v instanceof Date) return true
    if (open.has(v) || depth >= 99) return false // the request object and params are two levels
    open.add(v)
    const ok = Object.values(v).every((x) => carried(x, depth + 1, open))
    open.delete(v)
    return ok
  }
  const gw = new Gateway({ providers: { m: { kind: 'mock' } } })
  let sent = 0
  let refused = 0
  for (let i = 0; i < 400; i++) {
    const v = value(0)
    const req = { model: 'm/x', messages: user(`p${i}`), params: { v } }
    if (carried(v)) {
      const r = await gw.chat(req)
      assert.equal(r.choices[0].message.content, `echo: p${i}`)
      sent++
    } else {
      await assert.rejects(gw.chat(req), is('INVALID_REQUEST'), `case ${i}`)
      refused++
    }
  }
  assert.ok(sent > 50 && refused > 50, `sent ${sent}, refused ${refused}`)
  assert.equal(gw.stats().providers.m.jobs.submitted, sent)
  await gw.shutdown(0)
})
