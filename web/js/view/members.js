// Who is in the active room (presence), and who is typing there. Names are
// each in an element with `dir="auto"` or a <bdi>, so a right-to-left name
// cannot reorder the words around it.

import { h, reconcile } from '../dom.js';
import { hueOf, initial, typingLine } from '../format.js';

export class MemberList {
  constructor(list, typingLineEl) {
    this.list = list;
    this.typingLine = typingLineEl;
    this.sig = null;
    this.typingSig = '';
  }

  render(room, store) {
    const members = room ? [...room.members.values()] : [];
    const mine = (user) => store.myIds.has(user.id);
    // You first, then everyone by name in the reader's language.
    members.sort((a, b) => mine(b) - mine(a) || a.name.localeCompare(b.name));
    const sig = members.map((m) => `${m.id}\u0000${m.name}\u0000${mine(m)}`).join('\u0001');
    if (sig !== this.sig) {
      this.sig = sig;
      reconcile(this.list, members.map((member) => memberNode(member, mine(member))));
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

function memberNode(user, isMe) {
  const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initial(user.name));
  avatar.style.setProperty('--hue', hueOf(user.name));
  return h(
    'li',
    { class: `member${isMe ? ' me' : ''}` },
    avatar,
    h('span', { class: 'member-name', dir: 'auto' }, user.name),
    isMe ? h('span', { class: 'tag' }, 'you') : null,
  );
}
