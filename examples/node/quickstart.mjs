// Node quick start: no API keys (the embedded mock provider).
//   node examples/node/quickstart.mjs
import { Gateway, BifrostError } from 'bifrost'

const gw = new Gateway({ providers: { local: { kind: 'mock', mock: { latency_ms: 20 } } } })

const resp = await gw.chat({ model: 'local/echo-1', messages: [{ role: 'user', content: 'hello' }] })
console.log(resp.choices[0].message.content) // "echo: hello"

for await (const chunk of gw.stream({ model: 'local/echo-1', messages: [{ role: 'user', content: 'streamed words' }] })) {
  process.stdout.write(chunk.choices[0]?.delta.content ?? '')
}
console.log()

try {
  await gw.chat({ model: 'local/echo-1', messages: [{ role: 'user', content: 'x' }], mock: { failure_rate: 1, failure_status: 503 } })
} catch (e) {
  if (e instanceof BifrostError) console.log(e.code, e.status) // PROVIDER 503
}

const ac = new AbortController()
setTimeout(() => ac.abort(), 10)
await gw.chat({ model: 'local/echo-1', messages: [{ role: 'user', content: 'slow' }], mock: { latency_ms: 1000 } }, { signal: ac.signal })
  .catch((e) => console.log(e.code)) // CANCELLED

console.log(gw.stats().providers.local.jobs)
console.log(await gw.shutdown())
