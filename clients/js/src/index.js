// The chat server's JavaScript client: ES modules, no dependencies, the
// same in browsers and in Node. See README.md.

export { ChatClient } from './client.js';
export { ChatError, ClosedError, DisconnectedError, ERROR_CODES, RefusedError, ServerError, TimeoutError } from './errors.js';
export { DM_PREFIX, dmPeer, dmRoom, isDm } from './people.js';
