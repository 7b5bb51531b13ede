// The list of joined rooms, with unread counts.

import { h, reconcile } from '../dom.js';

export class RoomList {
  /** onSelect(name): the user picked a room. */
  constructor(list, onSelect) {
    this.list = list;
    /** room name → {node, sig}. */
    this.cache = new Map();
    list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-room]');
      if (button) onSelect(button.dataset.room);
    });
  }

  render(store) {
    const nodes = [];
    for (const room of store.rooms.values()) {
      const active = room.name === store.active;
      const sig = [active, room.unread, room.joined].join('|');
      let cached = this.cache.get(room.name);
      if (cached?.sig !== sig) {
        cached = { node: roomNode(room, active), sig };
        this.cache.set(room.name, cached);
      }
      nodes.push(cached.node);
    }
    for (const name of this.cache.keys()) if (!store.rooms.has(name)) this.cache.delete(name);
    reconcile(this.list, nodes);
  }
}

function roomNode(room, active) {
  const unread = room.unread > 99 ? '99+' : String(room.unread);
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: `room${active ? ' active' : ''}${room.unread ? ' has-unread' : ''}${room.joined ? '' : ' offline'}`,
        'aria-current': active ? 'true' : null,
        dataset: { room: room.name },
      },
      h('span', { class: 'room-hash', 'aria-hidden': 'true' }, '#'),
      h('span', { class: 'room-name', dir: 'auto' }, room.name),
      room.unread
        ? h('span', { class: 'badge' }, unread, h('span', { class: 'visually-hidden' }, ' unread'))
        : null,
    ),
  );
}
