// Every error surfaces typed: each code of ERROR_CODES that a client can
// provoke on a real server rejects with a ServerError carrying it (or,
// for the codes the library retries on its own, `overloaded` and
// `internal` on writes, shows as the queued write's `lastError` until the
// retry gets through); a refused name is a RefusedError 400; a closed
// client rejects with ClosedError; an unanswered request with TimeoutError.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ChatServer, Clients, WebSocket, deadline, epoch, signToken, until } from './harness.js';
import {
  ChatClient,
  ClosedError,
  ERROR_CODES,
  RefusedError,
  ServerError,
  TimeoutError,
} from '../src/index.js';

const SECRET = 'js-client-tests-secret-0123456789abcdef';

/** Asserts that `promise` rejects with a ServerError of `code`. */
async function rejectsWith(promise, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ServerError, `a ServerError, got ${error?.name}: ${error?.message}`);
    assert.equal(error.code, code);
    assert.equal(error.frame.type, 'error');
    assert.equal(error.frame.code, code);
    return true;
  });
}

/** A `ws` WebSocket that rewrites outgoing frames with `rewrite(frame)` (the library sends only what it knows). */
function rewritingWebSocket(rewrite) {
  return class extends WebSocket {
    send(data, ...rest) {
      const frame = JSON.parse(String(data));
      const out = rewrite(frame);
      if (out === null) return;
      super.send(JSON.stringify(out), ...rest);
    }
  };
}

const provoked = new Set();
const clients = new Clients();

after(() => {
  clients.closeAll();
});

describe('on a server with default limits (and a JWT secret, anonymous allowed)', () => {
  let server;
  let client;
  before(async () => {
    server = await ChatServer.start(['--jwt-secret', SECRET, '--allow-anonymous', 'true', '--search-rate', '1']);
    client = clients.make(server, { name: 'errors' });
    await client.join('errors');
  });
  after(async () => {
    await server?.close();
  });

  test('bad_request: a history page of limit 0', async () => {
    await rejectsWith(client.history('errors', { limit: 0 }), 'bad_request');
    provoked.add('bad_request');
  });

  test('unknown_type: a frame type the server does not know (rewritten under the library)', async () => {
    const odd = clients.make(server, {
      name: 'odd',
      WebSocket: rewritingWebSocket((frame) => (frame.type === 'ping' && frame.ref ? { ...frame, type: 'ping-of-the-future' } : frame)),
    });
    await rejectsWith(odd.ping(), 'unknown_type');
    provoked.add('unknown_type');
  });

  test('invalid_room: a room name with a control character, on join, and on a write', async () => {
    await rejectsWith(client.join('bad\u0007room'), 'invalid_room');
    assert.ok(!client.followed.includes('bad\u0007room'), 'a refused room is not followed');
    await rejectsWith(client.send('x'.repeat(65), 'hi'), 'invalid_room');
    provoked.add('invalid_room');
  });

  test('too_long: a message over 4000 characters, and write_failed tells it too', async () => {
    const failed = [];
    const off = client.on('write_failed', (error, write) => failed.push([error, write]));
    await rejectsWith(client.send('errors', 'y'.repeat(4001)), 'too_long');
    off();
    assert.equal(failed.length, 1);
    assert.ok(failed[0][0] instanceof ServerError);
    assert.equal(failed[0][1].kind, 'send');
    assert.deepEqual(client.pending(), [], 'a write refused for good leaves the outbox');
    provoked.add('too_long');
  });

  test('not_joined: a send to a room this client never joined', async () => {
    await rejectsWith(client.send('elsewhere', 'hello?'), 'not_joined');
    provoked.add('not_joined');
  });

  test('forbidden: a room outside the token’s `rooms` claim, and a pin without being a moderator', async () => {
    const token = signToken(SECRET, { sub: 'limited', name: 'limited', rooms: ['team-*'], exp: epoch(3600) });
    const limited = clients.make(server, { token });
    await limited.join('team-red');
    await rejectsWith(limited.join('errors'), 'forbidden');
    await rejectsWith(limited.history('errors'), 'forbidden');
    const ack = await limited.send('team-red', 'pin me');
    await rejectsWith(limited.pin('team-red', ack.seq), 'forbidden');
    provoked.add('forbidden');
  });

  test('not_found: editing a message that was never stored, and a dm to an unknown user', async () => {
    await rejectsWith(client.edit('errors', 9999, 'new text'), 'not_found');
    await rejectsWith(client.dm('u_nobody_ever'), 'not_found');
    provoked.add('not_found');
  });

  test('rate_limited: searches over the search rate (requests are not retried)', async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => client.search('hello')));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(refused.length >= 1, 'some searches were refused');
    for (const r of refused) {
      assert.ok(r.reason instanceof ServerError, `${r.reason}`);
      assert.equal(r.reason.code, 'rate_limited');
      assert.equal(r.reason.retryable, true);
    }
    assert.ok(results.some((r) => r.status === 'fulfilled'), 'the first ones were answered');
    provoked.add('rate_limited');
  });

  test('RefusedError 400: a display name the server refuses', async () => {
    const bad = clients.make(server, { name: 'al\u202eecila' });
    const closed = new Promise((resolve) => bad.on('closed', resolve));
    await assert.rejects(bad.connect(), (error) => {
      assert.ok(error instanceof RefusedError, `${error}`);
      assert.equal(error.status, 400);
      assert.match(error.reason, /U\+202E/);
      return true;
    });
    assert.ok((await closed) instanceof RefusedError);
    assert.equal(bad.state, 'closed');
    await assert.rejects(bad.send('errors', 'after refusal'), RefusedError);
  });

  test('ClosedError: every call after close(), and the writes that were waiting', async () => {
    const closing = clients.make(server, { name: 'closing' });
    await closing.join('errors');
    const waiting = closing.history('errors', { limit: 5 });
    const write = closing.send('errors', 'unacked at close');
    closing.close();
    await assert.rejects(waiting, ClosedError);
    await assert.rejects(write, ClosedError);
    await assert.rejects(closing.send('errors', 'too late'), ClosedError);
    await assert.rejects(closing.join('other'), ClosedError);
    await assert.rejects(closing.history('errors'), ClosedError);
    await assert.rejects(closing.connect(), ClosedError);
    assert.equal(closing.state, 'closed');
  });

  test('TimeoutError: a request with no reply (dropped under the library), and one that cannot go out', async () => {
    const deaf = clients.make(server, {
      name: 'deaf',
      requestTimeoutMs: 300,
      WebSocket: rewritingWebSocket((frame) => (frame.type === 'history' ? null : frame)),
    });
    await deaf.connect();
    await assert.rejects(deaf.history('errors'), (e) => e instanceof TimeoutError && e.ms > 0);
    // No server at all: the request waits for a connection that never comes.
    const nowhere = new ChatClient({
      url: 'ws://127.0.0.1:9/ws',
      WebSocket,
      requestTimeoutMs: 300,
      backoff: { baseMs: 50, maxMs: 100 },
    });
    clients.all.push(nowhere);
    await assert.rejects(nowhere.history('errors'), TimeoutError);
  });
});

describe('on a server whose commit queue holds one send (overloaded)', () => {
  let server;
  before(async () => {
    server = await ChatServer.start(['--max-pending-sends', '1', '--commit-interval-ms', '100', '--send-rate', '1000', '--send-burst', '1000']);
  });
  after(async () => {
    await server?.close();
  });

  test('overloaded: writes past the queue are refused, shown on the write, retried by id until stored', async () => {
    const senders = Array.from({ length: 2 }, (_, i) => clients.make(server, { name: `busy-${i}`, sendRate: null }));
    await Promise.all(senders.map((s) => s.join('busy')));
    const errors = [];
    for (const s of senders) {
      s.on('outbox', (writes) => {
        for (const w of writes) if (w.lastError) errors.push(w.lastError);
      });
    }
    const acks = await deadline(
      Promise.all(senders.flatMap((s, i) => Array.from({ length: 3 }, (_, j) => s.send('busy', `${i}.${j}`)))),
      'every write to be stored in the end',
      30_000,
    );
    const overloaded = errors.filter((e) => e instanceof ServerError && e.code === 'overloaded');
    assert.ok(overloaded.length >= 1, `some writes were refused as overloaded (errors: ${errors.map(String)})`);
    assert.ok(overloaded.every((e) => e.retryable));
    assert.equal(new Set(acks.map((a) => a.seq)).size, 6, 'each stored once');
    const page = await senders[0].history('busy', { limit: 50 });
    assert.equal(page.messages.length, 6);
    provoked.add('overloaded');
  });
});

describe('on a server whose database is locked by another process (internal)', () => {
  let server;
  before(async () => {
    server = await ChatServer.start(['--store-busy-timeout-ms', '100']);
  });
  after(async () => {
    await server?.close();
  });

  test('internal: a write the store cannot commit shows the error and is stored once the lock is gone', async () => {
    const sqlite = ['/usr/bin/sqlite3', '/bin/sqlite3'].find((p) => existsSync(p));
    assert.ok(sqlite, 'the sqlite3 command is needed to lock the database (scripts/test-setup.sh installs it)');
    const client = clients.make(server, { name: 'locked-out', sendRate: null });
    await client.join('locked');
    await client.send('locked', 'before the lock');

    // Another process takes the database's write lock and keeps it.
    const locker = spawn(sqlite, [path.join(server.dataDir, 'chat.db')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    locker.stdout.on('data', (chunk) => {
      out += chunk;
    });
    locker.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
    await until(() => out.includes('locked'), 'sqlite3 to hold the write lock');

    const errors = [];
    client.on('outbox', (writes) => {
      for (const w of writes) if (w.lastError) errors.push(w.lastError);
    });
    const stored = client.send('locked', 'during the lock', { id: 'locked-1' });
    try {
      await until(() => errors.length > 0, 'the write to be refused');
    } finally {
      locker.stdin.end('ROLLBACK;\n');
    }
    const first = errors[0];
    assert.ok(first instanceof ServerError, `${first}`);
    assert.equal(first.code, 'internal');
    assert.equal(first.retryable, true);
    const ack = await deadline(stored, 'the write to be stored after the lock', 20_000);
    assert.equal(ack.id, 'locked-1');
    const page = await client.history('locked');
    assert.equal(page.messages.filter((m) => m.id === 'locked-1').length, 1);
    provoked.add('internal');
  });
});

test('every code of ERROR_CODES was provoked', () => {
  assert.deepEqual([...provoked].sort(), [...ERROR_CODES].sort());
});
