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

// The WCAG relative luminance a person's colour is given in light mode and
// in dark mode: a name in it has 4.5:1 or better against every surface it
// is shown on (style.css), and so has the initial on their avatar (white in
// light mode, near black in dark), with room to spare for rounding.
const LIGHT_TONE = 0.12;
const DARK_TONE = 0.32;

/** A 32-bit hash in which every character of `text` moves every bit. */
function hash32(text) {
  let hash = 0x811c9dc5;
  for (const ch of text) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193);
  // Murmur3's finaliser: ids that differ in one character ("u_1", "u_2")
  // land far apart, not on neighbouring hues.
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** `hsl(h s l)` as [r, g, b], 0–255; `s` and `l` from 0 to 1. */
function hslToRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const channel = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [channel(0), channel(8), channel(4)];
}

/** WCAG relative luminance of an sRGB colour. */
function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/**
 * The colour of hue `h` and saturation `s` whose luminance is `tone`:
 * its lightness found by halving, as a CSS colour. (Equal lightness is not
 * equal readability: a yellow must be far darker than a blue.)
 */
function toned(h, s, tone) {
  let low = 0;
  let high = 1;
  for (let step = 0; step < 16; step += 1) {
    const mid = (low + high) / 2;
    if (luminance(hslToRgb(h, s, mid)) < tone) low = mid;
    else high = mid;
  }
  return `rgb(${hslToRgb(h, s, (low + high) / 2).join(' ')})`;
}

/**
 * A person's colours, for light and dark mode, from their user id rather
 * than their name, so two people of the same name look different. (An
 * anonymous user gets a new id, so a new colour, on every connection.)
 * Hue and saturation come from a hash of the id; the lightness is what
 * keeps a name in that colour readable.
 */
function personColours(id) {
  const hash = hash32(id);
  const hue = hash % 360;
  const saturation = 0.45 + ((hash >>> 20) % 40) / 100;
  return { light: toned(hue, saturation, LIGHT_TONE), dark: toned(hue, saturation, DARK_TONE) };
}

/** Gives `el`, and what is inside it, the colours of user `id` (style.css uses them). */
export function paintPerson(el, id) {
  const { light, dark } = personColours(id);
  el.style.setProperty('--person-light', light);
  el.style.setProperty('--person-dark', dark);
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
