'use strict'
// One process of the fleet test (fleet.test.js): its own Gateway on the
// shared Redis store; sends FLEET_SPEC.jobs requests at once and prints
// `{"ok": n}`. The same config as tests/python/fleet_child.py.

const { Gateway } = require('../..')

async function main () {
  const spec = JSON.parse(process.env.FLEET_SPEC)
  const gw = new Gateway(spec.config)
  const jobs = []
  for (let i = 0; i < spec.jobs; i++) {
    jobs.push(gw.chat({ model: spec.model, messages: [{ role: 'user', content: `node ${process.pid} ${i}` }] }))
  }
  const done = await Promise.all(jobs)
  const store = gw.stats().providers.o.limits_store
  if (!store.up) throw new Error(`the store was not up: ${JSON.stringify(store)}`)
  await gw.shutdown(10000)
  process.stdout.write(JSON.stringify({ ok: done.length }) + '\n')
}

main().catch((e) => { console.error(e); process.exit(1) })
