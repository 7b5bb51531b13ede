// The page: binds the controls of index.html to the client and renders the
// store into them, at most once per animation frame.

import { isDm } from '../../chat-client/index.js';
import { describeJoinError } from '../client.js';
import { h, setText, showError } from '../dom.js';
import { isolated } from '../format.js';
import { roomLabel } from '../people.js';
import { remember } from '../storage.js';
import { charCount, displayNameProblem } from '../validate.js';
import { MentionCompleter } from './complete.js';
import { DirectoryDialog } from './directory.js';
import { MemberList } from './members.js';
import { MessageList } from './messages.js';
import { DeleteDialog, Notices } from './notices.js';
import { Notifier } from './notify.js';
import { PinnedBar } from './pins.js';
import { SearchPanel } from './search.js';
import { RoomList } from './sidebar.js';
import { mentionableNames, UnreadDivider } from './unread.js';

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
    this.dms = new RoomList($('dm-list'), (name) => this.showRoom(name), { dms: true });
    this.el.dmList = $('dm-list');
    this.el.dmsTitle = $('dms-title');
    this.el.jumpCount = $('jump-count');
    this.members = new MemberList($('member-list'), $('typing'), (user) => this.openDm(user));
    this.divider = new UnreadDivider();
    /** The room the user is reading right now (on screen, at its end), or null. */
    this.reading = null;
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
      scrolled: () => this.checkReading(),
    });
    this.completer = new MentionCompleter(this.el.messageInput, $('mention-list'), () => this.mentionCandidates());
    this.directory = new DirectoryDialog($('directory-dialog'), store, client, {
      onJoin: (name) => this.openRoom(name),
    });
    $('browse-button').addEventListener('click', () => {
      this.closeDrawers();
      this.directory.show();
    });
    this.notifier = new Notifier(store, {
      button: $('notify-button'),
      hint: $('notify-hint'),
      onOpen: (name) => select(name),
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
      this.placeDivider();
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
    el.statusRetry.addEventListener('click', () => client.retryNow());

    for (const drawer of this.drawers) drawer.button.addEventListener('click', () => this.toggleDrawer(drawer));
    el.scrim.addEventListener('click', () => this.closeDrawers());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeDrawers();
    });
    // Coming back to the tab or the window counts as reading the room on
    // screen; leaving it stops that.
    document.addEventListener('visibilitychange', () => this.checkReading());
    window.addEventListener('focus', () => this.checkReading());
    window.addEventListener('blur', () => this.checkReading());
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
    const changed = name !== '' && name !== client.name;
    if (client.started ? changed || client.state === 'refused' : connect) client.connect(name);
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
    // Not queued (the server refuses the page): the text stays to send later.
    if (!client.send(store.active, text, { replyTo: original && !original.deleted ? replyTo : null })) return;
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

  /** Joins a room (or shows it, if joined) from the directory; focus goes to the composer. */
  async openRoom(name) {
    await this.client.join(name);
    this.closeDrawers();
    if (this.store.active === name) this.el.messageInput.focus();
  }

  /** Opens the direct-message room with `user` (from the member list). */
  async openDm(user) {
    try {
      await this.client.openDm(user);
      this.closeDrawers();
      this.el.messageInput.focus();
    } catch (error) {
      this.notices.show(`Could not open a direct message with ${user.name}: ${error.message}.`);
    }
  }

  /** Whom `@` completes to in the room on screen: its members, the user left out. */
  mentionCandidates() {
    const room = this.store.activeRoom;
    if (!room) return [];
    const people = new Map(room.members);
    if (room.dmWith) people.set(room.dmWith.id, room.dmWith);
    for (const id of this.store.myIds) people.delete(id);
    return [...people.values()];
  }

  /**
   * Whether the user is reading `room` now: it is on screen, the tab
   * visible and focused, the transcript at its end.
   */
  isReading(room) {
    return (
      room !== null &&
      room.joined &&
      this.messages.room === room &&
      this.messages.pinned &&
      document.visibilityState === 'visible' &&
      document.hasFocus()
    );
  }

  /**
   * Something that decides whether the user is reading changed (focus,
   * visibility, scrolling): if they now read what they had not, a frame
   * marks it read (and moves the counts); the title at once, as a
   * background tab draws no frames.
   */
  checkReading() {
    const room = this.store.activeRoom;
    if (this.isReading(room) && (this.reading !== room.name || room.lastRead < room.lastSeq)) this.schedule();
    this.renderTitle();
  }

  /** Asks first; the message is deleted for everyone. */
  async confirmDelete(name, seq) {
    const message = this.store.room(name)?.message(seq);
    if (!message || message.deleted) return;
    const confirmed = await this.deleteDialog.ask(message.text);
    // The dialog gives focus back to the button that opened it, which the
    // message's being drawn again while the dialog was open (an ack, a
    // reaction) may have replaced: then focus goes back to the message.
    if (!this.messages.log.contains(document.activeElement)) {
      this.messages.focusIn(message.id, confirmed ? null : '[data-action="delete"]');
    }
    if (confirmed) this.client.remove(name, seq);
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
    // The composer shows the room's draft at once, not at the next frame:
    // what is typed right after the switch belongs to this room.
    this.switchDraft(this.store.activeRoom);
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
    const online = client.online;
    el.messageInput.disabled = !room;
    el.sendButton.disabled = !room;
    const label = room ? roomLabel(room, store.myIds) : null;
    el.messageInput.placeholder = room ? `Message ${label.sigil}${isolated(label.name)}` : 'Join a room to write';
    this.switchDraft(room);

    el.app.classList.toggle('no-room', !room);
    el.empty.hidden = Boolean(room);
    this.renderStatus();
    this.members.render(room, store);
    this.pins.render(room);
    this.search.update();
    this.renderTranscript(room, online);
    this.renderRooms();
    this.renderReply(room);

    const title = room ? `${label.sigil}${label.name}` : 'Welcome';
    if (el.title.textContent !== title) {
      // The room's name in a <bdi>: its direction stays its own.
      el.title.replaceChildren(...(room ? [label.sigil, h('bdi', {}, label.name)] : [title]));
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

  /**
   * The transcript, with "New messages" where the user's read marker was,
   * and `@name`s marked; then, if the user is reading it, the room is
   * marked read (the divider is placed before, so it stays).
   */
  renderTranscript(room, online) {
    const { store } = this;
    const divider = this.placeDivider();
    this.messages.render(room, {
      me: store.me,
      online,
      isOwn: (m) => store.isOwn(m),
      canChange: (m) => store.canChange(m),
      myIds: store.myIds,
      names: room ? mentionableNames(room, store.me) : [],
      divider,
      label: room ? roomLabel(room, store.myIds) : null,
    });
    this.reading = this.isReading(room) ? room.name : null;
    if (this.reading !== null) this.client.markRead(room.name);
    // What came while the user was scrolled up: on the Latest button.
    const below = room && this.reading === null ? store.unreadOf(room).unread : 0;
    this.el.jumpCount.hidden = below === 0;
    this.el.jumpCount.replaceChildren(
      below > 99 ? '99+' : String(below),
      h('span', { class: 'visually-hidden' }, below === 1 ? ' new message' : ' new messages'),
    );
  }

  /**
   * Decides where "New messages" goes in the room on screen, before
   * anything in it is marked read. Also run on every change of the store,
   * not only in a drawn frame: a background tab draws none, and what
   * arrives there must be under the divider when the user comes back.
   */
  placeDivider() {
    const room = this.store.activeRoom;
    const unread = room ? this.store.unreadOf(room).unread : 0;
    return this.divider.update(room, unread, this.isReading(room));
  }

  /** The sidebar's rooms and direct messages, each with its counts. */
  renderRooms() {
    const { store, el } = this;
    this.rooms.render(store, this.reading);
    const dms = this.dms.render(store, this.reading);
    el.dmList.hidden = dms === 0;
    el.dmsTitle.hidden = dms === 0;
    el.roomsHint.hidden = store.rooms.size > dms;
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
    if (isDm(room.name)) return 'Direct message';
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
    const { client, el } = this;
    const { state, retryAt } = client;
    clearTimeout(this.statusTimer);
    let text = '';
    let retry = false;
    if (state === 'connecting' || state === 'reconnecting') {
      text = state === 'connecting' ? 'Connecting…' : 'Reconnecting…';
      const seconds = retryAt === null ? 0 : Math.ceil((retryAt - Date.now()) / 1000);
      if (seconds > 1) {
        text += ` Next try in ${seconds} s.`;
        retry = true;
      }
      // The countdown ticks on its own, and picks up the next wait.
      this.statusTimer = setTimeout(() => this.renderStatus(), 500);
    } else if (state === 'asleep') {
      text = 'Disconnected after a while without activity.';
      retry = true;
    } else if (state === 'refused') {
      text = client.refusalText;
      showError(el.nameError, text);
    }
    setText(el.statusText, text);
    el.status.hidden = !text;
    el.status.dataset.state = state;
    el.statusRetry.hidden = !retry;
    const dotTitle = {
      idle: 'Not connected',
      connecting: 'Connecting',
      online: 'Connected',
      reconnecting: 'Reconnecting',
      asleep: 'Not connected',
      refused: 'Not connected',
    }[state];
    el.dot.title = dotTitle;
    el.dot.dataset.state = state;
  }

  /**
   * "(3) #general · Chat": the count is of what is addressed to the user,
   * unread mentions and unread direct messages (Store.attentionCount), not
   * every unread message, so a busy room does not make the tab shout.
   */
  renderTitle() {
    const room = this.store.activeRoom;
    const count = this.store.attentionCount(this.isReading(room) ? room.name : null);
    let base = 'Chat';
    if (room) {
      const { sigil, name } = roomLabel(room, this.store.myIds);
      base = `${sigil}${isolated(name)} · Chat`;
    }
    const title = count ? `(${count > 99 ? '99+' : count}) ${base}` : base;
    if (document.title !== title) document.title = title;
  }
}
