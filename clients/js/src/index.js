// The chat server's JavaScript client: ES modules, no dependencies, the
// same in browsers and in Node. See README.md.

export { ChatClient } from './client.js';
export { ChatError, ClosedError, DisconnectedError, ERROR_CODES, RefusedError, ServerError, TimeoutError } from './errors.js';
export { DM_PREFIX, dmPeer, dmRoom, isDm } from './people.js';

/** @typedef {import('./client.js').ChatClientOptions} ChatClientOptions */
/** @typedef {import('./client.js').ChatEvents} ChatEvents */
/** @typedef {import('./connection.js').ConnectionState} ConnectionState */
/** @typedef {import('./connection.js').WebSocketConstructor} WebSocketConstructor */
/** @typedef {import('./outbox.js').PendingWrite} PendingWrite */
/** @typedef {import('./outbox.js').StorageAdapter} StorageAdapter */
/** @typedef {import('./outbox.js').SendRate} SendRate */
/** @typedef {import('./backoff.js').BackoffOptions} BackoffOptions */
/** @typedef {import('./protocol.js').ServerFrame} ServerFrame */
/** @typedef {import('./protocol.js').ClientFrame} ClientFrame */
/** @typedef {import('./protocol.js').Message} Message */
/** @typedef {import('./protocol.js').Change} Change */
/** @typedef {import('./protocol.js').User} User */
/** @typedef {import('./protocol.js').ErrorCode} ErrorCode */
/** @typedef {import('./protocol.js').WelcomeFrame} WelcomeFrame */
/** @typedef {import('./protocol.js').JoinedFrame} JoinedFrame */
/** @typedef {import('./protocol.js').AckFrame} AckFrame */
/** @typedef {import('./protocol.js').HistoryFrame} HistoryFrame */
/** @typedef {import('./protocol.js').SearchResultsFrame} SearchResultsFrame */
/** @typedef {import('./protocol.js').ReadFrame} ReadFrame */
/** @typedef {import('./protocol.js').RoomSummary} RoomSummary */
/** @typedef {import('./protocol.js').DirectoryEntry} DirectoryEntry */
/** @typedef {import('./protocol.js').PresenceFrame} PresenceFrame */
/** @typedef {import('./protocol.js').TypingFrame} TypingFrame */
/** @typedef {import('./protocol.js').RoomAddedFrame} RoomAddedFrame */
