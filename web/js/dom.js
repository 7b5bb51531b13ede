// The one way this page creates elements. Strings always become text nodes,
// never HTML, so text from the network cannot turn into HTML however it is
// written; the light markup of messages (`markup`, below) is read into
// elements made the same way.

/**
 * Creates an element.
 * props: `class`, `dataset` (object), `on<event>` (listener), anything else
 * as an attribute (`true` = present, false/null/undefined = absent).
 * children: nodes, strings (as text), arrays of those; null/false skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Makes `parent`'s children exactly `nodes`, in order, moving only what is
 * out of place. Nodes that stay keep their scroll-independent state (text
 * selection, focus), which a full re-render would lose.
 */
export function reconcile(parent, nodes) {
  let cursor = parent.firstChild;
  for (const node of nodes) {
    if (node === cursor) {
      cursor = cursor.nextSibling;
    } else {
      parent.insertBefore(node, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

/** Sets an element's text only when it differs (avoids needless layout). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Shows `text` in an error element, or hides it when `text` is empty. */
export function showError(el, text) {
  setText(el, text || '');
  el.hidden = !text;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An icon drawn like index.html's: `paths` (path data) on a 24×24 grid,
 * stroked in the text's colour, hidden from screen readers (the control
 * it is in carries the words).
 */
export function icon(paths) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** The page's icons, as `icon` takes them. */
export const ICONS = {
  reply: ['M9 7 4 12l5 5', 'M4 12h11a5 5 0 0 1 5 5v2'],
  react: [
    'M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
    'M8.5 14.5c.9 1.2 2.1 1.8 3.5 1.8s2.6-.6 3.5-1.8',
    'M9 9.5h.01',
    'M15 9.5h.01',
  ],
  edit: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  delete: ['M4 7h16', 'M10 11v6', 'M14 11v6', 'M6 7l1 13h10l1-13', 'M9 7V4h6v3'],
  pin: ['M9 4h6', 'M10 4v6l-3 4h10l-3-4V4', 'M12 14v6'],
  close: ['M6 6l12 12', 'M18 6 6 18'],
};

// ---- The light markup of message text ----------------------------------
//
// **bold**, *italic* or _italic_, `code`, ```blocks of code```, and http(s)
// links. Text is read into elements built one by one, never parsed as HTML,
// so whatever a message holds (`<b>`, `<img onerror=…>`) shows as the
// characters it is. Marks that do not pair up stay as typed; inside code
// nothing is read.

// A block of code: from ``` to ```, without the line breaks next to them.
const FENCE = /```\n?([\s\S]+?)\n?```/;

// The spans inside a line. An emphasis mark opens only where no letter or
// digit is just before it and closes only where none is just after it, so
// snake_case_names and 2*3*4 stay as typed; its text has no space at
// either end and no line break.
const INLINE = [
  { kind: 'code', pattern: /`([^`\n]+)`/ },
  { kind: 'link', pattern: /\bhttps?:\/\/[^\s<>"]+/iu },
  { kind: 'strong', pattern: /(?<![\p{L}\p{N}_*])\*\*(?=[^\s*])([^\n]*?[^\s*])\*\*(?![\p{L}\p{N}_*])/u },
  { kind: 'em', pattern: /(?<![\p{L}\p{N}_*])\*(?=[^\s*])([^\n]*?[^\s*])\*(?![\p{L}\p{N}_*])/u },
  { kind: 'em', pattern: /(?<![\p{L}\p{N}_])_(?=[^\s_])([^\n]*?[^\s_])_(?![\p{L}\p{N}_])/u },
];

// Characters that end a sentence rather than a link typed before them.
const TRAILING = /[.,:;!?'\]]$/;

/**
 * `text` as nodes (strings and elements), for `h` to take as children.
 * `plain(string)` gives the nodes of text outside code and links (the
 * page marks `@name`s there); by default the string itself.
 */
export function markup(text, plain = (string) => [string]) {
  const nodes = [];
  let rest = text;
  for (let found = FENCE.exec(rest); found; found = FENCE.exec(rest)) {
    nodes.push(...inline(rest.slice(0, found.index), plain), h('pre', {}, h('code', {}, found[1])));
    rest = rest.slice(found.index + found[0].length);
  }
  nodes.push(...inline(rest, plain));
  return nodes;
}

/** The spans of `text`: the earliest mark first, what it holds read again. */
function inline(text, plain) {
  const nodes = [];
  let rest = text;
  while (rest) {
    const next = earliest(rest);
    if (!next) break;
    const { kind, found } = next;
    let end = found.index + found[0].length;
    let node;
    if (kind === 'link') {
      const typed = trimLink(found[0]);
      end = found.index + typed.length;
      node = link(typed);
    } else if (kind === 'code') {
      node = h('code', {}, found[1]);
    } else {
      node = h(kind, {}, inline(found[1], plain));
    }
    if (found.index > 0) nodes.push(...plain(rest.slice(0, found.index)));
    nodes.push(node);
    rest = rest.slice(end);
  }
  if (rest) nodes.push(...plain(rest));
  return nodes;
}

/** The mark that starts first in `text` (on a tie, the one listed first), or null. */
function earliest(text) {
  let best = null;
  for (const { kind, pattern } of INLINE) {
    const found = pattern.exec(text);
    if (found && (best === null || found.index < best.found.index)) best = { kind, found };
  }
  return best;
}

/** A link as typed, without the punctuation after it ("see https://x.org/."). */
function trimLink(typed) {
  let url = typed;
  for (;;) {
    if (TRAILING.test(url)) url = url.slice(0, -1);
    else if (url.endsWith(')') && count(url, ')') > count(url, '(')) url = url.slice(0, -1);
    else return url;
  }
}

function count(text, char) {
  return text.split(char).length - 1;
}

/**
 * A link that opens in a new tab, with no way back to this page (`opener`)
 * and nothing of it sent along (`referrer`). Only http: and https: URLs
 * become links; anything else stays text.
 */
function link(typed) {
  let url;
  try {
    url = new URL(typed);
  } catch {
    return typed;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return typed;
  return h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer' }, typed);
}
