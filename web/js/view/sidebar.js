// The lists of the user's rooms: one of rooms ("#general"), one of direct
// messages ("@bob"), each with its unread count and, apart from it, the
// count of unread messages that mention the user.

import { isDm } from '../../chat-client/index.js';
import { h, reconcile } from '../dom.js';
import { roomLabel } from '../people.js';

export class RoomList {
  /**
   * onSelect(name): the user picked a room. `dms`: whether this list shows
   * the direct-message rooms (else the others).
   */
  constructor(list, onSelect, { dms = false } = {}) {
    this.list = list;
    this.dms = dms;
    /** room name → {node, sig}. */
    this.cache = new Map();
    list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-room]');
      if (button) onSelect(button.dataset.room);
    });
  }

  /**
   * Renders the rooms this list shows; returns how many. `reading`: the
   * room being read right now, whose counts are not shown (they are
   * about to be cleared).
   */
  render(store, reading = null) {
    const nodes = [];
    for (const room of store.rooms.values()) {
      if (isDm(room.name) !== this.dms) continue;
      const active = room.name === store.active;
      const counts = room.name === reading ? { unread: 0, mentions: 0 } : store.unreadOf(room);
      const label = roomLabel(room, store.myIds);
      const sig = [active, counts.unread, counts.mentions, room.joined, label.sigil, label.name].join('\u0000');
      let cached = this.cache.get(room.name);
      if (cached?.sig !== sig) {
        cached = { node: roomNode(room, label, counts, active), sig };
        this.cache.set(room.name, cached);
      }
      nodes.push(cached.node);
    }
    for (const name of this.cache.keys()) if (!store.rooms.has(name)) this.cache.delete(name);
    reconcile(this.list, nodes);
    return nodes.length;
  }
}

/** "99+" past two digits: the badge keeps its size. */
function shortCount(n) {
  return n > 99 ? '99+' : String(n);
}

function roomNode(room, label, { unread, mentions }, active) {
  const classes = [
    'room',
    active ? 'active' : '',
    unread ? 'has-unread' : '',
    isDm(room.name) ? 'dm' : '',
    room.joined ? '' : 'offline',
  ];
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: classes.filter(Boolean).join(' '),
        'aria-current': active ? 'true' : null,
        dataset: { room: room.name },
      },
      h('span', { class: 'room-hash', 'aria-hidden': 'true' }, label.sigil),
      h('span', { class: 'room-name', dir: 'auto' }, label.name),
      // The unread count first: its words ("3 unread") are what a screen
      // reader says after the room's name.
      unread ? h('span', { class: 'badge' }, shortCount(unread), h('span', { class: 'visually-hidden' }, ' unread')) : null,
      mentions
        ? h(
          'span',
          { class: 'badge mention-badge', title: mentions === 1 ? '1 mention of you' : `${mentions} mentions of you` },
          `@${shortCount(mentions)}`,
          h('span', { class: 'visually-hidden' }, mentions === 1 ? ' mention' : ' mentions'),
        )
        : null,
    ),
  );
}
