// The transcript of the active room: day separators, messages grouped by
// sender, their text with its light markup and links (dom.js `markup`), own
// messages with their sending state (an unsent one where it was written),
// and the "older messages" control at the top. Each message shows what was
// done to it: the "(edited)" mark, its reactions (chips that toggle one's
// own), the quote of the message it replies to, a pin; and offers actions
// on hover, on keyboard focus or, on a phone, on a tap or long press:
// reply, react, and for one's own, edit (inline) and delete. Changes of
// ours the server has not confirmed yet show at once, marked as such.
//
// Elements are cached per message and rebuilt only when what they show
// changes; the list is patched in place, so scrolling, text selection and
// screen readers (role=log) see only real additions. One message at a time
// is in the tab order (arrow keys move between them) with its controls,
// and focus survives a message being rebuilt.

import { h, icon, markup, reconcile, ICONS } from '../dom.js';
import { dayKey, formatDay, formatFullTime, formatTime, initial, paintPerson } from '../format.js';
import { mentionsOneOf, quotedText } from '../store.js';
import { dividerNode, partNodes, textParts } from './unread.js';
import { EmojiPicker } from './picker.js';

// Messages of one sender this close together share one header.
const GROUP_WITHIN_MS = 5 * 60_000;
// "At the bottom" with some slack, so new messages keep the view pinned.
const NEAR_BOTTOM_PX = 48;
// Older history is fetched before the reader actually hits the top.
const LOAD_OLDER_WITHIN_PX = 400;
// How long a message shown by a jump (a quote, a pin) stays highlighted.
const HIGHLIGHT_MS = 2000;
const LONG_PRESS_MS = 450;
// Names a reaction's tooltip lists before "and N more".
const NAMES_SHOWN = 10;
// What in a message takes focus: its actions, chips, quote, links, editor.
const CONTROLS = 'button, textarea, a[href]';

const hoverless = window.matchMedia('(hover: none)');

export class MessageList {
  /**
   * actions: loadOlder(room), retry(room, id), edit(room, id),
   * discard(room, id), retryWithoutQuote(room, id) for unsent entries;
   * reply(room, seq), react(room, seq, emoji, remove), saveEdit(room, seq,
   * text), remove(room, seq), jump(room, seq) for messages; compose(text)
   * puts text in the composer; scrolled() after the reader scrolled (to
   * see whether they reached the latest).
   */
  constructor(log, jumpButton, actions) {
    this.log = log;
    this.jumpButton = jumpButton;
    this.actions = actions;
    this.room = null;
    this.context = null;
    /** room name → Map(key → {node, sig}). */
    this.caches = new Map();
    /** room name → scrollTop to come back to, absent when it was at the bottom. */
    this.scrollMemory = new Map();
    this.pinned = true;
    /** seq → the item last rendered for it. */
    this.items = new Map();
    /** The message being edited: {room, seq, id, input, problem}. */
    this.editing = null;
    /** id of the message whose actions are shown without hover (a tap, an open picker). */
    this.actionsShown = null;
    /**
     * id of the message the user last focused, which stays in the tab
     * order (by default the latest message is), and the element that is.
     */
    this.current = null;
    this.currentNode = null;
    /** The message a jump showed: {seq, timer}. */
    this.highlight = null;
    this.picker = new EmojiPicker(log.parentElement);
    this.pressTimer = 0;
    this.pressed = false;
    log.addEventListener('scroll', () => this.onScroll());
    log.addEventListener('click', (event) => this.onClick(event));
    log.addEventListener('keydown', (event) => this.onKeydown(event));
    log.addEventListener('focusin', (event) => {
      const article = event.target.closest?.('article.message');
      if (article) {
        this.current = article.dataset.id;
        this.setCurrent(article);
      }
    });
    log.addEventListener('pointerdown', (event) => this.onPointerDown(event));
    for (const type of ['pointerup', 'pointercancel', 'pointermove']) {
      log.addEventListener(type, (event) => {
        if (type !== 'pointermove' || event.movementX || event.movementY) clearTimeout(this.pressTimer);
      });
    }
    log.addEventListener('contextmenu', (event) => {
      // A long press on a phone shows the actions rather than the browser's menu.
      if (this.pressed) event.preventDefault();
    });
    jumpButton.addEventListener('click', () => this.scrollToBottom());
  }

  /**
   * Shows `room` (a RoomState or null). context: {me, online, isOwn(m),
   * canChange(m), myIds, names, divider, label}; `online`: whether waiting
   * sends can go now; `names`: the names an `@` may mention; `divider`: the
   * seq after which "New messages" starts, or null; `label`: what the room
   * is called ({sigil, name}).
   */
  render(room, context) {
    const switching = (room?.name ?? null) !== this.room?.name;
    if (switching && this.room) {
      if (this.pinned) this.scrollMemory.delete(this.room.name);
      else this.scrollMemory.set(this.room.name, this.log.scrollTop);
      this.picker.close(false);
      this.editing = null;
      this.actionsShown = null;
    }
    this.room = room;
    this.context = context;
    if (!room) {
      reconcile(this.log, []);
      this.items.clear();
      return;
    }
    const focus = this.focusKey();
    const anchor = switching || this.pinned ? null : this.anchor();
    reconcile(this.log, this.nodes(room, context));
    this.restoreFocus(focus);
    this.markNodes();
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
    // Opened on more unread messages than fit: from the first of them.
    if (this.pinned) this.revealDivider(context.divider);
    this.jumpButton.hidden = this.pinned;
    this.maybeLoadOlder();
  }

  /** Renders again after a change of the list's own (an editor opened, actions shown). */
  refresh() {
    if (this.room) this.render(this.room, this.context);
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
    if (this.picker.isOpen) this.picker.close(false);
    this.maybeLoadOlder();
    this.actions.scrolled?.();
  }

  /**
   * Scrolls the "New messages" divider to the top the first time it shows
   * with more unread messages under it than fit: the reader starts at the
   * first one, not the last. True if it did.
   */
  revealDivider(seq) {
    const key = seq === null || seq === undefined ? null : `${this.room.name}\u0000${seq}`;
    if (key === null || key === this.revealed) return false;
    const divider = this.log.querySelector('.unread-divider');
    if (!divider) return false;
    this.revealed = key;
    const top = divider.offsetTop - 8;
    if (this.log.scrollHeight - top <= this.log.clientHeight) return false;
    this.log.scrollTop = top;
    this.pinned = false;
    return true;
  }

  maybeLoadOlder() {
    const room = this.room;
    if (room?.hasOlder && !room.loadingOlder && !room.olderError && this.log.scrollTop < LOAD_OLDER_WITHIN_PX) {
      this.actions.loadOlder(room.name);
    }
  }

  /** The element of message `seq`, if it is loaded. */
  nodeOf(seq) {
    return this.log.querySelector(`article.message[data-seq="${Number(seq)}"]`);
  }

  /**
   * Scrolls message `seq` into the middle of the view, highlights it for
   * a moment and focuses it. False if it is not loaded.
   */
  jumpTo(seq) {
    const node = this.nodeOf(seq);
    if (!node) return false;
    node.scrollIntoView({ block: 'center' });
    this.onScroll();
    clearTimeout(this.highlight?.timer);
    this.highlight = {
      seq,
      timer: setTimeout(() => {
        this.highlight = null;
        this.markNodes();
      }, HIGHLIGHT_MS),
    };
    this.markNodes();
    node.focus({ preventScroll: true });
    return true;
  }

  onClick(event) {
    const room = this.room;
    if (!room) return;
    const button = event.target.closest('button[data-action]');
    if (!button) {
      this.onTap(event);
      return;
    }
    const article = button.closest('article.message');
    const seq = Number(article?.dataset.seq);
    const { action, id } = button.dataset;
    switch (action) {
      case 'older':
        room.olderError = '';
        this.actions.loadOlder(room.name);
        break;
      case 'retry':
      case 'discard':
      case 'edit':
      case 'retryWithoutQuote':
        this.actions[action](room.name, id);
        break;
      case 'reply':
        this.hideActions();
        this.actions.reply(room.name, seq);
        break;
      case 'react':
        this.openPicker(button, article, seq);
        break;
      case 'reaction':
        this.actions.react(room.name, seq, button.dataset.emoji, button.getAttribute('aria-pressed') === 'true');
        break;
      case 'start-edit':
        this.startEdit(seq);
        break;
      case 'edit-again': {
        const entry = room.pending.get(id);
        this.actions.discard(room.name, id);
        this.startEdit(seq, entry?.text);
        break;
      }
      case 'save-edit':
        this.saveEdit();
        break;
      case 'cancel-edit':
        this.cancelEdit();
        break;
      case 'failed-edit-as-new': {
        const entry = room.pending.get(id);
        this.actions.discard(room.name, id);
        if (entry) this.actions.compose(entry.text);
        break;
      }
      case 'edit-as-new': {
        // The message was deleted while being edited: the text goes to the composer.
        const text = this.editing?.input.value ?? '';
        this.editing = null;
        this.refresh();
        this.actions.compose(text);
        break;
      }
      case 'delete':
        this.hideActions();
        this.actions.remove(room.name, seq);
        break;
      case 'jump':
        this.actions.jump(room.name, Number(button.dataset.seq));
        break;
      default:
    }
  }

  /** A tap on a message on a phone shows its actions, or hides them. */
  onTap(event) {
    const article = event.target.closest('article.message[data-seq]');
    if (!hoverless.matches || !article || event.target.closest('textarea, a')) return;
    if (this.pressed) {
      // The end of a long press, which already showed them.
      this.pressed = false;
      return;
    }
    this.showActions(this.actionsShown === article.dataset.id ? null : article.dataset.id);
  }

  onPointerDown(event) {
    this.pressed = false;
    clearTimeout(this.pressTimer);
    if (event.pointerType !== 'touch') return;
    const article = event.target.closest('article.message[data-seq]');
    // A long press on a link is the browser's (open, copy it).
    if (!article || event.target.closest('button, textarea, a')) return;
    this.pressTimer = setTimeout(() => {
      this.pressed = true;
      this.showActions(article.dataset.id);
    }, LONG_PRESS_MS);
  }

  showActions(id) {
    this.actionsShown = id;
    this.markNodes();
  }

  hideActions() {
    if (this.actionsShown !== null) this.showActions(null);
  }

  onKeydown(event) {
    const article = event.target.closest('article.message');
    if (!article) return;
    if (event.target === article) {
      const articles = [...this.log.querySelectorAll('article.message')];
      const index = articles.indexOf(article);
      const to = {
        ArrowUp: index - 1,
        ArrowDown: index + 1,
        Home: 0,
        End: articles.length - 1,
      }[event.key];
      if (to !== undefined) {
        event.preventDefault();
        articles[Math.max(0, Math.min(to, articles.length - 1))]?.focus();
      } else if (event.key === 'Enter') {
        // Into the message: its first control (an action, its quote, a reaction).
        event.preventDefault();
        article.querySelector('.actions button, button')?.focus();
      }
      return;
    }
    if (event.target.closest('.actions') && (event.key === 'ArrowLeft' || event.key === 'ArrowRight')) {
      const buttons = [...article.querySelectorAll('.actions button')];
      const index = buttons.indexOf(event.target);
      const n = buttons.length;
      event.preventDefault();
      buttons[(index + (event.key === 'ArrowRight' ? 1 : -1) + n) % n].focus();
    } else if (event.key === 'Escape' && !event.target.closest('textarea')) {
      // Back out of the message's controls to the message.
      event.preventDefault();
      this.hideActions();
      article.focus();
    }
  }

  openPicker(button, article, seq) {
    const item = this.items.get(seq);
    if (!item) return;
    const id = article.dataset.id;
    this.showActions(id);
    this.picker.open(button, {
      mine: new Set(item.reactions.filter((r) => r.mine).map((r) => r.emoji)),
      onPick: (emoji, given) => this.actions.react(this.room.name, seq, emoji, given),
      onClose: (restoreFocus) => {
        if (this.actionsShown === id && !hoverless.matches) this.showActions(null);
        if (restoreFocus) this.focusIn(id, '[data-action="react"]');
      },
    });
  }

  /** Opens the inline editor on message `seq`, with `text` (its own by default). */
  startEdit(seq, text = undefined) {
    const item = this.items.get(seq);
    if (!item || !item.canChange || !this.room) return;
    this.picker.close(false);
    this.hideActions();
    const input = h('textarea', {
      class: 'edit-input',
      rows: '1',
      dir: 'auto',
      'aria-label': 'Edit message',
      'aria-describedby': `edit-hint-${seq}`,
      enterkeyhint: 'done',
    });
    input.value = text ?? item.text;
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.saveEdit();
      } else if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        this.cancelEdit();
      }
    });
    input.addEventListener('input', () => fit(input));
    this.editing = { room: this.room.name, seq, id: item.id, input, problem: '' };
    this.refresh();
    fit(input);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  saveEdit() {
    const editing = this.editing;
    if (!editing) return;
    const text = editing.input.value;
    if (this.items.get(editing.seq)?.deleted) {
      editing.input.focus();
      return;
    }
    if (!text.trim()) {
      editing.problem = 'A message cannot be empty: delete it instead.';
      this.refresh();
      editing.input.focus();
      return;
    }
    const item = this.items.get(editing.seq);
    this.editing = null;
    if (item && text !== item.text) this.actions.saveEdit(editing.room, editing.seq, text);
    this.refresh();
    this.focusIn(editing.id, null);
  }

  cancelEdit() {
    const editing = this.editing;
    if (!editing) return;
    this.editing = null;
    this.refresh();
    this.focusIn(editing.id, null);
  }

  /** Focuses message `id` (its element), or the control `selector` in it. */
  focusIn(id, selector) {
    const article = [...this.log.querySelectorAll('article.message')].find((a) => a.dataset.id === id);
    if (!article) return;
    // The message first: its actions show (and can take focus) while it has focus.
    article.focus({ preventScroll: true });
    if (selector) article.querySelector(selector)?.focus({ preventScroll: true });
  }

  /** What has focus in the log, to find again once its message is rebuilt. */
  focusKey() {
    const active = document.activeElement;
    if (!active || !this.log.contains(active)) return null;
    const article = active.closest('article.message');
    if (!article) return null;
    let selector = null;
    if (active !== article) {
      const { action, emoji } = active.dataset;
      if (active.matches('textarea')) selector = 'textarea';
      else if (action && emoji) selector = `[data-action="${action}"][data-emoji="${CSS.escape(emoji)}"]`;
      else if (action) selector = `[data-action="${action}"]`;
    }
    return { id: article.dataset.id, selector };
  }

  restoreFocus(key) {
    if (!key) return;
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    this.focusIn(key.id, key.selector);
  }

  /** Keeps one message in the tab order: `article`, with its controls. */
  setCurrent(article) {
    if (this.currentNode && this.currentNode !== article) tabbable(this.currentNode, false);
    this.currentNode = article;
    if (article) tabbable(article, true);
  }

  /** Applies the list's own state to the elements: tab order, shown actions, highlight. */
  markNodes() {
    const articles = this.log.querySelectorAll('article.message');
    let current = null;
    for (const article of articles) {
      const { id, seq } = article.dataset;
      if (id === this.current) current = article;
      article.classList.toggle('show-actions', id === this.actionsShown);
      article.classList.toggle('highlight', this.highlight !== null && Number(seq) === this.highlight.seq);
    }
    // By default the latest message: Tab from the log lands on what was just said.
    current ??= articles[articles.length - 1] ?? null;
    if (current !== this.currentNode || (current && current.tabIndex !== 0)) this.setCurrent(current);
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

    const changes = pendingChanges(room);
    const pinned = new Set(room.pins.map((p) => p.seq));
    const editing = this.editing?.room === room.name ? this.editing : null;
    const sends = [...room.pending.values()]
      .filter((entry) => entry.kind === 'send')
      .sort((a, b) => a.after - b.after || a.createdAt - b.createdAt);
    const items = [];
    for (const message of room.sorted()) {
      // An unsent message stays where it was written: what others say
      // after it comes below it, not above.
      while (sends.length > 0 && sends[0].after < message.seq) items.push(pendingItem(sends.shift(), room, context));
      items.push(confirmedItem(message, context, changes.get(message.seq), pinned, editing));
    }
    items.push(...sends.map((entry) => pendingItem(entry, room, context)));
    this.items = new Map(items.filter((item) => item.seq !== null).map((item) => [item.seq, item]));

    const label = context.label ?? { sigil: '#', name: room.name };
    const out = [node('top', topSig(room, label), () => topNode(room, label))];
    let previous = null;
    let divided = context.divider === null || context.divider === undefined;
    for (const item of items) {
      const day = dayKey(item.ts);
      if (day !== previous?.day) {
        const label = formatDay(item.ts);
        out.push(node(`day:${day}`, label, () => h('div', { class: 'day' }, h('span', {}, label))));
        previous = null;
      }
      if (!divided && item.seq !== null && item.seq > context.divider && !item.own) {
        // "New messages" above the first message that came after the read marker.
        divided = true;
        out.push(node('divider', 'divider', dividerNode));
        // The message under it starts a group of its own.
        previous = null;
      }
      const el = node(`msg:${item.id}`, itemSig(item), () => messageNode(item, editing));
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

/** Makes a message and its controls part of the tab order, or takes them out. */
function tabbable(article, on) {
  const index = on ? 0 : -1;
  article.tabIndex = index;
  for (const control of article.querySelectorAll(CONTROLS)) control.tabIndex = index;
}

/** Grows a textarea with its text. */
function fit(input) {
  input.style.height = 'auto';
  input.style.height = `${input.scrollHeight}px`;
}

/**
 * Our changes the server has not shown back yet, by the seq of the message
 * they change: the latest edit (and a failed one), a deletion, reactions
 * in the order made.
 */
function pendingChanges(room) {
  const bySeq = new Map();
  const of = (seq) => {
    let changes = bySeq.get(seq);
    if (!changes) {
      changes = { edit: null, failedEdit: null, deleting: false, reacts: [] };
      bySeq.set(seq, changes);
    }
    return changes;
  };
  for (const entry of [...room.pending.values()].sort((a, b) => a.createdAt - b.createdAt)) {
    if (entry.kind === 'edit') {
      if (entry.state === 'failed') of(entry.target).failedEdit = entry;
      else of(entry.target).edit = entry;
    } else if (entry.kind === 'delete') {
      of(entry.target).deleting = true;
    } else if (entry.kind === 'react') {
      of(entry.target).reacts.push(entry);
    }
  }
  return bySeq;
}

/**
 * The chips of a message: its reactions as the server last said, with
 * ours that are on their way added or taken back.
 */
function shownReactions(reactions, pending, me) {
  const mine = (user) => me !== null && user.id === me.id;
  const chips = (Array.isArray(reactions) ? reactions : []).map((r) => ({
    emoji: r.emoji,
    count: r.count,
    users: r.users ?? [],
    mine: (r.users ?? []).some(mine),
    pending: false,
  }));
  for (const entry of pending) {
    let chip = chips.find((c) => c.emoji === entry.emoji);
    if (!entry.remove && !chip?.mine) {
      if (!chip) {
        chip = { emoji: entry.emoji, count: 0, users: [], mine: false, pending: true };
        chips.push(chip);
      }
      Object.assign(chip, { count: chip.count + 1, mine: true, pending: true, users: [...chip.users, me] });
    } else if (entry.remove && chip?.mine) {
      Object.assign(chip, {
        count: chip.count - 1,
        mine: false,
        pending: true,
        users: chip.users.filter((u) => !mine(u)),
      });
    }
  }
  return chips.filter((c) => c.count > 0);
}

function confirmedItem(message, { me, isOwn, canChange, myIds = new Set(), names = [] }, changes, pinned, editing) {
  const own = isOwn(message);
  const deleted = message.deleted === true;
  const edit = deleted ? null : changes?.edit;
  const deleting = !deleted && changes?.deleting === true;
  let change = '';
  if (deleting) change = 'Deleting…';
  else if (edit) change = 'Saving…';
  return {
    id: message.id,
    seq: message.seq,
    ts: message.ts,
    // A deletion leaves a tombstone in its place.
    text: deleted ? 'message deleted' : edit ? edit.text : message.text,
    // Who an `@name` in the text can be, to show them as mentions; "me"
    // only where the server found the user mentioned.
    mentions: deleted
      ? null
      : mentionable(edit ? edit.text : message.text, names, mentionsOneOf(message, myIds) ? me?.name ?? null : null),
    mentionsMe: !deleted && !own && mentionsOneOf(message, myIds),
    deleted,
    deleting,
    editedAt: edit ? message.edited_at ?? 0 : message.edited_at ?? null,
    edited: !deleted && (edit !== null && edit !== undefined || Number.isInteger(message.edited_at)),
    replyTo: Number.isInteger(message.reply_to) ? message.reply_to : null,
    quote: message.quote ?? null,
    reactions: deleted ? [] : shownReactions(message.reactions, changes?.reacts ?? [], me),
    pinned: pinned.has(message.seq),
    from: message.from,
    own,
    canChange: !deleting && canChange(message),
    editing: editing?.seq === message.seq,
    editProblem: editing?.seq === message.seq ? editing.problem : '',
    me,
    // Own messages group together whatever user id they were sent under.
    authorKey: own ? 'me' : message.from.id,
    state: own ? 'sent' : '',
    change,
    notice: changes?.failedEdit && !deleted ? changes.failedEdit.notice : '',
    failedEdit: deleted ? null : changes?.failedEdit ?? null,
    // Sending the same edit again cannot get past these.
    retryable: changes?.failedEdit ? !['too_long', 'forbidden', 'not_found'].includes(changes.failedEdit.code) : false,
    unquotable: false,
  };
}

function pendingItem(entry, room, { me, online }) {
  let notice = entry.notice;
  if (entry.state === 'queued' && !online) notice = 'Waiting for the connection…';
  // A reply restored after a reload may quote a message not loaded: no quote until sent.
  const original = entry.replyTo ? room.message(entry.replyTo) : null;
  return {
    id: entry.id,
    seq: null,
    ts: entry.createdAt,
    text: entry.text,
    mentions: null,
    mentionsMe: false,
    deleted: false,
    deleting: false,
    editedAt: null,
    edited: false,
    replyTo: original ? entry.replyTo : null,
    quote: original
      ? { from: original.from, text: quotedText(original.text), ...(original.deleted ? { deleted: true } : {}) }
      : null,
    reactions: [],
    pinned: false,
    from: me ?? { id: '', name: '' },
    own: true,
    canChange: false,
    editing: false,
    editProblem: '',
    me,
    authorKey: 'me',
    state: entry.state === 'failed' ? 'failed' : 'pending',
    change: '',
    notice,
    failedEdit: null,
    // Sending the same text again cannot get past "too long", nor a reply
    // to a message that is gone (but it can go without its quote).
    retryable: entry.code !== 'too_long' && !(entry.code === 'not_found' && entry.replyTo),
    unquotable: entry.code === 'not_found' && Boolean(entry.replyTo),
  };
}

function itemSig(item) {
  const { me, from, failedEdit, ...shown } = item;
  return JSON.stringify([shown, from.name, me?.id ?? null, failedEdit?.id ?? null]);
}

function messageNode(item, editing) {
  const time = h('time', { datetime: new Date(item.ts).toISOString(), title: formatFullTime(item.ts) }, formatTime(item.ts));
  const classes = [
    'message',
    item.own ? 'own' : '',
    item.state,
    item.deleted ? 'deleted' : '',
    item.change ? 'changing' : '',
    item.pinned ? 'pinned' : '',
    item.editing ? 'editing' : '',
    item.mentionsMe ? 'mentions-me' : '',
  ];
  // A <div>, not a <p>: it may hold blocks of code.
  const text = h('div', { class: 'text', dir: 'auto' }, markup(item.text, mentionNodes(item.mentions)));
  const el = h(
    'article',
    {
      class: classes.filter(Boolean).join(' '),
      tabindex: '-1',
      'aria-label': item.seq === null ? null : label(item, text.textContent),
      dataset: { id: item.id, state: item.state || 'received', ...(item.seq === null ? {} : { seq: item.seq }) },
    },
    item.own ? null : avatar(item.from),
    h(
      'div',
      { class: 'message-body' },
      // First, so that Tab goes from a message to its actions.
      actionBar(item),
      h(
        'div',
        { class: 'message-meta' },
        h('span', { class: 'author', dir: 'auto' }, item.own ? 'You' : item.from.name),
        item.own ? null : time,
      ),
      item.editing
        ? editorNode(item, editing)
        : h(
          'div',
          { class: 'bubble', title: formatFullTime(item.ts) },
          quoteNode(item),
          text,
          marks(item),
        ),
      reactionsNode(item),
      item.own ? statusLine(item, time) : null,
      item.state === 'failed' ? problem(item) : null,
      item.failedEdit ? editProblem(item) : null,
    ),
  );
  if (!item.own) paintPerson(el, item.from.id);
  // Controls join the tab order with their message (MessageList.setCurrent).
  for (const control of el.querySelectorAll(CONTROLS)) control.tabIndex = -1;
  return el;
}

/**
 * The names `text` may mention (those written after an `@`), and mine:
 * only these, so that a message is drawn again when someone it names
 * comes or goes, not whenever anyone does. Null when it names no one.
 */
function mentionable(text, names, me) {
  if (!text.includes('@')) return null;
  const folded = text.toLowerCase();
  const named = names.filter((name) => folded.includes(`@${name.toLowerCase()}`));
  return named.length > 0 ? { names: named, me } : null;
}

/** How plain text of a message shows: its `@name`s in spans of their own, when it can mention anyone. */
function mentionNodes(mentions) {
  if (!mentions) return undefined;
  return (string) => {
    const parts = textParts(string, mentions.names, mentions.me);
    return parts ? partNodes(parts) : [string];
  };
}

/** What a screen reader says for a message when it gets focus; `shown`: its text without the marks. */
function label(item, shown) {
  const parts = [`${item.own ? 'You' : item.from.name}, ${formatTime(item.ts)}`];
  if (item.quote) parts.push(`replying to ${item.quote.from.name}`);
  if (item.mentionsMe) parts.push('mentions you');
  parts.push(shown);
  if (item.edited) parts.push('edited');
  if (item.pinned) parts.push('pinned');
  if (item.reactions.length) {
    parts.push(`reactions: ${item.reactions.map((r) => `${r.emoji} ${r.count}`).join(', ')}`);
  }
  return parts.join('. ');
}

function avatar(user) {
  return h('div', { class: 'avatar', 'aria-hidden': 'true' }, initial(user.name || '?'));
}

/** Reply, react, and for one's own messages edit and delete. */
function actionBar(item) {
  if (item.seq === null || item.deleted || item.deleting || item.editing) return null;
  const who = item.own ? 'your message' : `the message from ${item.from.name}`;
  return h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': `Actions on ${who}` },
    actionButton('reply', 'Reply', ICONS.reply),
    actionButton('react', 'Add reaction', ICONS.react, { 'aria-haspopup': 'menu', 'aria-expanded': 'false' }),
    item.canChange ? actionButton('start-edit', 'Edit', ICONS.edit) : null,
    item.canChange ? actionButton('delete', 'Delete', ICONS.delete) : null,
  );
}

function actionButton(action, name, paths, props = {}) {
  return h(
    'button',
    { type: 'button', class: 'action', dataset: { action }, 'aria-label': name, title: name, ...props },
    icon(paths),
  );
}

/** The start of the message a reply answers; a button that shows the original. */
function quoteNode(item) {
  if (item.replyTo === null) return null;
  const quote = item.quote;
  if (!quote) {
    return h('div', { class: 'quote unavailable' }, h('span', { class: 'quote-text' }, 'Reply to a message no longer kept'));
  }
  const text = quote.deleted ? 'message deleted' : quote.text;
  const el = h(
    'button',
    {
      type: 'button',
      class: `quote${quote.deleted ? ' deleted' : ''}`,
      dataset: { action: 'jump', seq: item.replyTo },
      'aria-label': `Replying to ${quote.from.name}: ${text}. Show the original`,
    },
    h('bdi', { class: 'quote-author' }, quote.from.name),
    h('span', { class: 'quote-text', dir: 'auto' }, text),
  );
  paintPerson(el, quote.from.id);
  return el;
}

/** "(edited)" and "Pinned" under a message's text. */
function marks(item) {
  if (!item.edited && !item.pinned) return null;
  return h(
    'div',
    { class: 'marks' },
    item.pinned ? h('span', { class: 'pinned-mark' }, icon(ICONS.pin), 'Pinned') : null,
    item.edited
      ? h(
        'span',
        { class: 'edited-mark', title: item.editedAt ? `Edited ${formatFullTime(item.editedAt)}` : 'Edited' },
        '(edited)',
      )
      : null,
  );
}

function editorNode(item, editing) {
  const hint = `edit-hint-${item.seq}`;
  // Deleted meanwhile: nothing to save to, but the text is not lost.
  const problem = item.deleted ? 'This message was deleted meanwhile.' : item.editProblem;
  return h(
    'div',
    { class: 'editor' },
    editing.input,
    h(
      'div',
      { class: 'editor-foot' },
      problem
        ? h('span', { class: 'editor-problem', id: hint, role: 'alert' }, problem)
        : h('span', { class: 'editor-hint', id: hint }, 'Enter to save · Esc to cancel'),
      h('button', { type: 'button', class: 'button small', dataset: { action: 'cancel-edit' } }, 'Cancel'),
      item.deleted
        ? h('button', { type: 'button', class: 'button small primary', dataset: { action: 'edit-as-new' } }, 'Send as a new message')
        : h('button', { type: 'button', class: 'button small primary', dataset: { action: 'save-edit' } }, 'Save'),
    ),
  );
}

/** Reaction chips: emoji and count; pressed when one of them is ours. */
function reactionsNode(item) {
  if (item.reactions.length === 0) return null;
  return h(
    'div',
    { class: 'reactions', role: 'group', 'aria-label': 'Reactions' },
    item.reactions.map((reaction) => {
      const who = reactors(reaction, item.me);
      return h(
        'button',
        {
          type: 'button',
          class: `chip${reaction.mine ? ' mine' : ''}${reaction.pending ? ' pending' : ''}`,
          dataset: { action: 'reaction', emoji: reaction.emoji },
          'aria-pressed': String(reaction.mine),
          'aria-label': `${reaction.emoji} ${reaction.count}: ${who}`,
          title: `${who} reacted with ${reaction.emoji}`,
        },
        h('span', { class: 'chip-emoji', 'aria-hidden': 'true' }, reaction.emoji),
        h('span', { class: 'chip-count', 'aria-hidden': 'true' }, String(reaction.count)),
      );
    }),
  );
}

/** "alice, bob and you", "alice and 12 more": who reacted, for a tooltip. */
function reactors(reaction, me) {
  const names = reaction.users.slice(0, NAMES_SHOWN).map((u) => (me !== null && u.id === me.id ? 'you' : u.name));
  const more = reaction.count - names.length;
  if (more > 0) names.push(`${more} more`);
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

function statusLine(item, time) {
  let state;
  if (item.change) state = h('span', { class: 'state pending' }, item.change);
  else if (item.state === 'sent') state = h('span', { class: 'state sent' }, '✓ Sent');
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
      item.unquotable
        ? h(
          'button',
          { type: 'button', class: 'link', dataset: { action: 'retryWithoutQuote', id: item.id } },
          'Send without quote',
        )
        : null,
      h('button', { type: 'button', class: 'link', dataset: { action: 'edit', id: item.id } }, 'Edit'),
      h('button', { type: 'button', class: 'link', dataset: { action: 'discard', id: item.id } }, 'Discard'),
    ),
  );
}

/** An edit the server refused: the text is kept, to try again, change or drop. */
function editProblem(item) {
  const { id, text } = item.failedEdit;
  return h(
    'div',
    { class: 'problem', role: 'alert' },
    h('span', {}, item.notice, ' ', h('q', { class: 'problem-text', dir: 'auto' }, text)),
    h(
      'span',
      { class: 'problem-actions' },
      item.retryable ? h('button', { type: 'button', class: 'link', dataset: { action: 'retry', id } }, 'Retry') : null,
      item.canChange
        ? h('button', { type: 'button', class: 'link', dataset: { action: 'edit-again', id } }, 'Edit')
        : h('button', { type: 'button', class: 'link', dataset: { action: 'failed-edit-as-new', id } }, 'Send as a new message'),
      h('button', { type: 'button', class: 'link', dataset: { action: 'discard', id } }, 'Discard'),
    ),
  );
}

function topSig(room, label) {
  return [room.name, label.sigil, label.name, room.loadingOlder, room.olderError, room.hasOlder].join('\u0000');
}

/** `label`: what the room is called ({sigil, name}: "#general", "@bob" for a direct message). */
function topNode(room, label) {
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
    h('strong', {}, label.sigil, h('bdi', {}, label.name)),
    h('span', {}, label.sigil === '@' ? 'This is the very beginning of your direct messages.' : 'This is the very beginning of the room.'),
  );
}
