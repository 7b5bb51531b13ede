// What the page shows of unread messages and mentions in the transcript:
// the "New messages" divider and where it goes, the `@name`s in a
// message's text, and when the user counts as reading the room.

import { h } from '../dom.js';
import { mentionParts } from '../people.js';

/** The "New messages" line above the first unread message. */
export function dividerNode() {
  return h('div', { class: 'unread-divider', role: 'separator' }, h('span', {}, 'New messages'));
}

/**
 * A message's text as data for `partNodes` (it goes into the signature
 * that decides whether a message is rebuilt): strings, and `{mention,
 * me}` for each `@name` of `names`, `me` when it names `myName` (null:
 * the message mentions someone else of that name).
 */
export function textParts(text, names, myName) {
  const parts = mentionParts(text, names);
  if (parts.length === 1 && typeof parts[0] === 'string') return null;
  const mine = myName ? myName.toLowerCase() : null;
  return parts.map((part) =>
    typeof part === 'string' ? part : { mention: part.mention, me: part.name.toLowerCase() === mine },
  );
}

/** The nodes of `textParts`: text, and each mention in a <span> of its own (text nodes only). */
export function partNodes(parts) {
  return parts.map((part) =>
    typeof part === 'string' ? part : h('span', { class: `mention${part.me ? ' me' : ''}`, dir: 'auto' }, part.mention),
  );
}

/**
 * The names an `@` in `room` can mention: its members now, the authors of
 * the messages held, and the user.
 */
export function mentionableNames(room, me) {
  const names = new Set();
  for (const member of room.members.values()) names.add(member.name);
  for (const message of room.sorted()) if (message.from?.name) names.add(message.from.name);
  if (me?.name) names.add(me.name);
  return [...names];
}

/**
 * Where "New messages" goes in the room on screen: after the read marker
 * as it was when the room was opened (its `joined` came, or the user
 * switched to it), so it stays put while they read. It also appears when
 * messages arrive while the user is not reading (scrolled up, another
 * tab, another window), and goes when they open another room.
 */
export class UnreadDivider {
  constructor() {
    this.room = null;
    this.seq = null;
    this.opened = false;
  }

  /**
   * Updates for `room` (the room shown, or null) before the page marks
   * anything read. `unread`: its unread count now; `reading`: whether the
   * user is reading it right now (what arrives is read at once). Returns
   * the seq "New messages" follows, or null.
   */
  update(room, unread, reading) {
    const name = room?.name ?? null;
    if (name !== this.room) {
      this.room = name;
      this.seq = null;
      this.opened = false;
    }
    // Not before the room's read marker is known (its `joined` came).
    if (!room?.everJoined) return this.seq;
    if (!this.opened) {
      this.opened = true;
      if (unread > 0) this.seq = room.lastRead;
    } else if (this.seq === null && unread > 0 && !reading) {
      this.seq = room.lastRead;
    }
    return this.seq;
  }
}
