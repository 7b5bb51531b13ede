// Reconnect delays: doubling from a base up to a ceiling, each drawn at
// random from the upper half of its interval, so that the many clients one
// restart dropped do not all come back in the same millisecond, and none
// comes back sooner than half the interval.

/**
 * @typedef {object} BackoffOptions
 * @property {number} [baseMs] The first delay's ceiling (default 300).
 * @property {number} [maxMs] The largest delay (default 10000).
 */

export const DEFAULT_BACKOFF = { baseMs: 300, maxMs: 10_000 };

/**
 * The delay before reconnect attempt `attempt` (0 for the first).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, { baseMs = DEFAULT_BACKOFF.baseMs, maxMs = DEFAULT_BACKOFF.maxMs } = {}) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
