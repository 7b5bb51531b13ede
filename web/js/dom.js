// The one way this page creates elements. Strings always become text nodes,
// never markup, so text from the network cannot turn into HTML however it
// is written.

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
