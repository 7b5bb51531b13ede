// Read markers: telling the server how far the user has read each room,
// so unread counts are the same in every tab and on every device. The view
// says when the user has seen a room's latest messages; the marker moves
// on the page at once (badges fall without waiting) and goes to the server
// at most once per THROTTLE_MS per room, with the furthest seq by then. A
// marker that could not be sent (offline) goes after the room's next join.

import { ServerError } from '../chat-client/index.js';

const THROTTLE_MS = 500;

export class ReadMarkers {
  /** `read(room, seq)`: the client library's `read`, resolving with the server's `read` reply. */
  constructor(store, read) {
    this.store = store;
    this.read = read;
    /** room name → {sentAt, timer, inFlight, dirty}. */
    this.rooms = new Map();
  }

  /** The user has seen everything the page holds of `room` (it is on screen, scrolled to the end). */
  seen(room) {
    // Every entry up to lastSeq is held and shown.
    if (!room.markRead(room.lastSeq)) return;
    this.store.changed();
    this.state(room.name).dirty = true;
    this.schedule(room.name);
  }

  /** After a join: sends a marker that could not go while offline. */
  flush(name) {
    if (this.rooms.get(name)?.dirty) this.schedule(name);
  }

  /** The room was left: nothing more to send for it. */
  forget(name) {
    clearTimeout(this.rooms.get(name)?.timer);
    this.rooms.delete(name);
  }

  state(name) {
    let state = this.rooms.get(name);
    if (!state) {
      state = { sentAt: -Infinity, timer: 0, inFlight: false, dirty: false };
      this.rooms.set(name, state);
    }
    return state;
  }

  schedule(name) {
    const state = this.state(name);
    if (state.timer || state.inFlight) return;
    const wait = state.sentAt + THROTTLE_MS - performance.now();
    if (wait <= 0) {
      this.send(name);
      return;
    }
    state.timer = setTimeout(() => {
      state.timer = 0;
      this.send(name);
    }, wait);
  }

  async send(name) {
    const state = this.rooms.get(name);
    const room = this.store.room(name);
    if (!state || !room || !state.dirty) return;
    if (!room.joined) return; // flush() after the next join
    state.dirty = false;
    state.inFlight = true;
    state.sentAt = performance.now();
    try {
      this.store.applyRead(await this.read(name, room.lastRead));
    } catch (error) {
      // Lost with the connection: again after the rejoin. The server busy:
      // again a moment later. Anything else would be refused again.
      if (!(error instanceof ServerError) || error.retryable) state.dirty = true;
    } finally {
      state.inFlight = false;
    }
    if (state.dirty && this.rooms.get(name) === state) this.schedule(name);
  }
}
