// The moderation panel: find a message by room and seq (and delete it),
// search, disconnect a user, ban a user from a room or the server and lift
// bans. Each action is one API call (docs/protocol.md §11); what it did,
// or why it was refused, is said in the status line.

import { api, seg } from './api.js';
import { renderBans } from './tables.js';

const $ = (id) => document.getElementById(id);

/** Asks in the confirm dialog; resolves true for Confirm. */
function confirmAction(text, action) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = action;
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const done = (answer) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      dialog.removeEventListener('cancel', no);
      dialog.close();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = (event) => {
      event?.preventDefault();
      done(false);
    };
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    dialog.addEventListener('cancel', no);
    dialog.showModal();
  });
}

function describe(message) {
  const item = document.createElement('article');
  item.className = 'entry' + (message.deleted ? ' deleted' : '');
  item.dataset.room = message.room;
  item.dataset.seq = String(message.seq);
  const head = document.createElement('p');
  head.className = 'meta';
  head.textContent = `${message.room} #${message.seq} · ${message.from.name} (${message.from.id}) · ${new Date(message.ts).toLocaleString()}`;
  const text = document.createElement('p');
  text.className = 'text';
  text.textContent = message.deleted ? 'Deleted.' : message.text;
  item.append(head, text);
  return item;
}

/** A button that lists every text the message had (its edits and deletion). */
function versionsButton(room, seq, fail) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'button small ghost';
  button.textContent = 'Versions';
  button.setAttribute('aria-expanded', 'false');
  const list = document.createElement('ol');
  list.className = 'versions';
  list.hidden = true;
  button.addEventListener('click', async () => {
    if (!list.hidden) {
      list.hidden = true;
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    let versions;
    try {
      versions = await api.get(`/api/rooms/${seg(room)}/messages/${seq}/versions`);
    } catch (error) {
      fail(error);
      return;
    }
    list.replaceChildren(
      ...versions.map((version) => {
        const li = document.createElement('li');
        const what = version.deleted ? 'deleted' : `“${version.text}”`;
        li.textContent = `#${version.seq} ${what} · ${version.from.name} · ${new Date(version.ts).toLocaleString()}`;
        return li;
      }),
    );
    list.hidden = false;
    button.setAttribute('aria-expanded', 'true');
  });
  const wrap = document.createElement('div');
  wrap.append(button, list);
  return wrap;
}

export function setUpModeration({ notify, fail }) {
  const found = $('found');

  async function show(room, seq) {
    found.replaceChildren();
    const page = await api.get(`/api/rooms/${seg(room)}/messages?after=${seq - 1}&limit=1`);
    const message = page.messages.find((m) => m.seq === seq);
    if (!message) {
      notify(`${room} has no message with seq ${seq} (never stored, purged, or a change such as an edit).`);
      return;
    }
    const item = describe(message);
    item.append(versionsButton(room, seq, fail));
    if (!message.deleted) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'button small danger';
      remove.textContent = 'Delete';
      remove.addEventListener('click', async () => {
        if (!(await confirmAction(`Delete message ${seq} of ${room} for everyone? It stays as a tombstone.`, 'Delete'))) return;
        try {
          await api.del(`/api/rooms/${seg(room)}/messages/${seq}`);
          notify(`Deleted message ${seq} of ${room}.`);
          await show(room, seq);
        } catch (error) {
          fail(error);
        }
      });
      item.append(remove);
    }
    found.append(item);
  }

  $('find-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const room = $('find-room').value.trim();
    const seq = Number($('find-seq').value.trim());
    if (!room || !Number.isSafeInteger(seq) || seq < 1) {
      notify('Give a room and a seq (a whole number from 1).', true);
      return;
    }
    try {
      await show(room, seq);
    } catch (error) {
      fail(error);
    }
  });

  $('search-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = $('search-q').value.trim();
    const room = $('search-room').value.trim();
    const results = $('search-results');
    if (!q) {
      notify('Type the words to search for.', true);
      return;
    }
    try {
      const params = new URLSearchParams({ q, limit: '20' });
      if (room) params.set('room', room);
      const answer = await api.get(`/api/search?${params}`);
      results.replaceChildren(
        ...answer.results.map((message) => {
          const li = document.createElement('li');
          li.append(describe(message));
          const open = document.createElement('button');
          open.type = 'button';
          open.className = 'button small ghost';
          open.textContent = 'Open';
          open.setAttribute('aria-label', `Open message ${message.seq} of ${message.room}`);
          open.addEventListener('click', () => {
            $('find-room').value = message.room;
            $('find-seq').value = String(message.seq);
            show(message.room, message.seq).catch(fail);
          });
          li.append(open);
          return li;
        }),
      );
      notify(answer.results.length ? `${answer.results.length} found${answer.next ? ' (the first ones)' : ''}.` : 'Nothing found.');
    } catch (error) {
      fail(error);
    }
  });

  $('disconnect-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const user = $('disconnect-user').value.trim();
    if (!user) {
      notify('Give the user id to disconnect.', true);
      return;
    }
    if (!(await confirmAction(`Close every connection of ${user} on this node? They may reconnect.`, 'Disconnect'))) return;
    try {
      const answer = await api.post(`/api/users/${seg(user)}/disconnect`);
      notify(`Disconnected ${answer.user}: ${answer.connections} connection${answer.connections === 1 ? '' : 's'} closed.`);
    } catch (error) {
      fail(error);
    }
  });

  async function loadBans() {
    const answer = await api.get('/api/bans');
    renderBans($('bans-table'), $('bans-empty'), answer.bans, lift);
  }

  async function lift(ban) {
    const where = ban.room ? `from ${ban.room}` : 'from the server';
    if (!(await confirmAction(`Lift the ban of ${ban.user} ${where}?`, 'Lift'))) return;
    try {
      await api.del(ban.room ? `/api/rooms/${seg(ban.room)}/bans/${seg(ban.user)}` : `/api/bans/${seg(ban.user)}`);
      notify(`Lifted the ban of ${ban.user} ${where}.`);
      await loadBans();
    } catch (error) {
      fail(error);
    }
  }

  $('ban-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const user = $('ban-user').value.trim();
    const room = $('ban-room').value.trim();
    const reason = $('ban-reason').value.trim();
    if (!user) {
      notify('Give the user id to ban.', true);
      return;
    }
    const where = room ? `from ${room}` : 'from the whole server';
    if (!(await confirmAction(`Ban ${user} ${where}? Their connections are told at once.`, 'Ban'))) return;
    try {
      const body = reason ? { reason } : {};
      await api.put(room ? `/api/rooms/${seg(room)}/bans/${seg(user)}` : `/api/bans/${seg(user)}`, body);
      notify(`Banned ${user} ${where}.`);
      await loadBans();
    } catch (error) {
      fail(error);
    }
  });

  return { loadBans };
}
