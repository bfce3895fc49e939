'use strict'
// Fleet-wide limits across languages (docs/architecture.md §10): two Node
// processes and two Python processes, each with its own Gateway, share one
// limit through a real redis-server this test starts on a free loopback
// port, against one bifrost-mock. The mock's log of arrivals must satisfy
// `burst + rate·(t + D)` over every interval (D = 250 ms for a request
// admitted early reaching the mock late), and the mock must never have had
// more requests open at once than `max_in_flight`.
//
// Needs `redis-server` (Debian's package; .ci/run installs it) and the
// Python package (`make test` installs it before the Node suite). Without
// BIFROST_REQUIRE_REDIS a machine lacking either skips visibly.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const net = require('node:net')
const path = require('node:path')
const fs = require('node:fs')
const os = require('node:os')
const { startMock } = require('./helpers')

const RATE = 30 // requests per second, fleet-wide
const BURST = 4
const MAX_IN_FLIGHT = 3
const JOBS = 30 // per process
const D_NS = 250_000_000

function missing () {
  const want = !!process.env.BIFROST_REQUIRE_REDIS
  if (spawnSync('redis-server', ['--version']).error) return want ? null : 'redis-server is not installed'
  if (spawnSync('python3', ['-c', 'import bifrost']).status !== 0) return want ? null : 'the bifrost Python package is not installed'
  return false
}

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

async function startRedis () {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bifrost-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' })
  const end = Date.now() + 20000
  for (;;) {
    const pong = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim()
    if (pong === 'PONG') break
    assert.ok(Date.now() < end, 'redis-server did not answer PING')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { url: `redis://127.0.0.1:${port}/0`, stop () { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }) } }
}

function run (cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { err += d })
    child.once('error', reject)
    child.once('exit', (code) => code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`)))
  })
}

test('Node and Python processes share one limit through Redis', { timeout: 180000 }, async (t) => {
  const why = missing()
  if (why === null) assert.fail('BIFROST_REQUIRE_REDIS is set but redis-server or the Python package is missing')
  if (why) { t.skip(`SKIPPED: ${why}`); return }
  const redis = await startRedis()
  // The mock logs every admission when it enforces a (generous) limit.
  const mock = await startMock(['--requests-per-minute', '100000000'])
  try {
    const config = {
      limits_store: { kind: 'redis', url: redis.url, fleet_size: 4, timeout_ms: 2000 },
      providers: {
        o: {
          kind: 'openai',
          keys: [{ value: 'mock-key', models: ['*'] }],
          network_config: { base_url: mock.openaiUrl },
          limits: { requests_per_second: RATE, burst: { requests: BURST }, max_in_flight: MAX_IN_FLIGHT },
          queue: { wait_timeout_ms: 120000 },
          concurrency_and_buffer_size: { concurrency: 8, buffer_size: 1000 },
        },
      },
    }
    // 40 ms at the mock, so a burst would have more than 3 open at once.
    const env = { FLEET_SPEC: JSON.stringify({ config, model: 'o/gpt-4o-mini~latency_ms=40', jobs: JOBS }) }
    const started = Date.now()
    const outs = await Promise.all([
      run(process.execPath, [path.join(__dirname, 'fleet_child.js')], env),
      run(process.execPath, [path.join(__dirname, 'fleet_child.js')], env),
      run('python3', [path.join(__dirname, '..', 'python', 'fleet_child.py')], env),
      run('python3', [path.join(__dirname, '..', 'python', 'fleet_child.py')], env),
    ])
    const ok = outs.map((o) => JSON.parse(o.trim().split('\n').pop()).ok).reduce((a, b) => a + b, 0)
    assert.equal(ok, 4 * JOBS)
    const log = await mock.admissions()
    assert.equal(log.length, 4 * JOBS, 'every request reached the mock once')
    // Integers only: n·period ≤ burst·period + rate·t (period 1 s, in ns).
    const per = 1_000_000_000n
    for (let i = 0; i < log.length; i++) {
      for (let j = i; j < log.length; j++) {
        const n = BigInt(j - i + 1)
        const span = BigInt(log[j].at_ns - log[i].at_ns + D_NS)
        assert.ok(n * per <= BigInt(BURST) * per + BigInt(RATE) * span, `${n} requests in ${span} ns across the fleet`)
      }
    }
    const stats = await mock.stats()
    assert.ok(stats.max_open_requests <= MAX_IN_FLIGHT, `${stats.max_open_requests} open at once`)
    // 120 requests at 30 a second: at least (120 - 4) / 30 s, whatever the load.
    assert.ok(Date.now() - started >= 3800, `${Date.now() - started} ms`)
  } finally {
    mock.stop()
    redis.stop()
  }
})
