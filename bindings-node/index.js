'use strict'
// bifrost for Node: the public API over the native addon (bindings-node).
//
// The addon does the work on bifrost's runtime and reports outcomes as
// batched JSON events (see bindings-node/src/events.rs); this file turns
// them into Promises, Job objects, async-iterable streams and BifrostError
// instances, checks argument types, and wires AbortSignals to cancellation.

const { inspect } = require('node:util')
const native = require('./native.js')
const { KIND, Calls, reportSettleError } = require('./protocol.js')

const MARK = '\u0000bifrost-error:'

/** The error kinds of docs/architecture.md §6, as `BifrostError#code` values (from the core). */
const ERROR_CODES = Object.freeze(native.errorCodes())

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
    if (details.textSoFar !== undefined) this.textSoFar = details.textSoFar
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

// Deepest nesting of arrays and objects a request or config may have
// (bifrost_core::bounds::MAX_NESTING: the core refuses deeper JSON text).
const MAX_NESTING = 100

// JSON text of a request (kind INVALID_REQUEST) or config (kind CONFIG).
// JSON.stringify alone would silently turn NaN and ±Infinity into null
// (`timeout_ms: NaN` would mean "no deadline") and throws plain TypeErrors
// for cycles and BigInts, RangeErrors for very deep objects. The hot path is
// one stringify plus one substring search: a non-finite number can only
// have become `null`, so only text containing `null` (or a stringify that
// threw) pays for a walk of the object that says what is wrong and where.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
/** True if `text` is valid Unicode (String#isWellFormed, from Node 20). */
function wellFormed (text) {
  return typeof text.isWellFormed === 'function' ? text.isWellFormed() : !LONE_SURROGATE.test(text)
}

function jsonText (value, kind) {
  let text
  try {
    text = JSON.stringify(value)
  } catch (e) {
    throw unsendableError(value, kind) ?? e
  }
  if (text.includes('null')) {
    const e = unsendableError(value, kind)
    if (e !== undefined) throw e
  }
  return text
}

function requestText (method, request) {
  if (!isPlainObject(request)) {
    throw new TypeError(`Gateway.${method}(request): request must be an object, got ${describe(request)}`)
  }
  return jsonText(request, 'INVALID_REQUEST')
}

// The first value of `root` that JSON cannot carry as given (a non-finite
// number, a BigInt, a reference cycle, nesting past MAX_NESTING), as a
// BifrostError of `kind` naming its key path; undefined if there is none.
// Visits what JSON.stringify visits (toJSON, own enumerable keys, boxed
// primitives), recursing at most MAX_NESTING + 1 deep.
function unsendableError (root, kind) {
  const path = []
  const open = new Set()
  const visit = (v, key) => {
    if (v !== null && (typeof v === 'object' || typeof v === 'bigint') && typeof v.toJSON === 'function') v = v.toJSON(key)
    if (typeof v === 'object' && v !== null) {
      if (v instanceof Number) v = Number(v)
      else if (v instanceof BigInt) v = BigInt.prototype.valueOf.call(v)
      else if (v instanceof String || v instanceof Boolean) return undefined
    }
    switch (typeof v) {
      case 'number':
        return Number.isFinite(v)
          ? undefined
          : `${v} is not a JSON number (JSON.stringify would send null instead); use a finite number or leave the key out`
      case 'bigint':
        return 'a BigInt is not a JSON number; convert it with Number() or String()'
      case 'object':
        break
      default:
        return undefined
    }
    if (v === null || (typeof JSON.isRawJSON === 'function' && JSON.isRawJSON(v))) return undefined
    if (open.has(v)) return 'the value contains itself (a reference cycle), which JSON cannot represent'
    if (path.length >= MAX_NESTING) return `nested deeper than ${MAX_NESTING} levels`
    open.add(v)
    let problem
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && problem === undefined; i++) {
        path.push(i)
        problem = visit(v[i], String(i))
        if (problem === undefined) path.pop()
      }
    } else {
      for (const k of Object.keys(v)) {
        path.push(k)
        problem = visit(v[k], k)
        if (problem !== undefined) break
        path.pop()
      }
    }
    open.delete(v)
    return problem
  }
  const problem = visit(root, '')
  if (problem === undefined) return undefined
  const where = formatPath(path)
  if (kind === 'CONFIG') {
    return new BifrostError(`invalid config: ${where ? `${where}: ` : ''}${problem}`, 'CONFIG', { path: where })
  }
  return new BifrostError(`invalid request: ${where ? `${where}: ` : ''}${problem}`, 'INVALID_REQUEST')
}

// `messages[0].content`, as the core spells key paths (keys cut at 64 characters).
function formatPath (path) {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else {
      const k = seg.length > 64 ? `${seg.slice(0, 64)}…` : seg
      out += out === '' ? k : `.${k}`
    }
  }
  return out
}

function signalOf (method, options) {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object') {
    throw new TypeError(`Gateway.${method}(request, options): options must be an object, got ${describe(options)}`)
  }
  const signal = options.signal
  if (signal === undefined || signal === null) return undefined
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function' || typeof signal.removeEventListener !== 'function') {
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

// Adds `onAbort` to a caller's signal; false (with the exception reported
// to `reject`) if the signal's addEventListener threw.
function listen (signal, onAbort, reject) {
  try {
    signal.addEventListener('abort', onAbort, { once: true })
    return true
  } catch (e) {
    reject(e)
    return false
  }
}

// Removes `onAbort` from a caller's signal; an exception from its
// removeEventListener is reported, never thrown into the settling code.
function unlisten (signal, onAbort) {
  try {
    signal.removeEventListener('abort', onAbort)
  } catch (e) {
    reportSettleError(e)
  }
}

class Gateway {
  #native
  #calls
  #providers

  /**
   * @param {object|string} config the configuration (docs/architecture.md §4), as an object or JSON text
   */
  constructor (config) {
    let text
    if (typeof config === 'string') {
      // Text that is not Unicode (a lone surrogate, which the addon would
      // turn into U+FFFD) is CONFIG, as in Python and C.
      if (!wellFormed(config)) throw new BifrostError('invalid config: config text is not Unicode (it contains a lone surrogate)', 'CONFIG', { path: '' })
      text = config
    }
    else if (isPlainObject(config)) text = jsonText(config, 'CONFIG')
    else throw new TypeError(`new Gateway(config): config must be an object or a JSON string, got ${describe(config)}`)
    try {
      this.#calls = new Calls(text)
    } catch (e) {
      throw fromNative(e)
    }
    const n = this.#calls.native
    this.#native = n
    this.#providers = n.providers()
  }

  #begin (call) {
    return this.#calls.begin(call)
  }

  // The bookkeeping first, then the caller's signal (whose
  // removeEventListener is the caller's code, and may throw).
  #end (id, call) {
    if (!this.#calls.end(id, call)) return false
    if (call.signal !== undefined) unlisten(call.signal, call.onAbort)
    return true
  }

  // Wires `call.signal` to cancel call `id` while it is pending; false if
  // the signal's addEventListener threw (then the call is ended and `reject`ed).
  #watch (id, call, reject) {
    if (call.signal === undefined) return true
    // Only while `id` is still this call: a listener left behind (its
    // removal threw) can never cancel a later call that reuses the id.
    call.onAbort = () => { this.#calls.cancel(id, call) }
    if (listen(call.signal, call.onAbort, reject)) return true
    call.signal = undefined
    this.#end(id, call)
    return false
  }

  // A call's request text and signal, or `early`: the promise it ends with
  // at once (a bad argument, or a signal that is already aborted).
  #prepare (method, request, options) {
    let text, signal
    try {
      text = request === undefined && method === 'shutdown' ? '' : requestText(method, request)
      signal = signalOf(method, options)
    } catch (e) {
      return { early: Promise.reject(e) }
    }
    if (signal !== undefined && signal.aborted) return { early: Promise.reject(abortError(signal, providerOf(request))) }
    return { text, signal }
  }

  // chat / embed / shutdown: one promise settled by one "r" or error event.
  #unary (method, request, options, start) {
    const { text, signal, early } = this.#prepare(method, request, options)
    if (early !== undefined) return early
    return new Promise((resolve, reject) => {
      const call = { signal, onAbort: undefined, on: undefined }
      const id = this.#begin(call)
      call.on = (ev) => {
        if (ev.e === undefined) resolve(ev.v)
        else reject(fromJson(ev.e))
        this.#end(id, call)
      }
      if (this.#watch(id, call, reject)) start(this.#native, id, text, signal !== undefined)
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
    const { text, signal, early } = this.#prepare('submit', request, options)
    if (early !== undefined) return early
    return new Promise((resolve, reject) => {
      const call = { signal, onAbort: undefined, on: undefined }
      const id = this.#begin(call)
      let job
      call.on = (ev) => {
        if (ev.k === KIND.submitted) {
          job = new Job(ev.v, () => this.#calls.cancel(id, call))
          resolve(job)
          return
        }
        const outcome = ev.e === undefined ? { ok: true, value: ev.v } : { ok: false, error: fromJson(ev.e) }
        if (job === undefined) reject(outcome.error)
        else job._settle(outcome)
        this.#end(id, call)
      }
      if (this.#watch(id, call, reject)) this.#native.submit(id, text)
    })
  }

  /**
   * A streamed chat: an async iterable of `chat.completion.chunk` objects.
   * The request starts on the first `next()`; leaving a `for await` loop
   * early (break, return, throw) closes the upstream request.
   */
  stream (request, options) {
    // Converted at once: a request JSON cannot carry (NaN, a cycle …) throws
    // its INVALID_REQUEST here, like the TypeErrors.
    const text = requestText('stream', request)
    const signal = signalOf('stream', options)
    return new ChunkStream(this.#streamOps(), text, signal, providerOf(request))
  }

  #streamOps () {
    return {
      begin: (call) => this.#begin(call),
      end: (id, call, held) => held ? this.#end(id, call) : this.#calls.forget(id, call),
      retain: () => this.#calls.retain(),
      release: () => this.#calls.release(),
      open: (id, text, window) => this.#native.stream(id, text, window),
      pull: (id, credit) => this.#native.pull(id, credit),
      close: (id) => this.#native.close(id),
    }
  }

  /** A stats snapshot (docs/architecture.md §8), with the core's keys. */
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
    // As bifrost_core::bounds::millis, which the addon applies too: any
    // finite value >= 0 (past a year it is a year); NaN, ±Infinity and
    // negatives are INVALID_REQUEST and shut nothing down.
    if (typeof timeoutMs !== 'number') {
      return Promise.reject(new TypeError(`Gateway.shutdown(timeoutMs): timeoutMs must be a number, got ${describe(timeoutMs)}`))
    }
    if (!(timeoutMs >= 0 && timeoutMs !== Infinity)) {
      return Promise.reject(new BifrostError(`invalid request: timeoutMs must be a finite number of milliseconds >= 0, got ${timeoutMs}`, 'INVALID_REQUEST'))
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

/**
 * Accumulates `chat.completion.chunk` objects into the final
 * `chat.completion` (the core's accumulator): content, reasoning and
 * refusal text joined, tool calls merged, and a restart marker
 * (`extra_fields.restart`) starts the answer over.
 */
class Accumulator {
  #native = new native.NativeAccumulator()

  /** Adds one chunk (an object as a stream yields it, or its JSON text). */
  add (chunk) {
    const text = typeof chunk === 'string' ? chunk : JSON.stringify(chunk)
    if (typeof text !== 'string') throw new TypeError(`Accumulator.add: expected a chunk object, got ${describe(chunk)}`)
    try {
      this.#native.add(text)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** The `chat.completion` object of what was added. */
  message () { return JSON.parse(this.#native.message()) }

  /** The content text of choice 0 so far. */
  get text () { return this.#native.text }

  /** Restart markers seen. */
  get restarts () { return this.#native.restarts }
}

const streamCleanup = new FinalizationRegistry(({ close, id }) => close(id))

// Chunks the addon may read ahead of a stream's consumer, and how many the
// consumer takes before it gives them back (one napi call per STREAM_REGRANT
// chunks, not one per chunk).
const STREAM_WINDOW = 256
const STREAM_REGRANT = 128
const DONE = Object.freeze({ value: undefined, done: true })

/**
 * An async iterable of `chat.completion.chunk` objects (see Gateway#stream).
 *
 * The addon reads ahead of the consumer (at most STREAM_WINDOW chunks) and
 * delivers every chunk that was ready in one event; they wait in `#ready`,
 * and `next()` returns them without crossing into the addon. An error read
 * behind chunks is raised once those were returned. The stream's call keeps
 * the event loop alive only while a `next()` waits (`#hold`).
 */
class ChunkStream {
  #ops
  #text
  #signal
  #provider
  #id = 0
  #state = 'new' // new | open | done | aborted
  #reader = undefined // the call registered for the stream's events
  #held = false
  #ready = [] // chunks read ahead, oldest first from #head
  #head = 0
  #taken = 0 // chunks taken since the last grant
  #tail = undefined // what follows #ready: DONE or { error }
  #waiter = undefined // { resolve, reject, settled } of the waiting next()
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

  /**
   * Reads the rest of the stream into one `chat.completion` (see
   * Accumulator); rejects as iteration would (with `textSoFar`).
   */
  async collect () {
    const acc = new Accumulator()
    for await (const chunk of this) acc.add(chunk)
    return acc.message()
  }

  [Symbol.asyncIterator] () { return this }

  next () {
    if (this.#waiter !== undefined) {
      // Calls queue behind the pending one, as with async generators.
      const prev = this.#waiter.settled
      return prev.then(() => this.next(), () => this.next())
    }
    if (this.#head < this.#ready.length) return Promise.resolve({ value: this.#take(), done: false })
    if (this.#tail !== undefined) return this.#settleTail()
    if (this.#state === 'done') return Promise.resolve(DONE)
    if (this.#state === 'aborted') return Promise.reject(abortError(this.#signal, this.#provider))
    if (this.#signal !== undefined && this.#signal.aborted) {
      this.#state = 'aborted'
      return Promise.reject(abortError(this.#signal, this.#provider))
    }
    let waiter
    const p = new Promise((resolve, reject) => { waiter = { resolve, reject, settled: undefined } })
    waiter.settled = p.then(() => {}, () => {})
    this.#waiter = waiter
    if (this.#state === 'new') this.#open()
    else this.#hold(true)
    return p
  }

  #open () {
    const call = { signal: undefined, onAbort: undefined, on: (ev) => this.#on(ev), reject: undefined }
    this.#reader = call
    const id = this.#ops.begin(call)
    this.#held = true
    this.#id = id
    this.#state = 'open'
    if (this.#signal !== undefined) {
      this.#onAbort = () => this.#abort()
      if (!listen(this.#signal, this.#onAbort, (e) => this.#rejectWaiter(e))) {
        this.#onAbort = undefined
        this.#finish('done')
        return
      }
    }
    streamCleanup.register(this, { close: this.#ops.close, id }, this)
    this.#ops.open(id, this.#text, STREAM_WINDOW)
  }

  // One event of this stream: the opening, chunks, the end or an error.
  // The waiting next() is settled before any cleanup.
  #on (ev) {
    if (ev.e !== undefined) {
      this.#tail = { error: fromJson(ev.e) }
    } else if (ev.k === KIND.opened) {
      this.#fallbackIndex = ev.v
      return
    } else if (ev.v === null) {
      this.#tail = DONE
    } else {
      const chunks = ev.v
      for (let k = 0; k < chunks.length; k++) this.#ready.push(chunks[k])
    }
    const w = this.#waiter
    if (w !== undefined) {
      if (this.#head < this.#ready.length) {
        this.#waiter = undefined
        w.resolve({ value: this.#take(), done: false })
      } else if (this.#tail !== undefined) {
        this.#waiter = undefined
        this.#settleTail(w)
      }
    }
    if (this.#tail !== undefined) this.#finish('done')
    else if (this.#waiter === undefined) this.#hold(false)
  }

  #take () {
    const v = this.#ready[this.#head]
    this.#ready[this.#head++] = undefined
    if (this.#head === this.#ready.length) {
      this.#ready = []
      this.#head = 0
    }
    if (++this.#taken >= STREAM_REGRANT && this.#state === 'open' && this.#tail === undefined) {
      this.#ops.pull(this.#id, this.#taken)
      this.#taken = 0
    }
    return v
  }

  // Settles `w` (or a new promise) with the end or the error; an error is
  // raised once, then the stream is done.
  #settleTail (w) {
    const tail = this.#tail
    this.#tail = DONE
    if (tail === DONE) {
      if (w === undefined) return Promise.resolve(DONE)
      w.resolve(DONE)
    } else {
      if (w === undefined) return Promise.reject(tail.error)
      w.reject(tail.error)
    }
  }

  #rejectWaiter (err) {
    const w = this.#waiter
    if (w !== undefined) {
      this.#waiter = undefined
      w.reject(err)
    }
  }

  // Keeps the event loop alive while a next() waits, and only then.
  #hold (on) {
    if (this.#held === on || this.#reader === undefined) return
    this.#held = on
    if (on) this.#ops.retain()
    else this.#ops.release()
  }

  #finish (state) {
    const call = this.#reader
    if (call !== undefined) {
      this.#reader = undefined
      this.#ops.end(this.#id, call, this.#held)
      this.#held = false
    }
    this.#state = state
    streamCleanup.unregister(this)
    if (this.#onAbort !== undefined) {
      unlisten(this.#signal, this.#onAbort)
      this.#onAbort = undefined
    }
  }

  #abort () {
    if (this.#state === 'done' || this.#state === 'aborted') return
    this.#ops.close(this.#id)
    this.#ready = []
    this.#head = 0
    this.#tail = undefined
    this.#rejectWaiter(abortError(this.#signal, this.#provider))
    this.#finish('aborted')
  }

  /** Stops the stream (what `break` in a `for await` loop calls). */
  return (value) {
    if (this.#state === 'open') {
      this.#ops.close(this.#id)
      this.#ready = []
      this.#head = 0
      this.#tail = undefined
      this.#rejectWaiter(new BifrostError(`stream of provider '${this.#provider}' was closed`, 'CANCELLED', { provider: this.#provider }))
      this.#finish('done')
    } else if (this.#state === 'new') {
      this.#state = 'done'
    } else {
      this.#ready = []
      this.#head = 0
      this.#tail = undefined
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

module.exports = { Gateway, Job, ChunkStream, Accumulator, BifrostError, ERROR_CODES, optimalConcurrency, version }
module.exports.default = module.exports
