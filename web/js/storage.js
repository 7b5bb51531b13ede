// What the page remembers. localStorage (shared by the browser's tabs) keeps
// the name, the rooms and the draft typed but not sent in each;
// sessionStorage (this tab only, survives reloads) keeps unacknowledged
// messages and changes and this tab's user ids, so a reload never loses one
// and another tab never resends this one's.
// Storage can be unavailable (private modes, quotas): then nothing is
// remembered and the page still works.

const NAME = 'chat.name';
const ROOMS = 'chat.rooms';
const ACTIVE = 'chat.active';
const OUTBOX = 'chat.outbox';
const USER_IDS = 'chat.userIds';
const DRAFTS = 'chat.drafts';

function read(storage, key, fallback) {
  try {
    const raw = storage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    // Not remembered; the page goes on with what it holds in memory.
  }
}

/** room name → draft, as `remember.draft` wrote them ([room, text] pairs). */
function drafts() {
  const pairs = read(localStorage, DRAFTS, []);
  const valid = (pair) => Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string' && pair[1] !== '';
  return new Map(Array.isArray(pairs) ? pairs.filter(valid) : []);
}

/** An unsent message or change as `remember.outbox` wrote it (older pages wrote messages without `kind`). */
function isOutboxEntry(entry) {
  if (!entry || typeof entry.room !== 'string' || typeof entry.id !== 'string') return false;
  const kind = entry.kind ?? 'send';
  switch (kind) {
    case 'send':
      return (
        typeof entry.text === 'string' &&
        (entry.replyTo == null || Number.isInteger(entry.replyTo)) &&
        (entry.after == null || Number.isInteger(entry.after))
      );
    case 'edit':
      return typeof entry.text === 'string' && Number.isInteger(entry.target);
    case 'delete':
      return Number.isInteger(entry.target);
    case 'react':
      return typeof entry.emoji === 'string' && Number.isInteger(entry.target);
    default:
      return false;
  }
}

export const remembered = {
  name: () => {
    const name = read(localStorage, NAME, '');
    return typeof name === 'string' ? name : '';
  },
  rooms: () => {
    const rooms = read(localStorage, ROOMS, []);
    return Array.isArray(rooms) ? rooms.filter((r) => typeof r === 'string') : [];
  },
  activeRoom: () => read(localStorage, ACTIVE, null),
  outbox: () => {
    const entries = read(sessionStorage, OUTBOX, []);
    return Array.isArray(entries) ? entries.filter(isOutboxEntry) : [];
  },
  userIds: () => {
    const ids = read(sessionStorage, USER_IDS, []);
    return Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : [];
  },
  drafts,
};

export const remember = {
  name: (name) => write(localStorage, NAME, name),
  rooms: (rooms) => write(localStorage, ROOMS, rooms),
  activeRoom: (room) => write(localStorage, ACTIVE, room),
  outbox: (sends) => write(sessionStorage, OUTBOX, sends),
  // The last few are enough to recognise this tab's own recent messages.
  userIds: (ids) => write(sessionStorage, USER_IDS, ids.slice(-50)),
  // One room's draft ('' forgets it), over what is stored now: another tab
  // may have saved the drafts of other rooms meanwhile.
  draft: (room, text) => {
    const all = drafts();
    if (text) all.set(room, text);
    else all.delete(room);
    write(localStorage, DRAFTS, [...all]);
  },
};
