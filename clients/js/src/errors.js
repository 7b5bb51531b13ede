// The errors the client rejects with, one class per cause, so callers
// branch with `instanceof` and, for the server's refusals, on `code`
// (never on `message`, which is for people).

/** @typedef {import('./protocol.js').ErrorCode} ErrorCode */
/** @typedef {import('./protocol.js').ErrorFrame} ErrorFrame */

/** Every error code of `docs/protocol.md` §7. */
export const ERROR_CODES = /** @type {const} */ ([
  'bad_request',
  'unknown_type',
  'invalid_room',
  'too_long',
  'not_joined',
  'forbidden',
  'not_found',
  'rate_limited',
  'overloaded',
  'internal',
]);

/** Codes a later identical request (same `id`) can get past. */
const RETRYABLE_CODES = new Set(['rate_limited', 'overloaded', 'internal']);

/** The base of every error this library raises. */
export class ChatError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The server answered a request with an `error` frame. */
export class ServerError extends ChatError {
  /** @param {ErrorFrame} frame */
  constructor(frame) {
    super(frame.message || frame.code);
    /** @type {ErrorCode} */
    this.code = frame.code;
    /** @type {ErrorFrame} */
    this.frame = frame;
  }

  /** Whether the same request may succeed later (`rate_limited`, `overloaded`, `internal`). */
  get retryable() {
    return RETRYABLE_CODES.has(this.code);
  }
}

/** The connection dropped before the reply came: the request may or may not have been handled. */
export class DisconnectedError extends ChatError {
  constructor(message = 'connection lost before the reply') {
    super(message);
  }
}

/** No reply within the time allowed. */
export class TimeoutError extends ChatError {
  /** @param {number} ms */
  constructor(ms) {
    super(`no reply within ${ms} ms`);
    this.ms = ms;
  }
}

/**
 * The server will not take this client as it is: the upgrade was refused
 * (`status` 400 for a bad name, 401 for a token, 403 for the page's origin,
 * 421 for the host name) or an operator disconnected it (close 1008,
 * `status` 0). Reconnecting as is would not help.
 */
export class RefusedError extends ChatError {
  /**
   * @param {number} status
   * @param {string} reason
   */
  constructor(status, reason) {
    super(reason || `refused (${status})`);
    this.status = status;
    this.reason = reason;
  }
}

/** The client was closed (`close()`): nothing more is sent or retried. */
export class ClosedError extends ChatError {
  constructor(message = 'the client is closed') {
    super(message);
  }
}
