// Read markers: telling the server how far the user has read each room,
// so unread counts are the same in every tab and on every device. The view
// says when the user has seen a room's latest messages; the marker moves
// on the page at once (badges fall without waiting) and goes to the server
// at most once per THROTTLE_MS per room, with the furthest seq by then. A
// marker that could not be sent (offline) goes after the room's next sync.

import { Disconnected } from './connection.js';

const THROTTLE_MS = 500;

export class ReadMarkers {
  constructor(store, connection) {
    this.store = store;
    this.connection = connection;
    /** room name → {sentAt, timer, inFlight, dirty}. */
    this.rooms = new Map();
  }

  /** The user has seen everything the page holds of `room` (it is on screen, scrolled to the end). */
  seen(room) {
    // Every entry up to lastSeq is held and shown; entries above it wait for a gap to fill.
    if (!room.markRead(room.lastSeq)) return;
    this.store.changed();
    this.state(room.name).dirty = true;
    this.schedule(room.name);
  }

  /** After a (re)join: sends a marker that could not go while offline. */
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
    if (!room.joined || !this.connection.online) return; // flush() after the next sync
    state.dirty = false;
    state.inFlight = true;
    state.sentAt = performance.now();
    try {
      const reply = await this.connection.request({ type: 'read', room: name, seq: room.lastRead });
      this.store.applyRead(reply);
    } catch (error) {
      // Lost with the connection: again after the rejoin. The server busy:
      // again a moment later. Anything else would be refused again.
      if (error instanceof Disconnected || error.code === 'overloaded') state.dirty = true;
    } finally {
      state.inFlight = false;
    }
    if (state.dirty && this.rooms.get(name) === state) this.schedule(name);
  }
}
