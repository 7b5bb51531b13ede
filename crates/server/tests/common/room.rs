//! A room as a client holds it, built from the frames a connection received
//! (decoded with the protocol crate's types, so a frame that does not match
//! them fails the test), by the rules of `chat_protocol::RoomState`: what
//! the convergence tests compare.

use chat_protocol::{RoomState, ServerFrame};
use serde_json::Value;

use super::Client;

/// The entries of `room` (messages and changes, not replies) `client`
/// receives up to and including `seq`, in the order received. A client's
/// own requests skip the broadcasts they pass: read with a member that
/// makes none meanwhile.
pub async fn entries_through(room: &str, client: &mut Client, seq: u64) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    while seen.last().is_none_or(|f| f["seq"].as_u64() < Some(seq)) {
        let frame = client
            .recv_until(|f| {
                f["room"] == room
                    && f.get("ref").is_none()
                    && ["message", "edited", "deleted", "reaction", "pinned"]
                        .contains(&f["type"].as_str().unwrap_or(""))
            })
            .await;
        seen.push(frame);
    }
    seen
}

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
