// What the page remembers. localStorage (shared by the browser's tabs) keeps
// the name, the rooms and the draft typed but not sent in each;
// sessionStorage (this tab only, survives reloads) keeps this tab's user
// ids, and the client library keeps unacknowledged messages and changes
// there too (OUTBOX), so a reload never loses one and another tab never
// resends this one's.
// Storage can be unavailable (private modes, quotas): then nothing is
// remembered and the page still works.

const NAME = 'chat.name';
const ROOMS = 'chat.rooms';
const ACTIVE = 'chat.active';
/** Where the client library keeps this tab's unsent writes (client.js). */
export const OUTBOX = 'chat.outbox';
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

/** This tab's storage, or null where the browser gives none (storage turned off). */
export function tabStorage() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/**
 * An unsent write as pages before the client library saved it: its place
 * (`after`) beside it, and older still, a message without `kind`.
 */
function isPageEntry(entry) {
  return entry !== null && typeof entry === 'object' && ('after' in entry || !('kind' in entry));
}

/** A page's saved write in the library's format: the place goes into `meta`. */
function libraryEntry({ after, ...entry }) {
  return { ...entry, kind: entry.kind ?? 'send', ...(Number.isInteger(after) ? { meta: { after } } : {}) };
}

/**
 * Rewrites the unsent writes an older page saved under OUTBOX in the
 * library's format, so that an upgrade of the page loses none. Before the
 * library reads them.
 */
export function upgradeOutbox() {
  const saved = read(sessionStorage, OUTBOX, []);
  if (Array.isArray(saved) && saved.some(isPageEntry)) {
    write(sessionStorage, OUTBOX, saved.map((entry) => (isPageEntry(entry) ? libraryEntry(entry) : entry)));
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
  /** The rooms of this tab's unsent writes: the page rejoins them, to send those. */
  outboxRooms: () => {
    const entries = read(sessionStorage, OUTBOX, []);
    const rooms = Array.isArray(entries) ? entries.map((entry) => entry?.room) : [];
    return [...new Set(rooms.filter((room) => typeof room === 'string'))];
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
