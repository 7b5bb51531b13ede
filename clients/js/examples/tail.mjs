// Follows rooms and prints every message and change, resuming across
// reconnects: node examples/tail.mjs ws://127.0.0.1:3000/ws general random
import { ChatClient } from '../src/index.js';

const [url = 'ws://127.0.0.1:3000/ws', ...rooms] = process.argv.slice(2);
// Node 22 has a global WebSocket; before it, the `ws` package stands in.
const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
const client = new ChatClient({ url, name: 'tail', WebSocket });

client.on('message', (m) => console.log(JSON.stringify({ room: m.room, seq: m.seq, from: m.from.name, text: m.text })));
client.on('change', (c) => console.log(JSON.stringify({ room: c.room, seq: c.seq, change: c.type, target: c.target })));
client.on('state', (state) => console.error(`[${state}]`));
client.on('closed', (why) => {
  console.error(`stopped: ${why.message}`);
  process.exitCode = 1;
});

await client.connect();
for (const room of rooms.length > 0 ? rooms : ['general']) await client.join(room);
process.on('SIGINT', () => client.close());
