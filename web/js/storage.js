// What the page remembers. localStorage (shared by the browser's tabs) keeps
// the name and the rooms; sessionStorage (this tab only, survives reloads)
// keeps unacknowledged sends and this tab's user ids, so a reload never
// loses a message and another tab never resends this one's.
// Storage can be unavailable (private modes, quotas): then nothing is
// remembered and the page still works.

const NAME = 'chat.name';
const ROOMS = 'chat.rooms';
const ACTIVE = 'chat.active';
const OUTBOX = 'chat.outbox';
const USER_IDS = 'chat.userIds';

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
    const sends = read(sessionStorage, OUTBOX, []);
    return Array.isArray(sends)
      ? sends.filter((s) => s && typeof s.room === 'string' && typeof s.id === 'string' && typeof s.text === 'string')
      : [];
  },
  userIds: () => {
    const ids = read(sessionStorage, USER_IDS, []);
    return Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : [];
  },
};

export const remember = {
  name: (name) => write(localStorage, NAME, name),
  rooms: (rooms) => write(localStorage, ROOMS, rooms),
  activeRoom: (room) => write(localStorage, ACTIVE, room),
  outbox: (sends) => write(sessionStorage, OUTBOX, sends),
  // The last few are enough to recognise this tab's own recent messages.
  userIds: (ids) => write(sessionStorage, USER_IDS, ids.slice(-50)),
};
