// One WebSocket to the server's native protocol, kept open: it reconnects
// with backoff and jitter, matches replies to requests by `ref`, notices a
// dead connection that never closed, and tells a refusal (bad name, bad
// token, foreign origin) from a server that is down. It knows frames, not
// chat: what a frame means is the client's business (client.js).

import { backoffDelay } from './backoff.js';
import { ClosedError, DisconnectedError, RefusedError, ServerError, TimeoutError } from './errors.js';

/** @typedef {import('./protocol.js').ServerFrame} ServerFrame */
/** @typedef {import('./protocol.js').ClientFrame} ClientFrame */
/** @typedef {import('./protocol.js').WelcomeFrame} WelcomeFrame */
/** @typedef {import('./backoff.js').BackoffOptions} BackoffOptions */

/**
 * @typedef {'idle' | 'connecting' | 'online' | 'reconnecting' | 'closed'} ConnectionState
 * `idle`: not started, or closed by the server's idle timeout (the next
 * request reconnects); `connecting`: the first attempt; `online`: welcomed;
 * `reconnecting`: lost, retrying; `closed`: by `close()`, or refused.
 */

/**
 * The WebSocket constructor: the platform's (browsers, Node 22+) or one
 * passed in (the `ws` package in older Node).
 * @typedef {new (url: string) => WebSocketLike} WebSocketConstructor
 */

/**
 * What the client uses of a WebSocket: the standard browser API, which the
 * `ws` package implements too.
 * @typedef {object} WebSocketLike
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {(type: string, listener: (event: any) => void) => void} addEventListener
 */

/**
 * @typedef {object} ConnectionOptions
 * @property {string} url `ws://` or `wss://` URL of `/ws`.
 * @property {string} [name] Display name (`?name=`).
 * @property {string} [token] A JWT (`?token=`).
 * @property {() => string | Promise<string>} [getToken] Gives a fresh token: called before connecting when the current one is missing or expires within `tokenMarginMs`, and after the server refused one.
 * @property {number} [tokenMarginMs] How long before its `exp` a token is refreshed (default 30000).
 * @property {string | null} [guestToken] A guest credential from an earlier `welcome` (`?guest=`).
 * @property {() => string | null} [getGuestToken] Reads the guest credential before every attempt, in place of `guestToken`.
 * @property {WebSocketConstructor} [WebSocket]
 * @property {BackoffOptions} [backoff]
 * @property {number} [pingEveryMs] Longest silence before the client pings (default: the server's heartbeat, at most 15000); two such silences mean a dead connection.
 * @property {typeof fetch} [fetch] For telling a refusal from a server that is down (default: the global `fetch`).
 */

/**
 * @typedef {object} ConnectionHooks
 * @property {(frame: WelcomeFrame) => void} onWelcome
 * @property {(frame: ServerFrame) => void} onFrame every frame that answers no request
 * @property {(info: {code: number, reason: string}) => void} onDrop a welcomed connection was lost
 * @property {(state: ConnectionState) => void} onState
 * @property {(error: Error) => void} onClosed the client stopped for good: refused, or closed
 * @property {(token: string) => void} onGuestToken a new guest credential to keep (or '' to forget)
 */

const PING_EVERY_MAX_MS = 15_000;
const WEBSOCKET_OPEN = 1;
/** Close codes after which the client reconnects at once, with only a small random delay. */
const QUICK_RECONNECT = new Set([1001, 1013]);

/** The payload of a JWT, or null when it is not one (never verified: the server does that). */
function jwtClaims(/** @type {string} */ token) {
  try {
    const part = token.split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json);
    return claims !== null && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

export class Connection {
  /**
   * @param {ConnectionOptions} options
   * @param {ConnectionHooks} hooks
   */
  constructor(options, hooks) {
    const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('no WebSocket here: pass `WebSocket` (for example the `ws` package\'s) in the options');
    }
    this.WebSocket = /** @type {WebSocketConstructor} */ (WebSocketImpl);
    const url = new URL(options.url);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      throw new TypeError(`the server's URL must be ws:// or wss://, not ${url.protocol}//`);
    }
    this.options = options;
    this.hooks = hooks;
    this.token = options.token ?? null;
    this.guestToken = options.guestToken ?? null;
    /** @type {ConnectionState} */
    this.state = 'idle';
    this.attempt = 0;
    /** @type {WebSocketLike | null} */
    this.socket = null;
    this.nextRef = 1;
    /** @type {Map<number, {resolve: (frame: any) => void, reject: (error: Error) => void, timer: any}>} */
    this.waiting = new Map();
    /** @type {any} */
    this.retryTimer = null;
    /** @type {number | null} when the next attempt starts (ms since the epoch), while waiting for it */
    this.retryAt = null;
    /** @type {any} */
    this.pingTimer = null;
    this.lastHeard = 0;
    // Bumped for every socket, so that late events of an old one are ignored.
    this.generation = 0;
    /** @type {WelcomeFrame | null} */
    this.welcome = null;
  }

  get online() {
    return this.state === 'online';
  }

  /** Starts connecting, unless already connected or connecting. */
  open() {
    if (this.state !== 'idle') return;
    this.setState(this.welcome ? 'reconnecting' : 'connecting');
    this.connect(false);
  }

  /** Skips the rest of a backoff wait (the network came back, the user asked), the first connection's too. */
  retryNow() {
    if (this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.connect(false);
  }

  /**
   * Stops for good: closes the socket, rejects every request waiting.
   * @param {Error} [why]
   */
  close(why = new ClosedError()) {
    if (this.state === 'closed') return;
    const wasOnline = this.online;
    this.generation += 1;
    this.teardown(why);
    this.setState('closed');
    if (wasOnline) this.hooks.onDrop({ code: 1000, reason: why.message });
    this.hooks.onClosed(why);
  }

  /**
   * Sends a frame if online.
   * @param {ClientFrame} frame
   * @returns {boolean} false when offline (the caller keeps it for later)
   */
  send(frame) {
    if (!this.online || !this.socket) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a frame and resolves with the reply to it; rejects with
   * ServerError for an `error` reply, DisconnectedError when not online or
   * when the connection drops first, TimeoutError after `timeoutMs`.
   * @param {ClientFrame} frame
   * @param {number} timeoutMs 0: no limit
   * @returns {Promise<any>}
   */
  request(frame, timeoutMs) {
    const socket = this.socket;
    if (!this.online || !socket) return Promise.reject(new DisconnectedError('not connected'));
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.waiting.delete(ref);
              reject(new TimeoutError(timeoutMs));
            }, timeoutMs)
          : null;
      this.waiting.set(ref, { resolve, reject, timer });
      socket.send(JSON.stringify({ ...frame, ref }));
    });
  }

  /** The URL of the next attempt, with its name, token or guest credential. */
  async url() {
    const url = new URL(this.options.url);
    if (this.options.name) url.searchParams.set('name', this.options.name);
    // Where the application keeps the credential, others (another tab,
    // the user clearing storage) may have changed it since.
    if (this.options.getGuestToken) this.guestToken = this.options.getGuestToken() || null;
    const token = await this.currentToken();
    if (token) url.searchParams.set('token', token);
    else if (this.guestToken) url.searchParams.set('guest', this.guestToken);
    return url;
  }

  /** The token to connect with, refreshed first when it is missing or about to expire. */
  async currentToken() {
    const { getToken, tokenMarginMs = 30_000 } = this.options;
    if (!getToken) return this.token;
    const exp = this.token === null ? null : jwtClaims(this.token)?.exp;
    const fresh = typeof exp === 'number' && exp * 1000 - Date.now() > tokenMarginMs;
    if (!fresh) await this.refreshToken();
    return this.token;
  }

  async refreshToken() {
    const getToken = this.options.getToken;
    if (!getToken) return;
    const token = await getToken();
    if (typeof token !== 'string' || token === '') throw new TypeError('getToken gave no token');
    this.token = token;
  }

  /**
   * One attempt.
   * @param {boolean} refreshed the token was fetched just now, after a refusal
   */
  async connect(refreshed) {
    this.retryTimer = null;
    this.retryAt = null;
    const generation = ++this.generation;
    let url;
    try {
      url = await this.url();
    } catch {
      // The token could not be had (the auth service is down): try later.
      if (generation === this.generation) this.scheduleRetry(null);
      return;
    }
    if (generation !== this.generation || this.state === 'closed') return;
    const socket = new this.WebSocket(url.href);
    this.socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
    });
    socket.addEventListener('message', (/** @type {{data: unknown}} */ event) => {
      if (generation === this.generation && typeof event.data === 'string') this.receive(event.data);
    });
    socket.addEventListener('close', (/** @type {{code: number, reason: string}} */ event) => {
      if (generation === this.generation) this.closed(event.code, event.reason ?? '', opened, url, refreshed);
    });
    // An error is followed by a close event, which does the work.
    socket.addEventListener('error', () => {});
  }

  /** @param {string} data */
  receive(data) {
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') return;
    if (frame.ref !== undefined && this.waiting.has(frame.ref)) {
      const waiter = this.waiting.get(frame.ref);
      this.waiting.delete(frame.ref);
      if (!waiter) return;
      clearTimeout(waiter.timer);
      if (frame.type === 'error') waiter.reject(new ServerError(frame));
      else waiter.resolve(frame);
      return;
    }
    if (frame.type === 'welcome') {
      this.welcomed(frame);
      return;
    }
    this.hooks.onFrame(frame);
  }

  /** @param {WelcomeFrame} frame */
  welcomed(frame) {
    this.attempt = 0;
    this.welcome = frame;
    if (typeof frame.guest_token === 'string' && frame.guest_token !== '' && !this.token) {
      this.guestToken = frame.guest_token;
      this.hooks.onGuestToken(frame.guest_token);
    }
    this.startPinging(frame.heartbeat_ms);
    this.setState('online');
    this.hooks.onWelcome(frame);
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} opened
   * @param {URL} url
   * @param {boolean} refreshed
   */
  async closed(code, reason, opened, url, refreshed) {
    const generation = ++this.generation;
    const wasOnline = this.online;
    this.teardown(new DisconnectedError());
    if (this.state === 'closed') return;
    if (wasOnline) {
      this.setState('reconnecting');
      this.hooks.onDrop({ code, reason });
    }
    if (code === 1008) {
      this.close(new RefusedError(0, reason || 'disconnected by policy (1008)'));
      return;
    }
    if (opened && code === 1000) {
      // The server's idle timeout: reconnecting at once would defeat it.
      // The next request or send reconnects.
      this.setState('idle');
      return;
    }
    if (!opened) {
      const refusal = await this.probe(url);
      if (this.superseded(generation)) return;
      if (refusal && (await this.recover(refusal, refreshed))) return;
      if (this.superseded(generation)) return;
    }
    this.scheduleRetry(opened ? code : null);
  }

  /**
   * Whether something happened while waiting: a newer attempt, or `close()`.
   * @param {number} generation
   */
  superseded(generation) {
    return generation !== this.generation || this.state === 'closed';
  }

  /**
   * A socket that never opened was refused at the upgrade, or the server
   * is down. WebSocket APIs hide the status, so the same URL is asked over
   * plain HTTP, where the server checks name, token and origin before any
   * upgrade. Returns the refusal, or null (down, or nothing to tell).
   * @param {URL} url
   * @returns {Promise<{status: number, reason: string} | null>}
   */
  async probe(url) {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') return null;
    const http = new URL(url.href);
    http.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    try {
      const response = await fetchImpl(http.href, { cache: 'no-store' });
      if (![400, 401, 403, 421].includes(response.status)) return null;
      return { status: response.status, reason: (await response.text()).trim() };
    } catch {
      return null;
    }
  }

  /**
   * Acts on a refusal: a refused token is refreshed once, a refused guest
   * credential dropped (be a new guest rather than stay locked out); any
   * other refusal stops the client. Returns whether it was handled.
   * @param {{status: number, reason: string}} refusal
   * @param {boolean} refreshed
   */
  async recover(refusal, refreshed) {
    if (refusal.status === 401 && this.options.getToken && !refreshed) {
      try {
        await this.refreshToken();
      } catch {
        return false;
      }
      if (this.state !== 'closed') this.connect(true);
      return true;
    }
    if (refusal.status === 401 && !this.token && this.guestToken) {
      this.guestToken = null;
      this.hooks.onGuestToken('');
      this.connect(false);
      return true;
    }
    this.close(new RefusedError(refusal.status, refusal.reason));
    return true;
  }

  /** @param {number | null} code the close code of a connection that was open */
  scheduleRetry(code) {
    const backoff = this.options.backoff;
    // A server shutting down or a slow-consumer drop: come back at once,
    // spread over a short random delay so a whole node's clients do not
    // arrive together.
    const delay =
      code !== null && QUICK_RECONNECT.has(code) && this.attempt === 0
        ? Math.random() * (backoff?.baseMs ?? 300)
        : backoffDelay(this.attempt, backoff);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState(this.state === 'connecting' ? 'connecting' : 'reconnecting');
    this.retryTimer = setTimeout(() => this.connect(false), delay);
  }

  /**
   * A connection can die without a close event (a laptop sleeps, a network
   * vanishes). Browsers answer the server's pings without telling the page,
   * so the client pings too and gives up after two silent intervals.
   * @param {number} heartbeatMs
   */
  startPinging(heartbeatMs) {
    const limit = this.options.pingEveryMs ?? PING_EVERY_MAX_MS;
    const every = Math.min(limit, heartbeatMs > 0 ? heartbeatMs : limit);
    clearInterval(this.pingTimer);
    this.lastHeard = Date.now();
    this.pingTimer = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent > 2 * every) {
        // The close event of a dead socket may come minutes later: act
        // now; the generation bump makes that late event a no-op.
        const socket = this.socket;
        this.closed(1006, 'no answer to pings', true, new URL(this.options.url), false);
        socket?.close();
      } else if (silent > every / 2) {
        this.send({ type: 'ping' });
      }
    }, every / 2);
  }

  /**
   * Forgets the current socket: closes it, rejects every request waiting on it.
   * @param {Error} why
   */
  teardown(why) {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WEBSOCKET_OPEN) {
      try {
        socket.close(1000);
      } catch {
        // Already closing.
      }
    }
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const { reject, timer } of waiting) {
      clearTimeout(timer);
      reject(why);
    }
  }

  /** @param {ConnectionState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.hooks.onState(state);
  }
}
