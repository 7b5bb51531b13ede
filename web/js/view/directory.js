// "Browse rooms": the server's directory of public rooms, the most recently
// active first, each with its member count, when it was last active, and a
// Join button (Open for one the user is in). A dialog, so it works the same
// on a phone and keeps focus inside until closed.

import { describeJoinError } from '../client.js';
import { h, reconcile, setText } from '../dom.js';
import { formatFullTime } from '../format.js';

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['week', 7 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
];

/** "5 minutes ago", "yesterday", "just now". */
export function formatAgo(ts, now = Date.now()) {
  const elapsed = now - ts;
  for (const [unit, ms] of UNITS) {
    if (elapsed >= ms) return relative.format(-Math.floor(elapsed / ms), unit);
  }
  return 'just now';
}

export class DirectoryDialog {
  /** onJoin(room): join (or open) a room; resolves once joined, rejects with the server's error. */
  constructor(dialog, store, client, { onJoin }) {
    this.dialog = dialog;
    this.store = store;
    this.client = client;
    this.onJoin = onJoin;
    this.list = dialog.querySelector('.directory-list');
    this.status = dialog.querySelector('.directory-status');
    dialog.querySelector('[data-action=close]').addEventListener('click', () => dialog.close());
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-room]');
      if (button) this.join(button.dataset.room, button);
    });
    // A click on the backdrop (outside the dialog's box) closes it.
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog) dialog.close();
    });
  }

  async show() {
    if (!this.dialog.open) this.dialog.showModal();
    this.say('Loading rooms…');
    reconcile(this.list, []);
    let rooms;
    try {
      rooms = await this.client.directory();
    } catch (error) {
      this.say(
        this.client.online
          ? `Could not load the rooms: ${error.message}.`
          : 'Not connected: the list of rooms shows once the page is back online.',
      );
      return;
    }
    this.rooms = rooms;
    this.render();
    this.say(rooms.length === 0 ? 'No rooms yet: join one by its name to start it.' : '');
  }

  render() {
    reconcile(
      this.list,
      (this.rooms ?? []).map((entry) => entryNode(entry, this.store.room(entry.room)?.everJoined === true)),
    );
  }

  async join(name, button) {
    button.disabled = true;
    try {
      await this.onJoin(name);
      this.dialog.close();
    } catch (error) {
      button.disabled = false;
      this.say(describeJoinError(error));
    }
  }

  say(text) {
    setText(this.status, text);
    this.status.hidden = !text;
  }
}

function entryNode({ room, members, last_ts: lastTs }, joined) {
  const people = members === 1 ? '1 member' : `${members} members`;
  const active = Number.isFinite(lastTs)
    ? h('time', { datetime: new Date(lastTs).toISOString(), title: formatFullTime(lastTs) }, `active ${formatAgo(lastTs)}`)
    : 'no messages yet';
  return h(
    'li',
    { class: 'directory-entry' },
    h(
      'div',
      { class: 'directory-room' },
      h('span', { class: 'directory-name' }, '#', h('bdi', {}, room)),
      h('span', { class: 'directory-meta' }, `${people} · `, active),
    ),
    h(
      'button',
      {
        type: 'button',
        class: `button small${joined ? '' : ' primary'}`,
        dataset: { room },
        'aria-label': `${joined ? 'Open' : 'Join'} ${room}`,
      },
      joined ? 'Open' : 'Join',
    ),
  );
}
