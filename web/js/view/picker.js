// The emoji picker of a message's "Add reaction" action: a handful of
// common emoji in a small menu next to the button. Arrow keys move between
// them, Enter or a click picks one (or takes back one already given),
// Escape or Tab closes it and focus goes back to the button.

import { h } from '../dom.js';

/** The emoji offered, with their names for screen readers. */
export const EMOJI = [
  ['👍', 'thumbs up'],
  ['❤️', 'red heart'],
  ['😂', 'face with tears of joy'],
  ['🎉', 'party popper'],
  ['😮', 'face with open mouth'],
  ['😢', 'crying face'],
  ['🙏', 'folded hands'],
  ['👀', 'eyes'],
];

const GAP_PX = 4;

export class EmojiPicker {
  /** container: the positioned element the menu is placed in. */
  constructor(container) {
    this.container = container;
    this.onPick = null;
    this.onClose = null;
    this.anchor = null;
    this.buttons = EMOJI.map(([emoji, name]) =>
      h(
        'button',
        {
          type: 'button',
          class: 'picker-emoji',
          role: 'menuitemcheckbox',
          'aria-checked': 'false',
          'aria-label': name,
          title: name,
          tabindex: '-1',
          dataset: { emoji },
        },
        emoji,
      ),
    );
    this.el = h('div', { class: 'picker', role: 'menu', 'aria-label': 'Add a reaction', hidden: true }, this.buttons);
    container.append(this.el);
    this.el.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-emoji]');
      if (button) this.pick(button);
    });
    this.el.addEventListener('keydown', (event) => this.onKeydown(event));
    // A click or a focus anywhere else closes it.
    document.addEventListener('pointerdown', (event) => {
      if (this.isOpen && !this.el.contains(event.target) && !this.anchor?.contains(event.target)) this.close(false);
    });
    this.el.addEventListener('focusout', (event) => {
      if (this.isOpen && !this.el.contains(event.relatedTarget) && event.relatedTarget !== null) this.close(false);
    });
  }

  get isOpen() {
    return !this.el.hidden;
  }

  /**
   * Opens next to `anchor`. `mine`: the emoji already given (shown checked;
   * picking one takes it back). onPick(emoji, given) is called with the
   * pick; onClose(restoreFocus) when the menu closes, however.
   */
  open(anchor, { mine, onPick, onClose }) {
    if (this.isOpen) this.close(false);
    this.anchor = anchor;
    this.onPick = onPick;
    this.onClose = onClose;
    for (const button of this.buttons) {
      button.setAttribute('aria-checked', String(mine.has(button.dataset.emoji)));
    }
    anchor.setAttribute('aria-expanded', 'true');
    this.el.hidden = false;
    this.place(anchor);
    this.buttons[0].focus();
  }

  /** Below the anchor, its end edges aligned; above it when there is no room below. */
  place(anchor) {
    const box = this.container.getBoundingClientRect();
    const at = anchor.getBoundingClientRect();
    const { offsetWidth: width, offsetHeight: height } = this.el;
    let left = at.right - box.left - width;
    left = Math.max(GAP_PX, Math.min(left, box.width - width - GAP_PX));
    let top = at.bottom - box.top + GAP_PX;
    if (top + height > box.height - GAP_PX) top = Math.max(GAP_PX, at.top - box.top - height - GAP_PX);
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }

  pick(button) {
    const { onPick } = this;
    const given = button.getAttribute('aria-checked') === 'true';
    this.close(true);
    onPick?.(button.dataset.emoji, given);
  }

  /** Closes the menu; with `restoreFocus`, focus goes back to its button. */
  close(restoreFocus) {
    if (!this.isOpen) return;
    this.el.hidden = true;
    if (this.anchor?.isConnected) this.anchor.setAttribute('aria-expanded', 'false');
    const { onClose } = this;
    this.anchor = null;
    this.onPick = null;
    this.onClose = null;
    onClose?.(restoreFocus);
  }

  onKeydown(event) {
    const index = this.buttons.indexOf(document.activeElement);
    const n = this.buttons.length;
    const move = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (move !== undefined) {
      event.preventDefault();
      this.buttons[(index + move + n) % n].focus();
    } else if (event.key === 'Home' || event.key === 'End') {
      event.preventDefault();
      this.buttons[event.key === 'Home' ? 0 : n - 1].focus();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      this.close(true);
    } else if (event.key === 'Tab') {
      event.preventDefault();
      this.close(true);
    }
  }
}
