// The guest credential: what makes this browser one person to the server.
// `welcome` hands a guest a signed credential (a fresh one each time);
// connecting with `?guest=` makes the connection that same user, so every
// tab and every reload of the page is one person with one user id. It is
// kept in localStorage, which the browser's tabs share; unavailable
// storage just means a new guest per connection, as before.

const KEY = 'chat.guest';

export const guestCredential = {
  /** The credential to connect with, or null. */
  get() {
    try {
      const value = localStorage.getItem(KEY);
      return value === null || value === '' ? null : value;
    } catch {
      return null;
    }
  },
  /** Keeps the newest credential a `welcome` gave (each is valid for long; newer lasts longer). */
  set(value) {
    try {
      if (typeof value === 'string' && value !== '') localStorage.setItem(KEY, value);
    } catch {
      // Not kept: the next connection is a new guest.
    }
  },
  /** The server refused it (its secret changed, it expired): the next connection is a new guest. */
  drop() {
    try {
      localStorage.removeItem(KEY);
    } catch {
      // Nothing kept, nothing to drop.
    }
  },
};
