// The transcript of the active room: day separators, messages grouped by
// sender, own messages with their sending state, and the "older messages"
// control at the top. Elements are cached per message and rebuilt only when
// what they show changes; the list is patched in place, so scrolling, text
// selection and screen readers (role=log) see only real additions.

import { h, reconcile } from '../dom.js';
import { dayKey, formatDay, formatFullTime, formatTime, hueOf, initial } from '../format.js';

// Messages of one sender this close together share one header.
const GROUP_WITHIN_MS = 5 * 60_000;
// "At the bottom" with some slack, so new messages keep the view pinned.
const NEAR_BOTTOM_PX = 48;
// Older history is fetched before the reader actually hits the top.
const LOAD_OLDER_WITHIN_PX = 400;

export class MessageList {
  /** actions: loadOlder(room), retry(room, id), edit(room, id), discard(room, id). */
  constructor(log, jumpButton, actions) {
    this.log = log;
    this.jumpButton = jumpButton;
    this.actions = actions;
    this.room = null;
    /** room name → Map(key → {node, sig}). */
    this.caches = new Map();
    /** room name → scrollTop to come back to, absent when it was at the bottom. */
    this.scrollMemory = new Map();
    this.pinned = true;
    log.addEventListener('scroll', () => this.onScroll());
    log.addEventListener('click', (event) => this.onClick(event));
    jumpButton.addEventListener('click', () => this.scrollToBottom());
  }

  /** Shows `room` (a RoomState or null). `online`: whether waiting sends can go now. */
  render(room, { me, online, isOwn }) {
    const switching = (room?.name ?? null) !== this.room?.name;
    if (switching && this.room) {
      if (this.pinned) this.scrollMemory.delete(this.room.name);
      else this.scrollMemory.set(this.room.name, this.log.scrollTop);
    }
    this.room = room;
    if (!room) {
      reconcile(this.log, []);
      return;
    }
    const anchor = switching || this.pinned ? null : this.anchor();
    reconcile(this.log, this.nodes(room, { me, online, isOwn }));
    if (switching) {
      const saved = this.scrollMemory.get(room.name);
      this.pinned = saved === undefined;
      if (this.pinned) this.log.scrollTop = this.log.scrollHeight;
      else this.log.scrollTop = saved;
    } else if (this.pinned) {
      this.log.scrollTop = this.log.scrollHeight;
    } else if (anchor?.node.isConnected) {
      // Older messages were added above: keep what the reader looks at in place.
      this.log.scrollTop = anchor.node.offsetTop - anchor.offset;
    }
    this.jumpButton.hidden = this.pinned;
    this.maybeLoadOlder();
  }

  /** Drops the cached elements of a room the page left. */
  forget(name) {
    this.caches.delete(name);
    this.scrollMemory.delete(name);
  }

  scrollToBottom() {
    this.pinned = true;
    this.jumpButton.hidden = true;
    this.log.scrollTop = this.log.scrollHeight;
  }

  onScroll() {
    const { scrollTop, scrollHeight, clientHeight } = this.log;
    this.pinned = scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
    this.jumpButton.hidden = this.pinned;
    this.maybeLoadOlder();
  }

  maybeLoadOlder() {
    const room = this.room;
    if (room?.hasOlder && !room.loadingOlder && !room.olderError && this.log.scrollTop < LOAD_OLDER_WITHIN_PX) {
      this.actions.loadOlder(room.name);
    }
  }

  onClick(event) {
    const button = event.target.closest('button[data-action]');
    if (!button || !this.room) return;
    const { action, id } = button.dataset;
    if (action === 'older') {
      this.room.olderError = '';
      this.actions.loadOlder(this.room.name);
    } else {
      this.actions[action](this.room.name, id);
    }
  }

  /**
   * The first message at least partly visible, and its distance from the
   * top: what the reader is looking at. (Not the history edge, rebuilt when
   * a page arrives, nor a day separator, which moves up above older
   * messages of its day.)
   */
  anchor() {
    const top = this.log.scrollTop;
    for (const node of this.log.children) {
      if (node.tagName !== 'ARTICLE') continue;
      if (node.offsetTop + node.offsetHeight > top) return { node, offset: node.offsetTop - top };
    }
    return null;
  }

  nodes(room, context) {
    let cache = this.caches.get(room.name);
    if (!cache) {
      cache = new Map();
      this.caches.set(room.name, cache);
    }
    const used = new Set();
    const node = (key, sig, build) => {
      used.add(key);
      const cached = cache.get(key);
      if (cached?.sig === sig) return cached.node;
      const built = build();
      cache.set(key, { node: built, sig });
      return built;
    };

    const items = [
      ...room.sorted().map((message) => confirmedItem(message, context)),
      ...[...room.pending.values()]
        .sort((a, b) => a.createdAt - b.createdAt)
        .map((entry) => pendingItem(entry, context)),
    ];

    const out = [node('top', topSig(room), () => topNode(room))];
    let previous = null;
    for (const item of items) {
      const day = dayKey(item.ts);
      if (day !== previous?.day) {
        const label = formatDay(item.ts);
        out.push(node(`day:${day}`, label, () => h('div', { class: 'day' }, h('span', {}, label))));
        previous = null;
      }
      const el = node(`msg:${item.id}`, itemSig(item), () => messageNode(item));
      const continues =
        previous !== null && previous.authorKey === item.authorKey && item.ts - previous.ts < GROUP_WITHIN_MS;
      el.classList.toggle('continued', continues);
      out.push(el);
      previous = { ...item, day };
    }
    for (const key of cache.keys()) if (!used.has(key)) cache.delete(key);
    return out;
  }
}

function confirmedItem(message, { isOwn }) {
  const own = isOwn(message);
  return {
    id: message.id,
    seq: message.seq,
    ts: message.ts,
    // A moderator's deletion leaves a tombstone in its place.
    text: message.deleted ? 'message deleted' : message.text,
    deleted: message.deleted === true,
    from: message.from,
    own,
    // Own messages group together whatever user id they were sent under.
    authorKey: own ? 'me' : message.from.id,
    state: own ? 'sent' : '',
    notice: '',
    retryable: false,
  };
}

function pendingItem(entry, { me, online }) {
  let notice = entry.notice;
  if (entry.state === 'queued' && !online) notice = 'Waiting for the connection…';
  return {
    id: entry.id,
    seq: null,
    ts: entry.createdAt,
    text: entry.text,
    from: me ?? { id: '', name: '' },
    own: true,
    authorKey: 'me',
    state: entry.state === 'failed' ? 'failed' : 'pending',
    notice,
    // Sending the same text again cannot get past "too long".
    retryable: entry.code !== 'too_long',
  };
}

function itemSig(item) {
  return [item.seq, item.ts, item.state, item.notice, item.retryable, item.from.name, item.own, item.deleted].join('\u0000');
}

function messageNode(item) {
  const time = h('time', { datetime: new Date(item.ts).toISOString(), title: formatFullTime(item.ts) }, formatTime(item.ts));
  const el = h(
    'article',
    {
      class: `message${item.own ? ' own' : ''}${item.state ? ` ${item.state}` : ''}${item.deleted ? ' deleted' : ''}`,
      dataset: { id: item.id, state: item.state || 'received', ...(item.seq === null ? {} : { seq: item.seq }) },
    },
    item.own ? null : avatar(item.from),
    h(
      'div',
      { class: 'message-body' },
      h(
        'div',
        { class: 'message-meta' },
        h('span', { class: 'author', dir: 'auto' }, item.own ? 'You' : item.from.name),
        item.own ? null : time,
      ),
      h('div', { class: 'bubble', title: formatFullTime(item.ts) }, h('p', { class: 'text', dir: 'auto' }, item.text)),
      item.own ? statusLine(item, time) : null,
      item.state === 'failed' ? problem(item) : null,
    ),
  );
  if (!item.own) el.style.setProperty('--hue', hueOf(item.from.name));
  return el;
}

function avatar(user) {
  return h('div', { class: 'avatar', 'aria-hidden': 'true' }, initial(user.name || '?'));
}

function statusLine(item, time) {
  let state;
  if (item.state === 'sent') state = h('span', { class: 'state sent' }, '✓ Sent');
  else if (item.state === 'pending') state = h('span', { class: 'state pending' }, item.notice || 'Sending…');
  else state = h('span', { class: 'state failed' }, 'Not sent');
  return h('div', { class: 'message-status' }, time, state);
}

function problem(item) {
  return h(
    'div',
    { class: 'problem', role: 'alert' },
    h('span', {}, item.notice),
    h(
      'span',
      { class: 'problem-actions' },
      item.retryable
        ? h('button', { type: 'button', class: 'link', dataset: { action: 'retry', id: item.id } }, 'Retry')
        : null,
      h('button', { type: 'button', class: 'link', dataset: { action: 'edit', id: item.id } }, 'Edit'),
      h('button', { type: 'button', class: 'link', dataset: { action: 'discard', id: item.id } }, 'Discard'),
    ),
  );
}

function topSig(room) {
  return [room.name, room.loadingOlder, room.olderError, room.hasOlder].join('\u0000');
}

function topNode(room) {
  if (room.loadingOlder) return h('div', { class: 'history-edge' }, h('span', { class: 'spinner' }), 'Loading older messages…');
  if (room.olderError) {
    return h(
      'div',
      { class: 'history-edge error' },
      room.olderError,
      ' ',
      h('button', { type: 'button', class: 'link', dataset: { action: 'older' } }, 'Try again'),
    );
  }
  if (room.hasOlder) {
    return h(
      'div',
      { class: 'history-edge' },
      h('button', { type: 'button', class: 'link', dataset: { action: 'older' } }, 'Load older messages'),
    );
  }
  return h(
    'div',
    { class: 'history-edge start' },
    h('strong', {}, '#', h('bdi', {}, room.name)),
    h('span', {}, 'This is the very beginning of the room.'),
  );
}
