// Client-side copies of the server's rules (crates/protocol/src/validate.rs),
// so a bad value is explained before anything is sent. The server stays the
// judge: for rooms and text the page shows the server's own error instead.

const MAX_NAME_CHARS = 64;

/** Length as the server counts it: Unicode scalar values. */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** "U+202E": how the server names a character in its refusals. */
function codePoint(char) {
  return `U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * The server refuses a bad display name at the WebSocket upgrade with HTTP
 * 400, which a browser cannot read, so the page must check it itself.
 * Returns why `name` is not allowed, or null when it is.
 */
export function displayNameProblem(name) {
  const n = charCount(name);
  if (n === 0) return 'Name must not be empty.';
  if (n > MAX_NAME_CHARS) return `Name must be at most ${MAX_NAME_CHARS} characters (this one has ${n}).`;
  const hidden = /[\p{Cc}\p{Cf}]/u.exec(name);
  if (hidden) {
    const kind = /\p{Cc}/u.test(hidden[0]) ? 'a control character' : 'a format character';
    return `Name contains ${codePoint(hidden[0])} (${kind}), which is invisible or reorders the text around it.`;
  }
  if (/^\s|\s$/u.test(name)) return 'Name must not start or end with a space.';
  return null;
}

const MAX_QUERY_CHARS = 200;
const MAX_QUERY_WORDS = 8;

/** The words of a search query, as the server splits them: at whitespace. */
export function searchWords(query) {
  return query.split(/\s+/u).filter(Boolean);
}

/**
 * Why the server would refuse `query` as a search (validate::search_words),
 * or null. An empty query is not a problem: it is no search at all.
 */
export function searchProblem(query) {
  const n = charCount(query);
  if (n > MAX_QUERY_CHARS) return `Too long: a search is at most ${MAX_QUERY_CHARS} characters (this one has ${n}).`;
  const words = searchWords(query).length;
  if (words > MAX_QUERY_WORDS) return `Too many words: a search has at most ${MAX_QUERY_WORDS} (this one has ${words}).`;
  return null;
}
