//! Wire types of the chat protocol v1, shared by the server and every Rust
//! client.
//!
//! The contract lives in `docs/protocol.md`. This crate owns three things:
//!
//! - [`request`]: parsing a client's text frame into a [`request::Request`],
//!   with the exact error code the contract assigns to each kind of bad input;
//! - [`frames`]: the frames a server sends, serializable and deserializable,
//!   so the server encodes them and clients decode them with the same types;
//! - [`validate`]: the limits on room names, message text and client ids,
//!   parameterised by the configured maxima.
//!
//! It knows nothing of sockets or storage: it only turns bytes into values
//! and values into bytes.

pub mod codes;
pub mod frames;
#[doc(hidden)]
pub mod fuzzing;
pub mod people;
pub mod request;
#[doc(hidden)]
pub mod samples;
pub mod validate;

pub use codes::{CloseCode, ErrorCode};
pub use frames::{
    AckBody, Change, DeletedBody, DirectoryBody, DirectoryEntry, EditedBody, EncodedUser,
    ErrorBody, HistoryBody, JoinedBody, LeftBody, Member, Members, Message, PinnedBody, PongBody,
    PresenceBody, PresenceEvent, Quote, Reaction, ReactionBody, ReadBody, RoomAddedBody, RoomState,
    RoomSummary, RoomsBody, SearchResultsBody, ServerFrame, TypingBody, User, WelcomeBody,
};
pub use request::{Ref, Request, RequestError, parse_request};
