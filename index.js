'use strict'
// bifrost for Node: the public API over the native addon (bindings-node).
//
// The addon does the work on bifrost's runtime and reports outcomes as
// batched JSON events (see bindings-node/src/events.rs); this file turns
// them into Promises, Job objects, async-iterable streams and BifrostError
// instances, checks argument types, and wires AbortSignals to cancellation.

const { inspect } = require('node:util')
const native = require('./native.js')

const MARK = '\u0000bifrost-error:'

/** The error kinds of DESIGN §6, as `BifrostError#code` values. */
const ERROR_CODES = Object.freeze([
  'QUEUE_FULL', 'DROPPED', 'QUEUE_TIMEOUT', 'TIMEOUT', 'CANCELLED', 'SHUTDOWN', 'CIRCUIT_OPEN',
  'PROVIDER', 'NETWORK', 'PROTOCOL', 'INVALID_REQUEST', 'UNKNOWN_PROVIDER', 'CONFIG', 'INTERNAL',
])

class BifrostError extends Error {
  constructor (message, code, details = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined)
    this.name = 'BifrostError'
    this.code = code
    if (details.provider !== undefined) this.provider = details.provider
    if (details.status !== undefined) this.status = details.status
    if (details.body !== undefined) this.body = details.body
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs
    if (details.path !== undefined) this.path = details.path
    if (details.target !== undefined) this.target = details.target
    if (details.fallbackErrors !== undefined) this.fallbackErrors = details.fallbackErrors
  }
}

function fromJson (e) {
  const details = { ...e }
  if (e.fallbackErrors) details.fallbackErrors = e.fallbackErrors.map(fromJson)
  return new BifrostError(e.message, e.code, details)
}

// A native throw carrying a serialized core error becomes a BifrostError.
function fromNative (err) {
  if (err && typeof err.message === 'string' && err.message.startsWith(MARK)) {
    return fromJson(JSON.parse(err.message.slice(MARK.length)))
  }
  return err
}

function describe (v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}

function isPlainObject (v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function requestText (method, request) {
  if (!isPlainObject(request)) {
    throw new TypeError(`Gateway.${method}(request): request must be an object, got ${describe(request)}`)
  }
  return JSON.stringify(request)
}

function signalOf (method, options) {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object') {
    throw new TypeError(`Gateway.${method}(request, options): options must be an object, got ${describe(options)}`)
  }
  const signal = options.signal
  if (signal === undefined || signal === null) return undefined
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function') {
    throw new TypeError(`Gateway.${method}(request, options): options.signal must be an AbortSignal, got ${describe(signal)}`)
  }
  return signal
}

function providerOf (request) {
  const m = typeof request.model === 'string' ? request.model : ''
  const i = m.indexOf('/')
  return i > 0 ? m.slice(0, i) : m
}

function abortError (signal, provider) {
  return new BifrostError(`request to provider '${provider}' was cancelled by its AbortSignal`, 'CANCELLED',
    { provider, cause: signal.reason })
}

// Calls on one gateway share an id space; ids wrap below 2^32.
const MAX_ID = 0xffffffff

class Gateway {
  #native
  #calls = new Map()
  #nextId = 1
  #pending = 0
  #providers

  /**
   * @param {object|string} config the configuration (DESIGN §4), as an object or JSON text
   */
  constructor (config) {
    let text
    if (typeof config === 'string') text = config
    else if (isPlainObject(config)) text = JSON.stringify(config)
    else throw new TypeError(`new Gateway(config): config must be an object or a JSON string, got ${describe(config)}`)
    const calls = this.#calls
    let n
    const wake = () => {
      const events = JSON.parse(n.drain())
      for (let k = 0; k < events.length; k++) {
        const ev = events[k]
        const call = calls.get(ev.i)
        if (call !== undefined) call.on(ev)
      }
    }
    try {
      n = new native.NativeGateway(text, wake)
    } catch (e) {
      throw fromNative(e)
    }
    this.#native = n
    this.#providers = n.providers()
  }

  // Registers a pending call under a new id (or `fixed`: a stream's pulls
  // reuse the stream's id).
  #begin (call, fixed) {
    let id = fixed
    if (id === undefined) {
      id = this.#nextId
      while (this.#calls.has(id)) id = id >= MAX_ID ? 1 : id + 1
      this.#nextId = id >= MAX_ID ? 1 : id + 1
    }
    this.#calls.set(id, call)
    if (this.#pending++ === 0) this.#native.keepAlive(true)
    return id
  }

  #end (id, call) {
    if (this.#calls.get(id) !== call) return false
    this.#calls.delete(id)
    if (--this.#pending === 0) this.#native.keepAlive(false)
    if (call.signal !== undefined) call.signal.removeEventListener('abort', call.onAbort)
    return true
  }

  // chat / embed / shutdown: one promise settled by one "r" or error event.
  #unary (method, request, options, start) {
    let text, signal
    try {
      text = request === undefined && method === 'shutdown' ? '' : requestText(method, request)
      signal = signalOf(method, options)
    } catch (e) {
      return Promise.reject(e)
    }
    if (signal !== undefined && signal.aborted) return Promise.reject(abortError(signal, providerOf(request)))
    return new Promise((resolve, reject) => {
      const call = { signal, onAbort: undefined, on: undefined }
      const id = this.#begin(call)
      call.on = (ev) => {
        this.#end(id, call)
        if (ev.e === undefined) resolve(ev.v)
        else reject(fromJson(ev.e))
      }
      start(this.#native, id, text, signal !== undefined)
      if (signal !== undefined) {
        call.onAbort = () => this.#native.cancel(id)
        signal.addEventListener('abort', call.onAbort, { once: true })
      }
    })
  }

  /** Sends a chat request and resolves with the `chat.completion` response. */
  chat (request, options) {
    return this.#unary('chat', request, options, (n, id, text, c) => n.chat(id, text, c))
  }

  /** Computes embeddings (OpenAI embeddings shape). */
  embed (request, options) {
    return this.#unary('embed', request, options, (n, id, text, c) => n.embed(id, text, c))
  }

  /**
   * Submits a chat request (honouring the provider's queue policy) and
   * resolves with a Job once it is queued.
   */
  submit (request, options) {
    let text, signal
    try {
      text = requestText('submit', request)
      signal = signalOf('submit', options)
    } catch (e) {
      return Promise.reject(e)
    }
    if (signal !== undefined && signal.aborted) return Promise.reject(abortError(signal, providerOf(request)))
    return new Promise((resolve, reject) => {
      const call = { signal, onAbort: undefined, on: undefined }
      const id = this.#begin(call)
      let job
      call.on = (ev) => {
        if (ev.k === 's') {
          job = new Job(ev.v, () => this.#native.cancel(id))
          resolve(job)
          return
        }
        this.#end(id, call)
        const outcome = ev.e === undefined ? { ok: true, value: ev.v } : { ok: false, error: fromJson(ev.e) }
        if (job === undefined) reject(outcome.error)
        else job._settle(outcome)
      }
      this.#native.submit(id, text)
      if (signal !== undefined) {
        call.onAbort = () => this.#native.cancel(id)
        signal.addEventListener('abort', call.onAbort, { once: true })
      }
    })
  }

  /**
   * A streamed chat: an async iterable of `chat.completion.chunk` objects.
   * The request starts on the first `next()`; leaving a `for await` loop
   * early (break, return, throw) closes the upstream request.
   */
  stream (request, options) {
    const text = requestText('stream', request)
    const signal = signalOf('stream', options)
    return new ChunkStream(this.#streamOps(), text, signal, providerOf(request))
  }

  #streamOps () {
    return {
      begin: (call, fixed) => this.#begin(call, fixed),
      end: (id, call) => this.#end(id, call),
      open: (id, text) => this.#native.stream(id, text),
      pull: (id) => this.#native.pull(id),
      close: (id) => this.#native.close(id),
    }
  }

  /** A stats snapshot (DESIGN §8), with the core's keys. */
  stats () {
    return JSON.parse(this.#native.stats())
  }

  /** Per-provider health and an overall status. */
  health () {
    return JSON.parse(this.#native.health())
  }

  /** The stats as Prometheus text. */
  prometheus () {
    return this.#native.prometheus()
  }

  /** Configured provider names, sorted. */
  get providers () {
    return [...this.#providers]
  }

  /**
   * Graceful shutdown: new calls fail with SHUTDOWN; queued and running jobs
   * drain for up to `timeoutMs` (default 10000), the rest end with SHUTDOWN.
   */
  shutdown (timeoutMs = 10000) {
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(new TypeError(`Gateway.shutdown(timeoutMs): timeoutMs must be a finite number >= 0, got ${typeof timeoutMs === 'number' ? timeoutMs : describe(timeoutMs)}`))
    }
    return this.#unary('shutdown', undefined, undefined, (n, id) => n.shutdown(id, timeoutMs))
  }

  [inspect.custom] () {
    return `Gateway { providers: ${inspect(this.#providers)} }`
  }
}

/** A submitted chat job. */
class Job {
  #id
  #cancel
  #done = false
  #promise
  #resolve
  #reject

  constructor (id, cancel) {
    this.#id = id
    this.#cancel = cancel
    this.#promise = new Promise((resolve, reject) => { this.#resolve = resolve; this.#reject = reject })
    // A job whose result is never asked for must not become an unhandled rejection.
    this.#promise.catch(() => {})
  }

  /** @internal */
  _settle (outcome) {
    if (this.#done) return
    this.#done = true
    if (outcome.ok) this.#resolve(outcome.value)
    else this.#reject(outcome.error)
  }

  /** The job's id, unique within its gateway (0 if it went straight to its fallbacks). */
  get id () { return this.#id }

  /** True once the outcome is here (`result()` will not wait). */
  get done () { return this.#done }

  /** Resolves with the response or rejects with a BifrostError. */
  result () { return this.#promise }

  /** Asks the job to stop; false if it had already finished. */
  cancel () {
    if (this.#done) return false
    return this.#cancel()
  }

  [inspect.custom] () {
    return `Job { id: ${this.#id}, done: ${this.#done} }`
  }
}

const streamCleanup = new FinalizationRegistry(({ close, id }) => close(id))

/** An async iterable of `chat.completion.chunk` objects (see Gateway#stream). */
class ChunkStream {
  #ops
  #text
  #signal
  #provider
  #id = 0
  #state = 'new' // new | opening | open | done | aborted
  #call = undefined
  #waiter = undefined
  #fallbackIndex = 0
  #onAbort = undefined

  constructor (ops, text, signal, provider) {
    this.#ops = ops
    this.#text = text
    this.#signal = signal
    this.#provider = provider
  }

  /** 0 if the primary provider serves the stream, i + 1 for `fallbacks[i]`. */
  get fallbackIndex () { return this.#fallbackIndex }

  [Symbol.asyncIterator] () { return this }

  next () {
    if (this.#waiter !== undefined) {
      // Calls queue behind the pending one, as with async generators.
      const prev = this.#waiter
      return prev.then(() => this.next(), () => this.next())
    }
    if (this.#state === 'done') return Promise.resolve({ value: undefined, done: true })
    if (this.#state === 'aborted') return Promise.reject(abortError(this.#signal, this.#provider))
    if (this.#signal !== undefined && this.#signal.aborted) {
      this.#state = 'aborted'
      return Promise.reject(abortError(this.#signal, this.#provider))
    }
    const p = new Promise((resolve, reject) => {
      const call = { signal: undefined, onAbort: undefined, on: undefined, reject }
      this.#call = call
      const id = this.#ops.begin(call, this.#state === 'new' ? undefined : this.#id)
      call.on = (ev) => {
        if (ev.e !== undefined) {
          this.#finish(id, call, 'done')
          reject(fromJson(ev.e))
        } else if (ev.k === 'o') {
          this.#state = 'open'
          this.#fallbackIndex = ev.v
          this.#ops.pull(id)
        } else if (ev.v === null) {
          this.#finish(id, call, 'done')
          resolve({ value: undefined, done: true })
        } else {
          this.#ops.end(id, call)
          this.#call = undefined
          resolve({ value: ev.v, done: false })
        }
      }
      if (this.#state === 'new') {
        this.#id = id
        this.#state = 'opening'
        if (this.#signal !== undefined) {
          this.#onAbort = () => this.#abort()
          this.#signal.addEventListener('abort', this.#onAbort, { once: true })
        }
        streamCleanup.register(this, { close: this.#ops.close, id }, this)
        this.#ops.open(id, this.#text)
      } else {
        this.#ops.pull(id)
      }
    })
    const settled = p.then(() => { this.#waiter = undefined }, () => { this.#waiter = undefined })
    this.#waiter = settled
    return p
  }

  // Every pull of a stream is registered under the stream's own id.
  #finish (id, call, state) {
    if (call !== undefined) this.#ops.end(id, call)
    this.#call = undefined
    this.#state = state
    if (this.#onAbort !== undefined) this.#signal.removeEventListener('abort', this.#onAbort)
    streamCleanup.unregister(this)
  }

  #abort () {
    if (this.#state === 'done' || this.#state === 'aborted') return
    this.#ops.close(this.#id)
    const call = this.#call
    this.#state = 'aborted'
    streamCleanup.unregister(this)
    if (call !== undefined) {
      this.#ops.end(this.#id, call)
      this.#call = undefined
      call.reject(abortError(this.#signal, this.#provider))
    }
  }

  /** Stops the stream (what `break` in a `for await` loop calls). */
  return (value) {
    if (this.#state === 'opening' || this.#state === 'open') {
      this.#ops.close(this.#id)
      const call = this.#call
      if (call !== undefined) {
        this.#ops.end(this.#id, call)
        this.#call = undefined
        call.reject(new BifrostError(`stream of provider '${this.#provider}' was closed`, 'CANCELLED', { provider: this.#provider }))
      }
      this.#finish(this.#id, undefined, 'done')
    } else if (this.#state === 'new') {
      this.#state = 'done'
    }
    return Promise.resolve({ value, done: true })
  }

  throw (err) {
    this.return()
    return Promise.reject(err)
  }
}

/**
 * Workers, queue and timeout for a provider allowing `rateLimitRps`
 * requests/s at `avgLatencyS` seconds each with `errorRate` failures (Little's law).
 */
function optimalConcurrency (rateLimitRps, avgLatencyS, errorRate = 0) {
  for (const [name, v] of [['rateLimitRps', rateLimitRps], ['avgLatencyS', avgLatencyS], ['errorRate', errorRate]]) {
    if (typeof v !== 'number') {
      throw new TypeError(`optimalConcurrency(rateLimitRps, avgLatencyS, errorRate): ${name} must be a number, got ${describe(v)}`)
    }
  }
  try {
    return JSON.parse(native.optimalConcurrency(rateLimitRps, avgLatencyS, errorRate))
  } catch (e) {
    throw fromNative(e)
  }
}

const version = native.version()

module.exports = { Gateway, Job, ChunkStream, BifrostError, ERROR_CODES, optimalConcurrency, version }
module.exports.default = module.exports
