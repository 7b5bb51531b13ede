// Browser notifications: while the tab is hidden, a message that mentions
// the user or comes in a direct message raises one. The browser's
// permission is asked only when the user presses "Enable notifications"
// (browsers ignore, and users resent, a prompt nobody asked for). Every
// tab of the user sees the message; the notification's tag is the
// message's, so the system shows it once.

import { isDm } from '../../chat-client/index.js';
import { setText } from '../dom.js';
import { labelText } from '../people.js';
import { mentionsOneOf } from '../store.js';

const BODY_CHARS = 160;

function supported() {
  return typeof window.Notification === 'function';
}

export class Notifier {
  /** `button`, `hint`: the sidebar's control and its line of text; onOpen(room): show a room. */
  constructor(store, { button, hint, onOpen }) {
    this.store = store;
    this.button = button;
    this.hint = hint;
    this.onOpen = onOpen;
    store.addEventListener('message', (event) => this.incoming(event.detail.room, event.detail.message));
    button.addEventListener('click', () => this.ask());
    this.render();
  }

  async ask() {
    if (!supported()) return;
    try {
      await Notification.requestPermission();
    } finally {
      this.render();
    }
  }

  /** The button while the choice is the user's to make; a word once it is made. */
  render() {
    const permission = supported() ? Notification.permission : 'unsupported';
    this.button.hidden = permission !== 'default';
    const words = {
      granted: 'Notifications are on for mentions and direct messages while this tab is in the background.',
      denied: 'Notifications are blocked for this site in the browser’s settings.',
    }[permission];
    setText(this.hint, words ?? '');
    this.hint.hidden = !words;
  }

  incoming(room, message) {
    if (document.visibilityState !== 'hidden' || !supported() || Notification.permission !== 'granted') return;
    const dm = isDm(room.name);
    if (!dm && !mentionsOneOf(message, this.store.myIds)) return;
    const where = labelText(room, this.store.myIds);
    const title = dm ? message.from.name : `${message.from.name} in ${where}`;
    const text = Array.from(message.text ?? '');
    const body = text.length > BODY_CHARS ? `${text.slice(0, BODY_CHARS).join('')}…` : text.join('');
    try {
      const notification = new Notification(title, { body, tag: `${room.name}\u0000${message.seq}` });
      notification.addEventListener('click', () => {
        window.focus();
        this.onOpen(room.name);
        notification.close();
      });
    } catch {
      // Some browsers (Android Chrome) allow notifications only from a
      // service worker: the tab's title and badges still tell.
    }
  }
}
