//! The chat server as a library: the `chat-server` binary is a thin shell
//! around [`server::Server`], and tests can start servers in-process.
//!
//! Layers, from the wire inwards (see `docs/architecture.md`):
//!
//! - [`transport`]: the native protocol (`/ws`) and Socket.IO, on one
//!   WebSocket layer;
//! - [`core`]: rooms, membership, sequencing, presence and fan-out, which
//!   know nothing of sockets or SQL;
//! - [`store`] (durable history, the sequencer of record) and [`broker`]
//!   (fan-out between nodes), the two seams backends plug into;
//! - [`server`], [`http`], [`config`]: wiring, operator endpoints, settings;
//! - [`auth`] (who a connection is: JWT or anonymous) and [`tls`]
//!   (`https://` and `wss://`), both below the transports;
//! - [`sync`]: the poison-tolerant lock helpers every layer uses.

pub mod api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod core;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod server;
pub mod store;
pub mod sync;
pub mod tls;
pub mod transport;
pub mod web;
