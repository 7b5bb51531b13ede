// Test harness of the JavaScript client: the real chat-server binary (the
// repository's tests/support/chat-server.js, as tests/socketio and
// tests/browser use it: free port on 127.0.0.1, a temporary data dir),
// clients of this library over the `ws` package, a raw native client, and
// waits with deadlines.
//
// Environment:
//   CHAT_SERVER_BIN  the server binary (crates/server/tests/js_client.rs
//                    passes the one cargo built; default target/debug)
//   CHAT_CLI_BIN     the Rust client's `chat` binary (the same; default
//                    target/debug/chat)

import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

import { ChatServer as BaseServer, repoRoot } from '../../../tests/support/chat-server.js';
import { NativeClient } from '../../../tests/support/native-client.js';
import { waiting } from '../../../tests/support/waiting.js';
import { ChatClient } from '../src/index.js';

export { repoRoot, WebSocket };

export const CHAT_CLI_BIN = process.env.CHAT_CLI_BIN || path.join(repoRoot, 'target/debug/chat');

/** How long any one condition may take to come true. */
export const WAIT_MS = 15_000;

export const { deadline, until } = waiting(WAIT_MS);

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The next `type` event of `client` (its arguments), within the deadline. */
export function nextEvent(client, type, test = () => true, what = `a '${type}' event`) {
  return deadline(
    new Promise((resolve) => {
      const off = client.on(type, (...args) => {
        if (!test(...args)) return;
        off();
        resolve(args);
      });
    }),
    what,
  );
}

/**
 * The chat-server process, with a `kill -9` besides the operator's stop
 * (`stop`, SIGTERM): `relaunch` starts it again on the same address and
 * data dir, as a supervisor would after a crash.
 */
export class ChatServer extends BaseServer {
  static async start(extraArgs = []) {
    const server = new ChatServer(mkdtempSync(path.join(tmpdir(), 'chat-js-test-')), extraArgs);
    await server.spawn('127.0.0.1:0');
    server.address = new URL(server.url).host;
    return server;
  }

  /** `ws://127.0.0.1:PORT/ws` */
  get wsUrl() {
    return `ws://${this.address}/ws`;
  }

  /** SIGKILL: no shutdown, no close frames; waits for the process to be gone. */
  async kill9() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts it again on the same address and data dir, after `stop` or `kill9`. */
  async relaunch() {
    this.url = null;
    await this.spawn(this.address);
  }
}

/**
 * A `ws` WebSocket whose instances are recorded, so a test can reach the
 * socket under a client (pause it, cut it) and see the URLs it opened.
 * `options` go to every `ws` constructor (e.g. `perMessageDeflate`).
 */
export function recordingWebSocket(options = {}) {
  const sockets = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, options);
      sockets.push(this);
    }
  }
  return { WebSocket: RecordingWebSocket, sockets, urls: () => sockets.map((s) => s.url) };
}

/**
 * Clients made for one test file, all closed by `closeAll`. Each defaults
 * to the `ws` package, quick reconnects and a name.
 */
export class Clients {
  constructor() {
    this.all = [];
  }

  /** A ChatClient of `server` (not connected yet). */
  make(server, options = {}) {
    const client = new ChatClient({
      url: server.wsUrl,
      WebSocket,
      backoff: { baseMs: 100, maxMs: 1000 },
      ...options,
    });
    this.all.push(client);
    return client;
  }

  closeAll() {
    for (const client of this.all.splice(0)) client.close();
  }
}

/**
 * What a client delivered in each room, in order: `message` and `change`
 * events as `{seq, id, kind, text}`.
 */
export class Recorder {
  constructor(client) {
    /** @type {Map<string, {seq: number, id: string, kind: string, text?: string, ts: number}[]>} */
    this.rooms = new Map();
    this.disconnects = [];
    client.on('message', (m) => this.add(m.room, { seq: m.seq, id: m.id, kind: 'message', text: m.text, ts: m.ts }));
    client.on('change', (c) => this.add(c.room, { seq: c.seq, id: c.id, kind: c.type, ts: c.ts }));
    client.on('disconnected', (info) => this.disconnects.push(info));
  }

  add(room, entry) {
    let list = this.rooms.get(room);
    if (!list) {
      list = [];
      this.rooms.set(room, list);
    }
    list.push(entry);
  }

  entries(room) {
    return this.rooms.get(room) ?? [];
  }

  seqs(room) {
    return this.entries(room).map((e) => e.seq);
  }

  ids(room) {
    return this.entries(room).map((e) => e.id);
  }
}

/** 1, 2, …, n */
export function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** An HS256 JWT of `claims`, signed with `secret` (node:crypto, no library). */
export function signToken(secret, claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  const signature = createHmac('sha256', secret).update(head).digest('base64url');
  return `${head}.${signature}`;
}

/** Seconds since the epoch, `offset` from now. */
export function epoch(offsetSeconds = 0) {
  return Math.floor(Date.now() / 1000) + offsetSeconds;
}

/** A native-protocol client on `/ws` without this library, for load: it keeps no `message` frames. */
export const RawClient = {
  connect(server, name) {
    const ws = new WebSocket(`${server.wsUrl}?name=${encodeURIComponent(name)}`, { perMessageDeflate: false });
    return new NativeClient(ws, { keep: (frame) => frame.type !== 'message', deadline }).welcomed();
  },
};

/** Whether the Rust CLI binary is there (a test that needs it fails, naming it, when it is not). */
export function haveChatCli() {
  return existsSync(CHAT_CLI_BIN);
}
