// Who is in the active room (presence), and who is typing there. Names are
// each in an element with `dir="auto"` or a <bdi>, so a right-to-left name
// cannot reorder the words around it. Two members of the same name are
// told apart by the end of their user ids ("alice · 3f2a").

import { h, reconcile } from '../dom.js';
import { initial, paintPerson, typingLine } from '../format.js';

// Characters of a user id shown after a name that two members share.
const ID_SUFFIX_CHARS = 4;

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
    const shared = sharedNames(members);
    const sig = members.map((m) => `${m.id}\u0000${m.name}\u0000${mine(m)}\u0000${shared.has(m.name)}`).join('\u0001');
    if (sig !== this.sig) {
      this.sig = sig;
      reconcile(this.list, members.map((member) => memberNode(member, mine(member), shared.has(member.name))));
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

/** The names more than one of `members` has. */
function sharedNames(members) {
  const seen = new Set();
  const shared = new Set();
  for (const { name } of members) (seen.has(name) ? shared : seen).add(name);
  return shared;
}

/** `shared`: another member has the same name, so the end of the id is shown too. */
function memberNode(user, isMe, shared) {
  const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initial(user.name));
  paintPerson(avatar, user.id);
  return h(
    'li',
    { class: `member${isMe ? ' me' : ''}` },
    avatar,
    h(
      'span',
      { class: 'member-label' },
      h('span', { class: 'member-name', dir: 'auto' }, user.name),
      shared ? h('span', { class: 'member-id', title: user.id }, ` · ${user.id.slice(-ID_SUFFIX_CHARS)}`) : null,
    ),
    isMe ? h('span', { class: 'tag' }, 'you') : null,
  );
}
