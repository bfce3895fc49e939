'use strict'
// The call protocol between the public API (index.js) and the addon, on
// the JS side; bindings-node/src/protocol.rs is the Rust side.
//
// Every asynchronous call gets an id in this gateway's registry (`Calls`).
// The addon runs it on bifrost's runtime and reports each step as a JSON
// event `{i: id, k: kind, v: value}` (or `{i: id, e: error}`); events are
// batched (one wake-up and one JSON.parse per burst of completions) and
// `Calls` hands each to its call's `on(event)`. The event kinds come from
// the addon (`KIND`), so neither side spells them by hand.

const native = require('./native.js')

/** Event kinds as they appear in `event.k`: `{response, submitted, opened, chunk}`. */
const KIND = Object.freeze(native.eventKinds())

// Calls on one gateway share an id space; ids wrap below 2^32.
const MAX_ID = 0xffffffff

// An exception thrown while a batch of outcomes is delivered (by code that
// is not bifrost's: a signal-like object whose removeEventListener throws).
// The rest of the batch is still delivered and the call's own promise is
// already settled; the exception becomes a process warning, so it is seen
// (stderr, or process.on('warning')) without ending the process or being
// swallowed: name 'BifrostWarning', code 'BIFROST_SETTLE_ERROR', cause = it.
function reportSettleError (err) {
  const w = new Error(`an exception was thrown while delivering call outcomes (every outcome was still delivered): ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  w.name = 'BifrostWarning'
  w.code = 'BIFROST_SETTLE_ERROR'
  process.emitWarning(w)
}

/**
 * One gateway's addon handle and its pending calls. A call is an object
 * with `on(event)`; it is registered under an id while it waits for events.
 * The event loop is kept alive while any call is pending, and only then.
 */
class Calls {
  #map = new Map()
  #nextId = 1
  #pending = 0
  #native

  /** Starts the addon's gateway from config JSON text (throws its CONFIG error). */
  constructor (configText) {
    this.#native = new native.NativeGateway(configText, () => this.#deliver())
  }

  /** The addon's gateway (bindings-node/src/gateway.rs). */
  get native () { return this.#native }

  // Every event of a batch is delivered, whatever one handler does: each
  // handler settles its promise before any cleanup, and an exception from
  // one is reported (reportSettleError) after the whole batch.
  #deliver () {
    const events = JSON.parse(this.#native.drain())
    let failures
    for (let k = 0; k < events.length; k++) {
      const ev = events[k]
      const call = this.#map.get(ev.i)
      if (call === undefined) continue
      try {
        call.on(ev)
      } catch (e) {
        (failures ??= []).push(e)
      }
    }
    if (failures !== undefined) for (const e of failures) reportSettleError(e)
  }

  /** Registers `call` under a new id; it keeps the event loop alive until `end` (or `release`). */
  begin (call) {
    let id = this.#nextId
    while (this.#map.has(id)) id = id >= MAX_ID ? 1 : id + 1
    this.#nextId = id >= MAX_ID ? 1 : id + 1
    this.#map.set(id, call)
    this.retain()
    return id
  }

  /** One more reason to keep the event loop alive (a stream's consumer waits again). */
  retain () {
    if (this.#pending++ === 0) this.#native.keepAlive(true)
  }

  /** One reason fewer (a stream's consumer has what it waited for). */
  release () {
    if (--this.#pending === 0) this.#native.keepAlive(false)
  }

  /** True while `call` is the call registered under `id`. */
  is (id, call) { return this.#map.get(id) === call }

  /** Unregisters `call`; false if `id` was not (or no longer) this call. */
  end (id, call) {
    if (this.#map.get(id) !== call) return false
    this.#map.delete(id)
    this.release()
    return true
  }

  /** Unregisters a `call` that was `release`d: it no longer holds the event loop. */
  forget (id, call) {
    if (this.#map.get(id) !== call) return false
    this.#map.delete(id)
    return true
  }

  /** Asks the addon to cancel call `id` if it is still `call`. */
  cancel (id, call) { return this.is(id, call) && this.#native.cancel(id) }
}

module.exports = { KIND, Calls, reportSettleError }
