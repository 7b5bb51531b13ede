//! The chat server as a library: the `chat-server` binary is a thin shell
//! around [`server::Server`], and tests can start servers in-process.
//!
//! Everything around the core (`chat_core`: rooms, sessions, sequencing,
//! presence, fan-out, permissions, and the `Store` and `Broker` traits),
//! from the wire inwards (see `docs/architecture.md`):
//!
//! - [`edge`]: the listening socket, HTTP/1 connections and their limits,
//!   the Host and Origin guard;
//! - [`transport`]: WebSocket connections, native JSON (`/ws`) and
//!   Socket.IO (`/socket.io/`), on one WebSocket layer, each turned into a
//!   core session;
//! - [`api`], [`http`], [`web`]: the HTTP API, operator endpoints, the
//!   pages; [`dashboard`]: what the admin dashboard knows (history, nodes);
//! - [`auth`] (who a connection is: JWT or anonymous) and [`tls`]
//!   (`https://` and `wss://`);
//! - [`store`] (SQLite and PostgreSQL) and [`broker`] (Redis): the
//!   backends behind the core's two traits;
//! - [`server`], [`config`]: wiring and settings.

pub mod api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod dashboard;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;
