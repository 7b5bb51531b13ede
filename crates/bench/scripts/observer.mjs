// A second, independent measurement of delivery latency, taken in the same
// run as chat-bench's: a separate process (Node, its own WebSocket client,
// none of chat-bench's code) that keeps a few rooms of its own on the
// server under test, sends into them on a fixed schedule, and times each
// message from its scheduled send to its arrival at every member. When its
// figures and chat-bench's disagree, one of the two harnesses is hiding
// something.
//
//   node --experimental-websocket observer.mjs --url ws://127.0.0.1:23400/ws \
//       [--rooms 5] [--members 10] [--rate 10] [--delay 5] [--seconds 20]
//
// Native protocol only (ours, rust-minimal, node-ws). Prints one JSON line:
// deliveries, lost, and p50/p99/p99.9/max in milliseconds. Node 20 needs
// --experimental-websocket for its global WebSocket (Node 22 has it on).

const options = {
  url: 'ws://127.0.0.1:23400/ws',
  rooms: 5,
  members: 10,
  rate: 10,
  delay: 5,
  seconds: 20,
};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const key = args[i].replace(/^--/, '');
  if (!(key in options) || args[i + 1] === undefined) {
    console.error(`unknown or incomplete option ${args[i]}`);
    process.exit(2);
  }
  options[key] = key === 'url' ? args[i + 1] : Number(args[i + 1]);
}

const origin = performance.now();
const latencies = [];
let expected = 0;

function open(name) {
  return new Promise((resolve, reject) => {
    const separator = options.url.includes('?') ? '&' : '?';
    const ws = new WebSocket(`${options.url}${separator}name=${name}`);
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error(`${name}: ${e.message ?? 'connection failed'}`));
  });
}

function joined(ws, room) {
  return new Promise((resolve) => {
    const listener = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'joined' && frame.room === room) {
        ws.removeEventListener('message', listener);
        resolve();
      }
    };
    ws.addEventListener('message', listener);
    ws.send(JSON.stringify({ type: 'join', room }));
  });
}

// Every member (the sender included) records each message's latency from
// the stamp in its text: the scheduled send time, ms since `origin`. Only
// messages scheduled inside the window count; the others say `warmup`.
function measure(ws, room) {
  ws.addEventListener('message', (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== 'message' || frame.room !== room) return;
    const [, stamp, warmup] = frame.text.split(' ');
    const scheduled = Number(stamp);
    if (warmup !== undefined || Number.isNaN(scheduled)) return;
    latencies.push(performance.now() - origin - scheduled);
  });
}

async function room(index) {
  const name = `observer-${process.pid}-${index}`;
  const members = [];
  for (let m = 0; m < options.members; m++) {
    const ws = await open(`obs${index}m${m}`);
    await joined(ws, name);
    members.push(ws);
  }
  return { name, members };
}

const rooms = await Promise.all([...Array(options.rooms).keys()].map(room));
const windowStart = options.delay * 1000;
const windowEnd = windowStart + options.seconds * 1000;
let counted = 0;
for (const { name, members } of rooms) {
  for (const ws of members) measure(ws, name);
}

// Open-loop schedule: message n of a room is due at n / rate seconds; a late
// timer sends what is due at once, stamped with when it was due, so a stall
// on our side counts as latency rather than hiding.
const period = 1000 / options.rate;
let next = 0;
const started = performance.now() - origin;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now() - origin - started;
    while (next * period <= now) {
      const due = started + next * period;
      const inWindow = due - started >= windowStart && due - started < windowEnd;
      for (const { name, members } of rooms) {
        const text = `observer ${due.toFixed(3)}${inWindow ? '' : ' warmup'}`;
        members[0].send(JSON.stringify({ type: 'send', room: name, text, id: `o${next}` }));
        if (inWindow) {
          expected += members.length;
          counted += 1;
        }
      }
      next += 1;
    }
    if (now >= windowEnd + 2000) resolve();
    else setTimeout(tick, Math.max(0, next * period - now));
  };
  tick();
});

latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)];
const round = (ms) => (ms === undefined ? null : Math.round(ms * 1000) / 1000);
console.log(
  JSON.stringify({
    harness: 'observer',
    rooms: options.rooms,
    members: options.members,
    rate_per_room: options.rate,
    sends_in_window: counted,
    deliveries_expected: expected,
    deliveries: latencies.length,
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
    p999_ms: round(at(0.999)),
    max_ms: round(latencies[latencies.length - 1]),
  }),
);
for (const { members } of rooms) for (const ws of members) ws.close();
process.exit(0);
