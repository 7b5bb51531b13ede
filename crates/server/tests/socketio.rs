//! Socket.IO clients against the binary cargo just built (`tests/socketio/`:
//! Node's test runner): the official `socket.io-client` over WebSocket and
//! long-polling, next to native clients on `/ws`; and the seed article's
//! React client, built with Vite and driven in Chromium through
//! playwright-core. Each test file starts its own servers.
//!
//! Needs Node.js and npm, and for the seed client Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM_PATH`); runs `npm ci` where
//! `node_modules` is missing; see `node_suite` for what happens when they
//! are missing.

mod node_suite;

use node_suite::Suite;

/// The test file that needs Chromium.
const BROWSER_SUITE: &str = "seed-client.test.js";

#[test]
fn socket_io_clients_and_the_seed_react_client() {
    let suite = Suite::new("the Socket.IO tests", "socketio");
    if !suite.has_node() || !suite.installed(&suite.dir, "socket.io-client") {
        return;
    }
    let mut files: Vec<String> = std::fs::read_dir(&suite.dir)
        .expect("read tests/socketio")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.js") && name != BROWSER_SUITE)
        .collect();
    files.sort();
    let chromium = Suite::chromium();
    if suite.require(
        chromium.exists(),
        &format!(
            "the seed client's browser test: no Chromium at {}",
            chromium.display()
        ),
    ) && suite.installed(&suite.dir.join("seed-client"), "vite")
    {
        files.push(BROWSER_SUITE.to_owned());
    }
    suite.run(&files);
}
