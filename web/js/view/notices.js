// Things the page tells or asks the user outside the transcript: short
// notices (a reaction or deletion the server refused), which go away by
// themselves, and the question before deleting a message.

import { h, icon, ICONS } from '../dom.js';

const NOTICE_MS = 8000;
const MOST_NOTICES = 3;

export class Notices {
  constructor(el) {
    this.el = el;
  }

  /** Shows `text` for a while (screen readers say it at once). */
  show(text) {
    const notice = h(
      'div',
      { class: 'notice', role: 'alert' },
      h('span', { class: 'notice-text' }, text),
      h(
        'button',
        { type: 'button', class: 'icon-button notice-close', 'aria-label': 'Dismiss', onclick: () => notice.remove() },
        icon(ICONS.close),
      ),
    );
    this.el.append(notice);
    while (this.el.children.length > MOST_NOTICES) this.el.firstElementChild.remove();
    setTimeout(() => notice.remove(), NOTICE_MS);
  }
}

/** The "Delete this message?" dialog of index.html. */
export class DeleteDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.quote = dialog.querySelector('.dialog-quote');
    dialog.querySelector('[data-answer=cancel]').addEventListener('click', () => dialog.close('cancel'));
    dialog.querySelector('[data-answer=delete]').addEventListener('click', () => dialog.close('delete'));
  }

  /** Asks; resolves true when the user chose Delete (Cancel, Escape: false). */
  ask(text) {
    const { dialog } = this;
    if (dialog.open) dialog.close('cancel');
    this.quote.textContent = text;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'delete'), { once: true });
      dialog.showModal();
      // The safe answer first: Enter right away keeps the message.
      dialog.querySelector('[data-answer=cancel]').focus();
    });
  }
}
