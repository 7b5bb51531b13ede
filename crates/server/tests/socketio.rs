//! Socket.IO clients against the binary cargo just built (`tests/socketio/`:
//! Node's test runner): the official `socket.io-client` over WebSocket and
//! long-polling, next to native clients on `/ws`; and the seed article's
//! React client, built with Vite and driven in Chromium through
//! playwright-core. Each test file starts its own servers.
//!
//! Needs Node.js and npm, and for the seed client Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM_PATH`); runs `npm ci` where
//! `node_modules` is missing. `#[ignore]`d: `scripts/test` installs what it
//! needs and runs it; see `node_suite`.

mod node_suite;

use node_suite::Suite;

/// The test file that needs Chromium.
const BROWSER_SUITE: &str = "seed-client.test.js";

#[test]
#[ignore = "needs Node.js, npm and Chromium: scripts/test installs them"]
fn socket_io_clients_and_the_seed_react_client() {
    let suite = Suite::new("the Socket.IO tests", "tests/socketio");
    suite.require_node();
    suite.install(&suite.dir, "socket.io-client");
    let mut files: Vec<String> = std::fs::read_dir(&suite.dir)
        .expect("read tests/socketio")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.js"))
        .collect();
    files.sort();
    let chromium = Suite::chromium();
    suite.require(
        chromium.exists(),
        &format!(
            "the seed client's browser test ({BROWSER_SUITE}): no Chromium at {}",
            chromium.display()
        ),
    );
    suite.install(&suite.dir.join("seed-client"), "vite");
    suite.run(&files);
}
