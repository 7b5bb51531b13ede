// People on the page: how a room is labelled ("#general", "@bob"), and
// `@name` mentions in message text, found by the same rules as the server's
// `mentioned` so the page highlights what the server counted. Direct-message
// room names are the client library's (`isDm`, `dmRoom`, `dmPeer`).

import { dmPeer, isDm } from '../chat-client/index.js';

/**
 * What the page calls a room: `{ sigil, name }`, "#" and the room's name,
 * or for a direct message "@" and the other person's name (from `rooms`,
 * `room_added` or `dm`; until one came, from the members or messages seen).
 */
export function roomLabel(room, myIds) {
  if (!isDm(room.name)) return { sigil: '#', name: room.name };
  if (room.dmWith?.name) return { sigil: '@', name: room.dmWith.name };
  const peer = [...myIds].map((id) => dmPeer(room.name, id)).find((id) => id !== null);
  const seen = room.members.get(peer) ?? room.sorted().find((m) => m.from?.id === peer)?.from;
  return { sigil: '@', name: seen?.name ?? 'direct message' };
}

/** "#general", "@bob": a room's label as one string (titles, placeholders). */
export function labelText(room, myIds) {
  const { sigil, name } = roomLabel(room, myIds);
  return `${sigil}${name}`;
}

// The server's word characters: Rust's `char::is_alphanumeric` and `_`.
const WORD = /[\p{Alphabetic}\p{N}_]/u;

function isWordChar(c) {
  return c !== undefined && WORD.test(c);
}

/** Whether the text after a name goes on with more of a name (`@bob.smith` is not `@bob`). */
function continuesAName(rest) {
  const [first, second] = Array.from(rest.slice(0, 4));
  if (isWordChar(first)) return true;
  return (first === '.' || first === '-') && isWordChar(second);
}

/** Whether the `@` at index `at` of `text` starts a mention (it is not inside a word: me@example.com). */
function startsMention(text, at) {
  return text[at] === '@' && !isWordChar(Array.from(text.slice(Math.max(0, at - 2), at)).at(-1));
}

/**
 * `text` cut into plain strings and the `@name`s in it that name one of
 * `names` (the longest that fits, in any case), as `{ mention, name }`
 * with `mention` the text as written. A name must be followed by no more
 * of a name, as the server decides.
 */
export function mentionParts(text, names) {
  if (!text.includes('@') || names.length === 0) return [text];
  const byLength = [...new Set(names)].filter(Boolean).sort((a, b) => b.length - a.length);
  const parts = [];
  let plainFrom = 0;
  for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
    if (at < plainFrom || !startsMention(text, at)) continue;
    const after = text.slice(at + 1);
    const name = byLength.find(
      (n) => after.slice(0, n.length).toLowerCase() === n.toLowerCase() && !continuesAName(after.slice(n.length)),
    );
    if (!name) continue;
    if (at > plainFrom) parts.push(text.slice(plainFrom, at));
    parts.push({ mention: text.slice(at, at + 1 + name.length), name });
    plainFrom = at + 1 + name.length;
  }
  if (plainFrom < text.length) parts.push(text.slice(plainFrom));
  return parts;
}

/**
 * The `@` being typed just before `caret` in `text`, for completing a
 * name: `{ start, query }` (start: the index of the `@`), or null when the
 * caret is not in one.
 */
export function mentionQuery(text, caret) {
  const before = text.slice(0, caret);
  const at = before.lastIndexOf('@');
  if (at === -1 || !startsMention(before, at)) return null;
  const query = before.slice(at + 1);
  // Names may hold spaces ("Ann Lee"), not line breaks; a long run is prose.
  if (/[\n@]/.test(query) || query.length > 64) return null;
  return { start: at, query };
}
