'use strict'
// Shared by the node:test files: the bifrost-mock server as a child process.

const { spawn, execFileSync } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const root = path.resolve(__dirname, '..', '..')

function cargoEnv () {
  const env = { ...process.env }
  if (!env.CARGO_BUILD_TARGET) {
    env.CARGO_BUILD_TARGET = /^host: (.*)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1].trim()
  }
  env.CARGO_TARGET_DIR ||= path.join(root, 'target')
  return env
}

let mockBinary
/** Builds bifrost-mock (a no-op when fresh) and returns its path, as cargo reports it. */
function mockPath () {
  if (mockBinary) return mockBinary
  const out = execFileSync('cargo', ['build', '-p', 'bifrost-mock', '--message-format=json-render-diagnostics'],
    { cwd: root, env: cargoEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 })
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.executable && m.target?.name === 'bifrost-mock') mockBinary = m.executable
  }
  if (!mockBinary) throw new Error('cargo build -p bifrost-mock reported no executable')
  return mockBinary
}

/** Starts `bifrost-mock --port 0` (and `args`); resolves with {port, openaiUrl, anthropicUrl, stats(), admissions(), reset(), stop()}. */
async function startMock (args = []) {
  const child = spawn(mockPath(), ['--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const rl = readline.createInterface({ input: child.stdout })
  const port = await new Promise((resolve, reject) => {
    rl.once('line', (l) => resolve(Number(l.trim())))
    child.once('exit', (code) => reject(new Error(`bifrost-mock exited with ${code} before printing its port`)))
  })
  rl.on('line', () => {})
  const base = `http://127.0.0.1:${port}`
  return {
    port,
    base,
    openaiUrl: `${base}/v1`,
    anthropicUrl: base,
    async stats () { return (await fetch(`${base}/_mock/stats`)).json() },
    async admissions () { return (await fetch(`${base}/_mock/admissions`)).json() },
    async reset () { await fetch(`${base}/_mock/reset`, { method: 'POST' }) },
    stop () { child.kill() },
  }
}

/** Polls `cond` every 10 ms until true or `ms` pass. */
async function until (cond, ms = 5000) {
  const end = Date.now() + ms
  for (;;) {
    if (await cond()) return true
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Asserts the docs/architecture.md §3 accounting invariant for every provider of `stats`. */
function invariantHolds (stats) {
  for (const [name, p] of Object.entries(stats.providers)) {
    const j = p.jobs
    const sum = j.queued + j.running + j.completed + j.failed + j.dropped + j.rejected + j.timed_out + j.cancelled + j.rate_limited
    if (j.submitted !== sum) return `${name}: submitted ${j.submitted} != ${sum} (${JSON.stringify(j)})`
  }
  return true
}

function idle (gw) {
  return () => Object.values(gw.stats().providers).every((p) => p.jobs.running === 0 && p.jobs.queued === 0)
}

const user = (content) => [{ role: 'user', content }]

module.exports = { root, startMock, until, invariantHolds, idle, user }
