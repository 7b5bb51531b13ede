//! A room as a client holds it, built from the frames a connection received
//! (decoded with the protocol crate's types, so a frame that does not match
//! them fails the test), by the rules of `chat_protocol::RoomState`: what
//! the convergence tests compare.

use chat_protocol::{RoomState, ServerFrame};
use serde_json::Value;

/// Applies every frame of `room` among `frames` to `state`: `joined`
/// replies, messages and changes; anything else is skipped.
pub fn apply(state: &mut RoomState, room: &str, frames: &[Value]) {
    for frame in frames {
        if frame["room"] != room {
            continue;
        }
        let decoded: ServerFrame = match frame["type"].as_str() {
            Some("joined" | "message" | "edited" | "deleted" | "reaction" | "pinned") => {
                serde_json::from_value(frame.clone())
                    .unwrap_or_else(|e| panic!("not a frame of the protocol ({e}): {frame}"))
            }
            _ => continue,
        };
        match decoded {
            ServerFrame::Joined { body, .. } => state.apply_joined(&body),
            ServerFrame::Message(message) => state.apply_message(message),
            other => {
                if let Ok(change) = other.into_change() {
                    state.apply_change(&change);
                }
            }
        }
    }
}

/// The state `frames` build from nothing.
pub fn state_of(room: &str, frames: &[Value]) -> RoomState {
    let mut state = RoomState::default();
    apply(&mut state, room, frames);
    state
}
