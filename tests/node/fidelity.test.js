'use strict'
// Fidelity through the Node binding (docs/architecture.md §12): bifrost-mock
// replays recorded provider payloads (tests/fixtures/, `fixture=<name>`)
// and what Node receives must be the payload itself, every field and
// number included, plus `extra_fields`. The Python suite judges the same
// payloads with the official SDKs (tests/python/test_fidelity.py); this
// checks the Node path (bifrost's JSON writer for responses, serde for
// chunks) loses nothing on the way.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Gateway } = require('../..')
const { root, startMock, user } = require('./helpers')

const FIXTURES = path.join(root, 'tests', 'fixtures')
const fixture = (p) => fs.readFileSync(path.join(FIXTURES, p), 'utf8')
const ssePayloads = (p) => fixture(p).split('\n')
  .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
  .map((l) => JSON.parse(l.slice('data: '.length)))

let mock, gw
test.before(async () => {
  mock = await startMock()
  gw = new Gateway({
    providers: {
      openai: { kind: 'openai', keys: [{ value: 'mock-key', models: ['*'] }], network_config: { base_url: mock.openaiUrl } },
      anthropic: { kind: 'anthropic', keys: [{ value: 'mock-key', models: ['*'] }], network_config: { base_url: mock.anthropicUrl } },
    },
  })
})
test.after(async () => {
  await gw.shutdown(2000)
  mock.stop()
})

for (const name of ['chat_basic', 'chat_refusal', 'chat_logprobs', 'chat_tool_calls', 'chat_annotations']) {
  test(`openai ${name} comes back whole`, async () => {
    const resp = await gw.chat({ model: `openai/gpt-4o~fixture=${name}`, messages: user('hi') })
    const { extra_fields: extra, ...rest } = resp
    assert.deepEqual(rest, JSON.parse(fixture(`openai/${name}.json`)))
    assert.equal(extra.provider, 'openai')
  })
}

test('numbers keep their value in JavaScript too (within what a double holds)', async () => {
  const resp = await gw.chat({ model: 'openai/m~fixture=chat_compatible_extras', messages: user('hi') })
  assert.equal(resp.numbers.tenth, 0.1)
  assert.equal(resp.numbers.tiny, 1.1920928955078125e-7)
  assert.equal(resp.numbers.big, Number.MAX_VALUE)
  assert.equal(resp.choices[0].message.reasoning_content, 'The user greets me; reply briefly.')
})

for (const name of ['stream_text', 'stream_tool_calls', 'stream_refusal', 'stream_logprobs']) {
  test(`openai ${name} chunks come back whole`, async () => {
    const got = []
    for await (const c of gw.stream({ model: `openai/gpt-4o~fixture=${name}`, messages: user('hi') })) got.push(c)
    assert.deepEqual(got, ssePayloads(`openai/${name}.sse`))
  })
}

test('an Anthropic stream reports what it could not send on its first chunk', async () => {
  const got = []
  const req = { model: 'anthropic/claude~fixture=stream_thinking', messages: user('hi'), params: { seed: 3 } }
  for await (const c of gw.stream(req)) got.push(c)
  assert.deepEqual(got[0].extra_fields, { unmapped_params: ['seed'] })
  const reasoning = got.map((c) => c.choices[0]?.delta?.reasoning_content ?? '').join('')
  assert.match(reasoning, /^I need to find the GCD/)
  const blocks = got.flatMap((c) => c.choices[0]?.delta?.thinking_blocks ?? [])
  assert.equal(blocks.length, 1)
  assert.equal(blocks[0].thinking, reasoning)
})
