#!/usr/bin/env node
'use strict'
// Builds the native addon from source: `npm install` runs this.
//
// Profile: `--release` / `--debug`, else BIFROST_NODE_PROFILE, else `debug`
// when npm was run in this repository (a developer checkout: fast builds for
// the test suite) and `release` when bifrost is installed as a dependency.
// With @napi-rs/cli present (this repository's devDependencies) it runs
// `napi build`, which also regenerates bindings-node/native.js and
// native.d.ts (the addon lands next to them); without it
// (an install from another project) it runs cargo and copies the library.
// CARGO_BUILD_TARGET and CARGO_TARGET_DIR default to the host triple and
// <repo>/target so every tool shares one set of artifacts.

const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const args = process.argv.slice(2)
let profile = process.env.BIFROST_NODE_PROFILE
if (args.includes('--release')) profile = 'release'
if (args.includes('--debug')) profile = 'debug'
if (!profile) profile = path.resolve(process.env.INIT_CWD || '') === root ? 'debug' : 'release'
if (profile !== 'debug' && profile !== 'release') {
  console.error(`bifrost: BIFROST_NODE_PROFILE must be debug or release, got ${profile}`)
  process.exit(1)
}

let host
try {
  host = /^host: (.*)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1].trim()
} catch (e) {
  console.error('bifrost: building the native addon needs a Rust toolchain (rustc, cargo >= 1.88): https://rustup.rs')
  process.exit(1)
}
const env = { ...process.env }
env.CARGO_BUILD_TARGET ||= host
env.CARGO_TARGET_DIR ||= path.join(root, 'target')

function platformSuffix () {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = !process.report?.getReport?.()?.header?.glibcVersionRuntime
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function run (cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: root, env, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

let napiBin
try {
  napiBin = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json', { paths: [root] })), 'dist', 'cli.js')
  if (!fs.existsSync(napiBin)) napiBin = undefined
} catch {}

console.error(`bifrost: building the native addon (${profile}, target ${env.CARGO_BUILD_TARGET})`)
if (napiBin) {
  const argv = [napiBin, 'build', '--platform', '--manifest-path', 'bindings-node/Cargo.toml', '--output-dir', 'bindings-node',
    '--js', 'native.js', '--dts', 'native.d.ts', '--target', env.CARGO_BUILD_TARGET]
  if (profile === 'release') argv.push('--release')
  run(process.execPath, argv)
} else {
  const argv = ['build', '-p', 'bifrost-node', '--message-format=json-render-diagnostics']
  if (profile === 'release') argv.push('--release')
  const r = spawnSync('cargo', argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 28 })
  if (r.status !== 0) process.exit(r.status ?? 1)
  let lib
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.target?.name === 'bifrost_node') {
      lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f))
    }
  }
  if (!lib) {
    console.error('bifrost: cargo built no bifrost_node library')
    process.exit(1)
  }
  fs.copyFileSync(lib, path.join(root, 'bindings-node', `bifrost.${platformSuffix()}.node`))
}
