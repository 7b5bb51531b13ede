// Who is in the active room (presence), and who is typing there. Names are
// each in an element with `dir="auto"` or a <bdi>, so a right-to-left name
// cannot reorder the words around it. Two members of the same name are
// told apart by the end of their user ids ("alice · 3f2a"). A click on
// someone else offers "Message": a direct-message room with them.

import { h, reconcile } from '../dom.js';
import { initial, paintPerson, typingLine } from '../format.js';

// Characters of a user id shown after a name that two members share.
const ID_SUFFIX_CHARS = 4;

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
    const shared = sharedNames(members);
    const sig = [
      this.open,
      ...members.map((m) => `${m.id}\u0000${m.name}\u0000${mine(m)}\u0000${shared.has(m.name)}`),
    ].join('\u0001');
    if (sig !== this.sig) {
      this.sig = sig;
      reconcile(
        this.list,
        members.map((member) => memberNode(member, mine(member), shared.has(member.name), this.open === member.id)),
      );
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

/**
 * `shared`: another member has the same name, so the end of the id is
 * shown too; `open`: the member's actions ("Message") are shown.
 */
function memberNode(user, isMe, shared, open) {
  const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initial(user.name));
  paintPerson(avatar, user.id);
  const label = h(
    'span',
    { class: 'member-label' },
    h('span', { class: 'member-name', dir: 'auto' }, user.name),
    shared ? h('span', { class: 'member-id', title: user.id }, ` · ${user.id.slice(-ID_SUFFIX_CHARS)}`) : null,
  );
  if (isMe) return h('li', { class: 'member me' }, avatar, label, h('span', { class: 'tag' }, 'you'));
  return h(
    'li',
    { class: `member${open ? ' open' : ''}` },
    h(
      'button',
      { type: 'button', class: 'member-button', 'aria-expanded': String(open), dataset: { user: user.id } },
      avatar,
      label,
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
