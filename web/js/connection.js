// One WebSocket to the server's native protocol on /ws, kept open: it
// reconnects by itself with exponential backoff and jitter, matches replies
// to requests by `ref`, and notices a dead connection that never closed.
// It knows frames, not chat: what a frame means is the client's business.

/** The server answered a request with an `error` frame. */
export class ProtocolError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
    this.frame = frame;
  }
}

/** The connection dropped before the reply came: the request may or may not have been handled. */
export class Disconnected extends Error {
  constructor() {
    super('connection lost');
  }
}

const BACKOFF_BASE_MS = 300;
const BACKOFF_MAX_MS = 10_000;
// Longest silence between our pings; the server's heartbeat can be longer.
const PING_EVERY_MAX_MS = 15_000;

/**
 * Delay before reconnect attempt `attempt` (0-based): doubling, capped, and
 * drawn from the upper half of the interval so that many pages dropped by
 * the same restart do not all come back in the same millisecond.
 */
function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * States: `idle` (never started), `connecting` (first attempt), `online`
 * (welcome received), `reconnecting` (lost, retrying), `refused` (the server
 * will not take us as we are; retrying would not help).
 */
export class Connection {
  /**
   * onFrame(frame): every frame that is not a reply to a request, and the welcome.
   * onState(): the state or its details changed.
   * onDrop(): an open connection was lost; pending requests were rejected.
   * credential: {get(), drop()}, the guest credential to connect with
   *   (`?guest=`), dropped when the server refuses it.
   */
  constructor({ onFrame, onState, onDrop, credential = null }) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.onDrop = onDrop;
    this.credential = credential;
    this.state = 'idle';
    this.name = '';
    this.attempt = 0;
    this.retryAt = null;
    this.refusal = null;
    // Whether the server answered /healthz after the last attempt that
    // failed to open (see `closed`).
    this.serverWasUp = false;
    this.socket = null;
    this.nextRef = 1;
    this.waiting = new Map();
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    // Bumped for every socket, so late events of an old one are ignored.
    this.generation = 0;
    window.addEventListener('online', () => this.retryNow());
  }

  get online() {
    return this.state === 'online';
  }

  /** Connects as `name` (empty: the server picks a guest name), dropping any current connection. */
  open(name) {
    this.name = name;
    this.attempt = 0;
    this.refusal = null;
    this.serverWasUp = false;
    const wasOnline = this.online;
    this.teardown();
    if (wasOnline) this.onDrop();
    this.setState('connecting');
    this.connect();
  }

  /** Skips the rest of the backoff wait (the user asked, or the network came back). */
  retryNow() {
    if (this.state !== 'reconnecting' || this.socket) return;
    clearTimeout(this.retryTimer);
    this.connect();
    this.onState();
  }

  /** Sends a frame if online; false otherwise (the caller keeps it for later). */
  send(frame) {
    if (!this.online) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a frame and resolves with the server's reply to it; rejects with
   * ProtocolError for an `error` reply and Disconnected if the connection
   * drops first (or is not online now).
   */
  request(frame) {
    if (!this.online) return Promise.reject(new Disconnected());
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.waiting.set(ref, { resolve, reject });
      this.socket.send(JSON.stringify({ ...frame, ref }));
    });
  }

  /**
   * The URL to connect to with guest credential `guest` (none: null), as
   * `http:` or `https:` (`fetch` wants those).
   */
  url(guest) {
    // Relative to the page, so it also works behind a proxy under a path prefix.
    const url = new URL('ws', location.href);
    if (this.name) url.searchParams.set('name', this.name);
    if (guest) url.searchParams.set('guest', guest);
    return url;
  }

  connect() {
    this.retryAt = null;
    const guest = this.credential?.get() ?? null;
    const url = this.url(guest);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    const generation = ++this.generation;
    this.socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
    });
    socket.addEventListener('message', (event) => {
      if (this.generation === generation) this.receive(event.data);
    });
    socket.addEventListener('close', (event) => {
      if (this.generation === generation) this.closed(event, opened, guest);
    });
  }

  receive(data) {
    this.lastHeard = performance.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== 'object') return;
    if (frame.ref !== undefined && this.waiting.has(frame.ref)) {
      const { resolve, reject } = this.waiting.get(frame.ref);
      this.waiting.delete(frame.ref);
      if (frame.type === 'error') reject(new ProtocolError(frame));
      else resolve(frame);
      return;
    }
    if (frame.type === 'welcome') {
      this.attempt = 0;
      this.serverWasUp = false;
      this.startPinging(frame.heartbeat_ms);
      this.setState('online');
    }
    this.onFrame(frame);
  }

  async closed(event, opened, guest = null) {
    const generation = ++this.generation;
    const wasOnline = this.online;
    this.teardown();
    if (wasOnline) this.onDrop();
    if (event.code === 1008) {
      this.refuse('The server refused this page (origin not allowed).');
      return;
    }
    if (!opened && guest && (await this.refusesGuest(guest))) {
      if (this.generation !== generation) return;
      // A credential the server no longer takes (its secret changed): be a
      // new guest rather than stay locked out.
      if (this.credential.get() === guest) this.credential.drop();
      this.connect();
      return;
    }
    if (this.generation !== generation) return;
    // A socket that never opened was refused at the upgrade (HTTP 400 for a
    // bad name, 401 for a token) or the server is down. The browser hides
    // which, so ask the server whether it is up at all. A server that is up
    // now may only just have come back (a restart): the attempt counts as
    // refused only if it was made while the server was already known to
    // be up; otherwise try again at once.
    const up = !opened && (await this.serverIsUp());
    // The user may have reconnected (a new name) while we asked.
    if (this.generation !== generation) return;
    const refused = up && this.serverWasUp;
    this.serverWasUp = up;
    if (up && !refused) {
      this.setState('reconnecting');
      this.connect();
      return;
    }
    if (refused) {
      this.refuse(
        this.name
          ? `The server did not accept the name “${this.name}”. Choose another name.`
          : 'The server did not accept the connection.',
      );
      return;
    }
    this.scheduleRetry();
  }

  /**
   * Whether the server refuses the guest credential: the browser hides a
   * failed upgrade's status, so the same URL is asked over plain HTTP,
   * where credentials are checked before the upgrade is (401 for a bad
   * one; a good one gets the upgrade's own complaint).
   */
  async refusesGuest(guest) {
    try {
      const response = await fetch(this.url(guest), { cache: 'no-store' });
      return response.status === 401;
    } catch {
      return false;
    }
  }

  async serverIsUp() {
    try {
      const response = await fetch(new URL('healthz', location.href), { cache: 'no-store' });
      return response.ok;
    } catch {
      return false;
    }
  }

  refuse(why) {
    this.refusal = why;
    this.setState('refused');
  }

  scheduleRetry() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /**
   * A connection can die without a close event (a laptop sleeps, a network
   * vanishes). Browsers answer the server's pings but tell the page nothing,
   * so the page pings too and gives up after two silent intervals.
   */
  startPinging(heartbeatMs) {
    const every = Math.min(PING_EVERY_MAX_MS, Number(heartbeatMs) > 0 ? heartbeatMs : PING_EVERY_MAX_MS);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      const silent = performance.now() - this.lastHeard;
      if (silent > 2 * every) {
        // The close event of a dead socket may take minutes: act now, and
        // the generation bump in closed() makes the late event a no-op.
        this.closed({ code: 1006 }, true);
      } else if (silent > every / 2) {
        this.send({ type: 'ping' });
      }
    }, every / 2);
  }

  /** Forgets the current socket: closes it, rejects every request waiting on it. */
  teardown() {
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      if (socket.readyState <= WebSocket.OPEN) socket.close(1000);
    }
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const { reject } of waiting) reject(new Disconnected());
  }

  setState(state) {
    this.state = state;
    this.onState();
  }
}
