// How times, days and people look on the page.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const dayWithYearFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
});
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** 14:03, in the reader's locale and time zone. */
export function formatTime(ts) {
  return timeFormat.format(ts);
}

/** The full date and time, for tooltips. */
export function formatFullTime(ts) {
  return fullFormat.format(ts);
}

const shortDayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const shortDateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });

/**
 * When, briefly, for a message shown out of its transcript (a search
 * result): "14:03" today, "Yesterday 14:03", "5 Dec 14:03" this year,
 * "5 Dec 2025" before.
 */
export function formatWhen(ts, now = Date.now()) {
  const key = dayKey(ts);
  if (key === dayKey(now)) return formatTime(ts);
  if (key === dayKey(now - 86_400_000)) return `Yesterday ${formatTime(ts)}`;
  if (new Date(ts).getFullYear() === new Date(now).getFullYear()) return `${shortDayFormat.format(ts)} ${formatTime(ts)}`;
  return shortDateFormat.format(ts);
}

/** A key that is equal for two timestamps on the same local day. */
export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** "Today", "Yesterday", or the date, for day separators. */
export function formatDay(ts, now = Date.now()) {
  const key = dayKey(ts);
  if (key === dayKey(now)) return 'Today';
  if (key === dayKey(now - 86_400_000)) return 'Yesterday';
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
  return (sameYear ? dayFormat : dayWithYearFormat).format(ts);
}

/**
 * The first character of a name as a person sees it (a whole emoji or
 * accented letter, not half of one), for avatars.
 */
export function initial(name) {
  for (const { segment } of graphemes.segment(name.trim())) return segment.toLocaleUpperCase();
  return '?';
}

/**
 * A stable hue per name, so the same person has the same colour in every
 * room, on every reload and after reconnecting (which changes the user id).
 */
export function hueOf(key) {
  let hash = 0;
  for (const ch of key) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

/**
 * "alice is typing…", "alice and bob are typing…", "4 people are typing…",
 * as parts: the fixed words as strings, each name as `{ name }`, so the
 * page can isolate names from the words around them (a right-to-left name
 * must not carry "is typing" along with it).
 */
export function typingLine(names) {
  const [a, b, c] = names.map((name) => ({ name }));
  if (names.length === 0) return [];
  if (names.length === 1) return [a, ' is typing…'];
  if (names.length === 2) return [a, ' and ', b, ' are typing…'];
  if (names.length === 3) return [a, ', ', b, ' and ', c, ' are typing…'];
  return [`${names.length} people are typing…`];
}

/**
 * `text` between a first-strong isolate and its pop (U+2068, U+2069), for
 * a name inside strings that cannot hold elements (an attribute, the
 * document title): its direction does not reorder what surrounds it.
 */
export function isolated(text) {
  return `\u2068${text}\u2069`;
}
