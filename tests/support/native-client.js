// A native-protocol client on `/ws` for the Node suites, with no client
// library in between: JSON text frames, replies matched by `ref`, and a
// wait for any frame that matches. The suites hand it a socket of their
// own `ws` package (tests/support has no node_modules).

export class NativeClient {
  /**
   * `keep(frame)`: which frames that answer no request to keep for
   * `waitFor` and `frames` (default all; a load sender keeps no messages).
   */
  constructor(ws, { keep = () => true, deadline }) {
    this.ws = ws;
    this.keep = keep;
    this.deadline = deadline;
    this.nextRef = 1;
    /** ref → resolve of the request waiting for it. */
    this.replies = new Map();
    this.frames = [];
    this.waiters = [];
    ws.on('message', (data) => this.receive(JSON.parse(data.toString())));
  }

  /** Waits for the `welcome`, kept as `welcome`; resolves with the client. */
  async welcomed() {
    this.welcome = await this.waitFor((f) => f.type === 'welcome', 'welcome');
    return this;
  }

  receive(frame) {
    const reply = frame.ref === undefined ? undefined : this.replies.get(frame.ref);
    if (reply) {
      this.replies.delete(frame.ref);
      reply(frame);
      return;
    }
    if (this.keep(frame)) this.frames.push(frame);
    this.waiters = this.waiters.filter(({ predicate, resolve }) => {
      if (!predicate(frame)) return true;
      resolve(frame);
      return false;
    });
  }

  /** The first kept frame matching `predicate`, now or when it comes. */
  waitFor(predicate, what) {
    const found = this.frames.find(predicate);
    if (found) return Promise.resolve(found);
    return this.deadline(new Promise((resolve) => this.waiters.push({ predicate, resolve })), what);
  }

  /** Sends a frame with a fresh `ref`; resolves with the reply carrying it. */
  request(frame) {
    const ref = this.nextRef++;
    const reply = new Promise((resolve) => this.replies.set(ref, resolve));
    this.ws.send(JSON.stringify({ ...frame, ref }));
    return this.deadline(reply, `the reply to ${frame.type}`);
  }

  /** Message frames of `room`, in arrival order. */
  messages(room) {
    return this.frames.filter((f) => f.type === 'message' && f.room === room);
  }

  close() {
    this.ws.close();
  }
}
