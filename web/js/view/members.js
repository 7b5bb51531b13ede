// Who is in the active room (presence), and who is typing there. Names are
// each in an element with `dir="auto"` or a <bdi>, so a right-to-left name
// cannot reorder the words around it. A click on someone else offers
// "Message": a direct-message room with them.

import { h, reconcile } from '../dom.js';
import { hueOf, initial, typingLine } from '../format.js';

export class MemberList {
  /** onMessage(user): the user asked to write to `user` directly. */
  constructor(list, typingLineEl, onMessage = () => {}) {
    this.list = list;
    this.typingLine = typingLineEl;
    this.sig = null;
    this.typingSig = '';
    /** The id of the member whose actions are open. */
    this.open = null;
    this.members = new Map();
    list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-user]');
      if (!button) return;
      const user = this.members.get(button.dataset.user);
      if (button.dataset.action === 'message' && user) {
        this.open = null;
        this.sig = null;
        onMessage(user);
      } else {
        this.toggle(button.dataset.user);
      }
    });
  }

  /** Opens or closes a member's actions, keeping focus on their button. */
  toggle(id) {
    this.open = this.open === id ? null : id;
    this.sig = null;
    this.render(this.room, this.store);
    this.list.querySelector(`button.member-button[data-user="${CSS.escape(id)}"]`)?.focus();
  }

  render(room, store) {
    this.room = room;
    this.store = store;
    const members = room ? [...room.members.values()] : [];
    const mine = (user) => store.myIds.has(user.id);
    // You first, then everyone by name in the reader's language.
    members.sort((a, b) => mine(b) - mine(a) || a.name.localeCompare(b.name));
    this.members = new Map(members.map((m) => [m.id, m]));
    if (this.open !== null && !this.members.has(this.open)) this.open = null;
    const sig = [this.open, ...members.map((m) => `${m.id}\u0000${m.name}\u0000${mine(m)}`)].join('\u0001');
    if (sig !== this.sig) {
      this.sig = sig;
      reconcile(this.list, members.map((member) => memberNode(member, mine(member), this.open === member.id)));
    }
    // While reconnecting the list is what it was, shown as such.
    this.list.classList.toggle('stale', Boolean(room) && !room.joined);
    const typing = room ? [...room.typing.values()].map((t) => t.user.name) : [];
    const typingSig = typing.join('\u0000');
    if (typingSig !== this.typingSig) {
      this.typingSig = typingSig;
      this.typingLine.replaceChildren(
        ...typingLine(typing).map((part) => (typeof part === 'string' ? part : h('bdi', {}, part.name))),
      );
    }
  }
}

function memberNode(user, isMe, open) {
  const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initial(user.name));
  avatar.style.setProperty('--hue', hueOf(user.name));
  const name = h('span', { class: 'member-name', dir: 'auto' }, user.name);
  if (isMe) return h('li', { class: 'member me' }, avatar, name, h('span', { class: 'tag' }, 'you'));
  return h(
    'li',
    { class: `member${open ? ' open' : ''}` },
    h(
      'button',
      { type: 'button', class: 'member-button', 'aria-expanded': String(open), dataset: { user: user.id } },
      avatar,
      name,
    ),
    open
      ? h(
        'div',
        { class: 'member-actions' },
        h(
          'button',
          { type: 'button', class: 'button small primary', dataset: { user: user.id, action: 'message' } },
          'Message',
        ),
      )
      : null,
  );
}
