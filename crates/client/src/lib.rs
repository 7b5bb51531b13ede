//! Rust client for the chat protocol v1 (specified in the repository's
//! `docs/protocol.md`).
//!
//! A [`Client`] is a cheap-to-clone handle on one connection that a
//! background task keeps alive. Requests ([`Client::join`],
//! [`Client::send`], [`Client::edit`], [`Client::history`],
//! [`Client::search`], [`Client::rooms`], [`Client::dm`], …) are async
//! methods that return the server's reply,
//! or a typed [`Error`]; everything the server pushes arrives on [`Events`]
//! as [`Event`]s.
//!
//! A room's sequence holds messages and *changes* to them (edits,
//! deletions, reactions, pins, a server extension), numbered by one `seq`:
//! each change is an entry of its own, acked with its own `seq`
//! ([`Client::edit`], [`Client::delete`], [`Client::react`],
//! [`Client::pin`], or [`Client::write`] for any [`Action`]), and delivered
//! as an [`Event::Change`] among the room's [`Event::Message`]s. Apply both
//! to a [`RoomState`] (start from [`Joined::room_state`], then
//! [`Event::apply_to`]) to hold each message in its current state.
//!
//! What it adds to a bare WebSocket, so applications need not:
//!
//! - **Resume without gaps or doubles.** For each joined room the client
//!   remembers the last `seq` it delivered. After a reconnect it re-joins
//!   with `since` = that `seq`, pages through history if the server could not
//!   return everything at once, and delivers only what is new: per room,
//!   [`Event::Message`]s and [`Event::Change`]s come in `seq` order, each
//!   exactly once, so a client that resumes ends with the same room state
//!   as one that never left.
//! - **Writes that are acked exactly once.** Every send (and edit, deletion,
//!   reaction, pin) has an `id`; one cut off by a disconnect is sent again
//!   with the same `id` after reconnecting, so it is stored once and its
//!   caller gets the ack.
//! - **Reconnect with backoff.** Exponential with full jitter ([`Backoff`]),
//!   after a drop, a server shutdown (close 1001), a slow-consumer drop
//!   (1013), or a server that went silent for two heartbeat intervals. The
//!   first attempt comes after a random 0–250 ms (the default
//!   [`Backoff::initial`]): a node drained for a rolling restart sees its
//!   clients back on another node at once, without all of them arriving in
//!   the same millisecond.
//! - **TLS.** A `wss://` URL connects over TLS (rustls), reconnects
//!   included; the server's certificate is always verified, against the
//!   platform's root store and any certificate authority given to
//!   [`ClientBuilder::root_certificates_pem`] (a private CA, or a
//!   self-signed server's own certificate). An untrusted certificate fails
//!   with [`Error::Tls`], whose source is the [`rustls::Error`].
//! - **The same guest across reconnects.** Without a token, the client
//!   reconnects with the guest credential the server's latest `welcome`
//!   handed out ([`Client::guest_token`]), so it stays the same user; pass
//!   it to [`ClientBuilder::guest_token`] to be that user in a later run.
//!
//! People (extensions of our server): each user has a read marker per room
//! ([`Client::read`], [`Event::Read`]), a list of their rooms with unread
//! counts ([`Client::rooms`]), a directory of public rooms
//! ([`Client::directory`]), and direct-message rooms with one other person
//! ([`Client::dm`], [`Event::RoomAdded`]), joined and followed like any
//! room.
//!
//! ```no_run
//! use chat_client::{ClientBuilder, Event};
//!
//! # async fn demo() -> chat_client::Result<()> {
//! let (client, mut events) = ClientBuilder::new("ws://127.0.0.1:3000/ws")
//!     .name("alice")
//!     .connect()
//!     .await?;
//! client.join("general").await?;
//! client.send("general", "hello 你好 👋").await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Message(m) => println!("#{} {} {}: {}", m.room, m.seq, m.from.name, m.text),
//!         Event::Change(c) => println!("#{} {} {} {}", c.room(), c.seq(), c.type_name(), c.target()),
//!         Event::Reconnecting { reason, .. } => eprintln!("reconnecting: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The `examples/` directory has runnable programs, and the `chat` binary
//! (`src/bin/chat.rs`, behind the default `cli` feature) is a command-line
//! client built on this library. A library user who needs no CLI depends on
//! it with `default-features = false` and skips clap and anyhow. The load
//! generator is a crate of its own, `chat-bench` (`crates/bench`).
//!
//! Wire types come from [`chat_protocol`], shared with the server, so client
//! and server cannot drift apart silently.

mod action;
mod backoff;
mod client;
mod connection;
mod error;
mod event;
mod feed;
mod history;
mod search;
mod tls;
mod wire;

pub use action::Action;
pub use backoff::Backoff;
pub use chat_protocol::people::{dm_peer, dm_room};
pub use chat_protocol::{
    Change, DeletedBody, DirectoryEntry, EditedBody, ErrorCode, Member, Message, PinnedBody,
    PresenceEvent, Quote, Reaction, ReactionBody, ReadBody, RoomState, RoomSummary, User,
};
pub use client::{Client, ClientBuilder};
pub use error::{Error, Result};
pub use event::{Ack, CloseReason, Event, Events, History, Joined, SearchResults, Session};
pub use history::HistoryQuery;
/// The TLS library under `wss://`: [`Error::Tls`] carries a
/// [`rustls::Error`] (an untrusted certificate is
/// `rustls::Error::InvalidCertificate`), re-exported so that matching on it
/// needs no dependency of one's own, at the same version.
pub use rustls;
pub use search::Search;
