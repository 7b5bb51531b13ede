// Direct-message room names, as the server makes them
// (crates/protocol/src/people.rs): `dm:` and the two user ids in order,
// `%` and `,` in them escaped, so that no pair of ids can spell another
// pair's room and both users (and every node) find the same room.

export const DM_PREFIX = 'dm:';

/** Whether `name` is a direct-message room's. */
export function isDm(/** @type {string} */ name) {
  return name.startsWith(DM_PREFIX);
}

/** @param {string} id */
function escapeId(id) {
  return id.replaceAll('%', '%25').replaceAll(',', '%2C');
}

/** @param {string} part */
function unescapeId(part) {
  return part.replaceAll('%2C', ',').replaceAll('%25', '%');
}

/**
 * Orders strings by code point, as Rust orders `str` (JavaScript's `<`
 * compares UTF-16 units, which differs above U+FFFF).
 * @param {string} a
 * @param {string} b
 */
function codePointOrder(a, b) {
  const left = Array.from(a);
  const right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const difference = /** @type {number} */ (left[i].codePointAt(0)) - /** @type {number} */ (right[i].codePointAt(0));
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

/**
 * The direct-message room of users `a` and `b` (ids), in either order.
 * @param {string} a
 * @param {string} b
 */
export function dmRoom(a, b) {
  const [first, second] = codePointOrder(a, b) <= 0 ? [a, b] : [b, a];
  return `${DM_PREFIX}${escapeId(first)},${escapeId(second)}`;
}

/**
 * The other user's id in direct-message room `name` that user `me` is in; null if none.
 * @param {string} name
 * @param {string} me
 * @returns {string | null}
 */
export function dmPeer(name, me) {
  if (!isDm(name)) return null;
  const parts = name.slice(DM_PREFIX.length).split(',');
  if (parts.length !== 2) return null;
  const [a, b] = parts.map(unescapeId);
  if (dmRoom(a, b) !== name) return null;
  if (a === me) return b;
  if (b === me) return a;
  return null;
}
