// Per-room order: turns what a connection sees of a room (live broadcasts,
// `joined` backlogs, history pages, overlapping and perhaps with a hole)
// into one sequence with no gaps and no repeats. Messages and changes
// share the room's `seq`, so both are entries here.
//
// This is docs/protocol.md §5 kept free of I/O, as the Rust client's
// `feed.rs` is: the client feeds it entries and asks it whether a history
// page is needed.

/** @typedef {import('./protocol.js').Message} Message */
/** @typedef {import('./protocol.js').Change} Change */
/** @typedef {Message | Change} Entry */

/**
 * The entries of a `joined` or `history` reply, in any order (the feed sorts them).
 * @param {Message[] | undefined} messages
 * @param {Change[] | undefined} events
 * @returns {Entry[]}
 */
export function entriesOf(messages, events) {
  return [...(messages ?? []), ...(events ?? [])];
}

/** Whether an entry is a change (a frame with a `type`) rather than a message object. */
export function isChange(/** @type {Entry} */ entry) {
  return 'target' in entry && 'type' in entry;
}

export class Feed {
  /** @param {number} last the seq delivered last: the next delivered is `last + 1` */
  constructor(last) {
    /** Everything up to this seq has been delivered. */
    this.last = last;
    /** @type {Map<number, Entry>} entries above a hole, waiting for it to fill */
    this.waiting = new Map();
    /** The highest seq known to exist in the room. */
    this.known = last;
    /** A catch-up page was asked for and not answered. */
    this.fetching = false;
  }

  /** Records the room's latest seq as the server reported it (`joined`). */
  learnLatest(/** @type {number} */ seq) {
    this.known = Math.max(this.known, seq);
  }

  /**
   * Takes one entry; returns, in order, every entry that can now be
   * delivered. Entries delivered before are dropped.
   * @param {Entry} entry
   * @returns {Entry[]}
   */
  offer(entry) {
    const out = /** @type {Entry[]} */ ([]);
    this.#take(entry);
    this.#drain(out);
    return out;
  }

  /** @param {Entry} entry */
  #take(entry) {
    if (!Number.isSafeInteger(entry.seq) || entry.seq <= this.last) return;
    this.known = Math.max(this.known, entry.seq);
    if (!this.waiting.has(entry.seq)) this.waiting.set(entry.seq, entry);
  }

  /** @param {Entry[]} out */
  #drain(out) {
    for (;;) {
      const next = this.waiting.get(this.last + 1);
      if (next === undefined) return;
      this.waiting.delete(this.last + 1);
      this.last += 1;
      out.push(next);
    }
  }

  /**
   * When entries are known to be missing and no page is being fetched: the
   * `after` of the history page to ask for next (the fetch counts as started).
   * @returns {number | null}
   */
  nextFetch() {
    if (this.fetching || this.last >= this.known) return null;
    this.fetching = true;
    return this.last;
  }

  /**
   * A catch-up page (`history` with `after`) arrived; returns what can now
   * be delivered, in order.
   * @param {number} after the page's `after`
   * @param {Entry[]} entries its messages and changes
   * @param {boolean} more newer entries exist beyond it
   * @returns {Entry[]}
   */
  page(after, entries, more) {
    this.fetching = false;
    const out = /** @type {Entry[]} */ ([]);
    const seqs = entries.map((entry) => entry.seq).filter(Number.isSafeInteger);
    if (seqs.length > 0) this.#skipPurged(after, Math.min(...seqs));
    for (const entry of entries) this.#take(entry);
    this.#drain(out);
    if (more) {
      this.known = Math.max(this.known, this.last + 1);
    } else if (this.last < this.known) {
      // The server has nothing after `last`, yet later entries were seen or
      // announced: it cannot fill the hole (a conforming server never
      // does this). Skip it rather than stall the room.
      const first = Math.min(...this.waiting.keys());
      if (Number.isFinite(first)) {
        this.last = first - 1;
        this.#drain(out);
      } else {
        this.known = this.last;
      }
    }
    return out;
  }

  /**
   * A page after `after` starts with the oldest entries there are: those
   * between `after` and its first were purged by retention, so they are no
   * hole to wait for (else a resume from before a purge would ask for the
   * same page forever).
   * @param {number} after
   * @param {number} first
   */
  #skipPurged(after, first) {
    if (this.last >= after && first > this.last + 1) {
      this.last = first - 1;
      for (const seq of this.waiting.keys()) if (seq < first) this.waiting.delete(seq);
    }
  }

  /** The connection was lost: an unanswered page request went with it. */
  connectionLost() {
    this.fetching = false;
  }
}
