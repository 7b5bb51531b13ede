//! Transports: how clients reach the core. Each maps its wire format onto
//! [`Session`](crate::core::Session) calls and encodes what comes out of the
//! connection's outbox.

pub mod query;
pub mod socketio;
pub mod ws;
