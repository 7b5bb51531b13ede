// Searching messages: the search box in the room header and the panel of
// results that drops down under it (over the whole header on a phone,
// where a button opens it). The panel searches the active room or every
// room the user may read (scope radios), newest first, a page at a time
// ("More results"); each result shows its room, author, time and text with
// the words searched marked, and opens the message in its room.
//
// A search goes on Enter, or once typing has paused (never one per key).
// `/` (outside a text field) or Ctrl+K focuses the box; arrow keys move
// between results, Enter opens one, Escape closes the panel and puts focus
// back where it was. Message text only ever goes into text nodes and
// <mark> elements (dom.js), never markup.

import { ServerError } from '../../chat-client/index.js';
import { h, reconcile, setText } from '../dom.js';
import { formatFullTime, formatWhen, paintPerson } from '../format.js';
import { searchProblem, searchWords } from '../validate.js';

// Typing pauses this long before its search goes.
const DEBOUNCE_MS = 300;
// Longer texts are shown as a window of about this many characters around
// the first word found.
const SNIPPET_CHARS = 180;
const SNIPPET_BEFORE = 50;

/** `text` with ASCII letters in lower case (the server ignores their case, and only theirs). */
function foldAscii(text) {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/**
 * Where the words occur in `text`, as sorted, non-overlapping [start, end)
 * ranges of UTF-16 indices: every occurrence of every word, ASCII case
 * ignored, any other character exactly, as the server matches them.
 */
export function matchRanges(text, words) {
  const hay = foldAscii(text);
  const found = [];
  for (const word of new Set(words.map(foldAscii))) {
    if (!word) continue;
    for (let at = hay.indexOf(word); at !== -1; at = hay.indexOf(word, at + 1)) found.push([at, at + word.length]);
  }
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged = [];
  for (const [start, end] of found) {
    const last = merged.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

const isLowSurrogate = (code) => code >= 0xdc00 && code <= 0xdfff;

/** The part of `text` a result shows: all of it, or a window from a little before the first match. */
function excerpt(text, ranges) {
  if (text.length <= SNIPPET_CHARS) return [0, text.length];
  const first = ranges[0]?.[0] ?? 0;
  let start = Math.max(0, Math.min(first - SNIPPET_BEFORE, text.length - SNIPPET_CHARS));
  // Start at a word where there is one close by, and never inside a surrogate pair.
  const space = text.slice(start, first).search(/\s/u);
  if (start > 0 && space !== -1 && space < 20) start += space + 1;
  if (isLowSurrogate(text.charCodeAt(start))) start -= 1;
  let end = Math.min(text.length, start + SNIPPET_CHARS);
  // And end at the end of a word, likewise.
  const lastSpace = text.slice(end - 20, end).search(/\s\S*$/u);
  if (end < text.length && lastSpace !== -1 && end - 20 + lastSpace > (ranges[0]?.[1] ?? 0)) end = end - 20 + lastSpace;
  if (isLowSurrogate(text.charCodeAt(end))) end += 1;
  return [start, end];
}

/** `text` (or a window of it) as text nodes with every match in a <mark>. */
export function highlighted(text, words) {
  const ranges = matchRanges(text, words);
  const [start, end] = excerpt(text, ranges);
  const parts = [];
  if (start > 0) parts.push('…');
  let at = start;
  for (const [from, to] of ranges) {
    const a = Math.max(from, start);
    const b = Math.min(to, end);
    if (a >= b) continue;
    if (a > at) parts.push(text.slice(at, a));
    parts.push(h('mark', {}, text.slice(a, b)));
    at = b;
  }
  if (at < end) parts.push(text.slice(at, end));
  if (end < text.length) parts.push('…');
  return parts;
}

/** Words for a search the server refused, or that could not be made. */
function describeError(error) {
  if (!(error instanceof ServerError)) return 'Not connected: search again once the page is back online.';
  switch (error.code) {
    case 'rate_limited':
      return 'Too many searches in a row: wait a moment, then search again.';
    case 'too_long':
      return 'Too long: a search is at most 200 characters.';
    case 'bad_request':
      return `Cannot search for that: ${error.message}.`;
    case 'forbidden':
      return `Not allowed: ${error.message}.`;
    case 'invalid_room':
      return `Cannot search this room: ${error.message}.`;
    default:
      return `Search failed (${error.code}): ${error.message}.`;
  }
}

/** "#general" with the name isolated, for sentences. */
function roomRef(name) {
  return ['#', h('bdi', {}, name)];
}

export class SearchPanel {
  /**
   * onOpen(room, seq): a result was picked (the panel is closed by then).
   * fallbackFocus(): focuses something when, on closing, there is nowhere
   * to go back to. closeDrawers(): the panel is opening over the page.
   */
  constructor(store, client, { onOpen, fallbackFocus, closeDrawers }) {
    this.store = store;
    this.client = client;
    this.onOpen = onOpen;
    this.fallbackFocus = fallbackFocus;
    this.closeDrawers = closeDrawers;
    const $ = (id) => document.getElementById(id);
    this.app = $('app');
    this.area = $('search-area');
    this.form = $('search-form');
    this.input = $('search-input');
    this.button = $('search-button');
    this.panel = $('search-panel');
    this.status = $('search-status');
    this.list = $('search-results');
    this.more = $('search-more');
    this.moreError = $('search-more-error');
    this.closeButton = $('search-close');
    this.scopes = [...this.panel.querySelectorAll('input[name="search-scope"]')];

    this.timer = 0;
    /** Bumped for every search, so that a late reply to an older one is dropped. */
    this.generation = 0;
    /**
     * What the panel shows: {query, words, room (null: all), key, results,
     * nodes, next, loading, loadingMore, error, moreError}; null before
     * the first search or for an empty box.
     */
    this.shown = null;
    /** Where focus goes back to when the panel closes. */
    this.returnFocus = null;
    this.bind();
    this.render();
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  get scope() {
    return this.scopes.find((radio) => radio.checked)?.value ?? 'room';
  }

  /** Whether the search box is offered: once in a room. */
  get available() {
    return this.store.activeRoom !== null;
  }

  bind() {
    const { form, input, panel } = this;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.searchNow();
    });
    input.addEventListener('focusin', (event) => {
      if (!this.contains(event.relatedTarget)) this.open(event.relatedTarget);
    });
    // Focus may have stayed in the box when a click elsewhere closed the panel.
    input.addEventListener('click', () => this.open());
    input.addEventListener('input', (event) => {
      // An input method's composition (Chinese, Japanese, …) searches once it is done.
      if (event.isComposing) return;
      this.open();
      this.schedule();
    });
    input.addEventListener('compositionend', () => this.schedule());
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        // Enter confirming an input method's composition is not a search.
        if (event.isComposing || event.keyCode === 229) return;
        event.preventDefault();
        this.open();
        this.searchNow();
      } else if (event.key === 'ArrowDown' && this.resultButtons().length) {
        event.preventDefault();
        this.open();
        this.focusResult(0);
      } else if (event.key === 'Escape') {
        // Not the search field's own Escape, which would empty it.
        event.preventDefault();
        this.close(true);
      }
    });
    this.button.addEventListener('click', () => this.focus());
    this.closeButton.addEventListener('click', () => this.close(true));
    for (const radio of this.scopes) {
      radio.addEventListener('change', () => {
        this.render();
        if (this.normalized()) this.searchNow();
      });
    }
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-index]');
      if (button) this.pick(Number(button.dataset.index));
    });
    this.more.addEventListener('click', () => this.loadMore());
    panel.addEventListener('keydown', (event) => this.onPanelKeydown(event));
    // Leaving the search for anywhere else (a click, Tab) closes the panel.
    document.addEventListener('pointerdown', (event) => {
      if (this.isOpen && !this.contains(event.target)) this.close(false);
    });
    for (const el of [form, panel]) {
      el.addEventListener('focusout', (event) => {
        if (this.isOpen && event.relatedTarget !== null && !this.contains(event.relatedTarget)) this.close(false);
      });
    }
    document.addEventListener('keydown', (event) => this.onShortcut(event));
  }

  /** Whether `node` is part of the search (box, panel, phone button). */
  contains(node) {
    return node instanceof Node && (this.form.contains(node) || this.panel.contains(node) || this.button.contains(node));
  }

  /** `/` outside a text field, or Ctrl+K (⌘K) anywhere: to the search box. */
  onShortcut(event) {
    if (event.defaultPrevented || event.isComposing || !this.available) return;
    if (document.querySelector('dialog[open]')) return;
    const slash = event.key === '/' && !event.ctrlKey && !event.metaKey && !event.altKey && !isEditable(event.target);
    const k = event.key.toLowerCase() === 'k' && (event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey;
    if (!slash && !k) return;
    event.preventDefault();
    this.focus();
  }

  /** Opens the panel (if closed) and puts focus in the search box, its words selected. */
  focus() {
    if (!this.available) return;
    this.open(document.activeElement);
    this.input.focus();
    this.input.select();
  }

  /** Shows the panel; `from`: the element focus goes back to when it closes. */
  open(from = null) {
    if (!this.available) return;
    if (!this.isOpen) {
      this.returnFocus = from instanceof HTMLElement && from !== document.body && !this.contains(from) ? from : null;
      this.closeDrawers();
      this.app.classList.add('search-open');
      this.panel.hidden = false;
      this.input.setAttribute('aria-expanded', 'true');
      this.button.setAttribute('aria-expanded', 'true');
      // Results of "this room" for a room no longer shown are searched again.
      if (this.shown && this.shown.key !== this.key(this.normalized())) this.searchNow();
    }
    this.render();
  }

  /** Hides the panel (the words and results stay for next time); `restoreFocus`: focus goes back. */
  close(restoreFocus) {
    clearTimeout(this.timer);
    if (!this.isOpen) {
      if (restoreFocus) this.restoreFocus();
      return;
    }
    this.app.classList.remove('search-open');
    this.panel.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.button.setAttribute('aria-expanded', 'false');
    if (restoreFocus) this.restoreFocus();
    this.returnFocus = null;
  }

  restoreFocus() {
    const target = this.returnFocus;
    this.returnFocus = null;
    if (target?.isConnected && !target.closest('[hidden]') && !target.disabled && target.offsetParent !== null) {
      target.focus({ preventScroll: true });
      if (document.activeElement === target) return;
    }
    this.fallbackFocus();
  }

  /** The box's words, separated by single spaces (what is sent). */
  normalized() {
    return searchWords(this.input.value).join(' ');
  }

  /** The room searched: the active one, or null for all rooms. */
  room() {
    return this.scope === 'room' ? this.store.active : null;
  }

  key(query) {
    return JSON.stringify([query, this.room()]);
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.normalized()) {
      this.searchNow();
      return;
    }
    this.timer = setTimeout(() => this.searchNow({ again: false }), DEBOUNCE_MS);
  }

  /**
   * Searches for what the box holds. `again`: even if those words were
   * just searched in that scope (Enter searches again; a pause in typing
   * does not).
   */
  searchNow({ again = true } = {}) {
    clearTimeout(this.timer);
    const query = this.normalized();
    const room = this.room();
    const key = this.key(query);
    if (!again && this.shown?.key === key && !this.shown.error) return;
    const generation = ++this.generation;
    if (!query) {
      this.shown = null;
      this.render();
      return;
    }
    const shown = {
      query,
      words: searchWords(query),
      room,
      key,
      results: [],
      nodes: [],
      next: null,
      loading: true,
      loadingMore: false,
      error: searchProblem(query) ?? '',
      moreError: '',
    };
    this.shown = shown;
    if (shown.error) {
      shown.loading = false;
      this.render();
      return;
    }
    this.render();
    this.client.search(query, { room }).then(
      (reply) => {
        if (generation !== this.generation) return;
        shown.loading = false;
        this.add(shown, reply);
        this.render();
      },
      (error) => {
        if (generation !== this.generation) return;
        shown.loading = false;
        shown.error = describeError(error);
        shown.offline = !(error instanceof ServerError);
        this.render();
      },
    );
  }

  /** The next page of the results shown. */
  loadMore() {
    const shown = this.shown;
    if (!shown || shown.next === null || shown.loadingMore) return;
    const generation = this.generation;
    shown.loadingMore = true;
    shown.moreError = '';
    const before = shown.results.length;
    this.render();
    this.client.search(shown.query, { room: shown.room, cursor: shown.next }).then(
      (reply) => {
        if (generation !== this.generation) return;
        shown.loadingMore = false;
        const hadFocus = document.activeElement === this.more;
        this.add(shown, reply);
        this.render();
        // Keyboard users carry on from the first of the new results.
        if (hadFocus && shown.results.length > before) this.focusResult(before);
      },
      (error) => {
        if (generation !== this.generation) return;
        shown.loadingMore = false;
        shown.moreError = describeError(error);
        this.render();
      },
    );
  }

  /** Adds a page of results to what is shown. */
  add(shown, reply) {
    const results = (Array.isArray(reply.results) ? reply.results : []).filter(
      (m) => m && typeof m.room === 'string' && Number.isInteger(m.seq) && typeof m.text === 'string' && !m.deleted,
    );
    for (const message of results) {
      shown.nodes.push(resultNode(message, shown.words, shown.results.length));
      shown.results.push(message);
    }
    shown.next = Number.isInteger(reply.next) ? reply.next : null;
  }

  /** Called on every change of the store: the box follows the page. */
  update() {
    this.area.classList.toggle('unavailable', !this.available);
    this.button.hidden = !this.available;
    if (!this.available && this.isOpen) this.close(false);
    if (!this.isOpen) return;
    const shown = this.shown;
    // Back online after a search that could not go: it goes now.
    if (shown?.offline && this.client.online) this.searchNow();
    // "This room" follows the room shown.
    else if (shown && shown.key !== this.key(shown.query)) this.searchNow();
    else if (!shown) this.render();
  }

  render() {
    const shown = this.shown;
    const room = this.room();
    const where = room === null ? ['all rooms'] : roomRef(room);
    const status = this.status;
    status.classList.toggle('error', Boolean(shown?.error));
    this.panel.setAttribute('aria-busy', String(Boolean(shown?.loading || shown?.loadingMore)));
    let line;
    if (!shown) {
      line = room === null
        ? ['Search every room you may read: messages holding every word you type.']
        : ['Search ', ...where, ': messages holding every word you type.'];
    } else if (shown.error) {
      line = [shown.error];
    } else if (shown.loading) {
      line = [h('span', { class: 'spinner' }), 'Searching…'];
    } else if (shown.results.length === 0) {
      line = [
        'Nothing found for “', h('bdi', {}, shown.query), '” in ',
        ...(shown.room === null ? ['any room'] : roomRef(shown.room)),
        shown.room === null ? '.' : '. Try All rooms, or fewer words.',
      ];
    } else {
      const n = shown.results.length;
      const count = shown.next !== null ? `${n}+ messages` : n === 1 ? '1 message' : `${n} messages`;
      line = [count, ' in ', ...(shown.room === null ? ['all rooms'] : roomRef(shown.room)), ', newest first'];
    }
    const sig = JSON.stringify([shown?.key, shown?.error, shown?.loading, shown?.results.length, shown?.next, room]);
    if (status.dataset.sig !== sig) {
      status.dataset.sig = sig;
      status.replaceChildren(...line.map((part) => (part instanceof Node ? part : document.createTextNode(part))));
    }
    const nodes = shown && !shown.loading && !shown.error ? shown.nodes : [];
    reconcile(this.list, nodes);
    this.list.hidden = nodes.length === 0;
    this.rove();
    const more = Boolean(shown && shown.next !== null && !shown.loading && !shown.error);
    this.more.hidden = !more;
    this.more.disabled = Boolean(shown?.loadingMore);
    setText(this.more, shown?.loadingMore ? 'Loading…' : 'More results');
    this.moreError.hidden = !more || !shown.moreError;
    setText(this.moreError, shown?.moreError ?? '');
  }

  resultButtons() {
    return [...this.list.querySelectorAll('button.search-result')];
  }

  /** One result in the tab order: the one last focused, or the first. */
  rove() {
    const buttons = this.resultButtons();
    const current = buttons.find((b) => b === document.activeElement) ?? buttons.find((b) => b.tabIndex === 0) ?? buttons[0];
    for (const button of buttons) button.tabIndex = button === current ? 0 : -1;
  }

  focusResult(index) {
    const buttons = this.resultButtons();
    const button = buttons[Math.max(0, Math.min(index, buttons.length - 1))];
    if (!button) return;
    for (const each of buttons) each.tabIndex = each === button ? 0 : -1;
    button.focus();
  }

  onPanelKeydown(event) {
    if (event.key === 'Escape') {
      event.preventDefault();
      this.close(true);
      return;
    }
    const result = event.target.closest?.('button.search-result');
    const onMore = event.target === this.more;
    if (!result && !onMore) return;
    const buttons = this.resultButtons();
    const index = onMore ? buttons.length : buttons.indexOf(result);
    switch (event.key) {
      case 'ArrowDown':
        event.preventDefault();
        if (index < buttons.length - 1) this.focusResult(index + 1);
        else if (!this.more.hidden) this.more.focus();
        break;
      case 'ArrowUp':
        event.preventDefault();
        if (index > 0) this.focusResult(index - 1);
        else this.input.focus();
        break;
      case 'Home':
        event.preventDefault();
        this.focusResult(0);
        break;
      case 'End':
        event.preventDefault();
        this.focusResult(buttons.length - 1);
        break;
      default:
        // Typing on a result goes on in the search box.
        if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey && event.key !== ' ') {
          this.input.focus();
        }
    }
  }

  /** Opens result `index` in its room. */
  pick(index) {
    const message = this.shown?.results[index];
    if (!message) return;
    this.close(false);
    this.onOpen(message.room, message.seq);
  }
}

/** Whether typing in `el` means text (so `/` is a character there). */
function isEditable(el) {
  if (!(el instanceof HTMLElement)) return false;
  if (el.isContentEditable) return true;
  if (el instanceof HTMLTextAreaElement) return true;
  if (el instanceof HTMLInputElement) return !['button', 'checkbox', 'radio', 'submit', 'reset'].includes(el.type);
  return el instanceof HTMLSelectElement;
}

function resultNode(message, words, index) {
  const author = message.from?.name ?? '';
  const time = h('time', { datetime: new Date(message.ts).toISOString(), title: formatFullTime(message.ts) }, formatWhen(message.ts));
  const button = h(
    'button',
    { type: 'button', class: 'search-result', tabindex: '-1', dataset: { index, room: message.room, seq: message.seq } },
    h(
      'span',
      { class: 'result-meta' },
      h('span', { class: 'result-room' }, roomRef(message.room)),
      h('bdi', { class: 'result-author' }, author),
      time,
    ),
    h('span', { class: 'result-text', dir: 'auto' }, highlighted(message.text, words)),
    Number.isInteger(message.edited_at)
      ? h('span', { class: 'edited-mark', title: `Edited ${formatFullTime(message.edited_at)}` }, '(edited)')
      : null,
  );
  paintPerson(button, message.from?.id ?? '');
  return h('li', {}, button);
}
