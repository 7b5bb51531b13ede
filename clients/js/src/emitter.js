// A small typed event emitter: `on` returns the function that unsubscribes.
// A handler that throws does not stop the others nor the client: its error
// is rethrown on its own, where the platform reports uncaught errors.

/**
 * @template {Record<string, unknown[]>} Events
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(...args: any[]) => void>>} */
  #handlers = new Map();

  /**
   * Calls `handler` for every event of `type`; returns the unsubscribe function.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(...args: Events[K]) => void} handler
   * @returns {() => void}
   */
  on(type, handler) {
    let set = this.#handlers.get(type);
    if (!set) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    set.add(handler);
    return () => this.off(type, handler);
  }

  /**
   * Calls `handler` for the next event of `type` only.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(...args: Events[K]) => void} handler
   * @returns {() => void}
   */
  once(type, handler) {
    /** @param {Events[K]} args */
    const wrapper = (...args) => {
      this.off(type, wrapper);
      handler(...args);
    };
    return this.on(type, wrapper);
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {(...args: Events[K]) => void} handler
   */
  off(type, handler) {
    this.#handlers.get(type)?.delete(handler);
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} args
   */
  emit(type, ...args) {
    const set = this.#handlers.get(type);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
