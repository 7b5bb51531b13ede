// The pinned bar at the top of a room: the messages a moderator pinned,
// the earliest pinned first, each a button that shows the message in the
// transcript. The page itself offers no pinning (that is a moderator's).

import { h, icon, reconcile, setText, ICONS } from '../dom.js';

export class PinnedBar {
  /** onJump(seq): the user picked a pinned message. */
  constructor(section, onJump) {
    this.section = section;
    this.list = section.querySelector('.pin-list');
    this.count = section.querySelector('.pins-count');
    this.sig = null;
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-seq]');
      if (button) onJump(Number(button.dataset.seq));
    });
  }

  render(room) {
    const pins = room?.pins ?? [];
    const sig = JSON.stringify(pins.map((p) => [p.seq, p.from?.name, p.text, p.deleted === true]));
    if (sig === this.sig) return;
    this.sig = sig;
    this.section.hidden = pins.length === 0;
    setText(this.count, String(pins.length));
    reconcile(this.list, pins.map(pinNode));
  }
}

function pinNode(message) {
  const text = message.deleted ? 'message deleted' : message.text;
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: 'pin',
        dataset: { seq: message.seq },
        'aria-label': `Pinned: ${message.from.name}: ${text}. Show in the conversation`,
        title: text,
      },
      icon(ICONS.pin),
      h('bdi', { class: 'pin-author' }, message.from.name),
      h('span', { class: 'pin-text', dir: 'auto' }, text),
    ),
  );
}
