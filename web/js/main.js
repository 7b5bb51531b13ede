// Entry point: restores what this browser remembers, then starts the page.
// Modules: the chat client library (../chat-client/, clients/js in the
// repository: connection, resume, outbox) → client (the page's glue) →
// store (state) → view (DOM). See docs/architecture.md.

import { PageClient } from './client.js';
import { guestCredential } from './guest.js';
import { remembered, upgradeOutbox } from './storage.js';
import { Store } from './store.js';
import { AppView } from './view/app.js';

// Before the library reads this tab's unsent writes.
upgradeOutbox();
const store = new Store({ userIds: remembered.userIds() });
const client = new PageClient(store);
client.restore({
  // The rooms of unsent writes too, so that those are sent.
  rooms: [...remembered.rooms(), ...remembered.outboxRooms()],
  active: remembered.activeRoom(),
});
const name = remembered.name();
new AppView(store, client, { name, drafts: remembered.drafts() });
// A returning visitor is put straight back into their rooms (those this
// browser remembers, and those the server lists for their guest
// credential); a new one connects on their first Join.
if (store.rooms.size > 0 || guestCredential.get() !== null) client.connect(name);
