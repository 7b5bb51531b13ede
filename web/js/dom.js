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
