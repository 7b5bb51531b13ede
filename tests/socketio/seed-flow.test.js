// The seed article's client flow, exactly as its React client does it, over
// each transport: io(url); emit('join', room); emit('message', {room,
// content}); render every 'message' event's `content`. No auth, no acks.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatServer, SioClient, until } from './harness.js';

let server;
const clients = [];

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  for (const client of clients) client.close();
  await server?.close();
});

function client(options) {
  const c = new SioClient(server.url, options);
  clients.push(c);
  return c;
}

const transports = {
  'the default transports (long-polling, then the upgrade to WebSocket)': {},
  'WebSocket only': { transports: ['websocket'] },
  'long-polling only': { transports: ['polling'] },
};

for (const [name, options] of Object.entries(transports)) {
  test(`seed flow over ${name}`, async () => {
    const room = `seed-${Object.keys(transports).indexOf(name)}`;
    const alice = client(options);
    const bob = client(options);
    // As the seed does: emit at once, without waiting for anything; the
    // client buffers until connected, and the server takes them in order.
    alice.socket.emit('join', room);
    bob.socket.emit('join', room);
    await alice.connected();
    await bob.connected();
    await bob.waitFor('joined', (j) => j.room === room);
    await alice.waitFor('joined', (j) => j.room === room);

    alice.socket.emit('message', { room, content: 'hello 你好 👋' });
    bob.socket.emit('message', { room, content: 'hi Alice' });
    const contents = (c) => c.received('message').filter((m) => m.room === room).map((m) => m.content);
    await until(() => contents(alice).length === 2 && contents(bob).length === 2, 'both messages at both clients');
    assert.deepEqual(contents(alice), contents(bob), 'both see the same order');
    assert.deepEqual([...contents(alice)].sort(), ['hello 你好 👋', 'hi Alice'].sort());
    const [first, second] = alice.received('message').filter((m) => m.room === room);
    assert.equal(second.seq, first.seq + 1);
    assert.equal(first.text, first.content, 'content is the native text');

    if (options.transports?.[0] === 'websocket') {
      assert.equal(alice.socket.io.engine.transport.name, 'websocket');
    } else if (options.transports?.[0] === 'polling') {
      assert.equal(alice.socket.io.engine.transport.name, 'polling');
    }
  });
}

test('a join and a message emitted back to back are handled in that order', async () => {
  const carol = client({ transports: ['polling'] });
  // Long-polling posts both in one request; the message must not overtake
  // the join (it would be refused as not_joined).
  for (let i = 0; i < 5; i++) {
    carol.socket.emit('join', `burst-${i}`);
    carol.socket.emit('message', { room: `burst-${i}`, content: `m${i}` });
  }
  await until(() => carol.received('message').length === 5, 'five messages back');
  assert.deepEqual(carol.received('error'), []);
});
