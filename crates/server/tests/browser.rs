//! The web page's browser tests (`tests/browser/`: Node's test runner
//! driving Debian's Chromium through playwright-core), run against the
//! binary cargo just built, so `cargo nextest run --workspace` covers the
//! page too. The suite starts its own servers; see tests/browser/harness.js.
//!
//! Needs Node.js and Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`), and
//! runs `npm ci` when `tests/browser/node_modules` is missing. `#[ignore]`d:
//! `scripts/test` installs what it needs and runs it; see `node_suite`.
//!
//! One test of `admin.test.js` also needs PostgreSQL and Redis (two nodes
//! of a cluster, as in `cluster.rs`): without them it is skipped, by name,
//! unless `CI=true`, where it fails.
//!
//! Screenshots land in `ci-artifacts/` at the repository root.

mod node_suite;

use node_suite::Suite;

#[test]
#[ignore = "needs Node.js, npm and Chromium: scripts/test installs them"]
fn web_page_in_chromium() {
    let suite = Suite::new("the browser tests", "tests/browser");
    let chromium = Suite::chromium();
    suite.require_node();
    suite.require(
        chromium.exists(),
        &format!("no Chromium at {}", chromium.display()),
    );
    suite.install(&suite.dir, "playwright-core");
    suite.run(&[]);
}
