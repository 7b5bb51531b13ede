// Completing `@name` in the composer: typing `@` and the start of a name
// lists the room's members whose names start so; Up and Down move through
// them, Enter or Tab puts the chosen name in, Escape closes the list. The
// textarea stays focused throughout (the list is its listbox, named by
// aria-activedescendant), as a combobox's popup.

import { h, reconcile } from '../dom.js';
import { initial, paintPerson } from '../format.js';
import { mentionQuery } from '../people.js';

const MOST_SHOWN = 8;

export class MentionCompleter {
  /**
   * `candidates()`: the people who may be mentioned now ({id, name}), the
   * user left out.
   */
  constructor(input, list, candidates) {
    this.input = input;
    this.list = list;
    this.candidates = candidates;
    /** {start, query, matches, index} while the list is open. */
    this.open = null;
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-controls', list.id);
    input.setAttribute('aria-expanded', 'false');
    input.addEventListener('input', () => this.update());
    input.addEventListener('click', () => this.update());
    input.addEventListener('blur', () => this.close());
    // Capture, on the form: before the composer's own Enter (send) and
    // the page's Escape (close drawers) see the key.
    input.form.addEventListener('keydown', (event) => this.onKeydown(event), { capture: true });
    // A press on an option must not take focus from the textarea.
    list.addEventListener('mousedown', (event) => event.preventDefault());
    list.addEventListener('click', (event) => {
      const option = event.target.closest('[role=option]');
      if (option && this.open) this.choose(Number(option.dataset.index));
    });
  }

  /** Opens, narrows or closes the list for what is before the caret. */
  update() {
    const { input } = this;
    const found = input.selectionStart === input.selectionEnd ? mentionQuery(input.value, input.selectionStart) : null;
    if (!found) {
      this.close();
      return;
    }
    const query = found.query.toLowerCase();
    const matches = this.candidates()
      .filter((user) => user.name.toLowerCase().startsWith(query))
      .sort((a, b) => a.name.localeCompare(b.name))
      .slice(0, MOST_SHOWN);
    if (matches.length === 0) {
      this.close();
      return;
    }
    const previous = this.open?.matches[this.open.index]?.id;
    const index = Math.max(0, matches.findIndex((user) => user.id === previous));
    this.open = { ...found, matches, index };
    this.render();
  }

  onKeydown(event) {
    if (!this.open || event.target !== this.input || event.isComposing) return;
    const n = this.open.matches.length;
    switch (event.key) {
      case 'ArrowDown':
        this.move((this.open.index + 1) % n);
        break;
      case 'ArrowUp':
        this.move((this.open.index - 1 + n) % n);
        break;
      case 'Enter':
      case 'Tab':
        this.choose(this.open.index);
        break;
      case 'Escape':
        this.close();
        break;
      default:
        return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  move(index) {
    this.open.index = index;
    this.render();
  }

  /** Puts `@name ` in place of what was typed after the `@`. */
  choose(index) {
    const user = this.open?.matches[index];
    if (!user) return;
    const { input } = this;
    const { start } = this.open;
    const end = input.selectionStart;
    const text = `@${user.name} `;
    input.setRangeText(text, start, end, 'end');
    this.close();
    // The composer grows with its text and tells the room we are typing.
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  close() {
    if (!this.open) return;
    this.open = null;
    this.list.hidden = true;
    reconcile(this.list, []);
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  render() {
    const { matches, index } = this.open;
    reconcile(
      this.list,
      matches.map((user, i) => optionNode(`${this.list.id}-${i}`, user, i, i === index)),
    );
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.input.setAttribute('aria-activedescendant', `${this.list.id}-${index}`);
    this.list.querySelector('[aria-selected=true]')?.scrollIntoView({ block: 'nearest' });
  }
}

function optionNode(id, user, index, selected) {
  const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initial(user.name));
  paintPerson(avatar, user.id);
  return h(
    'li',
    { id, role: 'option', class: 'mention-option', 'aria-selected': String(selected), dataset: { index } },
    avatar,
    h('span', { class: 'mention-option-name', dir: 'auto' }, user.name),
  );
}
