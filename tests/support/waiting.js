// Waiting with a deadline, for the Node test suites (tests/socketio,
// clients/js/test): each harness makes its pair with its own default.

/**
 * `deadline(promise, what, ms)`: rejects after `ms` with `what` in the
 * message, unless `promise` settles first. `until(condition, what, ms)`:
 * waits until `condition()` (perhaps async) is true, checking every 20 ms.
 * Both default to `defaultMs`.
 */
export function waiting(defaultMs) {
  function deadline(promise, what, ms = defaultMs) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function until(condition, what, ms = defaultMs) {
    const started = Date.now();
    while (!(await condition())) {
      if (Date.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  return { deadline, until };
}
