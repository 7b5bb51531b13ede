// The page: binds the controls of index.html to the client and renders the
// store into them, at most once per animation frame.

import { describeJoinError } from '../client.js';
import { h, setText, showError } from '../dom.js';
import { isolated } from '../format.js';
import { remember } from '../storage.js';
import { charCount, displayNameProblem } from '../validate.js';
import { MemberList } from './members.js';
import { MessageList } from './messages.js';
import { DeleteDialog, Notices } from './notices.js';
import { PinnedBar } from './pins.js';
import { SearchPanel } from './search.js';
import { RoomList } from './sidebar.js';

// The server's default text limit; the counter appears as it gets close.
const TEXT_LIMIT = 4000;
const COUNTER_FROM = 3500;

export class AppView {
  /**
   * name: the remembered display name, shown in the Name field; drafts:
   * the remembered unsent texts (room name → text).
   */
  constructor(store, client, { name, drafts }) {
    this.store = store;
    this.client = client;
    this.frame = 0;
    this.statusTimer = 0;
    /** room name → unsent text, kept while looking at another room and over reloads. */
    this.drafts = drafts;
    /** room name → seq of the message the next one sent there replies to. */
    this.replies = new Map();
    this.shownRoom = null;

    const $ = (id) => document.getElementById(id);
    this.el = {
      app: $('app'),
      nameForm: $('name-form'),
      nameInput: $('name-input'),
      nameError: $('name-error'),
      joinForm: $('join-form'),
      roomInput: $('room-input'),
      roomError: $('room-error'),
      dot: $('connection-dot'),
      roomsHint: $('rooms-hint'),
      menuButton: $('menu-button'),
      title: $('room-title'),
      subtitle: $('room-subtitle'),
      peopleButton: $('people-button'),
      peopleCount: $('people-count'),
      leaveButton: $('leave-button'),
      status: $('status'),
      statusText: $('status-text'),
      statusRetry: $('status-retry'),
      empty: $('empty'),
      composer: $('composer'),
      messageInput: $('message-input'),
      counter: $('counter'),
      sendButton: $('send-button'),
      replyBar: $('reply-bar'),
      replyAuthor: $('reply-author'),
      replyQuote: $('reply-quote'),
      replyCancel: $('reply-cancel'),
      scrim: $('scrim'),
    };

    /** The drawers of narrow screens: the class that opens each on #app, and the button that does. */
    this.drawers = [
      { open: 'sidebar-open', panel: $('sidebar'), button: this.el.menuButton },
      { open: 'members-open', panel: $('members-panel'), button: this.el.peopleButton },
    ];
    this.rooms = new RoomList($('room-list'), (name) => this.showRoom(name));
    this.members = new MemberList($('member-list'), $('typing'));
    this.messages = new MessageList($('log'), $('jump-button'), {
      loadOlder: (room) => client.loadOlder(room),
      retry: (room, id) => client.retry(room, id),
      discard: (room, id) => client.discard(room, id),
      edit: (room, id) => this.edit(room, id),
      retryWithoutQuote: (room, id) => client.retryWithoutQuote(room, id),
      reply: (room, seq) => this.startReply(room, seq),
      react: (room, seq, emoji, remove) => client.react(room, seq, emoji, remove),
      saveEdit: (room, seq, text) => client.edit(room, seq, text),
      remove: (room, seq) => this.confirmDelete(room, seq),
      jump: (room, seq) => this.jump(room, seq),
      compose: (text) => this.compose(text),
    });
    this.pins = new PinnedBar($('pins'), (seq) => {
      if (store.active !== null) this.jump(store.active, seq);
    });
    this.search = new SearchPanel(store, client, {
      onOpen: (room, seq) => this.openResult(room, seq),
      fallbackFocus: () => (this.el.messageInput.disabled ? $('log') : this.el.messageInput).focus(),
      closeDrawers: () => this.closeDrawers(),
    });
    this.notices = new Notices($('notices'));
    this.deleteDialog = new DeleteDialog($('delete-dialog'));
    store.addEventListener('notice', (event) => this.notices.show(event.detail.text));

    this.el.nameInput.value = name;
    this.bind();
    store.addEventListener('change', () => {
      // The title is what a background tab shows, and animation frames do
      // not run there: update it at once.
      this.renderTitle();
      this.schedule();
    });
    this.render();
  }

  bind() {
    const { el, client, store } = this;
    el.nameForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.applyName({ allowEmpty: false, connect: false });
    });
    el.nameInput.addEventListener('change', () => this.applyName({ allowEmpty: true, connect: false }));

    el.joinForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.join();
    });

    el.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    el.messageInput.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter is a new line; Enter that confirms an input
      // method's composition (Chinese, Japanese, …) is not a send.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.send();
      } else if (event.key === 'Escape' && store.active !== null && this.replies.has(store.active)) {
        this.cancelReply();
      }
    });
    el.replyCancel.addEventListener('click', () => this.cancelReply());
    el.messageInput.addEventListener('input', () => {
      this.fitComposer();
      this.saveDraft();
      if (el.messageInput.value.trim() && store.active) client.typing(store.active);
    });

    el.leaveButton.addEventListener('click', () => {
      const name = store.active;
      if (name === null) return;
      this.drafts.delete(name);
      remember.draft(name, '');
      this.replies.delete(name);
      this.messages.forget(name);
      client.leave(name);
    });
    el.statusRetry.addEventListener('click', () => client.connection.retryNow());

    for (const drawer of this.drawers) drawer.button.addEventListener('click', () => this.toggleDrawer(drawer));
    el.scrim.addEventListener('click', () => this.closeDrawers());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeDrawers();
    });
    document.addEventListener('visibilitychange', () => {
      // Coming back to the tab counts as reading the room on screen.
      if (document.visibilityState === 'visible' && store.active !== null) store.setActive(store.active);
    });
  }

  /**
   * Checks the Name field as the server would, showing why a name is not
   * allowed next to it. With `allowEmpty`, an empty field is fine: the
   * server then picks a guest name. Returns the name, or null.
   */
  checkName({ allowEmpty }) {
    const { nameInput, nameError } = this.el;
    const name = nameInput.value;
    const problem = name === '' && allowEmpty ? null : displayNameProblem(name);
    showError(nameError, problem);
    return problem ? null : name;
  }

  /**
   * Takes a new name: remembered, and used at once if connected (the name
   * is part of the connection, so that means reconnecting; every room is
   * resumed). `connect` also starts a connection that was never opened.
   */
  applyName({ allowEmpty, connect }) {
    const { client } = this;
    const name = this.checkName({ allowEmpty });
    if (name === null) return false;
    if (name !== '') remember.name(name);
    const { state } = client.connection;
    const changed = name !== '' && name !== client.connection.name;
    if (client.started ? changed || state === 'refused' : connect) client.connect(name);
    return true;
  }

  join() {
    const { el, client } = this;
    const typed = el.roomInput.value;
    // The page writes rooms as "#general": typed that way, it means "general".
    const room = typed.startsWith('#') ? typed.slice(1) : typed;
    if (room === '') {
      showError(el.roomError, 'Type the name of a room to join.');
      return;
    }
    if (!this.applyName({ allowEmpty: true, connect: true })) return;
    showError(el.roomError, '');
    client.join(room).then(
      () => {
        if (el.roomInput.value === typed) el.roomInput.value = '';
        this.closeDrawers();
        if (this.store.active === room) el.messageInput.focus();
      },
      (error) => {
        showError(el.roomError, describeJoinError(error));
        el.roomInput.focus();
      },
    );
  }

  send() {
    const { el, client, store } = this;
    const text = el.messageInput.value;
    if (!text.trim() || store.active === null) return;
    // A reply to a message deleted meanwhile goes as a plain message.
    const replyTo = this.replies.get(store.active) ?? null;
    const original = replyTo === null ? null : store.activeRoom?.message(replyTo);
    client.send(store.active, text, { replyTo: original && !original.deleted ? replyTo : null });
    el.messageInput.value = '';
    this.saveDraft();
    this.replies.delete(store.active);
    this.fitComposer();
    this.messages.scrollToBottom();
    this.schedule();
  }

  /** The next message sent in `name` answers message `seq`. */
  startReply(name, seq) {
    this.replies.set(name, seq);
    this.renderReply(this.store.activeRoom);
    this.el.messageInput.focus();
  }

  cancelReply() {
    if (this.store.active !== null) this.replies.delete(this.store.active);
    this.renderReply(this.store.activeRoom);
    this.el.messageInput.focus();
  }

  /** Asks first; the message is deleted for everyone. */
  async confirmDelete(name, seq) {
    const message = this.store.room(name)?.message(seq);
    if (!message || message.deleted) return;
    if (await this.deleteDialog.ask(message.text)) this.client.remove(name, seq);
  }

  /**
   * Shows message `seq` of room `name` in the transcript (a pin, a quote),
   * loading older history up to it first if need be.
   */
  async jump(name, seq) {
    const room = this.store.room(name);
    if (!room) return;
    if (!room.messages.has(seq) && !(await this.client.loadUntil(name, seq))) {
      this.notices.show('That message is not available: it is older than the history this server keeps, or the connection is down.');
      return;
    }
    if (this.store.active !== name) return;
    this.render();
    this.messages.jumpTo(seq);
  }

  /**
   * Shows a search result: its room (joined first if the page is not in
   * it), then the message, as a jump does.
   */
  async openResult(name, seq) {
    this.closeDrawers();
    try {
      await this.client.join(name);
    } catch (error) {
      this.notices.show(describeJoinError(error));
      this.search.fallbackFocus();
      return;
    }
    await this.jump(name, seq);
    if (!this.el.app.contains(document.activeElement) && this.store.active === name) this.search.fallbackFocus();
  }

  /** Adds `text` to what the composer holds (an edit that can no longer be saved). */
  compose(text) {
    const input = this.el.messageInput;
    input.value = input.value ? `${input.value}\n${text}` : text;
    this.fitComposer();
    this.saveDraft();
    input.focus();
  }

  /** Puts a failed message back into the composer to change it. */
  edit(name, id) {
    const entry = this.store.room(name)?.pending.get(id);
    if (!entry) return;
    this.client.discard(name, id);
    this.el.messageInput.value = entry.text;
    this.fitComposer();
    this.saveDraft();
    this.el.messageInput.focus();
  }

  /**
   * Shows room `name`, ready to write in. (The button that chose it is
   * rebuilt as the active one: left there, focus would fall to the page.)
   */
  showRoom(name) {
    this.store.setActive(name);
    this.closeDrawers();
    this.el.messageInput.focus();
  }

  fitComposer() {
    const { messageInput, counter } = this.el;
    messageInput.style.height = 'auto';
    messageInput.style.height = `${messageInput.scrollHeight}px`;
    const n = charCount(messageInput.value);
    counter.hidden = n < COUNTER_FROM;
    setText(counter, `${n} / ${TEXT_LIMIT}`);
    counter.classList.toggle('over', n > TEXT_LIMIT);
  }

  /** Opens a drawer (closing the other), or closes it. */
  toggleDrawer(drawer) {
    const open = !this.el.app.classList.contains(drawer.open);
    this.closeDrawers();
    if (!open) return;
    this.el.app.classList.add(drawer.open);
    this.renderPanels();
    // Into the drawer, so that Tab goes through it and Escape closes it from there.
    const into = drawer.panel.querySelector('.room[aria-current]') ?? drawer.panel;
    into.focus();
  }

  /** Closes the drawers; focus that was in one goes back to the button that opened it. */
  closeDrawers() {
    const { app } = this.el;
    for (const { open, panel, button } of this.drawers) {
      if (!app.classList.contains(open)) continue;
      app.classList.remove(open);
      // A closed drawer is hidden, and would take focus with it to the page.
      if (panel.contains(document.activeElement) && button.getClientRects().length > 0) button.focus();
    }
    this.renderPanels();
  }

  renderPanels() {
    const { app, menuButton, peopleButton, scrim } = this.el;
    menuButton.setAttribute('aria-expanded', String(app.classList.contains('sidebar-open')));
    peopleButton.setAttribute('aria-expanded', String(app.classList.contains('members-open')));
    scrim.hidden = !app.classList.contains('sidebar-open') && !app.classList.contains('members-open');
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const { store, client, el } = this;
    const room = store.activeRoom;
    const online = client.connection.online;
    el.messageInput.disabled = !room;
    el.sendButton.disabled = !room;
    el.messageInput.placeholder = room ? `Message #${isolated(room.name)}` : 'Join a room to write';
    this.switchDraft(room);

    el.app.classList.toggle('no-room', !room);
    el.empty.hidden = Boolean(room);
    this.renderStatus();
    this.rooms.render(store);
    el.roomsHint.hidden = store.rooms.size > 0;
    this.members.render(room, store);
    this.pins.render(room);
    this.search.update();
    this.messages.render(room, {
      me: store.me,
      online,
      isOwn: (m) => store.isOwn(m),
      canChange: (m) => store.canChange(m),
    });
    this.renderReply(room);

    const title = room ? `#${room.name}` : 'Welcome';
    if (el.title.textContent !== title) {
      // The room's name in a <bdi>: its direction stays its own.
      el.title.replaceChildren(...(room ? ['#', h('bdi', {}, room.name)] : [title]));
    }
    setText(el.subtitle, room ? this.subtitle(room) : 'Not in a room yet');
    el.leaveButton.hidden = !room;
    el.peopleButton.hidden = !room;
    setText(el.peopleCount, String(room?.members.size ?? 0));

    if (store.me && el.nameInput.value === '' && document.activeElement !== el.nameInput) {
      el.nameInput.value = store.me.name;
    }
    this.renderTitle();
  }

  /** "Replying to …" above the composer while a reply is being written. */
  renderReply(room) {
    const { replyBar, replyAuthor, replyQuote, messageInput } = this.el;
    const seq = room ? this.replies.get(room.name) : undefined;
    const original = seq === undefined ? null : room.message(seq);
    replyBar.hidden = !original;
    if (original) {
      setText(replyAuthor, original.from.name);
      setText(replyQuote, original.deleted ? 'message deleted' : original.text);
      messageInput.setAttribute('aria-describedby', 'reply-bar-text');
    } else {
      messageInput.removeAttribute('aria-describedby');
    }
  }

  subtitle(room) {
    if (!room.everJoined) return 'Joining…';
    if (!room.joined) return 'Offline: will catch up when reconnected';
    const n = room.members.size;
    return n === 1 ? '1 member: just you so far' : `${n} members`;
  }

  /** Shows the draft of the room shown, when it changes (saveDraft keeps them). */
  switchDraft(room) {
    const name = room?.name ?? null;
    if (name === this.shownRoom) return;
    this.el.messageInput.value = (name !== null && this.drafts.get(name)) || '';
    this.shownRoom = name;
    this.fitComposer();
  }

  /** Keeps what the composer holds as the draft of the room shown, here and over reloads. */
  saveDraft() {
    const name = this.shownRoom;
    if (name === null) return;
    const text = this.el.messageInput.value;
    if (text) this.drafts.set(name, text);
    else this.drafts.delete(name);
    remember.draft(name, text);
  }

  renderStatus() {
    const { connection } = this.client;
    const { el } = this;
    clearTimeout(this.statusTimer);
    let text = '';
    let retry = false;
    if (connection.state === 'connecting') {
      text = 'Connecting…';
    } else if (connection.state === 'reconnecting') {
      text = 'Reconnecting…';
      if (connection.retryAt !== null) {
        const seconds = Math.ceil((connection.retryAt - Date.now()) / 1000);
        if (seconds > 1) {
          text += ` Next try in ${seconds} s.`;
          retry = true;
        }
        // The countdown ticks on its own.
        this.statusTimer = setTimeout(() => this.renderStatus(), 500);
      }
    } else if (connection.state === 'refused') {
      text = connection.refusal;
      showError(el.nameError, connection.refusal);
    }
    setText(el.statusText, text);
    el.status.hidden = !text;
    el.status.dataset.state = connection.state;
    el.statusRetry.hidden = !retry;
    const dotTitle = {
      idle: 'Not connected',
      connecting: 'Connecting',
      online: 'Connected',
      reconnecting: 'Reconnecting',
      refused: 'Not connected',
    }[connection.state];
    el.dot.title = dotTitle;
    el.dot.dataset.state = connection.state;
  }

  renderTitle() {
    const unread = this.store.totalUnread;
    const room = this.store.active;
    const base = room === null ? 'Chat' : `#${isolated(room)} · Chat`;
    const title = unread ? `(${unread}) ${base}` : base;
    if (document.title !== title) document.title = title;
  }
}
