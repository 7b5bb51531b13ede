// Entry point: restores what this browser remembers, then starts the page.
// Modules: connection (WebSocket, reconnects) → client (protocol) → store
// (state) → view (DOM). See docs/architecture.md.

import { ChatClient } from './client.js';
import { guestCredential } from './guest.js';
import { remembered } from './storage.js';
import { Store } from './store.js';
import { AppView } from './view/app.js';

const store = new Store({ userIds: remembered.userIds() });
const client = new ChatClient(store);
client.restore({
  rooms: remembered.rooms(),
  active: remembered.activeRoom(),
  outbox: remembered.outbox(),
});
const name = remembered.name();
new AppView(store, client, { name, drafts: remembered.drafts() });
// A returning visitor is put straight back into their rooms (those this
// browser remembers, and those the server lists for their guest
// credential); a new one connects on their first Join.
if (store.rooms.size > 0 || guestCredential.get() !== null) client.connect(name);
