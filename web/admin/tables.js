// The rooms and nodes tables. Every value goes in as text, never as HTML.

import { formatValue } from './charts.js';

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

const dateTime = (ts) => new Date(ts).toLocaleString();

/** How long ago `ts` was, in words short enough for a table. */
export function ago(ts, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - ts) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

export function renderRooms(table, empty, rooms) {
  const body = table.tBodies[0];
  body.replaceChildren(
    ...rooms.map((room) => {
      const row = document.createElement('tr');
      row.dataset.room = room.room;
      const name = document.createElement('th');
      name.scope = 'row';
      name.textContent = room.room;
      row.append(name);
      cell(row, String(room.members), 'num');
      const more = room.members - room.names.length;
      cell(row, room.names.join(', ') + (more > 0 ? ` and ${more} more` : ''), 'names');
      cell(row, formatValue(room.messages_per_sec), 'num');
      cell(row, String(room.seq), 'num');
      return row;
    }),
  );
  empty.hidden = rooms.length > 0;
}

export function renderNodes(table, nodes, self) {
  const body = table.tBodies[0];
  body.replaceChildren(
    ...nodes.map((node) => {
      const row = document.createElement('tr');
      row.dataset.node = node.id;
      const id = document.createElement('th');
      id.scope = 'row';
      id.textContent = node.id + (node.id === self ? ' (this node)' : '');
      row.append(id);
      const state = node.stale ? 'gone' : node.ready ? 'ready' : 'not ready';
      const health = cell(row, '');
      const badge = document.createElement('span');
      badge.className = `health ${node.stale ? 'stale' : node.ready ? 'ok' : 'bad'}`;
      badge.textContent = state;
      health.append(badge);
      if (!node.ready && !node.stale) health.append(document.createTextNode(` ${node.health}`));
      if (node.stale) health.append(document.createTextNode(' (no heartbeat)'));
      cell(row, node.address);
      cell(row, String(node.connections), 'num');
      cell(row, node.version);
      cell(row, dateTime(node.started));
      cell(row, ago(node.heard));
      return row;
    }),
  );
}

/** The bans table; `lift(ban)` is called when its button is pressed. */
export function renderBans(table, empty, bans, lift) {
  const body = table.tBodies[0];
  body.replaceChildren(
    ...bans.map((ban) => {
      const row = document.createElement('tr');
      row.dataset.user = ban.user;
      row.dataset.room = ban.room ?? '';
      const user = document.createElement('th');
      user.scope = 'row';
      user.textContent = ban.user;
      row.append(user);
      cell(row, ban.room ?? 'whole server', ban.room ? '' : 'muted');
      cell(row, ban.reason ?? '–');
      cell(row, dateTime(ban.ts));
      const action = cell(row, '');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'button small ghost';
      button.textContent = 'Lift';
      button.setAttribute('aria-label', `Lift the ban of ${ban.user} ${ban.room ? `from ${ban.room}` : 'from the server'}`);
      button.addEventListener('click', () => lift(ban));
      action.append(button);
      return row;
    }),
  );
  empty.hidden = bans.length > 0;
}
