// Test harness: runs the real chat-server binary, and gives the tests a
// Socket.IO client (the official socket.io-client), a native-protocol
// client (JSON over `ws`), and waits with deadlines.
//
// Environment:
//   CHAT_SERVER_BIN  the server binary (crates/server/tests/socketio.rs
//                    passes the one cargo built; default target/debug)

import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { ChatServer, repoRoot } from '../support/chat-server.js';
import { NativeClient as SharedNativeClient } from '../support/native-client.js';
import { waiting } from '../support/waiting.js';

export { ChatServer, repoRoot };

/** How long any one condition may take to come true. */
export const WAIT_MS = 10_000;

export const { deadline, until } = waiting(WAIT_MS);

/**
 * Records every event a Socket.IO client receives, so a test can wait for
 * one that matches, whenever it arrived.
 */
export class SioClient {
  /** Connects and waits for `connect`. `options` go to `io()`. */
  static async connect(url, options = {}) {
    const client = new SioClient(url, options);
    await client.connected();
    return client;
  }

  constructor(url, options = {}) {
    this.socket = io(url, { reconnectionDelay: 100, reconnectionDelayMax: 500, ...options });
    /** `[event, payload]`, in arrival order. */
    this.events = [];
    this.waiters = [];
    this.socket.onAny((event, payload) => {
      this.events.push([event, payload]);
      this.check();
    });
  }

  connected() {
    if (this.socket.connected) return Promise.resolve();
    return deadline(
      new Promise((resolve, reject) => {
        this.socket.once('connect', resolve);
        this.socket.once('connect_error', reject);
      }),
      'connect',
    );
  }

  check() {
    this.waiters = this.waiters.filter(({ predicate, resolve }) => {
      const found = this.events.find(predicate);
      if (found) resolve(found[1]);
      return !found;
    });
  }

  /** The payload of the first event named `event` for which `test(payload)` holds. */
  waitFor(event, test = () => true, what = `a '${event}' event`) {
    const predicate = ([name, payload]) => name === event && test(payload);
    const found = this.events.find(predicate);
    if (found) return Promise.resolve(found[1]);
    return deadline(new Promise((resolve) => this.waiters.push({ predicate, resolve })), what);
  }

  /** Payloads of the events named `event`, in arrival order. */
  received(event) {
    return this.events.filter(([name]) => name === event).map(([, payload]) => payload);
  }

  /** Emits with an ack callback and returns what the server acknowledged. */
  request(event, payload) {
    return deadline(this.socket.emitWithAck(event, payload), `the ack of '${event}'`);
  }

  close() {
    this.socket.disconnect();
  }
}

/** A native-protocol client on `/ws` (tests/support/native-client.js). */
export const NativeClient = {
  connect(serverUrl, name) {
    const url = `${serverUrl.replace(/^http/, 'ws')}/ws?name=${encodeURIComponent(name)}`;
    return new SharedNativeClient(new WebSocket(url), { deadline }).welcomed();
  },
};
