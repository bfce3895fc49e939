'use strict'
// The failure policy end to end from Node (docs/failover.md), one test per
// fault class, against bifrost-mock over loopback HTTP: each call ends with
// the complete answer when a healthy route exists (never a truncated
// success), after exactly the attempts the policy allows (the mock's
// per-scenario request counts are the judge), and the gateway serves the
// next call.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { Gateway, Accumulator, BifrostError } = require('../..')
const { startMock, user } = require('./helpers')

const PROMPT = 'alpha beta gamma delta epsilon'
const ANSWER = 'echo: alpha beta gamma delta epsilon'

let mock, gw
test.before(async () => {
  mock = await startMock()
  const net = {
    max_retries: 2, retry_backoff_initial_ms: 1, retry_backoff_max_ms: 2,
    default_request_timeout_in_seconds: 2, stream_idle_timeout_in_seconds: 1,
  }
  const keys = [{ value: 'mock-key', models: ['*'] }]
  gw = new Gateway({
    providers: {
      openai: { kind: 'openai', keys, network_config: { ...net, base_url: mock.openaiUrl }, failover: { first_token_timeout_ms: 300 } },
      anthropic: { kind: 'anthropic', keys, network_config: { ...net, base_url: mock.anthropicUrl } },
    },
  })
})
test.after(async () => {
  await gw.shutdown(5000)
  mock.stop()
})

const scenario = () => crypto.randomBytes(6).toString('hex')
const seen = async (s) => (await mock.stats()).by_scenario[s] ?? 0
const request = (model, fallbacks = [], extra = {}) => ({ model, messages: user(PROMPT), ...(fallbacks.length ? { fallbacks } : {}), ...extra })
const textOf = (m) => m.choices[0].message.content

async function nextCallWorks () {
  assert.equal(textOf(await gw.chat(request('openai/m'))), ANSWER)
  assert.equal(textOf(await gw.stream(request('anthropic/c')).collect()), ANSWER)
}

test('a silent route goes to the fallback after one attempt', async () => {
  const s = scenario()
  const r = await gw.chat(request(`openai/m~hang=1&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`]))
  assert.equal(textOf(r), ANSWER)
  assert.equal(r.extra_fields.fallback_index, 1)
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 1])
  await nextCallWorks()
})

test('a slow first token goes to the fallback at its bound', async () => {
  const s = scenario()
  const m = await gw.stream(request(`openai/m~first_chunk_delay_ms=600000&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`])).collect()
  assert.equal(textOf(m), ANSWER)
  assert.equal(m.extra_fields.restarts, 0)
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 1])
  await nextCallWorks()
})

test('a stream cut after content restarts on the fallback with a marker', async () => {
  const s = scenario()
  const chunks = []
  for await (const c of gw.stream(request(`openai/m~chunks=6&truncate_after=2&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`]))) chunks.push(c)
  const markers = chunks.filter((c) => c.extra_fields?.restart)
  assert.equal(markers.length, 1)
  assert.deepEqual(markers[0].choices, [])
  assert.equal(markers[0].extra_fields.restart.provider, 'anthropic')
  assert.equal(markers[0].extra_fields.restart.attempt, 2)
  const acc = new Accumulator()
  for (const c of chunks) acc.add(c)
  assert.equal(acc.text, ANSWER, 'the accumulator keeps only the new answer')
  assert.equal(acc.restarts, 1)
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 1])
  await nextCallWorks()
})

test('a stalled stream is retried on the same route', async () => {
  const s = scenario()
  const m = await gw.stream(request(`openai/m~chunks=6&stall_after=2&fail_first=1&scenario=${s}`)).collect()
  assert.equal(textOf(m), ANSWER)
  assert.equal(m.extra_fields.restarts, 1)
  assert.equal(await seen(s), 2)
})

test('an invalid event after content goes to the fallback', async () => {
  const s = scenario()
  const m = await gw.stream(request(`openai/m~chunks=6&invalid_event_at=3&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`])).collect()
  assert.equal(textOf(m), ANSWER)
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 1])
})

test('a stream without its terminator is complete', async () => {
  const s = scenario()
  for (const model of [`openai/m~terminator=0&scenario=${s}`, `anthropic/c~terminator=0&scenario=${s}`]) {
    const m = await gw.stream(request(model)).collect()
    assert.equal(textOf(m), ANSWER)
    assert.equal(m.choices[0].finish_reason, 'stop')
  }
  assert.equal(await seen(s), 2)
})

test('a prompt too long falls back; a refusal comes back', async () => {
  let s = scenario()
  const r = await gw.chat(request(`openai/m~fail_status=400&fail_reason=context_length&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`]))
  assert.equal(textOf(r), ANSWER)
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 1])
  s = scenario()
  await assert.rejects(gw.chat(request(`openai/m~fail_status=400&fail_reason=content_policy&scenario=${s}`, [`anthropic/c~scenario=${s}-fb`])),
    (e) => e instanceof BifrostError && e.code === 'PROVIDER' && e.status === 400 && /safety system/.test(e.message))
  assert.deepEqual([await seen(s), await seen(`${s}-fb`)], [1, 0])
  await nextCallWorks()
})

test('continue: a route that refuses prefill restarts instead; one that takes it continues', async () => {
  let s = scenario()
  const m = await gw.stream(request(`openai/m~chunks=6&stream_error_after=2&fail_first=1&reject_prefill=1&scenario=${s}`, [],
    { failover: { stream_recovery: 'continue' } })).collect()
  assert.equal(textOf(m), ANSWER)
  assert.equal(m.extra_fields.restarts, 1)
  assert.equal(await seen(s), 3)
  s = scenario()
  let text = ''
  for await (const c of gw.stream(request(`anthropic/c~chunks=6&stream_error_after=2&fail_first=1&scenario=${s}`, [],
    { failover: { stream_recovery: 'continue' } }))) {
    for (const ch of c.choices) text += ch.delta.content ?? ''
  }
  assert.equal(text, ANSWER, 'no duplicated text')
  assert.equal(await seen(s), 2)
})

test('off rejects with the text so far', async () => {
  const s = scenario()
  let got = ''
  await assert.rejects(async () => {
    for await (const c of gw.stream(request(`openai/m~chunks=6&truncate_after=2&scenario=${s}`, [], { failover: { stream_recovery: 'off' } }))) {
      for (const ch of c.choices) got += ch.delta.content ?? ''
    }
  }, (e) => e instanceof BifrostError && e.code === 'PROTOCOL' && e.textSoFar === got && got.length > 0)
  assert.equal(await seen(s), 1)
})

test('an outage stops retries and the provider is used again once it answers', async () => {
  const s = scenario()
  const model = `openai/m~outage_ms=2000&scenario=${s}`
  const n = 8
  for (let i = 0; i < n; i++) {
    assert.equal(textOf(await gw.chat(request(model, [`anthropic/c~scenario=${s}-fb`]))), ANSWER)
  }
  // max_retries 2, suspend_retries_after 5: 3 + 2 + 1 each, never 3 per request.
  const primary = await seen(s)
  assert.ok(primary >= n && primary <= n + 3, `primary attempts ${primary}`)
  // The outage ends 2 s after its first request, which came before now.
  await new Promise((resolve) => setTimeout(resolve, 2500))
  const r = await gw.chat(request(model, [`anthropic/c~scenario=${s}-fb`]))
  assert.equal(r.extra_fields.fallback_index, 0)
  assert.equal(r.extra_fields.attempts, 1)
})

test('Accumulator refuses what is not a chunk', () => {
  const acc = new Accumulator()
  assert.throws(() => acc.add({ choices: 'nope' }), (e) => e instanceof BifrostError && e.code === 'INVALID_REQUEST')
  assert.deepEqual(acc.message().choices, [])
})
