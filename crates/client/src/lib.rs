//! Rust client side of the chat protocol v1 (`/work/shared/protocol-v1.md`,
//! the project's `docs/protocol.md`).
//!
//! For now this crate holds only [`bench`], the engine behind the
//! `chat-bench` load generator. The general client library (a connection
//! type with request/reply matching, reconnect with `join` + `since`) and the
//! `chat` CLI will live next to it as sibling modules; `bench` deliberately
//! keeps its own lean connection handling because a load generator must not
//! pay for conveniences (per-request futures, channels, owned frames) that a
//! normal client wants.
//!
//! Wire types come from [`chat_protocol`], shared with the server, so client
//! and server cannot drift apart silently.

pub mod bench;
