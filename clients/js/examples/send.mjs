// Sends one message and prints its ack once stored:
// node examples/send.mjs ws://127.0.0.1:3000/ws general "hello 你好"
import { ChatClient, ServerError } from '../src/index.js';

const [url = 'ws://127.0.0.1:3000/ws', room = 'general', text = 'hello'] = process.argv.slice(2);
const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
const client = new ChatClient({ url, name: 'sender', WebSocket });

try {
  await client.join(room);
  const ack = await client.send(room, text);
  console.log(JSON.stringify(ack));
} catch (error) {
  console.error(error instanceof ServerError ? `refused (${error.code}): ${error.message}` : error.message);
  process.exitCode = 1;
} finally {
  client.close();
}
