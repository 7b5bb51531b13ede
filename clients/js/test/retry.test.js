// Idempotent retry across a dropped connection: a TCP proxy between the
// client and the server reads the WebSocket frames going both ways, and
// when the server's `ack` of the first `send` comes back it cuts the
// client's side instead of forwarding it. The write was stored, and the
// client never heard so: it must send it again with the same `id`, get
// the original ack (`duplicate: true`), settle its promise once, and the
// room must hold the message once.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, Recorder, WebSocket, deadline, until } from './harness.js';

/**
 * The text frames in `buffer` (WebSocket framing, RFC 6455: unmasked from
 * the server, masked from the client); returns them and the bytes left.
 * Only what this test needs: unfragmented text frames, no extensions.
 */
function parseFrames(buffer) {
  const frames = [];
  let offset = 0;
  for (;;) {
    if (buffer.length - offset < 2) break;
    const opcode = buffer[offset] & 0x0f;
    const masked = (buffer[offset + 1] & 0x80) !== 0;
    let length = buffer[offset + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      if (buffer.length - offset < 4) break;
      length = buffer.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (buffer.length - offset < 10) break;
      length = Number(buffer.readBigUInt64BE(offset + 2));
      header = 10;
    }
    const maskAt = offset + header;
    if (masked) header += 4;
    if (buffer.length - offset < header + length) break;
    const payload = Buffer.from(buffer.subarray(offset + header, offset + header + length));
    if (masked) for (let i = 0; i < payload.length; i += 1) payload[i] ^= buffer[maskAt + (i % 4)];
    if (opcode === 1) frames.push(payload.toString('utf8'));
    offset += header + length;
  }
  return { frames, rest: buffer.subarray(offset) };
}

/**
 * Forwards 127.0.0.1:port to the server, reading frames both ways past the
 * HTTP upgrade. `cutOnAck(frame)` is asked about each server frame; when it
 * says so, the client's connection is destroyed before that frame reaches
 * it (and the server's closed after).
 */
async function startProxy(target, cutOnAck) {
  const seen = { sends: [], cuts: 0, connections: 0 };
  const proxy = net.createServer((client) => {
    seen.connections += 1;
    const upstream = net.connect(Number(target.port), target.hostname);
    const pipe = (from, to, onFrame) => {
      let upgraded = false;
      let pending = Buffer.alloc(0);
      from.on('data', (chunk) => {
        if (!upgraded) {
          // The HTTP request or response head goes through as is.
          const text = chunk.toString('latin1');
          const end = text.indexOf('\r\n\r\n');
          if (end === -1) {
            to.write(chunk);
            return;
          }
          upgraded = true;
          to.write(chunk.subarray(0, end + 4));
          chunk = chunk.subarray(end + 4);
        }
        pending = Buffer.concat([pending, chunk]);
        const before = pending;
        const { frames, rest } = parseFrames(pending);
        const consumed = before.length - rest.length;
        pending = Buffer.from(rest);
        for (const frame of frames) {
          if (onFrame(frame) === 'cut') {
            client.destroy();
            setTimeout(() => upstream.destroy(), 200);
            return;
          }
        }
        to.write(before.subarray(0, consumed));
      });
    };
    pipe(client, upstream, (text) => {
      const frame = JSON.parse(text);
      if (frame.type === 'send') seen.sends.push(frame);
      return 'forward';
    });
    pipe(upstream, client, (text) => {
      const frame = JSON.parse(text);
      if (frame.type === 'ack' && cutOnAck(frame)) {
        seen.cuts += 1;
        return 'cut';
      }
      return 'forward';
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return { proxy, seen, url: `ws://127.0.0.1:${proxy.address().port}/ws` };
}

/** The `ws` WebSocket without compression, so the proxy can read frames. */
class PlainWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false });
  }
}

let server;
let proxy;
const clients = new Clients();

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  clients.closeAll();
  proxy?.proxy.close();
  await server?.close();
});

test('a send whose ack was lost with the connection is retried by id and stored once', async () => {
  const room = 'retry';
  const id = 'retry-once-1';
  let cut = false;
  proxy = await startProxy(new URL(server.url), (ack) => {
    if (cut || ack.id !== id) return false;
    cut = true;
    return true;
  });
  const client = clients.make(server, { url: proxy.url, name: 'retrier', WebSocket: PlainWebSocket });
  const follower = clients.make(server, { name: 'watcher' });
  const seen = new Recorder(follower);
  await follower.join(room);
  await client.join(room);

  const acks = [];
  client.on('ack', (ack) => acks.push(ack));
  const dropped = [];
  client.on('disconnected', (info) => dropped.push(info));

  const ack = await deadline(client.send(room, 'only once', { id }), 'the ack of the retried send');
  assert.equal(proxy.seen.cuts, 1, 'the proxy cut the connection on the first ack');
  assert.ok(dropped.length >= 1, 'the client saw the connection drop');
  const attempts = proxy.seen.sends.filter((frame) => frame.id === id);
  assert.equal(attempts.length, 2, 'the write went twice: before the cut and after the reconnect');
  assert.equal(attempts[0].text, attempts[1].text);
  assert.equal(ack.id, id);
  assert.equal(ack.duplicate, true, 'the retry got the original ack, flagged as a duplicate');
  assert.deepEqual(
    acks.map((a) => a.id),
    [id],
    'one ack event for the write',
  );
  assert.deepEqual(client.pending(), []);

  // Stored and delivered once.
  const later = await client.send(room, 'next');
  assert.equal(later.seq, ack.seq + 1, 'the retry took no seq of its own');
  const page = await client.history(room, { limit: 50 });
  assert.deepEqual(
    page.messages.filter((m) => m.id === id).map((m) => m.seq),
    [ack.seq],
  );
  await until(() => seen.seqs(room).length >= 2, 'the watcher to see both messages');
  assert.deepEqual(seen.ids(room), [id, later.id]);
});
